"""What a worker process adds to running tasks: it rides out Redis and Postgres outages, reconciles on a timer,
replaces exited pool children at once, and stops trainings early on shutdown so they resume elsewhere.

The CLI and the API keep the app's fail-fast broker settings; only worker processes get the patient ones below,
applied from the `celeryd_init` signal (sent in the worker's main process before it connects).

This module sits on top of the pipeline: importing it registers the worker's bootsteps on the app, which
`agent_pipeline.app` (what `celery -A agent_pipeline` loads) and the embedded runner do before a worker starts.
Any other app module a worker program runs must take `app` from here as well: the benches' took the bare
`celery_app`, and their GPU worker, without PoolKeeper, waited up to 5 s for each training's pool child.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
from typing import Any

import billiard.pool
from celery import bootsteps, signals

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import artifact_store
from agent_pipeline.errors import StoreError
from agent_pipeline.logs import setup_logging
from agent_pipeline.pipeline.celery_app import GPU_QUEUE, RESEARCH_QUEUE, app
from agent_pipeline.pipeline.hard_exit import exit_without_finalisation
from agent_pipeline.pipeline.kombu_restore import patch_redis_restore
from agent_pipeline.pipeline.reconcile import reconcile
from agent_pipeline.pipeline.shutdown import STOP_SIGNAL, stop_requested
from agent_pipeline.store.operations import forget_inherited_connections, get_store

logger = logging.getLogger(__name__)

# Seconds a soft shutdown (SIGTERM with REMAP_SIGTERM=SIGQUIT) waits before it terminates what still runs and
# Redis requeues it. A training told to stop is parked at its last checkpoint within about a second; a short
# research phase may finish. docker-compose's stop_grace_period (30 s) leaves room for the rest of the shutdown.
SOFT_SHUTDOWN_TIMEOUT_S = 15.0
# kombu retry policy for a worker's publishes and result writes: about 10 minutes of 2 s retries.
PATIENT_RETRY_POLICY = {"max_retries": 300, "interval_start": 0.0, "interval_step": 0.5, "interval_max": 2.0}
# Seconds between checks for an exited pool child to replace (see PoolKeeper).
POOL_CHECK_S = 0.1
# Seconds between a finished child's checks that the main process has read its last result, before it exits;
# billiard polls every 0.1 s, and the main process has nearly always read it by the second look (see PoolKeeper).
CHILD_EXIT_POLL_S = 0.01
# Retries of a result-backend call outside a task body, at most 2 s apart: about 5 minutes of outage.
BACKEND_MAX_RETRIES = 150

_worker: dict[str, Any] = {}


def configure_worker(conf: Any) -> None:
    """The settings a worker needs and the CLI must not have; each line says why."""
    conf.update(
        # Reconnect forever with backoff: a Redis restart must not end a worker (issue 11).
        broker_connection_max_retries=None,
        # Publishing from a task (the next phase, a poll's retry) waits out an outage of minutes, not 1 s.
        task_publish_retry_policy=PATIENT_RETRY_POLICY,
        result_backend_transport_options={"retry_policy": PATIENT_RETRY_POLICY},
        # Celery's own result reads and writes around a task (marking it RETRY or SUCCESS) happen outside the
        # task body: without these they raise on an unreachable Redis and fail the task, and so the cycle.
        result_backend_always_retry=True,
        result_backend_max_retries=BACKEND_MAX_RETRIES,
        result_backend_max_sleep_between_retries_ms=2000,
        # SIGTERM -> soft shutdown (with REMAP_SIGTERM=SIGQUIT); a task still running after it is requeued.
        worker_soft_shutdown_timeout=SOFT_SHUTDOWN_TIMEOUT_S,
    )


class Reconciler(bootsteps.StartStopStep):
    """A research worker fails stale rows (and stops their trainings) every `reconcile_interval` seconds.

    It runs on the worker's own event-loop timer, in the main process: no beat process, no pool slot. A stale
    row is failed within `heartbeat_stale_after` plus one interval of its last heartbeat.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        consume_from = parent.app.amqp.queues.consume_from or {}
        if consume_from and RESEARCH_QUEUE not in consume_from:
            return  # a GPU host has no database
        interval = get_settings().reconcile_interval
        self.timer_ref = parent.timer.call_repeatedly(interval, reconcile_now)
        logger.info("reconciling stale operations every %.0f s", interval)

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


def reconcile_now() -> None:
    """One reconcile pass; never raises into the worker's event loop."""
    try:
        reconcile(get_store(), get_settings())
    except Exception:  # the database may be restarting: log it and try again next period
        logger.warning("scheduled reconcile failed; retrying next period", exc_info=True)


class PoolKeeper(bootsteps.StartStopStep):
    """With one task per child process (the GPU worker), replace an exited child within `POOL_CHECK_S`.

    Celery's prefork pool here reaps a child that exited after its last task only at its 5 s maintenance
    timer (measured: the child is a zombie for 3.3 s before its replacement forks), so a training queued behind
    another waited up to 5 s for a process. Found by bench/bench_orchestration.py.

    The rest of a replacement's delay is billiard's and Celery's: a finished child polls every 0.1 s until the
    main process has read its result (`hasten_child_exit`), and AsynPool runs a full `gc.collect()` before each
    fork (Celery issue #2927), 0.1-0.4 s over torch's, pandas' and matplotlib's objects unless they are frozen
    (`_preload_task_modules`).
    """

    requires = {"celery.worker.components:Pool", "celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        maintain = getattr(getattr(parent.pool, "_pool", None), "maintain_pool", None)
        if parent.max_tasks_per_child and maintain is not None:
            self.timer_ref = parent.timer.call_repeatedly(POOL_CHECK_S, maintain)

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None


def hasten_child_exit() -> None:
    """A pool child that finished its last task exits within about 10 ms of its result being read, not 100 ms.

    billiard's `_ensure_messages_consumed` checks a shared counter at once, finds that the main process has not yet
    read the result it just sent, and sleeps a whole 0.1 s. Poll at CHILD_EXIT_POLL_S instead, as long in all (30 s).
    """
    total = (
        billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT
        * billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL
    )
    if billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL > CHILD_EXIT_POLL_S:
        billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_INTERVAL = CHILD_EXIT_POLL_S
        billiard.pool.GUARANTEE_MESSAGE_CONSUMPTION_RETRY_LIMIT = round(total / CHILD_EXIT_POLL_S)


@signals.celeryd_init.connect
def _patient_worker(sender: str, conf: Any, **_: Any) -> None:
    configure_worker(conf)
    hasten_child_exit()
    patch_redis_restore(_broker_url)  # see kombu_restore: a kombu 5.7 bug
    _check_artifact_store()
    _worker["program"] = True  # the `celery worker` program (not the embedded run's in-process worker)


@signals.worker_shutdown.connect
def _exit_once_stopped(sender: Any, **_: Any) -> None:
    """A worker program ends here once its pool has stopped, skipping the interpreter's finalisation (see
    `hard_exit`). The embedded run's worker is left alone."""
    if not _worker.get("program") or sender.blueprint.state == bootsteps.RUN:
        return
    logger.info("worker stopped; exiting")
    exit_without_finalisation(sender.exitcode or 0)


def _check_artifact_store() -> None:
    """Refuse to start, with one line and no traceback, when the artifact store cannot be used (issue 16)."""
    try:
        artifact_store().check()
    except StoreError as exc:
        print(f"ktrdr worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@signals.worker_init.connect
def _stop_trainings_when_soft_shutdown_begins(sender: Any, **_: Any) -> None:
    """A cold shutdown (SIGTERM with REMAP_SIGTERM=SIGQUIT) calls `wait_for_soft_shutdown` first, and only sends
    `worker_shutting_down` once the soft-shutdown wait is over: too late. Tell the pool children at its start."""
    _worker["instance"] = sender
    original = sender.wait_for_soft_shutdown

    def wait_for_soft_shutdown() -> None:
        request_stop()
        original()

    sender.wait_for_soft_shutdown = wait_for_soft_shutdown


@signals.worker_shutting_down.connect
def _stop_trainings_on_warm_shutdown(how: str = "Warm", **_: Any) -> None:
    if how == "Warm":
        request_stop()


def request_stop() -> None:
    """Tell every pool child that shutdown began, so a running training stops at its last checkpoint."""
    worker = _worker.get("instance")
    pool = getattr(worker, "pool", None)
    pids = (pool.info.get("processes") or []) if pool is not None and hasattr(pool, "info") else []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, STOP_SIGNAL)
    if pids:
        logger.warning("worker shutting down; asked %d pool process(es) to stop their trainings", len(pids))


@signals.worker_process_init.connect
def _listen_for_stop(**_: Any) -> None:
    stop_requested.clear()
    signal.signal(STOP_SIGNAL, lambda *_: stop_requested.set())


def _broker_url() -> str:
    return str(app.conf.broker_url)


@signals.after_setup_logger.connect
def _structured_logs(**_: Any) -> None:
    """The package's own log lines go out as JSON with their operation id, beside Celery's."""
    setup_logging("INFO")


@signals.celeryd_after_setup.connect
def _prepare_research_worker(sender: str, instance: Any, **_: Any) -> None:
    """A research worker brings the schema up and fails what lost its heartbeat while nobody watched.

    A GPU-only worker skips this: a GPU host needs no database.
    """
    consume_from = instance.app.amqp.queues.consume_from or {}
    if consume_from and RESEARCH_QUEUE not in consume_from:
        return
    store = get_store()
    store.upgrade()
    reconcile(store, get_settings())


# What the tasks import on first use, by the queue they serve (the CLI and the API never import these).
PRELOAD = {
    GPU_QUEUE: ("agent_pipeline.engine.research",),  # torch, pandas
    RESEARCH_QUEUE: ("agent_pipeline.engine.research", "matplotlib.figure", "matplotlib.backends.backend_agg"),
}


@signals.celeryd_after_setup.connect
def _preload_task_modules(sender: str, instance: Any, **_: Any) -> None:
    """Import PRELOAD once in the main process, before the pool forks: prefork children inherit the modules.

    A GPU worker trains each model in a fresh child (`--max-tasks-per-child 1`), so each training paid torch's
    import (1.5-3 s on 2 cores) before its first epoch; a research worker's first backtest and report paid torch's
    and matplotlib's. Importing torch initialises no CUDA and starts no thread: both stay in the children.

    The imported objects are then frozen out of the collector: Celery's AsynPool runs `gc.collect()` before every
    fork (Celery issue #2927), which walked them for 0.1-0.4 s each time a one-task child was replaced.
    """
    queues = set(instance.app.amqp.queues.consume_from or {}) or set(PRELOAD)
    for module in sorted({name for queue in queues & set(PRELOAD) for name in PRELOAD[queue]}):
        importlib.import_module(module)
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()


@signals.worker_process_init.connect
def _fresh_database_connections(**_: Any) -> None:
    """Prefork children start without the parent's database connections (opened by the start-up upgrade)."""
    forget_inherited_connections()


# Worker-only behaviour (patient broker settings, the reconcile timer, stopping trainings on shutdown) hooks in
# through the signals above and these bootsteps; the CLI and the API never import this module, so they keep
# failing fast.
app.steps["worker"].update({Reconciler, PoolKeeper})
