"""Replay (issue 25): what a cycle records to be run again, the checksum of its bars, the run, and the comparison.

**The record.** The GPU training writes a `replay` block into its result summary (`replay_block`): the strategy
document as trained, the sha256 of the research bars it trained on, where the series ended then, the seeds, the
evaluation settings, whether the folds trained together, the torch threads, the device, the package versions and
the settings that change figures or verdicts. The backtest adds the trials its deflated Sharpe counted.

**The bars' checksum** covers the research period only, as the cycle cut it: the series up to the last bar it had
(`bars_end`), less the lockbox. Bars appended later change neither the checksum nor the cut: the replay trains on
the series cut at `bars_end` again. A changed research bar changes the checksum, and the replay refuses.

**Bit for bit on the CPU.** Measured (issue 25): the same cycle's training run twice, in one process or two, gives
the same figures and the same model files, byte for byte. Every model is seeded (`trainer.new_model`: weights and
dropout from `seed`, the batch order from a generator seeded alike), the skill test's permutations are seeded
(`stats.SKILL_SEED`), and no CPU kernel these models use is nondeterministic. What does change the last bits is
set from the record: the number of intra-op threads (a matrix product's reduction order) and training the folds
together or one by one (`KTRDR_BATCHED_FOLDS`). On CUDA, kernels and dropout masks are not bitwise reproducible
across devices and drivers, so a CUDA record is compared within `CUDA_TOLERANCE`.

The replay never trades the lockbox: it is no lockbox read (`store.lockbox`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agent_pipeline.engine import stats
from agent_pipeline.engine.data import COLUMNS, available_pairs, load_bars, store_bars
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.engine.pooled import common_calendar, research_period, universe_series
from agent_pipeline.engine.research import Evaluation, Trials, backtest_walk_forward, train_walk_forward
from agent_pipeline.engine.strategy import Strategy, load_strategy
from agent_pipeline.engine.universe import get_universe, register_owned
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.errors import DataError

# Relative tolerance of a figure when the record or the replay ran on CUDA (1e-12 absolute near zero).
CUDA_TOLERANCE = 1e-6
ABSOLUTE_FLOOR = 1e-12
# The figures compared, as the training's and the backtest's result summaries name them.
TRAINING_FIGURES = (
    "accuracy", "balanced_accuracy", "macro_f1", "baseline_accuracy", "log_loss", "log_loss_skill", "skill_pvalue",
    "initial_loss", "final_loss", "val_accuracy", "epochs_run",
)  # fmt: skip
BACKTEST_FIGURES = (
    "sharpe_ratio", "total_return", "num_trades", "win_rate", "max_drawdown", "exposure", "psr", "deflated_sharpe",
    "trials", "sharpe_variance",
)  # fmt: skip


# --- The bars a cycle trained on -------------------------------------------------------------------------------


def series_bars(strategy: Strategy, data_dir: Path | None, end: str | None = None) -> dict[str, pd.DataFrame]:
    """Every series the strategy trains on, whole (lockbox included), in order; cut after `end` when given.

    Raises:
        DataError: a series or the universe cannot be read.
    """
    if strategy.universe is not None:
        series = universe_series(strategy.universe, strategy.timeframe, data_dir)
    else:
        series = {strategy.symbol: load_bars(strategy.symbol, strategy.timeframe, data_dir)}
    if end is None:
        return series
    last = pd.Timestamp(end)
    return {symbol: frame[frame.index <= last] for symbol, frame in series.items()}


def research_bars(strategy: Strategy, series: Mapping[str, pd.DataFrame], fraction: float) -> dict[str, pd.DataFrame]:
    """The research period of each series, cut as training cuts it (`walkforward`, `pooled.research_period`)."""
    if strategy.universe is not None:
        return research_period(dict(series), fraction)
    return {symbol: bars.iloc[: lockbox_start(len(bars), fraction)] for symbol, bars in series.items()}


def span(strategy: Strategy, series: Mapping[str, pd.DataFrame]) -> tuple[str, int]:
    """The series' last bar and its number of bars, lockbox included (a universe: its common dates)."""
    index = common_calendar(dict(series)) if strategy.universe is not None else next(iter(series.values())).index
    return str(index[-1]), len(index)


def bars_checksum(bars: Mapping[str, pd.DataFrame]) -> str:
    """The sha256 of bars' canonical bytes: per series in order, its name, its length, its times (int64 ns) and
    each OHLCV column (float64, little-endian, every NaN alike). Independent of file format and of any bar outside
    the frames given."""
    digest = hashlib.sha256()
    for symbol, frame in bars.items():
        digest.update(f"{symbol}\n{len(frame)}\n".encode())
        digest.update(pd.DatetimeIndex(frame.index).as_unit("ns").asi8.astype("<i8").tobytes())
        for column in COLUMNS:
            values = frame[column].to_numpy(dtype="<f8")
            digest.update(np.where(np.isnan(values), np.nan, values).astype("<f8").tobytes())
    return digest.hexdigest()


# --- The record ------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """The versions that can change figures: Python, torch, numpy, pandas and this project."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "ktrdr-agent-pipeline": version("ktrdr-agent-pipeline"),
    }


def replay_block(
    strategy_path: Path,
    *,
    data_dir: Path | None,
    evaluation: Evaluation,
    seed: int,
    batched: bool,
    device: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """What a finished training records for its replay (`store.record.ReplayRecord` reads it).

    Args:
        strategy_path: the document as trained.
        data_dir: the folder the training read its bars from.
        device: the training's device (`cpu`, `cuda`, `cuda:N`).
        settings: the settings that change figures or verdicts (epochs override, gates); the costs are added.

    Raises:
        DataError, StrategyValidationError: the bars or the document cannot be read.
    """
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    series = series_bars(strategy, data_dir, end=evaluation.series_end)  # as trained: forward bars left out
    end, count = span(strategy, series)
    research = research_bars(strategy, series, evaluation.lockbox_fraction)
    costs = {"commission": strategy.backtest.commission, "slippage": strategy.backtest.slippage}
    return {
        "strategy_yaml": Path(strategy_path).read_text(encoding="utf-8"),
        "bars_sha256": bars_checksum(research),
        "bars_end": end,
        "bars_count": count,
        "symbols": list(research),
        "seed": seed,
        "skill_seed": stats.SKILL_SEED,
        "lockbox_fraction": evaluation.lockbox_fraction,
        "folds": evaluation.folds,
        "batched": batched,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "versions": versions(),
        "settings": {**settings, "costs": costs},
    }


# --- The replay ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay runs: the record's document, bars, seeds and settings, on `device`."""

    strategy_yaml: str
    bars_sha256: str
    bars_end: str
    seed: int
    evaluation: Evaluation
    batched: bool
    torch_threads: int
    device: str  # the replay's: `cpu` for a CPU record, else `auto`
    trials: Trials | None  # the backtest's earlier trials; None when the cycle never reached its backtest


@dataclass(frozen=True)
class Replayed:
    """The replay's training and backtest summaries (the backtest None when the plan has none)."""

    training: dict[str, Any]
    backtest: dict[str, Any] | None


def replay(
    plan: ReplayPlan, *, data_dir: Path | None, work_dir: Path, on_checked: Callable[[], None] | None = None
) -> Replayed:
    """Train and backtest the research period again in this process, into `work_dir`; the lockbox is not traded.

    Args:
        on_checked: called once the research bars are known to be the cycle's, before training.

    Raises:
        DataError: the research bars changed since the cycle (`bars changed since the cycle: sha256 ...`).
        StrategyValidationError, TrainingError, BacktestError: as the cycle's own phases.
    """
    strategy_path = atomic_write(Path(work_dir) / "strategy.yaml", plan.strategy_yaml)
    data = replay_data(strategy_path, plan, data_dir, Path(work_dir) / "data")
    if on_checked is not None:
        on_checked()
    with torch_threads(plan.torch_threads):
        training = train_walk_forward(
            strategy_path,
            model_dir=Path(work_dir) / "models",
            evaluation=plan.evaluation,
            data_dir=data,
            seed=plan.seed,
            device=plan.device,
            batched=plan.batched,
        )
        if plan.trials is None:
            return Replayed(training, None)
        backtest = backtest_walk_forward(
            strategy_path,
            model_dir=Path(training["model_path"]).parent,
            evaluation=plan.evaluation,
            out_dir=Path(work_dir) / "backtest",
            trials=plan.trials,
            data_dir=data,
        )
    return Replayed(training, backtest)


def replay_data(strategy_path: Path, plan: ReplayPlan, data_dir: Path | None, scratch: Path) -> Path | None:
    """The data folder the replay reads: `data_dir`, or where bars were appended since, a copy of every series cut
    at the cycle's last bar in `scratch`. The research bars read from it must be the cycle's.

    Raises:
        DataError: they are not (`bars changed since the cycle: sha256 <now> != <recorded>`).
    """
    strategy = load_strategy(strategy_path, available_pairs(data_dir))
    whole = series_bars(strategy, data_dir)
    series = series_bars(strategy, data_dir, end=plan.bars_end)
    folder = data_dir
    if any(len(series[symbol]) < len(frame) for symbol, frame in whole.items()):
        folder = cut_copy(strategy, series, data_dir, scratch)
        series = series_bars(strategy, folder)  # as the training will read them
    found = bars_checksum(research_bars(strategy, series, plan.evaluation.lockbox_fraction))
    if found != plan.bars_sha256:
        raise DataError(
            f"bars changed since the cycle: sha256 {found} != {plan.bars_sha256} (now != recorded, over the research "
            f"bars of {', '.join(series)} {strategy.timeframe} up to {plan.bars_end} less the lockbox)"
        )
    return folder


def cut_copy(strategy: Strategy, series: Mapping[str, pd.DataFrame], data_dir: Path | None, folder: Path) -> Path:
    """Store `series` (already cut) in `folder`, with the strategy's universe when it is the user's.

    The stored files keep ten significant digits (`data.store_bars`), as the files they were read from did, so a
    user's series reads back bit for bit; one that had more digits fails the checksum instead of replaying wrong.
    """
    for symbol, frame in series.items():
        store_bars(frame, symbol=symbol, timeframe=strategy.timeframe, data_dir=folder)
    if strategy.universe is not None:
        universe = get_universe(strategy.universe, data_dir)
        if universe.source == "user":
            register_owned(universe.name, timeframe=universe.timeframe, symbols=list(universe.symbols), data_dir=folder)
    return folder


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` (0: leave them) for the block, then put back."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- The comparison --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One figure of a cycle, as recorded and as replayed."""

    phase: str  # training, backtest
    name: str
    recorded: Any
    replayed: Any
    same: bool


def same_figure(recorded: Any, replayed: Any, tolerance: float) -> bool:
    """Equal bit for bit (`tolerance` 0), or within `tolerance` relative; NaN equals NaN, a count must be equal."""
    numbers = (int, float)
    if not isinstance(recorded, numbers) or not isinstance(replayed, numbers) or isinstance(recorded, bool):
        return bool(recorded == replayed)
    if math.isnan(recorded) or math.isnan(replayed):
        return math.isnan(recorded) and math.isnan(replayed)
    if tolerance == 0 or isinstance(recorded, int):
        return bool(recorded == replayed)
    return math.isclose(recorded, replayed, rel_tol=tolerance, abs_tol=ABSOLUTE_FLOOR)


def compare(
    phase: str, recorded: Mapping[str, Any], replayed: Mapping[str, Any], names: Sequence[str], tolerance: float
) -> list[Figure]:
    """The figures `names` that the record has, each beside the replay's."""
    figures = []
    for name in (name for name in names if name in recorded):
        then, now = recorded[name], replayed.get(name)
        figures.append(Figure(phase, name, then, now, same_figure(then, now, tolerance)))
    return figures
