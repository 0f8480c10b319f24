"""Cross-cutting behaviour of every phase task: skip finished cycles, mark running, heartbeat, word errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Retry

from agent_pipeline.config import Settings, get_settings
from agent_pipeline.engine.artifacts import fetch
from agent_pipeline.errors import GateFailedError, KtrdrError, PhaseError
from agent_pipeline.logs import operation_context
from agent_pipeline.pipeline.context import CycleContext, Phase
from agent_pipeline.pipeline.outages import outage_errors, wait_for_services
from agent_pipeline.store.operations import Operation, OperationsStore, OperationStatus, OperationType, get_store
from agent_pipeline.store.record import CycleRecord

logger = logging.getLogger(__name__)


class PhaseTask(Task):
    """Base of the research tasks. Subclasses set `phase` and `failure_prefix` through the decorator.

    Before the body runs: a cycle that is already finished (cancelled, failed by the reconciler) makes the task
    raise `Ignore`, which stops the chain without calling the errback. Errors become `PhaseError` worded
    `<failure_prefix>: <reason>`, which the chain's errback copies onto the cycle's row.
    """

    abstract = True
    phase: Phase | None = None
    failure_prefix = "Cycle failed"
    # Redelivered if the worker dies mid-task; every phase is idempotent (it reads the row first).
    acks_late = True
    reject_on_worker_lost = True
    # Expected outcomes: stored as failures, but the worker logs them without an alarming traceback.
    throws = (GateFailedError, PhaseError)

    def __call__(self, ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        context = CycleContext.model_validate(ctx)
        with operation_context(context.cycle_id):
            try:
                return self._run(context, ctx, *args, **kwargs)
            except outage_errors():
                # Redis or Postgres restarting is not the phase's failure: wait for both, then run the phase again
                # (every phase is idempotent). Failing here would lose the chain, and the errback could not even
                # record it.
                wait_for_services(self.app, what=self.name)
                raise self.retry(countdown=0, max_retries=None) from None

    def _run(self, context: CycleContext, ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._enter(context)
        try:
            with Heartbeat(context.cycle_id, every=get_settings().heartbeat_stale_after / 4):
                return super().__call__(ctx, *args, **kwargs)
        except (Ignore, Retry, GateFailedError, PhaseError, *outage_errors()):
            raise
        except KtrdrError as exc:
            logger.warning("phase failed", extra={"phase": self.name, "error": str(exc)})
            raise PhaseError(f"{self.failure_prefix}: {exc}") from None
        except Exception as exc:
            logger.exception("phase crashed", extra={"phase": self.name})
            raise PhaseError(f"{self.failure_prefix}: {type(exc).__name__}: {exc}") from None

    def _enter(self, context: CycleContext) -> None:
        store = get_store()
        cycle = store.get(context.cycle_id)
        if cycle.status.is_finished:
            logger.info("cycle already %s; dropping %s", cycle.status.value, self.name)
            raise Ignore()
        # Each write below also beats the cycle's heartbeat; only what changes is written (one round trip per
        # write, and every phase and every training poll passes here: bench/bench_orchestration.py).
        if cycle.status == OperationStatus.PENDING:
            store.start(context.cycle_id)
        if self.phase is not None and _is_ahead(self.phase, cycle.record.phase):
            # The worker's name rides on a write that happens anyway: the dashboard lists the workers seen.
            store.merge_metadata(context.cycle_id, {"phase": self.phase.value, "worker": self.request.hostname})
            store.update_progress(
                context.cycle_id, percentage=PHASE_PROGRESS[self.phase], current_step=self.phase.value
            )
        elif cycle.status != OperationStatus.PENDING:
            store.heartbeat(context.cycle_id)


def _is_ahead(phase: Phase, current: str | None) -> bool:
    """Phases only move forward: a late duplicate poll of training must not roll a cycle in backtesting back."""
    order = [p.value for p in Phase]
    return current not in order or order.index(phase.value) > order.index(str(current))


class Heartbeat:
    """While a phase body runs (a long LLM call, a backtest), beat the cycle and its active children.

    Without it, the reconciler would take a slow but healthy phase for a dead worker.
    """

    def __init__(self, cycle_id: str, *, every: float) -> None:
        self.cycle_id, self.every = cycle_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{cycle_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                beat_cycle(get_store(), self.cycle_id)
            except KtrdrError:
                logger.warning("heartbeat failed", exc_info=True)


def beat_cycle(store: OperationsStore, cycle_id: str) -> None:
    """Heartbeat the cycle and its active children."""
    store.heartbeat(cycle_id)
    for child in store.list(parent_operation_id=cycle_id, limit=50):
        if not child.status.is_finished:
            store.heartbeat(child.operation_id)


# The cycle's progress when each phase starts (training covers most of the wall time).
PHASE_PROGRESS = {Phase.DESIGNING: 5.0, Phase.TRAINING: 15.0, Phase.BACKTESTING: 75.0, Phase.ASSESSING: 90.0}


def child_operation(
    store: OperationsStore,
    cycle_id: str,
    *,
    key: str,
    operation_type: OperationType,
    metadata: dict[str, Any],
) -> Operation:
    """The cycle's child operation stored under metadata[key], created once (redeliveries reuse it)."""
    existing = getattr(store.get(cycle_id).record, key)
    if existing:
        return store.get(existing)
    child = store.create(operation_type=operation_type, parent_operation_id=cycle_id, metadata=metadata)
    if store.claim_metadata(cycle_id, key, child.operation_id):
        return child
    # A duplicate delivery claimed first: keep its child, drop ours.
    store.fail(child.operation_id, error_message="Superseded by a duplicate delivery")
    return store.get(store.get(cycle_id).metadata[key])


def run_child(
    store: OperationsStore, child: Operation, work: Callable[[], dict[str, Any]], *, prefix: str
) -> dict[str, Any] | None:
    """Run `work` as the child operation: running -> completed with its summary, or failed with the error.

    Returns None when the child was already completed by an earlier delivery (the caller reads its row).
    """
    if child.status == OperationStatus.COMPLETED:
        return None
    store.start(child.operation_id)
    with operation_context(child.operation_id):
        try:
            summary = work()
        except Exception as exc:
            store.fail(child.operation_id, error_message=f"{prefix}: {exc}")
            raise
    store.complete(child.operation_id, result_summary=summary)
    return summary


def settings() -> Settings:
    return get_settings()


def llm_settings(context: CycleContext) -> Settings:
    """The settings the designer and assessor use: the trigger's `--model` overrides KTRDR_MODEL."""
    config = get_settings()
    return config.model_copy(update={"model": context.model}) if context.model else config


def strategy_file(meta: CycleRecord) -> Path:
    """The cycle's strategy on this host: the designer's file where it was saved, else a copy from the store.

    Raises:
        ArtifactNotFoundError: neither is there.
    """
    path = Path(str(meta.strategy_path or ""))
    if path.is_file() or not meta.strategy_url:
        return path
    return fetch(str(meta.strategy_url))


def absolute(path: Path | str) -> str:
    """Paths go into rows absolute, so every process reads the same file whatever its working directory."""
    return str(Path(path).resolve())
