"""The training task of the `gpu` queue: real PyTorch training of one strategy.

It needs only the engine and the Celery app (no database, no API key). Progress goes to the result backend
(`PROGRESS` state), which the research-side supervisor copies into the operations table.

The model's home is a URL in the artifact store (issue 16). On a file:// store the task trains in place; on
s3:// it trains in this host's working folder, first downloading whatever checkpoints an earlier delivery (on any
host) left, uploading its checkpoints after every epoch, and its models at the end. The summary's `model_path` is
the final model's URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import ArtifactStore, file_path, store_for
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.errors import CancelledError, StoreError
from agent_pipeline.gates import BacktestThresholds, TrainingThresholds
from agent_pipeline.logs import operation_context
from agent_pipeline.pipeline import flags, outages, shutdown
from agent_pipeline.pipeline.celery_app import RESULT_EXPIRES_S, app

logger = logging.getLogger(__name__)

# The state of a training handed back to the queue by a stopping GPU worker (see TrainingTask.hand_back).
REQUEUED = "REQUEUED"
# Seconds between cancellation checks / lock refreshes inside an epoch.
CHECK_EVERY_S = 1.0
# The files a training resumes from (trainer.CHECKPOINT_FILE, research.BATCH_CHECKPOINT_FILE), uploaded each epoch.
CHECKPOINT_SUFFIX = "checkpoint.pt"


class LockLost(Exception):
    """Another delivery of this training holds its run lock now: this one stops and leaves the training to it."""


class TrainingTask(Task):
    """Wakes the supervisor the moment training ends, instead of leaving it to its next poll."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Celery calls this after the result is stored, so the woken supervisor sees the final state.
        wake = (kwargs or {}).get("wake")
        if wake and status != "RETRY":
            try:
                self.app.signature(wake).apply_async()
            except outages.broker_errors():
                outages.wait_for_broker(self.app, what="waking the supervisor")
                self.app.signature(wake).apply_async()

    def hand_back(self) -> None:
        """The worker is shutting down: give the training back to the queue for the next GPU worker.

        The checkpoint of the last finished epoch is on disk and the run lock is released, so the next worker
        resumes at once. Under a soft shutdown the task waits to be terminated: the message, still unacked, is
        requeued by Redis exactly once. Under a warm shutdown it retries (a new message) and ends. Either way the
        supervisor sees a training queued again, never a failure.

        Raises:
            Retry: under a warm shutdown.
        """
        if shutdown.soft_shutdown_enabled():
            logger.warning("worker shutting down; training stopped at its last checkpoint, requeued when it exits")
            self._park()
        logger.warning("worker shutting down; training requeued to resume from its checkpoint elsewhere")
        raise self.retry(countdown=0, max_retries=None)

    def _park(self) -> None:
        """Wait for the soft shutdown's end to terminate this process.

        The state says `REQUEUED`, which the supervisor treats as queued (no heartbeat expected, like a training
        waiting for a GPU worker), so the hand-over is never taken for a lost worker.
        """
        last = self.AsyncResult(self.request.id).info
        meta = {**(last if isinstance(last, dict) else {}), "current_step": "requeued: waiting for a GPU worker"}
        with contextlib.suppress(*outages.broker_errors()):
            self.update_state(state=REQUEUED, meta=meta)
        while True:
            time.sleep(CHECK_EVERY_S)

    def report_alive(self) -> None:
        """A first heartbeat as soon as this delivery owns the training: `STARTED` (no heartbeat) lasts only
        milliseconds, so a redelivered training is judged by its own heartbeats."""
        with contextlib.suppress(*outages.broker_errors()):
            self.update_state(
                state="PROGRESS", meta={"percentage": 0.0, "current_step": "starting", "heartbeat": time.time()}
            )


@app.task(bind=True, base=TrainingTask, name="ktrdr.gpu.train_model")
def train_model(
    self: TrainingTask,
    *,
    training_op_id: str,
    strategy_yaml: str,
    model_dir: str | None = None,
    data_dir: str | None = None,
    seed: int = 7,
    model_url: str | None = None,
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
        self.report_alive()
        try:
            # model_dir: a host path, from messages sent before issue 16
            home = _ModelHome(model_url or Path(model_dir or ".").resolve().as_uri(), training_op_id)
            summary = _train(self, training_op_id, strategy_yaml, home, data_dir, seed, owner, evaluation)
            _mark_done(self, training_op_id, summary)
        except CancelledError:
            if not _shutting_down(self, training_op_id):
                raise
            summary = {}
        except LockLost:
            # No result and no state of its own: the delivery holding the lock stores the training's result.
            logger.warning("another delivery owns this training now; this one stops and leaves it the training")
            raise Ignore() from None
        finally:
            _release(self, training_op_id, owner)
        if _shutting_down(self, training_op_id) and not summary:
            self.hand_back()
        return summary


def _shutting_down(task: TrainingTask, training_op_id: str) -> bool:
    """Stopped by the worker's shutdown, not by a user's cancel."""
    return shutdown.stop_requested.is_set() and not flags.is_cancel_requested(task.app, training_op_id)


def _mark_done(task: TrainingTask, training_op_id: str, summary: dict[str, Any]) -> None:
    try:
        flags.mark_done(task.app, training_op_id, json.dumps(summary), RESULT_EXPIRES_S)
    except outages.broker_errors():
        outages.wait_for_broker(task.app, what="storing the training's result")
        flags.mark_done(task.app, training_op_id, json.dumps(summary), RESULT_EXPIRES_S)


def _release(task: TrainingTask, training_op_id: str, owner: str) -> None:
    try:
        flags.release_lock(task.app, training_op_id, owner)
    except outages.broker_errors():
        logger.warning("could not release the training lock; it expires in %d s", flags.LOCK_TTL_S)


def _train(
    task: TrainingTask,
    training_op_id: str,
    strategy_yaml: str,
    home: _ModelHome,
    data_dir: str | None,
    seed: int,
    owner: str,
    evaluation: dict[str, Any] | None,
) -> dict[str, Any]:
    import torch  # lazy: start-up cost (torch); CUDA is never initialised in the forking parent

    from agent_pipeline.engine.research import (  # lazy: start-up cost (pandas, scipy, torch)
        Evaluation,
        train_walk_forward,
    )

    settings = get_settings()
    threads = settings.torch_threads
    if threads:
        torch.set_num_threads(threads)
    home.fetch()
    strategy_path = _write_strategy(home.local, strategy_yaml)
    watch = _Watch(task, training_op_id, owner, home)
    watch.beat()  # a heartbeat from the start: a child that dies before its first epoch is noticed too
    # The message's data_dir is the sender's host path: a GPU host uses its own folder when that is absent.
    data = Path(data_dir) if data_dir and Path(data_dir).is_dir() else synced_data_dir()
    cut = Evaluation(**(evaluation or {}))
    try:
        summary = train_walk_forward(
            strategy_path,
            model_dir=home.local,
            evaluation=cut,
            data_dir=data,
            seed=seed,
            device=None,
            on_epoch=watch.on_epoch,
            should_cancel=watch.should_cancel,
            batched=settings.batched_folds,
        )
    except CancelledError:
        home.push(suffix=CHECKPOINT_SUFFIX)  # handed back or cancelled: the next host resumes from here
        raise
    summary["replay"] = _replay_block(strategy_path, data, seed, cut, summary["device"])
    home.push()
    summary["model_path"] = home.url_of(Path(summary["model_path"]))
    home.clean()
    return summary


def _replay_block(
    strategy_path: Path, data_dir: Path | None, seed: int, evaluation: Any, device: str
) -> dict[str, Any]:
    """What a replay of this training needs (issue 25; `engine.replay`), with the settings that change figures."""
    from agent_pipeline.engine.replay import replay_block  # lazy: start-up cost (pandas, torch)

    settings = get_settings()
    gates = {
        "training": asdict(TrainingThresholds.from_settings(settings)),
        "backtest": asdict(BacktestThresholds.from_settings(settings)),
    }
    return replay_block(
        strategy_path,
        data_dir=data_dir,
        evaluation=evaluation,
        seed=seed,
        batched=settings.batched_folds,
        device=device,
        settings={"training_epochs": settings.training_epochs, "gates": gates},
    )


class _ModelHome:
    """A training's folder in the artifact store, and its working copy on this host."""

    def __init__(self, url: str, training_op_id: str) -> None:
        self.url = url.rstrip("/")
        self.store: ArtifactStore = store_for(self.url)
        in_place = self.store.scheme == "file"
        self.local = file_path(self.url) if in_place else get_settings().work_dir / "models" / training_op_id
        self.remote = not in_place

    def fetch(self) -> None:
        """Bring down what an earlier delivery left (its checkpoints), so the training resumes from them."""
        self.local.mkdir(parents=True, exist_ok=True)
        if self.remote and (count := self.store.get_tree(self.url, self.local)):
            logger.info("fetched %d file(s) of an earlier delivery from %s", count, self.url)

    def push(self, suffix: str = "") -> None:
        """Upload the working copy's files (those ending with `suffix`) to the store; in place, nothing to do."""
        if self.remote:
            self.store.put_tree(self.local, self.url, suffix=suffix)

    def clean(self) -> None:
        """Drop the working copy once the store holds it: a GPU host's disk does not grow with every training."""
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)

    def url_of(self, path: Path) -> str:
        return f"{self.url}/{Path(path).resolve().relative_to(self.local.resolve()).as_posix()}"


def _write_strategy(model_dir: Path, text: str) -> Path:
    # The GPU host may not share the strategies folder: the message carries the YAML itself.
    return atomic_write(model_dir / "strategy.yaml", text)


class _Watch:
    """Per-epoch progress, and throttled cancellation checks, lock refreshes and heartbeats within epochs."""

    def __init__(self, task: TrainingTask, training_op_id: str, owner: str, home: _ModelHome | None = None) -> None:
        self.task, self.op_id, self.owner, self.home = task, training_op_id, owner, home
        self.last_check = 0.0
        self.outage = False  # Redis unreachable at the last beat (logged once per outage)
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
        # The trainer wrote this epoch's checkpoint just before: a few KB for these MLPs, one PUT per epoch.
        # A store that fails here costs only resumability: the training goes on, the final upload must succeed.
        try:
            if self.home is not None:
                self.home.push(suffix=CHECKPOINT_SUFFIX)
        except StoreError as exc:
            logger.warning("checkpoint not uploaded: %s", exc)
        self.beat()

    def should_cancel(self) -> bool:
        if shutdown.stop_requested.is_set():
            return True  # the worker is shutting down: stop here, keeping the last finished epoch's checkpoint
        now = time.monotonic()
        if now - self.last_check < CHECK_EVERY_S:
            return False
        self.last_check = now
        self.beat()
        try:
            return flags.is_cancel_requested(self.task.app, self.op_id)
        except outages.broker_errors():
            return False  # Redis is restarting: keep training; the next check asks again

    def beat(self) -> None:
        """Refresh the run lock and report progress; a Redis outage skips beats instead of ending the training.

        Raises:
            LockLost: another delivery took the run lock (after a Redis that restarted empty lost it, and the
                supervisor sent the training again): this delivery must stop.
        """
        try:
            if not flags.refresh_lock(self.task.app, self.op_id, self.owner):
                raise LockLost(self.op_id)
            self.task.update_state(state="PROGRESS", meta={**self.meta, "heartbeat": time.time()})
        except outages.broker_errors():
            if not self.outage:
                logger.warning("Redis unreachable; training goes on without progress reports")
            self.outage = True
            return
        if self.outage:
            logger.info("Redis is back; progress reports resume")
        self.outage = False
