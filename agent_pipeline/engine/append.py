"""Appending bars after a series' end (issue 27): forward bars, checked whole before anything is written.

`append_bars` asks a `BarSource` for the bars after a stored series' last bar and adds them, or refuses with one
line and writes nothing. It refuses:

- a series that does not exist (`data.load_bars` knows none);
- bars out of order, or a timestamp twice, in what the source gives;
- a missing or non-numeric price (the file source refuses it as it reads);
- a bar at or before the series' end that disagrees with the stored bar, or that the series does not have (an
  append never edits or inserts history). A bar that agrees, every column the source gives equal to the stored
  one at the ten significant digits a series is stored with, is skipped: the same file appended twice adds nothing;
- a gap over `max_gap`: the weekday time (Saturdays and Sundays never count, as `data.count_gaps` measures) from
  the series' last bar to the first new one, or between two new ones. The default (`default_max_gap`) is
  10 bar lengths for daily and weekly bars (two trading weeks of daily bars) and 3 days for intraday ones (an
  exchange's nights and a holiday pass, a lost week does not);
- bars less than half a bar length apart, or close-only bars for an OHLC series (a close-only series takes the
  closes of OHLC bars, as its import did);
- anything `data.validate_bars` finds fatal (high < low, a non-positive price, a spacing not the timeframe's).

The series is written as `ktrdr data import` writes it (`data.store_bars`: the one atomic write), to the data
folder, so a bundled series gets its copy there with the new bars. Each append that adds bars records its range
in `<SYMBOL>_<tf>.appended.json` beside the series ({start, end, bars, at}), so later work can tell the forward bars
from the research bars; the record is written first and put back if the series cannot be, so a crash between the
two leaves a range recorded whose bars are missing (harmless, and an append of the same bars completes it), never
forward bars unrecorded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent_pipeline.engine.bars_source import BarSource
from agent_pipeline.engine.data import (
    SUFFIX,
    TIMEFRAME_STEPS,
    available_pairs,
    dataset_path,
    is_close_only,
    load_bars,
    store_bars,
    validate_bars,
    weekday_gaps,
)
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.errors import DataError

APPENDED_SUFFIX = ".appended.json"
# Default largest gap, in bar lengths, for daily and weekly bars.
MAX_GAP_BARS = 10
# Default largest gap for intraday bars: nights and a holiday pass, a lost week does not.
MAX_GAP_INTRADAY = pd.Timedelta(days=3)
# New bars from which their own usual spacing must be the timeframe's, as an import's must (fewer may span a weekend).
SPACING_BARS = 5
# Significant digits a stored series keeps (`data.store_bars` writes `%.10g`): an overlapping bar is compared at them.
STORED_DIGITS = 10


@dataclass(frozen=True)
class AppendedRange:
    """One append that added bars: its first and last bar, how many, and when (UTC, ISO 8601)."""

    start: str
    end: str
    bars: int
    at: str


@dataclass(frozen=True)
class AppendResult:
    """What an append did: `appended` new bars from `start` to `end` (None when none), `skipped` agreeing ones."""

    symbol: str
    timeframe: str
    path: Path
    record: Path
    appended: int
    skipped: int
    start: str | None
    end: str | None
    bars: int  # the series' bars now
    warnings: tuple[str, ...] = ()


def default_max_gap(timeframe: str) -> pd.Timedelta:
    """MAX_GAP_BARS bar lengths for 1d and 1w, MAX_GAP_INTRADAY for shorter bars."""
    step = TIMEFRAME_STEPS[timeframe]
    return step * MAX_GAP_BARS if step >= pd.Timedelta(days=1) else MAX_GAP_INTRADAY


def appended_path(data_file: Path) -> Path:
    """The record of a series' appended ranges: `<SYMBOL>_<tf>.appended.json` beside `<SYMBOL>_<tf>.csv.gz`."""
    return data_file.with_name(data_file.name.removesuffix(SUFFIX) + APPENDED_SUFFIX)


def read_appended(data_file: Path) -> list[AppendedRange]:
    """The ranges appended to a series, oldest first; empty when none was.

    Raises:
        DataError: the record exists but cannot be read.
    """
    path = appended_path(Path(data_file))
    if not path.is_file():
        return []
    try:
        return parse_appended(path.read_bytes(), path.name)
    except OSError as exc:
        raise DataError(f"cannot read {path.name}: {exc}") from None


def parse_appended(document: bytes, name: str) -> list[AppendedRange]:
    """The ranges of a record's text (`name` for the message).

    Raises:
        DataError: the text is no record.
    """
    try:
        return [AppendedRange(**item) for item in json.loads(document)["ranges"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read {name}: {exc}") from None


def merge_appended(data_file: Path, document: bytes) -> None:
    """Add the ranges of another copy of the series' record (the data store's) to its own: each range once, by start.

    Raises:
        DataError: either record cannot be read.
    """
    record = appended_path(Path(data_file))
    theirs = parse_appended(document, record.name)
    mine = read_appended(data_file)
    ranges = {(item.start, item.end): item for item in [*theirs, *mine]}
    merged = sorted(ranges.values(), key=lambda item: pd.Timestamp(item.start))
    if merged != mine:
        _write_record(record, merged)


def clear_appended(data_file: Path) -> Path:
    """Empty the series' record of appended ranges (the series was replaced: it has none); returns the record.

    An empty record, not none: a host that fetched the old one from the data store fetches this one in its place.
    """
    record = appended_path(Path(data_file))
    _write_record(record, [])
    return record


def _write_record(record: Path, ranges: list[AppendedRange]) -> None:
    """Write `<SYMBOL>_<tf>.appended.json` atomically, with its symbol and timeframe taken from its name."""
    symbol, _, timeframe = record.name.removesuffix(APPENDED_SUFFIX).rpartition("_")
    document = {"symbol": symbol, "timeframe": timeframe, "ranges": [asdict(item) for item in ranges]}
    atomic_write(record, json.dumps(document, indent=2))


def forward_start(data_file: Path) -> pd.Timestamp | None:
    """The first appended bar of a series: the bars before it are the ones it had before any append."""
    ranges = read_appended(data_file)
    return min(pd.Timestamp(item.start) for item in ranges) if ranges else None


def append_bars(
    source: BarSource,
    *,
    symbol: str,
    timeframe: str,
    data_dir: Path,
    max_gap: pd.Timedelta | None = None,
    now: dt.datetime | None = None,
    before_write: Callable[[], None] | None = None,
) -> AppendResult:
    """Append the source's bars after the series' end to the series in `data_dir` (module docstring).

    Args:
        before_write: called once every check has passed, just before anything is written (`ktrdr data append`
            fixes the series' research end there); what it raises stops the append, nothing written.

    Raises:
        DataError: one line saying why; nothing is written then.
    """
    symbol = symbol.upper()
    target = dataset_path(symbol, timeframe, data_dir)
    stored = existing_bars(symbol, timeframe, data_dir)
    end = stored.index[-1]
    given = source.bars_after(symbol, timeframe, end.to_pydatetime())
    check_order(given)
    if len(given) and is_close_only(stored):
        given = given[["close"]]  # a close-only series keeps nothing else
    check_kind(given, stored, symbol, timeframe)
    skipped = check_overlap(given[given.index <= end], stored)
    new = given[given.index > end]
    if new.empty:
        return AppendResult(symbol, timeframe, target, appended_path(target), 0, skipped, None, None, len(stored))
    check_gaps(end, new.index, timeframe, max_gap if max_gap is not None else default_max_gap(timeframe))
    whole, warnings = joined(stored, new, timeframe)
    if before_write is not None:
        before_write()
    appended = AppendedRange(str(new.index[0]), str(new.index[-1]), len(new), _utc(now))
    record = write_appended(target, whole, timeframe, appended)
    return AppendResult(
        symbol, timeframe, target, record, len(new), skipped, appended.start, appended.end, len(whole), warnings
    )


def existing_bars(symbol: str, timeframe: str, data_dir: Path) -> pd.DataFrame:
    """The stored bars of a series file (the user's or a bundled one); a bundled universe's are its universe's."""
    if (symbol, timeframe) not in available_pairs(data_dir):
        raise DataError(f"no series {symbol} {timeframe} to append to (`ktrdr data import` or `data synth` makes one)")
    return load_bars(symbol, timeframe, data_dir)


def check_order(given: pd.DataFrame) -> None:
    """Refuse bars out of order or a timestamp twice (sorting or dropping them would hide a broken source)."""
    dates = given.index
    repeated = dates[dates.duplicated()]
    if len(repeated):
        raise DataError(f"{len(repeated)} timestamps given twice, first {repeated[0]}; nothing appended")
    steps = np.flatnonzero(np.diff(dates.as_unit("ns").to_numpy()).astype(np.int64) < 0)
    if len(steps):
        first = int(steps[0])
        raise DataError(f"bars out of order: {dates[first + 1]} comes after {dates[first]}; nothing appended")


def check_kind(given: pd.DataFrame, stored: pd.DataFrame, symbol: str, timeframe: str) -> None:
    """Refuse close-only bars for an OHLC series: nothing invents their open, high and low."""
    if len(given) and is_close_only(given) and not is_close_only(stored):
        raise DataError(f"the bars are close-only but {symbol} {timeframe} has open, high and low: nothing appended")


def check_overlap(overlap: pd.DataFrame, stored: pd.DataFrame) -> int:
    """The number of bars at or before the series' end, all agreeing with stored bars; refuse any that does not."""
    if overlap.empty:
        return 0
    unknown = overlap.index.difference(stored.index)
    if len(unknown):
        raise DataError(
            f"{len(unknown)} bars at or before the series' end ({stored.index[-1]}) are not stored bars, first "
            f"{unknown[0]}: an append adds bars after the end only; nothing appended"
        )
    mine = stored.loc[overlap.index, list(overlap.columns)]
    differs = ~(_stored_digits(overlap) == _stored_digits(mine)) & ~(overlap.isna() & mine.isna())
    rows = differs.any(axis=1)
    if rows.any():
        date = overlap.index[rows.to_numpy()][0]
        column = next(name for name in overlap.columns if differs.at[date, name])
        raise DataError(
            f"{int(rows.sum())} bars disagree with the stored ones, first {date}: {column} "
            f"{float(overlap.at[date, column]):.10g} != {float(mine.at[date, column]):.10g} (stored); nothing appended"
        )
    return len(overlap)


def _stored_digits(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as a stored series keeps them: rounded to STORED_DIGITS significant digits."""
    return frame.map(lambda value: float(f"{value:.{STORED_DIGITS}g}"))


def check_gaps(end: pd.Timestamp, dates: pd.DatetimeIndex, timeframe: str, max_gap: pd.Timedelta) -> None:
    """Refuse a gap over `max_gap` (weekday time) or bars under half a bar length apart, from the series' end on."""
    chain = pd.DatetimeIndex([end]).append(dates)
    gaps = weekday_gaps(chain)
    calendar = np.diff(chain.as_unit("ns").to_numpy()).astype(np.int64)
    close = np.flatnonzero(calendar < (TIMEFRAME_STEPS[timeframe] / 2).value)
    if len(close):
        first = int(close[0])
        raise DataError(
            f"bars closer than a {timeframe} bar: {chain[first + 1]} after {chain[first]}; nothing appended"
        )
    wide = np.flatnonzero(gaps > max_gap)
    if len(wide):
        first = int(wide[0])
        raise DataError(
            f"a gap of {gaps[first]} (weekdays) from {chain[first]} to {chain[first + 1]} is over the limit of "
            f"{max_gap} (--max-gap); nothing appended"
        )


def joined(stored: pd.DataFrame, new: pd.DataFrame, timeframe: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The series with the new bars, validated as an import is; the warnings are those the stored bars lacked.

    SPACING_BARS new bars or more must also be spaced as the timeframe on their own (a weekly file is not daily
    bars however few of them the series gains); fewer are held by `check_gaps`.
    """
    if len(new) >= SPACING_BARS:
        validate_bars(new, timeframe)
    whole, report = validate_bars(pd.concat([stored, new.reindex(columns=stored.columns)]), timeframe)
    _, before = validate_bars(stored, timeframe)
    return whole, tuple(warning for warning in report.warnings if warning not in before.warnings)


def write_appended(target: Path, whole: pd.DataFrame, timeframe: str, appended: AppendedRange) -> Path:
    """Record the range, then store the series; the record is put back if the series cannot be stored."""
    record = appended_path(target)
    before = record.read_bytes() if record.is_file() else None
    # The same range again (an append that crashed before its series was stored, run again) is recorded once.
    ranges = [item for item in read_appended(target) if (item.start, item.end) != (appended.start, appended.end)]
    symbol = target.name.removesuffix(f"_{timeframe}{SUFFIX}")
    _write_record(record, [*ranges, appended])
    try:
        store_bars(whole, symbol=symbol, timeframe=timeframe, data_dir=target.parent)
    except BaseException:
        if before is None:
            record.unlink(missing_ok=True)
        else:
            atomic_write(record, before)
        raise
    return record


def _utc(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
