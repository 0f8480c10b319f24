"""The model-ready dataset of a strategy: features, labels and a chronological split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agent_pipeline.engine.features import compute_features
from agent_pipeline.engine.labels import zigzag_labels
from agent_pipeline.errors import DataError

if TYPE_CHECKING:
    from agent_pipeline.engine.strategy import Strategy


@dataclass(frozen=True)
class Dataset:
    """Arrays ready for the trainer (float32 features, int64 labels) plus the test period's prices."""

    feature_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_bars: pd.DataFrame  # OHLCV rows aligned with x_test, for the backtester

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


# Fewer usable rows than this (after warm-up, incomplete labels and purge gaps) cannot train a model.
MIN_ROWS = 200
# Each of validation and test needs at least this many rows for its metrics to mean anything.
MIN_SPLIT_ROWS = 20


def split_positions(valid: np.ndarray, fractions: tuple[float, float], lookahead: int) -> list[np.ndarray]:
    """Chronological train / validation / test bar positions with purge gaps.

    Args:
        valid: positions (into the bars) of the usable rows, ascending.
        fractions: the train and validation fractions of the usable rows (test takes the rest).
        lookahead: the labels' look-ahead; a row at bar t is kept in a split only if t + lookahead is
            before the next split's first bar, so no label of one split sees a price of the next.

    Returns:
        [train, validation, test] position arrays.
    """
    n = len(valid)
    first_val = valid[min(int(n * fractions[0]), n - 1)]
    first_test = valid[min(int(n * (fractions[0] + fractions[1])), n - 1)]
    train = valid[valid + lookahead < first_val]
    val = valid[(valid >= first_val) & (valid + lookahead < first_test)]
    return [train, val, valid[valid >= first_test]]


def _check_sizes(parts: list[np.ndarray]) -> None:
    sizes = [len(p) for p in parts]
    total = sum(sizes)
    if total < MIN_ROWS:
        raise DataError(
            f"too few usable rows: {total} after warm-up, incomplete labels and purge gaps (minimum {MIN_ROWS})"
        )
    if min(sizes) < MIN_SPLIT_ROWS:
        counts = "/".join(str(s) for s in sizes)
        raise DataError(f"a split is too small: train/validation/test {counts} rows (minimum {MIN_SPLIT_ROWS})")


def build_dataset(strategy: Strategy, bars: pd.DataFrame) -> Dataset:
    """Features, labels and a purged chronological split of the strategy's bars.

    Rows with any NaN feature (indicator warm-up) or an incomplete label look-ahead are dropped first.

    Args:
        strategy: a validated strategy (its fuzzy sets, labels and split are used).
        bars: OHLCV bars as `engine.data.load_bars` returns them.

    Raises:
        DataError: fewer than MIN_ROWS usable rows, or a split with fewer than MIN_SPLIT_ROWS.
    """
    features = compute_features(strategy, bars)
    lookahead = strategy.labels.lookahead
    labels = zigzag_labels(
        bars["close"].to_numpy(), strategy.labels.zigzag_threshold, lookahead, hold=strategy.labels.hold
    )
    valid = np.flatnonzero(features.notna().all(axis=1).to_numpy() & (labels >= 0))
    if len(valid) < MIN_ROWS:
        _check_sizes([valid])  # raises before splitting an (almost) empty set
    parts = split_positions(valid, (strategy.split.train, strategy.split.validation), lookahead)
    _check_sizes(parts)
    x = features.to_numpy(dtype=np.float32)
    train, val, test = parts
    test_bars = bars.iloc[test][["open", "high", "low", "close", "volume"]].copy()
    return Dataset(
        list(features.columns), x[train], labels[train], x[val], labels[val], x[test], labels[test], test_bars
    )
