"""The training task of the `gpu` queue: real PyTorch training of one strategy.

It needs only the engine and the Celery app (no database, no API key). Progress goes to the result backend
(`PROGRESS` state), which the research-side supervisor copies into the operations table.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Task

from agent_pipeline import flags
from agent_pipeline.celery_app import RESULT_EXPIRES_S, app
from agent_pipeline.logs import operation_context

logger = logging.getLogger(__name__)

# Seconds between cancellation checks / lock refreshes inside an epoch.
CHECK_EVERY_S = 1.0


class TrainingTask(Task):
    """Wakes the supervisor the moment training ends, instead of leaving it to its next poll."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Celery calls this after the result is stored, so the woken supervisor sees the final state.
        wake = (kwargs or {}).get("wake")
        if wake:
            self.app.signature(wake).apply_async()


@app.task(bind=True, base=TrainingTask, name="ktrdr.gpu.train_model")
def train_model(
    self: TrainingTask,
    *,
    training_op_id: str,
    strategy_yaml: str,
    model_dir: str,
    data_dir: str | None,
    seed: int,
    evaluation: dict[str, Any] | None = None,
    wake: dict[str, Any] | None = None,
) -> dict[str, Any]:
    with operation_context(training_op_id):
        done = flags.done_summary(self.app, training_op_id)
        if done is not None:
            logger.info("training already finished by an earlier delivery; returning its result")
            return dict(json.loads(done))
        owner = f"{self.request.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not flags.acquire_lock(self.app, training_op_id, owner):
            # Redis redelivered the message while the first delivery still trains: never train twice at once.
            # Come back after the lock's lifetime: by then the first delivery has finished (its result is
            # returned) or died (its lock expired, and this delivery resumes from the checkpoint).
            logger.warning("training already running elsewhere; dropping duplicate delivery for now")
            raise self.retry(countdown=flags.LOCK_TTL_S, max_retries=None)
        try:
            summary = _train(self, training_op_id, strategy_yaml, Path(model_dir), data_dir, seed, owner, evaluation)
            flags.mark_done(self.app, training_op_id, json.dumps(summary), RESULT_EXPIRES_S)
        finally:
            flags.release_lock(self.app, training_op_id, owner)
        return summary


def _train(
    task: TrainingTask,
    training_op_id: str,
    strategy_yaml: str,
    model_dir: Path,
    data_dir: str | None,
    seed: int,
    owner: str,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    from agent_pipeline.engine.research import Evaluation, train_walk_forward

    model_dir.mkdir(parents=True, exist_ok=True)
    strategy_path = _write_strategy(model_dir, strategy_yaml)
    watch = _Watch(task, training_op_id, owner)
    watch.beat()  # a heartbeat from the start: a child that dies before its first epoch is noticed too
    return train_walk_forward(
        strategy_path,
        model_dir=model_dir,
        evaluation=Evaluation(**(evaluation or {})),
        data_dir=Path(data_dir) if data_dir else None,
        seed=seed,
        device=None,
        on_epoch=watch.on_epoch,
        should_cancel=watch.should_cancel,
    )


def _write_strategy(model_dir: Path, text: str) -> Path:
    # The GPU host may not share the strategies folder: the message carries the YAML itself.
    path = model_dir / "strategy.yaml"
    fd, tmp = tempfile.mkstemp(dir=model_dir, suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


class _Watch:
    """Per-epoch progress, and throttled cancellation checks, lock refreshes and heartbeats within epochs."""

    def __init__(self, task: TrainingTask, training_op_id: str, owner: str) -> None:
        self.task, self.op_id, self.owner = task, training_op_id, owner
        self.last_check = 0.0
        self.meta: dict[str, Any] = {"percentage": 0.0, "current_step": "starting"}

    def on_epoch(self, progress: Any, stage: str = "") -> None:
        self.meta = {
            "percentage": float(progress.percentage),
            "current_step": f"{stage} epoch {progress.epoch}/{progress.epochs}".strip(),
            "stage": stage,
            "epoch": progress.epoch,
            "epochs": progress.epochs,
            "train_loss": float(progress.train_loss),
            "val_loss": float(progress.val_loss),
            "val_accuracy": float(progress.val_accuracy),
        }
        self.beat()

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self.last_check < CHECK_EVERY_S:
            return False
        self.last_check = now
        self.beat()
        return flags.is_cancel_requested(self.task.app, self.op_id)

    def beat(self) -> None:
        flags.refresh_lock(self.task.app, self.op_id, self.owner)
        self.task.update_state(state="PROGRESS", meta={**self.meta, "heartbeat": time.time()})
