"""The research period, its walk-forward folds, and the lockbox after it.

A series is cut in two: the **research period** (everything the loop may look at) and the **lockbox**, its last
`lockbox_fraction` of bars, traded once per finished cycle by the final model and never shown to the loop.
The cut is made on the raw bars before anything else, so labels (which look ahead) are computed from research
prices only, and no research figure can depend on a lockbox price.

Inside the research period, K expanding-window folds: the usable rows (finite features) are cut into K + 1
consecutive blocks; fold k (1..K) tests block k and trains on the labelled rows before it, split into train and
validation in the strategy's own train:validation ratio. Rows are purged so that no training or validation
label looks at a price of the block after it: a row at bar t stays only if t + lookahead is before that block's
first bar. The final model trains the same way on the whole research period.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agent_pipeline.engine.dataset import MIN_ROWS, MIN_SPLIT_ROWS, Dataset
from agent_pipeline.engine.features import compute_features
from agent_pipeline.engine.labels import zigzag_labels
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.errors import DataError

# Fewer bars than this in the lockbox cannot be traded meaningfully.
MIN_LOCKBOX_BARS = 20


def lockbox_start(n_bars: int, fraction: float) -> int:
    """Position of the first lockbox bar: the last `fraction` of `n_bars` (at least one bar) is the lockbox."""
    if not 0 < fraction < 1:
        raise DataError(f"lockbox fraction must be between 0 and 1, got {fraction}")
    return n_bars - max(1, int(round(n_bars * fraction)))


@dataclass(frozen=True)
class Fold:
    """Bar positions (into the research bars) of one model's train, validation and out-of-sample rows.

    `test` holds every usable row of the fold's block (all are traded); `test_labelled` those with a label
    (the classification metrics use them). The final model has no test rows.
    """

    index: int  # 1..K; 0 is the final model
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    test_labelled: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def name(self) -> str:
        return f"fold_{self.index}" if self.index else "final"


# The bar columns a model's rows carry into its dataset and its backtest.
OHLCV = ["open", "high", "low", "close", "volume"]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What every walk-forward plan holds: row-aligned features, labels and bars, the folds and the final model.

    A fold's arrays are row numbers into `x`, `labels` and `bars`. `WalkForward` has one row per bar of one series;
    `pooled.PooledWalkForward` one per (date, symbol) of a universe. Each says how a row maps to its date.
    """

    feature_names: list[str]
    x: np.ndarray  # float32, one row per research row (NaN during warm-up)
    labels: np.ndarray  # int64 per row; -1 where the look-ahead runs past the research period
    bars: pd.DataFrame  # the research period's OHLCV bars, one per row
    folds: list[Fold]
    final: Fold

    @property
    def models(self) -> list[Fold]:
        """Every model to train, in order: the folds, then the final model."""
        return [*self.folds, self.final]

    def date_of(self, row: int) -> str:
        """The date of a row."""
        return str(self.bars.index[row])

    def dataset(self, fold: Fold) -> Dataset:
        return Dataset(
            list(self.feature_names),
            self.x[fold.train],
            self.labels[fold.train],
            self.x[fold.val],
            self.labels[fold.val],
            self.x[fold.test_labelled],
            self.labels[fold.test_labelled],
            self.bars.iloc[fold.test_labelled][OHLCV].copy(),
        )

    def dates(self, fold: Fold) -> dict[str, str | None]:
        def at(rows: np.ndarray, i: int) -> str | None:
            return self.date_of(int(rows[i])) if len(rows) else None

        return {
            "train_start": at(fold.train, 0),
            "train_end": at(fold.val, -1) if len(fold.val) else at(fold.train, -1),
            "test_start": at(fold.test, 0),
            "test_end": at(fold.test, -1),
        }


@dataclass(frozen=True, kw_only=True)
class WalkForward(Plan):
    """One series' research period and fold plan; `dataset(fold)` gives the trainer's input."""

    @property
    def rows_per_date(self) -> int:
        """Rows per bar: one series has one (a universe's pooled plan has one per symbol)."""
        return 1

    @property
    def span(self) -> tuple[str, str]:
        """The research period's first and last bar."""
        return str(self.bars.index[0]), str(self.bars.index[-1])

    def test_bars(self, fold: Fold) -> pd.DataFrame:
        """The OHLCV bars the fold's model trades."""
        return self.bars.iloc[fold.test][OHLCV]


def _train_val(labelled: np.ndarray, before: int, ratio: float, lookahead: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled rows purged before bar `before`, split chronologically into train and validation (purged too)."""
    rows = labelled[labelled + lookahead < before]
    if len(rows) == 0:
        return rows, rows
    first_val = rows[min(int(len(rows) * ratio), len(rows) - 1)]
    return rows[rows + lookahead < first_val], rows[rows >= first_val]


def plan_folds(usable: np.ndarray, labelled: np.ndarray, *, folds: int, ratio: float, lookahead: int) -> list[Fold]:
    """K expanding-window folds, then the final model (index 0) last; see the module docstring.

    Args:
        usable: ascending positions of rows with finite features.
        labelled: ascending positions of usable rows that also have a complete label.
        folds: K.
        ratio: the train share of train + validation.
        lookahead: the labels' look-ahead, the purge width.

    Raises:
        DataError: a fold's train, validation or test rows are too few.
    """
    bounds = [usable[int(round(i * len(usable) / (folds + 1)))] for i in range(folds + 1)] + [usable[-1] + 1]
    plan = []
    for k in range(1, folds + 1):
        train, val = _train_val(labelled, bounds[k], ratio, lookahead)
        test = usable[(usable >= bounds[k]) & (usable < bounds[k + 1])]
        fold = Fold(k, train, val, test, labelled[(labelled >= bounds[k]) & (labelled < bounds[k + 1])])
        _check_fold(fold, folds)
        plan.append(fold)
    train, val = _train_val(labelled, usable[-1] + 1, ratio, lookahead)
    plan.append(Fold(0, train, val))
    return plan


def _check_fold(fold: Fold, folds: int) -> None:
    sizes = {"train": len(fold.train), "validation": len(fold.val), "test": len(fold.test_labelled)}
    if sizes["train"] < MIN_ROWS // 2 or min(sizes.values()) < MIN_SPLIT_ROWS:
        counts = "/".join(str(v) for v in sizes.values())
        raise DataError(
            f"walk-forward fold {fold.index} of {folds} is too small: train/validation/test {counts} rows "
            f"(minimum {MIN_ROWS // 2}/{MIN_SPLIT_ROWS}/{MIN_SPLIT_ROWS}); use fewer folds or more data"
        )


def build_walk_forward(strategy: Strategy, bars: pd.DataFrame, *, lockbox_fraction: float, folds: int) -> WalkForward:
    """Features, labels and the fold plan of the strategy's research period (the lockbox is cut off first).

    Args:
        strategy: a validated strategy; its `evaluation.folds` overrides `folds`.
        bars: the whole series, as `engine.data.load_bars` returns it.

    Raises:
        DataError: too few usable rows, or a fold too small.
    """
    research = bars.iloc[: lockbox_start(len(bars), lockbox_fraction)]
    features = compute_features(strategy, research)
    lookahead = strategy.labels.lookahead
    labels = zigzag_labels(
        research["close"].to_numpy(), strategy.labels.zigzag_threshold, lookahead, hold=strategy.labels.hold
    )
    finite = features.notna().all(axis=1).to_numpy()
    usable = np.flatnonzero(finite)
    labelled = np.flatnonzero(finite & (labels >= 0))
    if len(labelled) < MIN_ROWS:
        raise DataError(
            f"too few usable rows in the research period: {len(labelled)} after warm-up and incomplete labels "
            f"(minimum {MIN_ROWS})"
        )
    split = strategy.split
    plan = plan_folds(
        usable,
        labelled,
        folds=strategy.evaluation.folds or folds,
        ratio=split.train / (split.train + split.validation),
        lookahead=lookahead,
    )
    return WalkForward(
        feature_names=list(features.columns),
        x=features.to_numpy(dtype=np.float32),
        labels=labels,
        bars=research,
        folds=plan[:-1],
        final=plan[-1],
    )


def lockbox_rows(strategy: Strategy, bars: pd.DataFrame, *, lockbox_fraction: float) -> tuple[np.ndarray, pd.DataFrame]:
    """The lockbox's features and bars. Indicators warm up on the research bars before it (they are causal).

    Raises:
        DataError: the lockbox has fewer than MIN_LOCKBOX_BARS usable bars.
    """
    start = lockbox_start(len(bars), lockbox_fraction)
    features = compute_features(strategy, bars).iloc[start:]
    finite = features.notna().all(axis=1).to_numpy()
    if finite.sum() < MIN_LOCKBOX_BARS:
        raise DataError(f"the lockbox has {int(finite.sum())} usable bars (minimum {MIN_LOCKBOX_BARS})")
    lockbox = bars.iloc[start:][finite][["open", "high", "low", "close", "volume"]]
    return features.to_numpy(dtype=np.float32)[finite], lockbox
