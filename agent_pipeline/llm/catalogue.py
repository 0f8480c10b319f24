"""The market data a designer may choose from: one `DataSeries` per (symbol, timeframe) on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


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


def available_pairs(catalogue: Iterable[DataSeries]) -> set[tuple[str, str]]:
    """The (symbol, timeframe) pairs `parse_strategy(available=...)` accepts."""
    return {series.pair for series in catalogue}


def _day(value: datetime | str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
