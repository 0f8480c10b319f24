"""A series' research and lockbox end, fixed at a date (issue 27): appended bars are forward bars.

The lockbox is the last `lockbox_fraction` of a series' bars (`walkforward.lockbox_start`). Counted on the whole
series, an append would move it: former lockbox bars would become research bars, and forward bars would enter
the lockbox. So the first cycle on a series fixes where the series ends for research (`series_end`, its last bar
then: for a universe, its last common date), the store records it (`store.series`), and every later cycle on that
series reads its bars up to that end only: research period and lockbox are then the same dates whatever was
appended since. Bars after the end are forward bars, for paper trading (`engine.paper`), never research.

A changed `KTRDR_LOCKBOX_FRACTION` still moves the lockbox within those bars: that is a setting, not an append.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from agent_pipeline.engine.data import available_pairs, load_bars
from agent_pipeline.engine.pooled import common_calendar, universe_series
from agent_pipeline.engine.strategy import Strategy, load_strategy


def cut_at(bars: pd.DataFrame, end: str | None) -> pd.DataFrame:
    """The bars up to and including `end`; all of them when `end` is None."""
    return bars if end is None else bars[bars.index <= pd.Timestamp(end)]


def cut_series(series: Mapping[str, pd.DataFrame], end: str | None) -> dict[str, pd.DataFrame]:
    """Every series cut at `end` (`cut_at`), in order."""
    return {symbol: cut_at(frame, end) for symbol, frame in series.items()}


def last_bar(strategy: Strategy, data_dir: Path | None) -> str:
    """The last bar of the series the strategy trades now: one series' last bar, a universe's last common date.

    Raises:
        DataError: a series or the universe cannot be read.
    """
    if strategy.universe is not None:
        return str(common_calendar(universe_series(strategy.universe, strategy.timeframe, data_dir))[-1])
    return str(load_bars(strategy.symbol, strategy.timeframe, data_dir).index[-1])


def strategy_last_bar(strategy_path: Path, data_dir: Path | None) -> str:
    """`last_bar` of the strategy in `strategy_path`.

    Raises:
        StrategyValidationError, DataError.
    """
    return last_bar(load_strategy(Path(strategy_path), available_pairs(data_dir)), data_dir)
