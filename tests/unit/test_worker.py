"""Worker-only settings: workers wait out a broker outage while the CLI and the API keep failing fast."""

from __future__ import annotations

import pytest
from celery import Celery
from pydantic import ValidationError


def test_the_app_the_cli_and_api_use_fails_fast_on_an_unreachable_broker() -> None:
    from agent_pipeline.pipeline.celery_app import app

    assert app.conf.broker_connection_max_retries == 3
    assert app.conf.broker_connection_timeout == 5
    assert not app.conf.result_backend_always_retry


def test_a_worker_reconnects_forever_and_retries_result_writes_through_an_outage() -> None:
    from agent_pipeline.pipeline.worker import BACKEND_MAX_RETRIES, SOFT_SHUTDOWN_TIMEOUT_S, configure_worker

    conf = Celery("probe").conf
    configure_worker(conf)
    assert conf.broker_connection_max_retries is None
    assert conf.result_backend_always_retry and conf.result_backend_max_retries == BACKEND_MAX_RETRIES
    # a publish from a task (the next phase, a poll's retry) keeps trying for minutes, not one second
    policy = conf.task_publish_retry_policy
    assert policy["max_retries"] * policy["interval_max"] >= 60
    assert conf.worker_soft_shutdown_timeout == SOFT_SHUTDOWN_TIMEOUT_S


def test_the_research_worker_reconciles_at_most_every_60_s_by_default() -> None:
    from agent_pipeline.config import Settings
    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.pipeline.worker import PoolKeeper, Reconciler

    assert 0 < Settings().reconcile_interval <= 60
    with pytest.raises(ValidationError):
        Settings(reconcile_interval=61)  # the bound: a stale row waits at most one minute past its limit
    assert {Reconciler, PoolKeeper} <= set(app.steps["worker"])


def test_the_restore_hook_is_installed_once_and_keeps_kombus_own_method(monkeypatch: pytest.MonkeyPatch) -> None:
    from kombu.transport import redis as kombu_redis

    from agent_pipeline.pipeline.kombu_restore import patch_redis_restore

    kombus = getattr(kombu_redis.QoS.restore_unacked, "__wrapped__", kombu_redis.QoS.restore_unacked)
    monkeypatch.setattr(kombu_redis.QoS, "restore_unacked", kombus)
    patch_redis_restore(lambda: "redis://127.0.0.1:6379/15")
    installed = kombu_redis.QoS.restore_unacked
    patch_redis_restore(lambda: "redis://127.0.0.1:6379/15")  # a second worker init changes nothing
    assert kombu_redis.QoS.restore_unacked is installed is not kombus
    assert installed.__wrapped__ is kombus  # what tests/integration/test_kombu_restore.py runs as kombu's own


def test_a_finished_pool_child_checks_every_10_ms_that_its_result_was_read_for_as_long_in_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import billiard.pool

    from agent_pipeline.pipeline.worker import CHILD_EXIT_POLL_S, hasten_child_exit

    monkeypatch.setattr(billiard.pool, "GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL", 0.1)
    monkeypatch.setattr(billiard.pool, "GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT", 300)
    hasten_child_exit()
    hasten_child_exit()  # a second worker init changes nothing
    assert billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL == CHILD_EXIT_POLL_S
    assert round(billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT * CHILD_EXIT_POLL_S) == 30


def test_the_preloaded_modules_are_frozen_out_of_the_collection_run_before_each_fork() -> None:
    import gc
    from types import SimpleNamespace

    from agent_pipeline.pipeline.worker import _preload_task_modules

    instance = SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from={"none"}))))
    try:
        _preload_task_modules("probe", instance)  # a queue with nothing to preload: only the freeze
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
