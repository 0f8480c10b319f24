"""Triggering a cycle: the daily budget, an unreachable broker, and the chain it sends."""

from __future__ import annotations

import pytest

from agent_pipeline.errors import BudgetExhaustedError, KtrdrError
from agent_pipeline.store.operations import OperationStatus, OperationType

pytestmark = pytest.mark.integration


@pytest.fixture
def store(sqlite_url, monkeypatch):
    from agent_pipeline.config import reset_settings
    from agent_pipeline.store.operations import get_store

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    store = get_store(sqlite_url)
    store.upgrade()
    return store


def use_broker(monkeypatch, url: str) -> None:
    from agent_pipeline.config import get_settings, reset_settings
    from agent_pipeline.pipeline.celery_app import app, configure

    monkeypatch.setenv("KTRDR_BROKER_URL", url)
    monkeypatch.setenv("KTRDR_RESULT_BACKEND", url)
    reset_settings()
    configure(app, get_settings())


def spent(store, usd: float) -> None:
    old = store.create_cycle(max_active=1, metadata={"cost_usd": usd})
    store.fail(old.operation_id, error_message="Design failed: test")


def test_trigger_is_refused_once_todays_spend_reaches_the_budget(store, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle

    monkeypatch.setenv("KTRDR_DAILY_BUDGET_USD", "5")
    spent(store, 3.0)
    spent(store, 2.01)
    with pytest.raises(BudgetExhaustedError) as refused:
        cycle.trigger(store=store)
    assert refused.value.reason == "budget_exhausted"
    assert "$5.01" in str(refused.value)
    assert store.count(operation_type=OperationType.AGENT_RESEARCH) == 2


def test_trigger_sends_the_chain_when_under_budget(store, monkeypatch, redis_url) -> None:
    import redis

    from agent_pipeline.pipeline import cycle

    use_broker(monkeypatch, redis_url)
    spent(store, 1.0)
    operation = cycle.trigger(store=store)
    assert operation.status == OperationStatus.PENDING
    assert operation.metadata["celery_root_id"]
    # The first task of the chain waits on the research queue
    assert redis.Redis.from_url(redis_url).llen("research") == 1


def test_an_unreachable_broker_fails_the_new_cycle_with_one_clear_line(store, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle

    use_broker(monkeypatch, "redis://127.0.0.1:1/0")
    with pytest.raises(KtrdrError) as failed:
        cycle.trigger(store=store)
    assert str(failed.value).startswith("Cycle failed: cannot reach the task broker")
    (row,) = store.list(operation_type=OperationType.AGENT_RESEARCH)
    assert row.status == OperationStatus.FAILED
    assert cycle.status(store).status == "idle"
