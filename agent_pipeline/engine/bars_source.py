"""Where new bars come from (issue 27): the `BarSource` seam, and its one implementation here, a file.

`ktrdr data append` asks a source for the bars after a series' end and appends them (`engine.append`). A live feed
can plug in later as another `BarSource`; the append checks whatever a source gives it the same way.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from agent_pipeline.engine.data import PRICE_COLUMNS, RANGE_COLUMNS, read_csv_table, volume_column
from agent_pipeline.errors import DataError


class BarSource(Protocol):
    """A source of bars for one series at a time: a file now, a live feed later."""

    def bars_after(self, symbol: str, timeframe: str, after: datetime) -> pd.DataFrame:
        """The source's bars of the series from `after` on, in the source's own order, not yet validated.

        Returns:
            A frame on a tz-naive (UTC) DatetimeIndex named `date`, with a float `close` column and those of
            `open`, `high`, `low` and `volume` that the source has (a close-only source has none of the first
            three). It holds every bar after `after` the source has; it may hold bars at or before `after` too
            (a file does), which the append checks against the stored ones.

        Raises:
            DataError: the source cannot be read, or a price is missing or not a number.
        """
        ...


class FileBarSource:
    """The bars of one CSV file, in any layout `ktrdr data import` reads; the series' name is the caller's.

    Stricter than the import: every price cell of the file must hold a number (a missing or non-numeric one is
    refused, not filled or dropped), and the file has open, high and low in every row or in none (close-only).
    The file's rows come back as they are, every one of them: their order is the append's to check.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def bars_after(self, symbol: str, timeframe: str, after: datetime) -> pd.DataFrame:
        """Every bar of the file (see the class docstring); `symbol`, `timeframe` and `after` are not needed."""
        table, dates = read_csv_table(self.path)
        if "close" not in table.columns:
            raise DataError(f"{self.path.name}: no close column (found {', '.join(table.columns)})")
        present = [name for name in RANGE_COLUMNS if name in table.columns]
        if present and len(present) < len(RANGE_COLUMNS):
            missing = ", ".join(name for name in RANGE_COLUMNS if name not in present)
            raise DataError(f"{self.path.name}: has {', '.join(present)} but no {missing}: give all or none")
        columns = {name: self._numbers(table, name, dates) for name in (*present, "close")}
        volume = volume_column(table)
        if volume is not None:
            columns["volume"] = self._numbers(table, volume, dates)
        ordered = [name for name in (*PRICE_COLUMNS, "volume") if name in columns]
        return pd.DataFrame({name: columns[name] for name in ordered}, index=dates)

    def _numbers(self, table: pd.DataFrame, name: str, dates: pd.DatetimeIndex) -> np.ndarray:
        """The column as floats; a cell that is empty or not a finite number is refused, with the first one."""
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{self.path.name}: {int(bad.sum())} rows with a missing or non-numeric {name} "
                f"(first at {dates[first]}: {table[name].iloc[first]!r})"
            )
        return values
