"""The promotion step's research side (issue 25): a candidate's paths, sent and followed from its finalize, and the
series' PBO that every judgement at a cycle's end needs.

Only a candidate pays for paths: a cycle that reaches finalize with both gates passed (not bypassed) and a deflated
Sharpe of at least 0.95 (`gates.is_candidate`). Its finalize sends one `ktrdr.gpu.train_paths` task to the `gpu`
queue under a training child (`paths_op_id`), then polls it by retry, as the training supervisor does, holding no
worker slot; the cycle stays `running` until the figures are recorded on it (`paths`), so `ktrdr agent run` and
`--follow` wait for them, and a cancel stops them as it stops any training (the child's cancel flag). Paths that
fail, time out or lose their worker are recorded as `{"reason": ...}`: the cycle completes all the same, and stays a
candidate. Only the cycle that is a candidate when it ends gets paths; one that becomes a candidate later (rare: its
deflated Sharpe rose with more trials) or ran before this step stays a candidate ("paths: not computed").
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import states
from celery.result import AsyncResult

from agent_pipeline.errors import KtrdrError
from agent_pipeline.gates import Promotion, is_candidate, judge_promotion
from agent_pipeline.insight.evidence import oos_returns, overfitting_of
from agent_pipeline.pipeline.celery_app import GPU_QUEUE, app
from agent_pipeline.pipeline.flags import stop_training
from agent_pipeline.store.discoveries import SeriesOverfitting
from agent_pipeline.store.operations import Operation, OperationsStore, OperationStatus, OperationType
from agent_pipeline.store.record import CycleRecord
from agent_pipeline.tasks.base import absolute, child_operation, settings, strategy_file
from agent_pipeline.tasks.paths import train_paths
from agent_pipeline.tasks.training import _strategy_text as strategy_text  # the document the training trained

logger = logging.getLogger(__name__)

# The cycle's progress while its paths train (finalize starts after assess, at 90%).
PROGRESS_START, PROGRESS_SPAN = 91.0, 8.0


def series_overfitting(cycles: list[Operation]) -> SeriesOverfitting:
    """The series' probability of backtest overfitting over its backtested cycles' out-of-sample returns now."""
    frames = oos_returns([c.record.backtest_dir for c in cycles if c.record.backtest_result])
    found, reason = overfitting_of(frames)
    return SeriesOverfitting(found.pbo if found is not None else None, reason)


def wants_paths(meta: CycleRecord) -> bool:
    """A cycle at its finalize is a candidate: both gates passed, its deflated Sharpe (recorded at its backtest)
    at least 0.95."""
    return is_candidate(meta, meta.backtest.get("deflated_sharpe"), completed=True)


def promotion_at_run(meta: CycleRecord, overfitting: SeriesOverfitting) -> Promotion:
    """The verdict of a finishing cycle: a candidate by the figures of its own run, judged with the series' PBO."""
    return judge_promotion(
        candidate=wants_paths(meta), pbo=overfitting.pbo, pbo_reason=overfitting.reason, paths=meta.paths
    )


def paths_ready(store: OperationsStore, cycle_id: str) -> bool:
    """True once the cycle needs nothing more of its paths: it is no candidate, or their figures (or why there are
    none) are recorded in its `paths`. Otherwise sends them once, copies their progress and returns False: the
    caller polls again."""
    cycle = store.get(cycle_id)
    if cycle.record.paths is not None or not wants_paths(cycle.record):
        return True
    child = child_operation(
        store, cycle_id, key="paths_op_id", operation_type=OperationType.TRAINING,
        metadata={"strategy_name": cycle.record.strategy_name, "purpose": "paths"},
    )  # fmt: skip
    task_id = child.training_record.celery_task_id
    if task_id is None:
        try:
            task_id = _submit(store, cycle, child)
        except (KtrdrError, OSError) as exc:  # the strategy file is gone: paths never fail the cycle
            return _record(store, cycle_id, child, {"reason": f"not sent: {exc}"})
    result = app.AsyncResult(task_id)
    if result.state in states.READY_STATES:
        return _finish(store, cycle_id, child, result)
    lost = _lost(child, result)
    if lost:
        stop_training(child.operation_id, task_id)
        return _record(store, cycle_id, child, {"reason": lost})
    _follow(store, cycle_id, child, result)
    return False


def _submit(store: OperationsStore, cycle: Operation, child: Operation) -> str:
    config, meta = settings(), cycle.record
    task_id = f"{child.operation_id}-paths"  # deterministic: a duplicate send is one task (and the GPU run lock)
    strategy = strategy_file(meta)
    train_paths.apply_async(
        kwargs={
            "paths_op_id": child.operation_id,
            "strategy_yaml": strategy_text(strategy, config.training_epochs),
            # the cycle's own cut, fixed at its training (`training._evaluation`)
            "evaluation": dict(
                meta.evaluation or {"lockbox_fraction": config.lockbox_fraction, "folds": config.walk_forward_folds}
            ),
            "data_dir": absolute(config.data_dir) if config.data_dir else None,
            "seed": config.seed,
        },
        task_id=task_id,
        queue=GPU_QUEUE,
        time_limit=config.training_time_limit,
    )
    store.merge_metadata(child.operation_id, {"celery_task_id": task_id})
    store.update_progress(child.operation_id, percentage=0.0, current_step="paths queued for a GPU worker")
    logger.info("paths queued", extra={"paths_op_id": child.operation_id, "task_id": task_id})
    return task_id


def _lost(child: Operation, result: AsyncResult) -> str | None:
    """Why the paths are given up on: no heartbeat from their worker, or no result within the training time limit
    (a message the broker lost is never run; the cycle must not wait forever)."""
    config = settings()
    info = result.info if isinstance(result.info, dict) else {}
    beat = info.get("heartbeat")
    if (
        result.state == "PROGRESS"
        and isinstance(beat, int | float)
        and time.time() - beat > config.heartbeat_stale_after
    ):
        return f"no heartbeat from the GPU worker for {config.heartbeat_stale_after:.0f} s (worker lost)"
    if time.time() - child.created_at.timestamp() > config.training_time_limit:
        return f"no result within {config.training_time_limit} s (KTRDR_TRAINING_TIME_LIMIT)"
    return None


def _follow(store: OperationsStore, cycle_id: str, child: Operation, result: AsyncResult) -> None:
    """Copy the paths' progress into their row and the cycle's."""
    info = result.info if isinstance(result.info, dict) else {}
    if result.state != "PROGRESS":
        store.heartbeat(child.operation_id)
        return
    if child.status == OperationStatus.PENDING:
        store.start(child.operation_id)
    percentage = float(info.get("percentage") or 0.0)
    step = f"paths: {info.get('current_step', '')}".strip()
    store.update_progress(child.operation_id, percentage=percentage, current_step=step)
    store.update_progress(cycle_id, percentage=PROGRESS_START + PROGRESS_SPAN * percentage / 100, current_step=step)


def _finish(store: OperationsStore, cycle_id: str, child: Operation, result: AsyncResult) -> bool:
    if result.state == states.SUCCESS and isinstance(result.result, dict) and result.result:
        return _record(store, cycle_id, child, dict(result.result))
    error = "the paths task was revoked" if result.state == states.REVOKED else str(result.result) or result.state
    return _record(store, cycle_id, child, {"reason": f"failed: {error}"})


def _record(store: OperationsStore, cycle_id: str, child: Operation, figures: dict[str, Any]) -> bool:
    """The cycle's `paths`, claimed once (a duplicate poll finds them there); the child ends with them."""
    if store.claim_metadata(cycle_id, "paths", figures) and child.status in (
        OperationStatus.PENDING,
        OperationStatus.RUNNING,
    ):
        if "sharpes" in figures:
            store.start(child.operation_id)  # a no-op unless it finished between two polls
            store.complete(child.operation_id, result_summary=figures)
        else:
            store.fail(child.operation_id, error_message=f"Paths failed: {figures['reason']}")
        logger.info("paths recorded", extra={"paths_op_id": child.operation_id, "figures": figures})
    return True
