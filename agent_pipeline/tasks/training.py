"""Training phase: enqueue the real training on the `gpu` queue and supervise it without holding a slot.

The supervisor polls the training's AsyncResult by `self.retry(countdown=poll_interval)`: between polls the
message waits in the broker as an ETA task, so one research worker process supervises many trainings. The
training task also wakes the supervisor when it ends (see `TrainingTask.after_return`); whichever poll sees
the end first claims it, and the others raise `Ignore`, so the rest of the chain runs exactly once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import states
from celery.exceptions import Ignore
from celery.result import AsyncResult

from agent_pipeline.engine.artifacts import artifact_store
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.engine.series_cut import strategy_series_end
from agent_pipeline.engine.strategy import dump_strategy, load_strategy
from agent_pipeline.errors import PhaseError
from agent_pipeline.pipeline import broker
from agent_pipeline.pipeline.celery_app import GPU_QUEUE, app
from agent_pipeline.pipeline.context import CycleContext, Phase
from agent_pipeline.pipeline.flags import stop_training
from agent_pipeline.store.operations import Operation, OperationsStore, OperationStatus, OperationType, get_store
from agent_pipeline.store.series import fix_series_end
from agent_pipeline.tasks.base import PhaseTask, absolute, child_operation, settings, strategy_file
from agent_pipeline.tasks.gpu import REQUEUED, train_model

logger = logging.getLogger(__name__)

# The cycle's progress spans 15% -> 75% while training runs.
CYCLE_PROGRESS_START, CYCLE_PROGRESS_SPAN = 15.0, 60.0
# The states of a training waiting for a worker: never picked up, retried (a duplicate delivery waiting out the run
# lock, or a warm shutdown's hand-back) or parked by a soft shutdown (gpu.REQUEUED). Its message is in the broker.
WAITING_STATES = frozenset({states.PENDING, states.RETRY, REQUEUED})
# Metrics copied from the training summary into the cycle's `training_result`.
TRAINING_RESULT_KEYS = (
    "accuracy", "final_loss", "initial_loss", "val_accuracy", "val_loss", "epochs_run", "n_parameters", "device",
    "balanced_accuracy", "macro_f1", "baseline_accuracy", "log_loss", "prior_log_loss", "log_loss_skill",
    "n_classes", "chance", "skill_pvalue", "skill_block", "walk_forward",
)  # fmt: skip


@app.task(
    bind=True,
    base=PhaseTask,
    name="ktrdr.cycle.train",
    phase=Phase.TRAINING,
    failure_prefix="Training failed",
    max_retries=None,
)
def train(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    cycle = store.get(context.cycle_id)
    if "training_result" in cycle.metadata or "training_error" in cycle.metadata:
        raise Ignore()  # another poll already saw the end and moved the chain on
    child = child_operation(
        store,
        context.cycle_id,
        key="training_op_id",
        operation_type=OperationType.TRAINING,
        metadata={
            "strategy_name": cycle.record.strategy_name,
            "strategy_path": cycle.record.strategy_path,
        },
    )
    task_id = child.training_record.celery_task_id or _submit(self, store, cycle, child)
    if store.get(context.cycle_id).status.is_finished:
        child = store.get(child.operation_id)
        stop_training(child.operation_id, child.training_record.celery_task_id)  # cancelled meanwhile
        raise Ignore()
    result = app.AsyncResult(task_id)
    if result.state in states.READY_STATES:
        return _finish(store, context, child, result, ctx)
    _follow(store, context, child, result)
    _resend_if_lost(self, store, cycle, child, result)
    raise self.retry(countdown=settings().poll_interval)


def _submit(task: PhaseTask, store: OperationsStore, cycle: Operation, child: Operation) -> str:
    """Send the training to the `gpu` queue with a signature that wakes this supervisor when it ends."""
    config = settings()
    strategy_path = strategy_file(cycle.record)
    task_id = f"{child.operation_id}-train"  # deterministic: a duplicate submit is deduplicated by the GPU lock
    wake = dict(task.signature_from_request(task.request))
    train_model.apply_async(
        kwargs={
            "training_op_id": child.operation_id,
            "strategy_yaml": _strategy_text(strategy_path, config.training_epochs),
            "model_url": artifact_store().url_for("models", child.operation_id),
            "data_dir": absolute(config.data_dir) if config.data_dir else None,
            "seed": config.seed,
            "evaluation": _evaluation(store, cycle),
            "wake": wake,
        },
        task_id=task_id,
        queue=GPU_QUEUE,
        time_limit=config.training_time_limit,
    )
    store.merge_metadata(child.operation_id, {"celery_task_id": task_id})
    store.merge_metadata(cycle.operation_id, {"training_task_id": task_id})
    store.update_progress(child.operation_id, percentage=0.0, current_step="queued for a GPU worker")
    logger.info("training queued", extra={"training_op_id": child.operation_id, "task_id": task_id})
    return task_id


def _resend_if_lost(
    task: PhaseTask, store: OperationsStore, cycle: Operation, child: Operation, result: AsyncResult
) -> None:
    """Send the training again when it is waiting to run and the broker has lost its message (`lost_message`)."""
    missing_since = child.training_record.message_missing_since
    held = broker.holds(app, GPU_QUEUE, result.id) if result.state in WAITING_STATES else None
    now = time.time()
    resend, since = lost_message(result.state, held, missing_since, now=now, bound=settings().heartbeat_stale_after)
    if resend:
        logger.warning(
            "training message lost by the broker for %.0f s; sending it again",
            now - (since or now),
            extra={"training_op_id": child.operation_id, "task_id": result.id},
        )
        store.merge_metadata(
            child.operation_id, {"message_missing_since": None, "resent": child.training_record.resent + 1}
        )
        _submit(task, store, cycle, child)
    elif since != missing_since:
        store.merge_metadata(child.operation_id, {"message_missing_since": since})


def lost_message(
    state: str, held: bool | None, missing_since: float | None, *, now: float, bound: float
) -> tuple[bool, float | None]:
    """Whether to send a training again, and since when its message has been missing (None: it is not).

    After a Redis that restarted empty, the supervisor's poll may survive (a worker put it back) while the
    training's own message did not: nothing would ever run the training, and the poll would keep the cycle's
    heartbeat fresh, so the reconciler would never fail it either. A training is sent again when its state says
    it waits for a worker (`WAITING_STATES`) and the broker has held no message of it, queued or unacked, for
    `bound` seconds: the heartbeat bound, past which a running training that sent nothing is taken for lost
    anyway. So a duplicate can meet only a training that is already lost or that resumes from its checkpoint;
    the task id, the run lock and the finished-result key then keep it from training twice. A brief absence is
    normal: a message is in neither list while a worker takes it, and a worker holding one in memory after a
    restart puts it back when it reconnects.

    Args:
        held: what `broker.holds` answered; None when it could not tell (not Redis, or not asked).
    """
    if state not in WAITING_STATES or held is not False:
        return False, None
    if missing_since is None:
        return False, now
    return now - float(missing_since) >= bound, float(missing_since)


def _evaluation(store: OperationsStore, cycle: Operation) -> dict[str, Any]:
    """The cycle's evaluation settings, fixed at its first training submit so every phase uses the same ones."""
    if "evaluation" in cycle.metadata:
        return dict(cycle.metadata["evaluation"])
    config = settings()
    evaluation = {
        "lockbox_fraction": config.lockbox_fraction,
        "folds": config.walk_forward_folds,
        "series_end": _series_end(store, cycle),
    }
    if store.claim_metadata(cycle.operation_id, "evaluation", evaluation):
        return evaluation
    return dict(store.get(cycle.operation_id).metadata["evaluation"])  # a duplicate delivery claimed first


def _series_end(store: OperationsStore, cycle: Operation) -> str | None:
    """The series' research and lockbox end, fixed by its first cycle (issue 27; `engine.series_cut`): bars appended
    after it are forward bars, never this cycle's research or lockbox. A first cycle fixes it before the first bar
    ever appended (`series_cut.series_end`), so an append before any cycle never moves the lockbox."""
    meta = cycle.record
    if meta.series is None:
        return None
    end = strategy_series_end(strategy_file(meta), synced_data_dir())
    symbol, timeframe = meta.series
    return fix_series_end(store, symbol=symbol, timeframe=timeframe, end=end, cycle_id=cycle.operation_id).series_end


def _strategy_text(path: Path, epochs: int | None) -> str:
    """The strategy YAML sent to the GPU; KTRDR_TRAINING_EPOCHS forces exactly that many epochs."""

    if epochs is None:
        return path.read_text(encoding="utf-8")
    strategy = load_strategy(path)
    training = strategy.training.model_copy(update={"epochs": epochs, "early_stopping_patience": 0})
    return dump_strategy(strategy.model_copy(update={"training": training}))


def _follow(store: OperationsStore, context: CycleContext, child: Operation, result: AsyncResult) -> None:
    """Copy the GPU task's progress into the training row and the cycle; fail it if its worker went silent."""
    info = result.info if isinstance(result.info, dict) else {}
    if result.state in (states.STARTED, "PROGRESS") and child.status == OperationStatus.PENDING:
        store.start(child.operation_id)
    if result.state == states.STARTED and child.started_at is not None:
        # Started but silent since: a child that died before its first heartbeat. A training handed back by a
        # stopping GPU worker (issue 11) counts from its last heartbeat, not from its first start.
        since = max(child.started_at.timestamp(), float(child.progress.get("heartbeat") or 0.0))
        _check_heartbeat(child, {"heartbeat": since})
    if result.state == "PROGRESS":
        _check_heartbeat(child, info)
        extra = {k: v for k, v in info.items() if k not in ("percentage", "current_step")}
        store.update_progress(
            child.operation_id,
            percentage=info.get("percentage", 0.0),
            current_step=info.get("current_step", ""),
            **extra,
        )
        store.update_progress(
            context.cycle_id,
            percentage=CYCLE_PROGRESS_START + CYCLE_PROGRESS_SPAN * float(info.get("percentage", 0.0)) / 100,
            current_step=f"training: {info.get('current_step', '')}",
        )
    else:
        store.heartbeat(child.operation_id)
    store.heartbeat(context.cycle_id)


def _check_heartbeat(child: Operation, info: dict[str, Any]) -> None:
    stale_after = settings().heartbeat_stale_after
    beat = info.get("heartbeat")
    if isinstance(beat, int | float) and time.time() - beat > stale_after:
        stop_training(child.operation_id, child.training_record.celery_task_id)
        raise PhaseError(f"Training failed: no heartbeat from the GPU worker for {stale_after:.0f} s (worker lost)")


def _finish(
    store: OperationsStore, context: CycleContext, child: Operation, result: AsyncResult, ctx: dict[str, Any]
) -> dict[str, Any]:
    if result.state == states.SUCCESS:
        summary = dict(result.result or {})
        brief = {k: summary[k] for k in TRAINING_RESULT_KEYS if k in summary}
        if not store.claim_metadata(context.cycle_id, "training_result", brief):
            raise Ignore()
        store.start(child.operation_id)  # no-op unless it finished between two polls
        store.complete(child.operation_id, result_summary=summary)
        store.merge_metadata(context.cycle_id, {"model_path": summary.get("model_path")})
        return ctx
    error = _describe(result)
    if not store.claim_metadata(context.cycle_id, "training_error", error):
        raise Ignore()
    store.fail(child.operation_id, error_message=f"Training failed: {error}")
    raise PhaseError(f"Training failed: {error}")


def _describe(result: AsyncResult) -> str:
    if result.state == states.REVOKED:
        return "the training task was revoked"
    exc = result.result
    return str(exc) if str(exc) else type(exc).__name__
