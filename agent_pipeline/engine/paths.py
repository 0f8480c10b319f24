"""Purged combinatorial paths of one strategy (issue 25): many out-of-sample histories instead of one.

Walk-forward gives one out-of-sample history; a strategy good on it may only be lucky in its order of regimes.
Combinatorial purged cross-validation (López de Prado, *Advances in Financial Machine Learning*, 2018, ch. 12)
cuts the research period's usable dates into N = 6 contiguous groups and, for each of the C(6, 2) = 15 ways to
hold k = 2 groups out, trains one model on the other four and predicts the two it never saw. Each group is
predicted by C(5, 1) = 5 models, so the predictions recombine into C(6, 2) * 2 / 6 = 5 paths, each covering every
group exactly once. Each path is backtested as the walk-forward record is (costs, the strategy's own trading rules;
a universe's portfolio), and its annualised Sharpe ratio is one draw of what the strategy would have shown.

The splits come from skfolio's `CombinatorialPurgedCV` over the usable dates, with the leakage cut as the
walk-forward cuts it:
- purge = the labels' look-ahead: a training date t stays only if t + lookahead is before the next test group's
  first date, so no training label reads a test price (skfolio also drops that many dates after each test group);
- embargo = EMBARGO_FRACTION of the dates (at least one) after each test group, since indicators at those dates
  are computed from the test group's bars.
Each split's training rows are then cut into train and validation as the walk-forward's are: chronologically, in
the strategy's train:validation ratio, purged between the two. Only the research period is used: the lockbox is
cut off first (`walkforward.build_walk_forward`, `pooled.build_pooled_walk_forward`).

Every model trains with the walk-forward's trainer and settings: all 15 at once (`batch_trainer.train_together`)
or one after another (`trainer.train`), with the same seed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent_pipeline.engine.backtest import BacktestResult, periods_per_year, positions_from_classes, simulate
from agent_pipeline.engine.batch_trainer import train_together
from agent_pipeline.engine.data import available_pairs, load_bars
from agent_pipeline.engine.dataset import MIN_ROWS, MIN_SPLIT_ROWS
from agent_pipeline.engine.pooled import PooledWalkForward, build_pooled_walk_forward, universe_series
from agent_pipeline.engine.portfolio import trade_plan
from agent_pipeline.engine.strategy import Strategy, load_strategy
from agent_pipeline.engine.trainer import EpochProgress, predict_probabilities, train
from agent_pipeline.engine.walkforward import OHLCV, Fold, WalkForward, build_walk_forward
from agent_pipeline.errors import DataError

# Contiguous groups the research period is cut into, and groups held out per split: C(6, 2) = 15 splits, 5 paths.
GROUPS = 6
TEST_GROUPS = 2
# Share of the usable dates embargoed after each test group (López de Prado suggests about 1%).
EMBARGO_FRACTION = 0.01
# The batched state of the split models, in the work folder, so a redelivered task resumes.
CHECKPOINT_FILE = "paths_checkpoint.pt"

# A research period: one series' walk-forward plan, or a universe's pooled one (`research.Plan`).
Plan = WalkForward | PooledWalkForward


@dataclasses.dataclass(frozen=True)
class PathPlan:
    """The splits of one research period: each split's model (train / validation rows, the groups it tests as its
    test rows) and which path each tested group belongs to.

    Row numbers index the walk-forward plan's arrays (`x`, `labels`, `bars`); `dates` are positions on its calendar
    (a single series: its rows).
    """

    groups: list[np.ndarray]  # each group's usable rows, in time order
    group_dates: list[np.ndarray]  # each group's usable dates
    splits: list[Fold]  # Fold.index = split number + 1; `test` holds its test groups' rows
    tested: list[tuple[int, ...]]  # the groups each split tests
    path_ids: np.ndarray  # (splits, TEST_GROUPS): the path of each tested group
    purge: int
    embargo: int

    @property
    def n_paths(self) -> int:
        return int(self.path_ids.max()) + 1

    def path(self, number: int) -> list[tuple[int, int]]:
        """(split, group) for each group of path `number`, in time order: which model predicts each group."""
        found = {
            group: split
            for split, groups in enumerate(self.tested)
            for group, path in zip(groups, self.path_ids[split], strict=True)
            if path == number
        }
        return [(found[group], group) for group in range(len(self.groups))]


def _masks(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Usable (finite features) and labelled rows as dates x symbols masks (a single series: one symbol)."""
    finite = np.isfinite(plan.x).all(axis=1)
    labelled = finite & (plan.labels >= 0)
    width = plan.rows_per_date
    return finite.reshape(-1, width), labelled.reshape(-1, width)


def _rows(dates: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The plan's rows at `dates` (time-major, every symbol) where `keep` (dates x symbols) holds."""
    width = keep.shape[1]
    rows = (dates[:, None] * width + np.arange(width)[None, :]).ravel()
    return rows[keep[dates].ravel()]


def plan_paths(
    plan: Plan, *, lookahead: int, ratio: float, groups: int = GROUPS, test_groups: int = TEST_GROUPS
) -> PathPlan:
    """The combinatorial purged splits of the plan's research period (see the module docstring).

    Args:
        lookahead: the labels' look-ahead, the purge.
        ratio: the train share of train + validation in each split.

    Raises:
        DataError: the research period is too short for the groups, the purge and the embargo, or a split's
            train or validation rows are too few.
    """
    from skfolio.model_selection import CombinatorialPurgedCV  # lazy: start-up cost (skfolio imports plotly)

    finite, labelled = _masks(plan)
    usable = np.flatnonzero(finite.any(axis=1))
    embargo = max(1, math.ceil(EMBARGO_FRACTION * len(usable)))
    cv = CombinatorialPurgedCV(n_folds=groups, n_test_folds=test_groups, purged_size=lookahead, embargo_size=embargo)
    try:
        found = list(cv.split(usable.reshape(-1, 1)))
    except ValueError as exc:  # skfolio: the purge and embargo leave a group no room
        raise DataError(f"too few usable dates for {groups} purged groups: {exc}") from None
    group_dates: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * groups
    splits = []
    for i, ((train_at, tests), tested) in enumerate(zip(found, cv.test_set_index, strict=True)):
        for group, at in zip(tested, tests, strict=True):
            group_dates[int(group)] = usable[at]
        train, val = _train_val(_rows(usable[train_at], labelled), ratio, lookahead, plan.rows_per_date)
        test = np.concatenate([_rows(usable[at], finite) for at in tests])
        split = Fold(i + 1, train, val, test, np.concatenate([_rows(usable[at], labelled) for at in tests]))
        _check_split(split)
        splits.append(split)
    return PathPlan(
        groups=[_rows(dates, finite) for dates in group_dates],
        group_dates=group_dates,
        splits=splits,
        tested=[tuple(int(g) for g in tested) for tested in cv.test_set_index],
        path_ids=cv.get_path_ids(),
        purge=lookahead,
        embargo=embargo,
    )


def _train_val(rows: np.ndarray, ratio: float, lookahead: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (`width` per date, time-major) split chronologically into train and validation in `ratio`;
    a train row stays only if its date + lookahead is before the first validation date (`walkforward._train_val`)."""
    if len(rows) == 0:
        return rows, rows
    cut = min(int(len(rows) * ratio), len(rows) - 1)
    dates = rows // width
    return rows[:cut][dates[:cut] + lookahead < dates[cut]], rows[cut:]


def _check_split(split: Fold) -> None:
    sizes = {"train": len(split.train), "validation": len(split.val), "test": len(split.test_labelled)}
    if sizes["train"] < MIN_ROWS // 2 or min(sizes.values()) < MIN_SPLIT_ROWS:
        counts = "/".join(str(v) for v in sizes.values())
        raise DataError(
            f"combinatorial split {split.index} is too small: train/validation/test {counts} rows "
            f"(minimum {MIN_ROWS // 2}/{MIN_SPLIT_ROWS}/{MIN_SPLIT_ROWS})"
        )


def research_plan(strategy: Strategy, *, lockbox_fraction: float, folds: int, data_dir: Path | None) -> Plan:
    """The strategy's research period as the walk-forward builds it (a universe's pooled), lockbox cut off."""
    if strategy.universe is not None:
        series = universe_series(strategy.universe, strategy.timeframe, data_dir)
        return build_pooled_walk_forward(strategy, series, lockbox_fraction=lockbox_fraction, folds=folds)
    bars = load_bars(strategy.symbol, strategy.timeframe, data_dir)
    return build_walk_forward(strategy, bars, lockbox_fraction=lockbox_fraction, folds=folds)


def train_splits(
    strategy: Strategy,
    plan: Plan,
    paths: PathPlan,
    folder: Path,
    *,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    batched: bool = True,
) -> list[Path]:
    """Train one model per split, as the walk-forward trains its folds; returns their model files.

    Raises:
        TrainingError, CancelledError: see `trainer.train`.
    """
    datasets = [plan.dataset(split) for split in paths.splits]
    files = [folder / f"split_{split.index}" / "model.pt" for split in paths.splits]
    if batched:
        stage = f"{len(files)} path models"
        train_together(
            strategy, datasets, model_paths=files, checkpoint_path=folder / CHECKPOINT_FILE, seed=seed,
            device=device, on_epoch=None if on_epoch is None else lambda progress: on_epoch(progress, stage),
            should_cancel=should_cancel,
        )  # fmt: skip
        return files
    for i, (dataset, path) in enumerate(zip(datasets, files, strict=True)):

        def report(progress: EpochProgress, i: int = i) -> None:
            if on_epoch is not None:
                overall = 100.0 * (i + progress.percentage / 100.0) / len(files)
                on_epoch(dataclasses.replace(progress, percentage=overall), f"path model {i + 1}/{len(files)}")

        train(
            strategy, dataset, model_path=path, seed=seed, device=device, on_epoch=report, should_cancel=should_cancel
        )
    return files


def path_sharpes(strategy: Strategy, plan: Plan, paths: PathPlan, models: list[Path]) -> list[float]:
    """Each path's annualised Sharpe ratio: its groups, each predicted by its split's model, traded as one record."""
    probabilities = {
        (split, group): predict_probabilities(models[split], plan.x[paths.groups[group]])
        for split, groups in enumerate(paths.tested)
        for group in groups
    }
    sharpes = []
    for number in range(paths.n_paths):
        picked = paths.path(number)
        if isinstance(plan, PooledWalkForward):
            folds = [Fold(group + 1, np.empty(0), np.empty(0), paths.groups[group]) for _, group in picked]
            result = trade_plan(strategy, plan, folds, [probabilities[key] for key in picked])[0]
        else:
            result = _trade_series(strategy, plan, paths, picked, [probabilities[key] for key in picked])
        sharpes.append(float(result.sharpe_ratio))
    return sharpes


def _trade_series(
    strategy: Strategy, plan: WalkForward, paths: PathPlan, picked: list[tuple[int, int]], probabilities: list[Any]
) -> BacktestResult:
    """One series' path: each group's signals from its model's calls under the strategy's own rules (confidence,
    minimum hold; `backtest.strategy_signals`), simulated as one record."""
    rules = strategy.backtest
    signals = [
        positions_from_classes(p.argmax(axis=1), p.max(axis=1) >= rules.confidence_threshold, rules.min_hold)
        for p in probabilities
    ]
    rows = np.concatenate([paths.groups[group] for _, group in picked])
    return simulate(
        plan.bars.iloc[rows][OHLCV],
        np.concatenate(signals),
        commission=rules.commission,
        slippage=rules.slippage,
        periods_per_year=periods_per_year(strategy.timeframe),
    )


def measure_paths(
    strategy_path: Path,
    *,
    work_dir: Path,
    lockbox_fraction: float,
    folds: int,
    data_dir: Path | None = None,
    seed: int = 7,
    device: str | None = None,
    on_epoch: Callable[[EpochProgress, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    batched: bool = True,
) -> dict[str, Any]:
    """Plan the splits of the strategy's research period, train their models into `work_dir`, backtest the paths.

    Returns:
        `sharpes` (one per path), `median`, `positive_share` (of paths with a Sharpe above 0), `groups`,
        `test_groups`, `splits`, `paths`, `purge`, `embargo`, `dates`, `start`, `end`, `duration_s`.

    Raises:
        StrategyValidationError, DataError, TrainingError, BacktestError, CancelledError.
    """
    started = time.monotonic()
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    plan = research_plan(strategy, lockbox_fraction=lockbox_fraction, folds=folds, data_dir=data_dir)
    split = strategy.split
    paths = plan_paths(plan, lookahead=strategy.labels.lookahead, ratio=split.train / (split.train + split.validation))
    models = train_splits(
        strategy, plan, paths, Path(work_dir), seed=seed, device=device, on_epoch=on_epoch,
        should_cancel=should_cancel, batched=batched,
    )  # fmt: skip
    sharpes = path_sharpes(strategy, plan, paths, models)
    dates = np.concatenate(paths.group_dates)
    return {
        "sharpes": [round(s, 6) for s in sharpes],
        "median": float(np.median(sharpes)),
        "positive_share": float(np.mean(np.asarray(sharpes) > 0)),
        "groups": len(paths.groups),
        "test_groups": len(paths.tested[0]),
        "splits": len(paths.splits),
        "paths": paths.n_paths,
        "purge": paths.purge,
        "embargo": paths.embargo,
        "dates": int(len(dates)),
        "start": plan.date_of(int(paths.groups[0][0])),
        "end": plan.date_of(int(paths.groups[-1][-1])),
        "duration_s": round(time.monotonic() - started, 3),
    }
