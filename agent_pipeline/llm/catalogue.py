"""The market data a designer may choose from: one `DataSeries` per (symbol, timeframe) on disk, or a universe's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agent_pipeline.errors import DesignError


@dataclass(frozen=True)
class DataSeries:
    """One OHLCV series the engine can load, or a universe (issue 24); the caller builds these from the data folder.

    A universe stands as one series named by the universe, with its symbols in `symbols` and its common dates in
    `bars`: a strategy on it names `universe:` instead of `symbol:`.
    """

    symbol: str
    timeframe: str
    start: datetime | str
    end: datetime | str
    bars: int
    symbols: tuple[str, ...] = ()  # a universe's symbols; empty for one series
    close_only: bool = False

    @property
    def is_universe(self) -> bool:
        return bool(self.symbols)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.symbol, self.timeframe)

    def describe(self) -> str:
        """One line for a prompt: `EURUSD 1h: 6000 bars, 2023-01-02 .. 2023-12-29`, or a universe's."""
        span = f"{_day(self.start)} .. {_day(self.end)}"
        if not self.is_universe:
            return f"{self.symbol} {self.timeframe}: {self.bars} bars, {span}"
        closes = ", close-only (close-based indicators only)" if self.close_only else ""
        return (
            f"{self.symbol} {self.timeframe}: a universe of {len(self.symbols)} symbols ({', '.join(self.symbols)})"
            f"{closes}, {self.bars} common dates, {span}; a strategy on it names `universe: {self.symbol}`"
        )


def select_series(catalogue: Iterable[DataSeries], symbol: str | None, timeframe: str | None) -> list[DataSeries]:
    """The catalogue entries that match the request.

    Raises:
        DesignError: nothing matches (the message lists what is available).
    """
    series = list(catalogue)
    chosen = [s for s in series if (symbol in (None, s.symbol)) and (timeframe in (None, s.timeframe))]
    if not chosen:
        offered = ", ".join(f"{s.symbol} {s.timeframe}" for s in series) or "none"
        raise DesignError(f"no market data for {symbol or '*'} {timeframe or '*'} (available: {offered})")
    return chosen


def available_pairs(catalogue: Iterable[DataSeries]) -> set[tuple[str, str]]:
    """The (symbol, timeframe) pairs `parse_strategy(available=...)` accepts: the single series."""
    return {series.pair for series in catalogue if not series.is_universe}


def universe_pairs(catalogue: Iterable[DataSeries]) -> set[tuple[str, str]]:
    """The (universe, timeframe) pairs `parse_strategy(universes=...)` accepts."""
    return {series.pair for series in catalogue if series.is_universe}


def close_only_pairs(catalogue: Iterable[DataSeries]) -> set[tuple[str, str]]:
    """The pairs `parse_strategy(close_only=...)` holds to close-based indicators."""
    return {series.pair for series in catalogue if series.close_only}


def _day(value: datetime | str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
