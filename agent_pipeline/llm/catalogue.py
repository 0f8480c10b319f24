"""The market data a designer may choose from: one `DataSeries` per (symbol, timeframe) on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agent_pipeline.errors import DesignError


@dataclass(frozen=True)
class DataSeries:
    """One OHLCV series the engine can load; the caller builds these from the data folder."""

    symbol: str
    timeframe: str
    start: datetime | str
    end: datetime | str
    bars: int

    @property
    def pair(self) -> tuple[str, str]:
        return (self.symbol, self.timeframe)

    def describe(self) -> str:
        """One line for a prompt: `EURUSD 1h: 6000 bars, 2023-01-02 .. 2023-12-29`."""
        return f"{self.symbol} {self.timeframe}: {self.bars} bars, {_day(self.start)} .. {_day(self.end)}"


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
    """The (symbol, timeframe) pairs `parse_strategy(available=...)` accepts."""
    return {series.pair for series in catalogue}


def _day(value: datetime | str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
