"""The paths task of the `gpu` queue (issue 25): a candidate's purged combinatorial paths, every model in one task.

Like the training task it needs only the engine and the Celery app, no database: `tasks.promotion` sends it from
the candidate's finalize, polls its AsyncResult and records the figures it returns (`engine.paths.measure_paths`).
It shares the training task's machinery (`tasks.gpu`): the run lock against a redelivered duplicate, progress and
heartbeats in the result backend, the cancel flag checked within epochs, the hand-back when its worker stops. The
split models are scratch: trained in this host's working folder, removed once the paths' Sharpe ratios are known.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore

from agent_pipeline.config import get_settings
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.errors import CancelledError
from agent_pipeline.logs import operation_context
from agent_pipeline.pipeline import flags, outages, shutdown
from agent_pipeline.pipeline.celery_app import RESULT_EXPIRES_S, app
from agent_pipeline.tasks.gpu import LockLost, TrainingTask
from agent_pipeline.tasks.gpu import _Watch as Watch  # the training's progress, heartbeat, lock and cancel checks

logger = logging.getLogger(__name__)


@app.task(bind=True, base=TrainingTask, name="ktrdr.gpu.train_paths")
def train_paths(
    self: TrainingTask,
    *,
    paths_op_id: str,
    strategy_yaml: str,
    evaluation: dict[str, Any],
    data_dir: str | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Train the split models of a candidate and backtest its paths; returns their figures (`measure_paths`)."""
    with operation_context(paths_op_id):
        done = flags.done_summary(self.app, paths_op_id)
        if done is not None:
            return dict(json.loads(done))  # a redelivered message: an earlier delivery finished it
        owner = f"{self.request.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if not flags.acquire_lock(self.app, paths_op_id, owner):
            raise self.retry(countdown=flags.LOCK_TTL_S, max_retries=None)  # a duplicate delivery: see gpu.py
        self.report_alive()
        folder = get_settings().work_dir / "paths" / paths_op_id
        figures: dict[str, Any] = {}
        try:
            figures = _measure(Watch(self, paths_op_id, owner), strategy_yaml, folder, evaluation, data_dir, seed)
            _remember(self, paths_op_id, figures)
            shutil.rmtree(folder, ignore_errors=True)
        except CancelledError:
            if not _handing_back(self, paths_op_id):
                shutil.rmtree(folder, ignore_errors=True)
                raise  # cancelled with its cycle
        except LockLost:
            raise Ignore() from None  # the delivery holding the lock now stores the result
        finally:
            with contextlib.suppress(*outages.broker_errors()):  # the lock expires on its own
                flags.release_lock(self.app, paths_op_id, owner)
        if not figures:
            self.hand_back()  # the worker is stopping: the next GPU worker resumes from the checkpoint
        return figures


def _handing_back(task: TrainingTask, paths_op_id: str) -> bool:
    """Stopped by the worker's shutdown, not by a cancel."""
    return shutdown.stop_requested.is_set() and not flags.is_cancel_requested(task.app, paths_op_id)


def _measure(
    watch: Watch, strategy_yaml: str, folder: Path, evaluation: dict[str, Any], data_dir: str | None, seed: int
) -> dict[str, Any]:
    import torch  # lazy: start-up cost (torch); CUDA is never initialised in the forking parent

    from agent_pipeline.engine.paths import measure_paths  # lazy: start-up cost (torch, skfolio)

    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    folder.mkdir(parents=True, exist_ok=True)
    strategy_path = atomic_write(folder / "strategy.yaml", strategy_yaml)
    watch.beat()
    # The message's data_dir is the sender's host path: a GPU host uses its own folder when that is absent.
    data = Path(data_dir) if data_dir and Path(data_dir).is_dir() else synced_data_dir()
    return measure_paths(
        strategy_path,
        work_dir=folder,
        lockbox_fraction=float(evaluation["lockbox_fraction"]),
        folds=int(evaluation["folds"]),
        data_dir=_cut_data(strategy_path, data, evaluation.get("series_end"), folder / "data"),
        seed=seed,
        on_epoch=watch.on_epoch,
        should_cancel=watch.should_cancel,
        batched=settings.batched_folds,
    )


def _cut_data(strategy_path: Path, data_dir: Path | None, end: str | None, scratch: Path) -> Path | None:
    """The data folder the paths read: `data_dir`, or where bars came after the series' fixed end (issue 27), a copy
    of the strategy's series cut at that end in `scratch`, so that the paths' research period is the cycle's."""
    from agent_pipeline.engine.data import available_pairs  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.replay import cut_copy, series_bars  # lazy: start-up cost (pandas, torch)

    if end is None:
        return data_dir
    strategy = load_strategy(strategy_path, available_pairs(data_dir))
    whole, cut = series_bars(strategy, data_dir), series_bars(strategy, data_dir, end=end)
    if all(len(cut[symbol]) == len(frame) for symbol, frame in whole.items()):
        return data_dir
    return cut_copy(strategy, cut, data_dir, scratch)


def _remember(task: TrainingTask, paths_op_id: str, figures: dict[str, Any]) -> None:
    """Keep the figures beside the result, so a redelivered message returns them instead of training again."""
    try:
        flags.mark_done(task.app, paths_op_id, json.dumps(figures), RESULT_EXPIRES_S)
    except outages.broker_errors():
        outages.wait_for_broker(task.app, what="storing the paths' figures")
        flags.mark_done(task.app, paths_op_id, json.dumps(figures), RESULT_EXPIRES_S)
