"""The chain's ends: `finalize` completes the cycle; `record_failure` is the errback that fails it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.exceptions import Ignore

from agent_pipeline.engine.artifacts import digest, fetch
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.errors import CancelledError, KtrdrError
from agent_pipeline.insight.report import publish
from agent_pipeline.llm.study import tell_cycle
from agent_pipeline.logs import operation_context
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext
from agent_pipeline.pipeline.flags import stop_training
from agent_pipeline.store.discoveries import NOT_MEASURED, SeriesOverfitting, refresh_discoveries
from agent_pipeline.store.lockbox import read_lockbox
from agent_pipeline.store.operations import ACTIVE, Operation, OperationsStore, OperationType, get_store
from agent_pipeline.store.record import CycleRecord
from agent_pipeline.tasks.base import PhaseTask, settings, strategy_file
from agent_pipeline.tasks.promotion import paths_ready, promotion_at_run, series_overfitting

logger = logging.getLogger(__name__)

# Cycle metadata keys copied into the finished cycle's result_summary.
SUMMARY_KEYS = (
    "strategy_name", "strategy_path", "strategy_url", "designer", "symbol", "timeframe", "evaluation",
    "training_result",
    "training_gate", "model_path", "backtest_result", "backtest_gate", "backtest_dir", "assessment",
    "assessment_path", "cost_usd",
)  # fmt: skip


@app.task(bind=True, base=PhaseTask, name="ktrdr.cycle.finalize", max_retries=None)
def finalize(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    # A candidate's paths first (issue 25): polled by retry while they train on the gpu queue (tasks/promotion.py).
    if not paths_ready(store, context.cycle_id):
        raise self.retry(countdown=settings().poll_interval)
    meta = store.get(context.cycle_id).record
    summary = meta.model_dump(include=set(SUMMARY_KEYS), exclude_unset=True)
    # Judged with the series' PBO now; each later cycle's end on the series judges it again (store/discoveries).
    overfitting = _overfitting(store, meta)
    promotion = promotion_at_run(meta, overfitting)
    if promotion.status is not None:  # a candidate: candidate, discovery or rejected, each test's figure and limit
        summary["promotion"] = promotion.to_record()
    summary["discovery"] = summary["discovery_at_run"] = promotion.is_discovery
    # The lockbox goes to the result summary only: nothing that feeds the loop reads it (see llm/memory.py).
    try:
        summary["lockbox"] = _trade_lockbox(context.cycle_id, meta)
    except CancelledError as exc:  # cancelled while its lockbox traded: no read logged, nothing left to complete
        logger.info("cycle finished during its lockbox trade", extra={"error": str(exc)})
        raise Ignore() from None
    # The series' other cycles are judged again before this one completes, so that whoever sees it completed (a
    # `--follow`, a test, the next trigger) sees them judged with its trial too; then once more with it completed,
    # which settles its own verdict over the same trials (`refresh_discoveries` rewrites completed cycles only).
    _judge_series(store, meta, lambda _: overfitting)
    store.complete(context.cycle_id, result_summary=summary)
    _judge_series(store, meta, lambda _: overfitting)
    tell_cycle(store.get(context.cycle_id))  # the optimiser's study learns the outcome (issue 9)
    judged = store.get(context.cycle_id).result_summary or {}
    logger.info("cycle completed", extra={"discovery": judged.get("discovery"), "promotion": promotion.status})
    publish(store, context.cycle_id)  # plots (and an MLflow run) for people; never raises
    return ctx


def _overfitting(store: OperationsStore, meta: CycleRecord) -> SeriesOverfitting:
    """The series' PBO over its trials now (this cycle's included); unknown when it cannot be measured."""
    if meta.series is None:
        return NOT_MEASURED
    try:
        return series_overfitting(store.series_cycles(symbol=meta.series[0], timeframe=meta.series[1]))
    except (KtrdrError, OSError, ValueError) as exc:  # a trial's returns file unreadable: judged at the next end
        logger.warning("PBO not measured", extra={"error": str(exc)})
        return SeriesOverfitting(None, f"not measured: {exc}")


def _judge_series(
    store: OperationsStore, meta: CycleRecord, overfitting: Callable[[list[Operation]], SeriesOverfitting]
) -> None:
    """Judge every candidate of the cycle's series again, over its trials now (store/discoveries.py)."""
    if not (meta.symbol and meta.timeframe):
        return
    try:
        refresh_discoveries(store, str(meta.symbol), str(meta.timeframe), overfitting=overfitting)
    except KtrdrError as exc:  # the flags are judged again at the series' next cycle end
        logger.warning("discoveries not judged again", extra={"error": str(exc)})


def _trade_lockbox(cycle_id: str, meta: CycleRecord) -> dict[str, Any]:
    """The final model trades the lockbox once, and the read is logged (issue 25): a strategy document and model
    read before are refused, and show that read's figures again (`repeat_of`). A lockbox that cannot be traded is
    reported, not fatal.

    Raises:
        CancelledError: the cycle finished while its lockbox traded (`traded_while_running`); no read is logged.
    """
    from agent_pipeline.engine.research import Evaluation, trade_lockbox  # lazy: start-up cost (scipy, torch)

    try:
        if meta.model_path is None or meta.evaluation is None:
            raise KeyError("no model or evaluation settings recorded")
        strategy, model, evaluation = strategy_file(meta), fetch(meta.model_path), Evaluation(**meta.evaluation)
        return read_lockbox(
            get_store(),
            symbol=str(meta.symbol or ""),
            timeframe=str(meta.timeframe or ""),
            cycle_id=cycle_id,
            strategy_checksum=digest(strategy),
            model_sha256=digest(model),
            trade=lambda: traded_while_running(
                cycle_id,
                lambda: trade_lockbox(strategy, model_path=model, evaluation=evaluation, data_dir=synced_data_dir()),
            ),
        )
    except CancelledError:
        raise
    except (KtrdrError, KeyError, OSError) as exc:  # OSError: the strategy or model file is gone
        logger.warning("lockbox not traded", extra={"error": str(exc)})
        return {"error": f"lockbox not traded: {exc}"}


def traded_while_running(cycle_id: str, trade: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`trade()`'s figures, for `read_lockbox` to log as the cycle's read, unless the cycle finished (a cancel) while
    it traded: a read must not count for a cancelled cycle (issue 27 review G). The trade takes seconds; what is left
    is the moment from this check to the log and `complete`, which only one transaction over both would close.

    Raises:
        CancelledError: the cycle is finished; nothing is logged then.
    """
    figures = trade()
    status = get_store().get(cycle_id).status
    if status.is_finished:
        raise CancelledError(f"cycle {cycle_id} is {status.value}: its lockbox read is not logged")
    return figures


@app.task(name="ktrdr.cycle.record_failure")
def record_failure(request: Any, exc: BaseException, traceback: Any) -> None:
    """Errback of every task in the chain; idempotent, since Celery may call it more than once."""
    cycle_id = _cycle_id(request)
    if cycle_id is None:
        logger.error("errback without a cycle id: %s", exc)
        return
    message = str(exc) or type(exc).__name__
    if not message.split(":", 1)[0].endswith("failed"):
        # Not one of ours (time limit, lost worker ...): still one readable line.
        message = f"Cycle failed: {type(exc).__name__}: {message}"
    store = get_store()
    with operation_context(cycle_id):
        # Children first: once a reader sees the cycle failed, nothing under it is still running.
        for child in store.list(parent_operation_id=cycle_id, limit=50):
            if child.status in ACTIVE:
                store.fail(child.operation_id, error_message=f"Parent failed: {message}")
                if child.operation_type == OperationType.TRAINING:
                    stop_training(child.operation_id, child.training_record.celery_task_id)
        current = store.get(cycle_id)
        if not current.status.is_finished:  # one more trial: the others' DSR falls, their PBO moves; judged before
            meta = current.record  # the cycle reads as failed, as finalize does before it completes
            _judge_series(store, meta, lambda _: _overfitting(store, meta))
        first = store.fail(cycle_id, error_message=message)
        if first:
            logger.warning("cycle failed", extra={"error": message})
        tell_cycle(store.get(cycle_id))  # the optimiser's study learns the outcome (issue 9)
        if first:
            publish(store, cycle_id)  # plots for people, once; never raises


def _cycle_id(request: Any) -> str | None:
    args = getattr(request, "args", None) or []
    if args and isinstance(args[0], dict):
        try:
            return CycleContext.model_validate(args[0]).cycle_id
        except ValueError:
            return None
    return None
