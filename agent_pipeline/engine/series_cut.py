"""A series' research and lockbox end, fixed at a date (issue 27): appended bars are forward bars.

The lockbox is the last `lockbox_fraction` of a series' bars (`walkforward.lockbox_start`). Counted on the whole
series, an append would move it: former lockbox bars would become research bars, and forward bars would enter
the lockbox. So the first cycle on a series fixes where the series ends for research (`series_end`, its last bar
then: for a universe, its last common date), the store records it (`store.series`), and every later cycle on that
series reads its bars up to that end only: research period and lockbox are then the same dates whatever was
appended since. Bars after the end are forward bars, for paper trading (`engine.paper`), never research.

An end fixed for the first time never reaches an appended bar (`series_end`): a series appended to before any cycle
fixed its end (as every series whose cycles ran before the cuts were recorded) ends at its last bar before the first
appended one (`append.forward_start`); a universe at its last common date before the first bar appended to any of
its symbols. `ktrdr data append` also fixes the end of the
series, and of each universe holding it, before it writes (`universes_with`).

A changed `KTRDR_LOCKBOX_FRACTION` still moves the lockbox within those bars: that is a setting, not an append.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from agent_pipeline.engine.append import forward_start
from agent_pipeline.engine.data import available_pairs, dataset_path, load_bars
from agent_pipeline.engine.pooled import common_calendar, universe_series
from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.engine.universe import get_universe, universe_names
from agent_pipeline.errors import DataError


def cut_at(bars: pd.DataFrame, end: str | None) -> pd.DataFrame:
    """The bars up to and including `end`; all of them when `end` is None."""
    return bars if end is None else bars[bars.index <= pd.Timestamp(end)]


def cut_series(series: Mapping[str, pd.DataFrame], end: str | None) -> dict[str, pd.DataFrame]:
    """Every series cut at `end` (`cut_at`), in order."""
    return {symbol: cut_at(frame, end) for symbol, frame in series.items()}


def series_end(name: str, timeframe: str, data_dir: Path | None, *, universe: bool = False) -> str:
    """The end a series' first cycle fixes: its last bar before any appended bar; a universe's last common date
    before the first bar appended to any of its symbols (module docstring).

    Raises:
        DataError: a series or the universe cannot be read, or no bar comes before the appended ones.
    """
    if universe:
        series = universe_series(name, timeframe, data_dir)
        starts = [start for start in (first_appended(s, timeframe, data_dir) for s in series) if start is not None]
        return _last_before(common_calendar(series), min(starts, default=None), name)
    bars = load_bars(name, timeframe, data_dir)
    return _last_before(bars.index, first_appended(name, timeframe, data_dir), name)


def first_appended(symbol: str, timeframe: str, data_dir: Path | None) -> pd.Timestamp | None:
    """The first bar ever appended to the series in `data_dir` (`append.forward_start`); None if none was."""
    return forward_start(dataset_path(symbol, timeframe, data_dir)) if data_dir is not None else None


def _last_before(dates: pd.DatetimeIndex, start: pd.Timestamp | None, name: str) -> str:
    kept = dates if start is None else dates[dates < start]
    if not len(kept):
        raise DataError(f"{name} has no bar before its first appended one ({start}): nothing to fix its end at")
    return str(kept[-1])


def strategy_series_end(strategy_path: Path, data_dir: Path | None) -> str:
    """`series_end` of the series (or universe) the strategy in `strategy_path` trades.

    Raises:
        StrategyValidationError, DataError.
    """
    strategy = load_strategy(Path(strategy_path), available_pairs(data_dir))
    if strategy.universe is not None:
        return series_end(strategy.universe, strategy.timeframe, data_dir, universe=True)
    return series_end(strategy.symbol, strategy.timeframe, data_dir)


def universes_with(symbol: str, timeframe: str, data_dir: Path | None) -> list[str]:
    """The names of the universes of `timeframe` (bundled and the user's) that hold the series `symbol`."""
    names = [name for name, frame in universe_names(data_dir) if frame == timeframe]
    return [name for name in names if symbol.upper() in get_universe(name, data_dir).symbols]
