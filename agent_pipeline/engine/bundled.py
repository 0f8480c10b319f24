"""Bundled universes: tables of closes that ship inside an installed library, read on demand and never copied.

`SP500_20` is skfolio's `load_sp500_dataset()` (BSD-3): the daily adjusted closes of 20 S&P 500 stocks from
1990-01-02 to 2022-12-28 (8,313 days), closes only (no open, high, low or volume), prices rounded to 3 decimals.
skfolio is a core dependency, so every host (a GPU worker too) has the same table and nothing needs syncing or
writing: `ktrdr data list` shows the universe and `engine.data.load_bars("SP500_20.AAPL", "1d")` reads a column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache

import pandas as pd

from agent_pipeline.errors import DataError

log = logging.getLogger(__name__)

# name -> timeframe of each bundled universe; its symbols are `<name>.<column>`.
BUNDLED_UNIVERSES = {"SP500_20": "1d"}
# Where each bundled universe's closes come from, for listings.
ORIGINS = {"SP500_20": "skfolio.datasets.load_sp500_dataset()"}


@cache
def bundled_closes(name: str) -> pd.DataFrame:
    """The universe's closes: a sorted DatetimeIndex named `date`, one column per symbol (without the prefix).

    Callers must not modify the frame (it is cached per process).

    Raises:
        DataError: no such bundled universe, or its library is not installed.
    """
    if name not in BUNDLED_UNIVERSES:
        raise DataError(f"no bundled universe {name!r} (bundled: {', '.join(BUNDLED_UNIVERSES)})")
    try:
        from skfolio.datasets import load_sp500_dataset  # lazy: start-up cost (scikit-learn, cvxpy: about 1 s)
    except ImportError:
        raise DataError(f"the bundled universe {name} needs skfolio: pip install skfolio") from None
    closes = load_sp500_dataset().astype(float)
    closes.index = pd.DatetimeIndex(closes.index, name="date")
    closes.columns = [str(column).upper() for column in closes.columns]
    return closes.sort_index()


def bundled_columns() -> Iterator[tuple[str, str, list[str]]]:
    """(universe, timeframe, columns) of every bundled universe whose library is installed."""
    for name, timeframe in BUNDLED_UNIVERSES.items():
        try:
            columns = bundled_closes(name).columns
        except DataError as exc:
            log.warning("skipping the bundled universe %s: %s", name, exc)
            continue
        yield name, timeframe, [str(column) for column in columns]


def bundled_symbols() -> dict[tuple[str, str], tuple[str, str]]:
    """Every bundled universe's series: (symbol, timeframe) -> (universe, column); none where skfolio is missing."""
    return {(f"{name}.{c}", timeframe): (name, c) for name, timeframe, columns in bundled_columns() for c in columns}
