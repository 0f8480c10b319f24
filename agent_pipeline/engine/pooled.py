"""One model across a universe (issue 24): per-symbol features and labels, pooled rows, folds on the common calendar.

Every symbol is read on the universe's common calendar, the dates every symbol has (a date one symbol lacks is
dropped for all, so one close-to-close return may span it). The lockbox is the last `lockbox_fraction` of those
dates, for every symbol alike, and it is cut before anything is computed, as `engine.walkforward` does for one
series. Features and labels are computed per symbol on its research bars (they are scale-free), then pooled: row
`t * S + s` holds symbol s at calendar position t (time-major), so a fold's rows are read from the pooled arrays by
one index, with no per-symbol loop.

The folds are `walkforward.plan_folds` cut on calendar positions, then widened to every symbol's rows at those
positions. The purge by look-ahead holds for every symbol at once: a label at position t reads the closes at
positions t+1 .. t+lookahead of the same calendar, and a training row is kept only if t + lookahead is before its
test block's first position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent_pipeline.engine.data import COLUMNS, load_bars
from agent_pipeline.engine.dataset import MIN_ROWS
from agent_pipeline.engine.features import compute_features
from agent_pipeline.engine.labels import zigzag_labels
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.engine.universe import check_common, get_universe
from agent_pipeline.engine.walkforward import MIN_LOCKBOX_BARS, Fold, Plan, lockbox_start, plan_folds
from agent_pipeline.errors import DataError


def universe_series(name: str, timeframe: str, data_dir: Path | None = None) -> dict[str, pd.DataFrame]:
    """The bars of every symbol of a universe, by symbol (`NAME.S00`), in the universe's order.

    Raises:
        DataError: no such universe, another timeframe than the universe's, or a series that cannot be read.
    """
    universe = get_universe(name, data_dir)
    if universe.timeframe != timeframe:
        raise DataError(f"universe {universe.name} is {universe.timeframe}, not {timeframe}")
    return {symbol: load_bars(symbol, timeframe, data_dir) for symbol in universe.symbols}


def common_calendar(series: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The dates every symbol has a close on (`universe.check_common`)."""
    return check_common(pd.DataFrame({symbol: frame["close"] for symbol, frame in series.items()}))


def research_period(series: dict[str, pd.DataFrame], lockbox_fraction: float) -> dict[str, pd.DataFrame]:
    """Every symbol's bars on the common dates before the lockbox (the last `lockbox_fraction` of those dates)."""
    common = common_calendar(series)
    calendar = common[: lockbox_start(len(common), lockbox_fraction)]
    return {symbol: frame.reindex(calendar) for symbol, frame in series.items()}


@dataclass(frozen=True, kw_only=True)
class PooledWalkForward(Plan):
    """The research period of a universe, pooled: one row per (date, symbol), time-major; see the module docstring.

    `bars` is indexed by date, each date repeated once per symbol; `symbol_ids` gives each row's symbol.
    """

    symbols: tuple[str, ...]
    calendar: pd.DatetimeIndex  # the research period's common dates

    @property
    def rows_per_date(self) -> int:
        return len(self.symbols)

    @property
    def symbol_ids(self) -> np.ndarray:
        """Each row's symbol, as a position in `symbols`."""
        return np.arange(len(self.x)) % len(self.symbols)

    @property
    def span(self) -> tuple[str, str]:
        """The research period's first and last date."""
        return str(self.calendar[0]), str(self.calendar[-1])

    def date_of(self, row: int) -> str:
        return str(self.calendar[row // len(self.symbols)])


def symbol_arrays(strategy: Strategy, bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One symbol's features and labels on its (already cut) bars."""
    labels = strategy.labels
    close = bars["close"].to_numpy()
    return compute_features(strategy, bars), zigzag_labels(
        close, labels.zigzag_threshold, labels.lookahead, hold=labels.hold
    )


def _widen(positions: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The pooled rows of every symbol at calendar `positions` where `keep` (dates x symbols) holds, time-major."""
    symbols = keep.shape[1]
    rows = (positions[:, None] * symbols + np.arange(symbols)[None, :]).ravel()
    return rows[keep[positions].ravel()]


def _pooled_folds(plan: list[Fold], finite: np.ndarray, labelled: np.ndarray) -> list[Fold]:
    return [
        Fold(
            fold.index,
            _widen(fold.train, labelled),
            _widen(fold.val, labelled),
            _widen(fold.test, finite),
            _widen(fold.test_labelled, labelled),
        )
        for fold in plan
    ]


def build_pooled_walk_forward(
    strategy: Strategy, series: dict[str, pd.DataFrame], *, lockbox_fraction: float, folds: int
) -> PooledWalkForward:
    """Per-symbol features and labels of the universe's research period, pooled, and the fold plan.

    Args:
        strategy: a validated universe strategy; its `evaluation.folds` overrides `folds`.
        series: every symbol's bars (`universe_series`).

    Raises:
        DataError: no common dates, too few usable dates, or a fold too small.
    """
    cut = research_period(series, lockbox_fraction)
    calendar = pd.DatetimeIndex(next(iter(cut.values())).index)
    arrays = [symbol_arrays(strategy, frame) for frame in cut.values()]
    x = np.stack([features.to_numpy(dtype=np.float32) for features, _ in arrays], axis=1)  # dates, symbols, features
    labels = np.stack([label for _, label in arrays], axis=1)
    finite = np.isfinite(x).all(axis=2)
    labelled = finite & (labels >= 0)
    if labelled.any(axis=1).sum() < MIN_ROWS:
        raise DataError(
            f"too few usable dates in the research period: {int(labelled.any(axis=1).sum())} after warm-up and "
            f"incomplete labels (minimum {MIN_ROWS})"
        )
    split = strategy.split
    plan = plan_folds(
        np.flatnonzero(finite.any(axis=1)),
        np.flatnonzero(labelled.any(axis=1)),
        folds=strategy.evaluation.folds or folds,
        ratio=split.train / (split.train + split.validation),
        lookahead=strategy.labels.lookahead,
    )
    pooled = _pooled_folds(plan, finite, labelled)
    return PooledWalkForward(
        symbols=tuple(series),
        feature_names=list(arrays[0][0].columns),
        x=x.reshape(-1, x.shape[2]),
        labels=labels.reshape(-1),
        bars=_pooled_bars(cut, calendar),
        calendar=calendar,
        folds=pooled[:-1],
        final=pooled[-1],
    )


def _pooled_bars(cut: dict[str, pd.DataFrame], calendar: pd.DatetimeIndex) -> pd.DataFrame:
    values = np.stack([frame[list(COLUMNS)].to_numpy(dtype=float) for frame in cut.values()], axis=1)
    index = pd.DatetimeIndex(calendar.repeat(len(cut)), name=calendar.name)
    return pd.DataFrame(values.reshape(-1, len(COLUMNS)), index=index, columns=list(COLUMNS))


def lockbox_rows(
    strategy: Strategy, series: dict[str, pd.DataFrame], *, lockbox_fraction: float
) -> dict[str, tuple[np.ndarray, pd.DataFrame]]:
    """Each symbol's lockbox features and bars on the common calendar; indicators warm up on the dates before it.

    Raises:
        DataError: a symbol's lockbox has fewer than MIN_LOCKBOX_BARS usable bars.
    """
    common = common_calendar(series)
    start = lockbox_start(len(common), lockbox_fraction)
    found = {}
    for symbol, frame in series.items():
        aligned = frame.reindex(common)
        features = compute_features(strategy, aligned).iloc[start:]
        finite = features.notna().all(axis=1).to_numpy()
        if finite.sum() < MIN_LOCKBOX_BARS:
            raise DataError(f"{symbol}: the lockbox has {int(finite.sum())} usable bars (minimum {MIN_LOCKBOX_BARS})")
        found[symbol] = (features.to_numpy(dtype=np.float32)[finite], aligned.iloc[start:][finite][list(COLUMNS)])
    return found
