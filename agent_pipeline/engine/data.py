"""Market data: the bundled sample series, the user's imported CSV files, and their validation.

Every series is stored as `<SYMBOL>_<timeframe>.csv.gz` (columns `date,open,high,low,close,volume`).
Bundled files live in `engine/datasets/`; the user's in the data folder (`Settings.data_dir`,
`.ktrdr/data` by default). A user file overrides a bundled one with the same symbol and timeframe.
Symbols are case-insensitive and stored upper case. The series of a bundled universe (`engine.bundled`,
e.g. `SP500_20.AAPL`) are read from their library on demand: `load_bars` and `available_pairs` know them,
`list_datasets` (the designer's catalogue) and `available_pairs` leave them to their universe.

Close-only series (issue 24): a series with closes and no open, high or low anywhere (a table of adjusted closes)
is stored as `date,close`, loads with NaN open, high, low and volume, and says so (`is_close_only`,
`DatasetInfo.close_only`). Nothing invents the missing prices: validation fills a missing open/high/low from
the close only in a series that has them elsewhere.

Accepted CSV layouts (`import_csv`):
- Generic, with a header: a date column named `date`, `datetime`, `time`, `timestamp`, `gmt time` or
  `local time` (or separate `date` + `time` columns), then `open`, `high`, `low`, `close` and an optional
  volume (`volume`, `tickvol`, `tick_volume`, `vol`, `real_volume`). Names are case-insensitive and may be
  wrapped in `<...>` as MetaTrader 5 writes them (`<DATE>\t<TIME>\t<OPEN>...`).
- Yahoo Finance exports (`Date,Open,High,Low,Close,Adj Close,Volume`): `Close` is used, `Adj Close`
  ignored; rows that are entirely `null` (Yahoo's holidays) are dropped with a warning.
- MetaTrader 4 History Center exports without a header: `date,time,open,high,low,close,volume`
  (e.g. `2017.01.02,00:00,1.05236,...`), or 6 / 5 columns (`date,open,high,low,close[,volume]`,
  or `date,time,open,high,low,close`).
Separators `,`, `;` and tab are detected from the first line. Dates may be ISO (`2017-01-02 10:00`),
MetaTrader (`2017.01.02`), day-first dotted (`02.01.2017 10:00:00.000`, Dukascopy) or Unix epoch
seconds / milliseconds. Time zones are converted to UTC and dropped (bars are tz-naive).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from agent_pipeline.engine.bundled import bundled_closes, bundled_symbols
from agent_pipeline.engine.files import atomic_write_with
from agent_pipeline.engine.strategy import TIMEFRAMES
from agent_pipeline.errors import DataError

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).parent / "datasets"
COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
# The prices a close-only series lacks.
RANGE_COLUMNS = ("open", "high", "low")
# Same pattern as Strategy.symbol: no path separators, so `<SYMBOL>_<tf>.csv.gz` never escapes the folder.
SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9_.^-]{1,32}$")
SUFFIX = ".csv.gz"
TIMEFRAME_STEPS = {
    "1m": pd.Timedelta(minutes=1),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
    "1w": pd.Timedelta(weeks=1),
}
# A gap is "unusual" when the weekday time it skips exceeds one bar step by more than this much:
# weekends never count, and one missing weekday (a holiday) is tolerated.
GAP_TOLERANCE = pd.Timedelta(days=1)
_DATE_NAMES = ("date", "datetime", "time", "timestamp", "gmt time", "local time")
_VOLUME_NAMES = ("volume", "tickvol", "tick_volume", "vol", "real_volume")
_MONDAY = np.datetime64("1970-01-05", "ns")  # a Monday: weeks are counted from here


@dataclass(frozen=True)
class ValidationReport:
    """What validation fixed or noticed (fatal problems raise DataError instead)."""

    warnings: tuple[str, ...] = ()
    gaps: int = 0


@dataclass(frozen=True)
class DatasetInfo:
    """One stored series."""

    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    bars: int
    source: str  # "bundled" or "user"
    path: Path
    warnings: tuple[str, ...] = ()
    close_only: bool = False  # closes only: no open, high, low or volume (issue 24)


# --------------------------------------------------------------------------- naming


def dataset_path(symbol: str, timeframe: str, folder: Path) -> Path:
    """The file of a series in `folder`, after checking that the name cannot escape it.

    Raises:
        DataError: the symbol or timeframe is malformed.
    """
    if not SYMBOL_PATTERN.match(symbol) or symbol in {".", ".."}:
        raise DataError(f"invalid symbol {symbol!r}: must match {SYMBOL_PATTERN.pattern}")
    if timeframe not in TIMEFRAMES:
        raise DataError(f"invalid timeframe {timeframe!r}: must be one of {', '.join(TIMEFRAMES)}")
    return Path(folder) / f"{symbol.upper()}_{timeframe}{SUFFIX}"


def _parse_name(path: Path) -> tuple[str, str] | None:
    stem = path.name.removesuffix(SUFFIX)
    symbol, _, timeframe = stem.rpartition("_")
    if timeframe in TIMEFRAMES and SYMBOL_PATTERN.match(symbol) and symbol == symbol.upper():
        return symbol, timeframe
    return None


def _files(folder: Path | None) -> dict[tuple[str, str], Path]:
    if folder is None or not Path(folder).is_dir():
        return {}
    found = {}
    for path in sorted(Path(folder).glob(f"*{SUFFIX}")):
        pair = _parse_name(path)
        if pair is not None:
            found[pair] = path
    return found


# --------------------------------------------------------------------------- reading CSV


def _sniff_separator(first_line: str) -> str:
    for separator in ("\t", ";"):
        if separator in first_line:
            return separator
    return ","


def _headerless_names(first_row: list[str]) -> list[str]:
    """Column names for a MetaTrader-style file without a header, from its first row."""
    width = len(first_row)
    has_time = width >= 2 and ":" in first_row[1]
    if width >= 7 or (width == 6 and has_time):
        names = ["date", "time", "open", "high", "low", "close", "volume"]
    elif width in (5, 6):
        names = ["date", "open", "high", "low", "close", "volume"]
    else:
        raise DataError(f"cannot read a headerless file with {width} columns (expected 5 to 7)")
    names = names[:width]
    return names + [f"extra{i}" for i in range(width - len(names))]


def _read_table(path: Path) -> pd.DataFrame:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    if not text.strip():
        raise DataError(f"{path.name}: the file is empty")
    separator = _sniff_separator(text.splitlines()[0])
    first_row = next(csv.reader(io.StringIO(text), delimiter=separator))
    headerless = bool(first_row) and bool(re.match(r"^\s*\d", first_row[0]))
    names = _headerless_names(first_row) if headerless else None
    frame = pd.read_csv(io.StringIO(text), sep=separator, header=None if headerless else 0, names=names)
    frame.columns = [str(c).strip().strip("<>").strip().lower() for c in frame.columns]
    return frame


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _date_text(frame: pd.DataFrame) -> pd.Series:
    if "date" in frame.columns and "time" in frame.columns:
        return frame["date"].astype(str).str.strip() + " " + frame["time"].astype(str).str.strip()
    column = _pick(frame, _DATE_NAMES)
    if column is None:
        looked, found = ", ".join(_DATE_NAMES), ", ".join(frame.columns)
        raise DataError(f"no date column (looked for {looked}; found {found})")
    return frame[column]


def parse_dates(values: pd.Series) -> pd.DatetimeIndex:
    """Parse a date column in any of the documented forms into a tz-naive (UTC) DatetimeIndex.

    Raises:
        DataError: the values are not dates.
    """
    try:
        if pd.api.types.is_numeric_dtype(values):
            unit = "ms" if values.abs().max() > 1e11 else "s"
            return pd.DatetimeIndex(pd.to_datetime(values, unit=unit))
        text = values.astype(str).str.strip()
        sample = text.iloc[0]
        if re.match(r"^\d{4}\.\d{1,2}\.\d{1,2}", sample):  # MetaTrader 2017.01.02
            text = text.str.replace(".", "-", n=2, regex=False)
        dayfirst = bool(re.match(r"^\d{1,2}\.\d{1,2}\.\d{4}", sample))
        parsed = pd.to_datetime(text, dayfirst=dayfirst, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"unreadable dates (first value {values.iloc[0]!r}): {first_line(exc)}") from None
    return pd.DatetimeIndex(parsed).tz_convert(None)


def first_line(exc: BaseException) -> str:
    """A library's error as one line: pandas appends multi-line advice that a one-line error must not carry."""
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(". ") if lines else type(exc).__name__


def _price_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        raise DataError(f"no {name} column (found {', '.join(frame.columns)})")
    return pd.to_numeric(frame[name], errors="coerce")


def read_ohlcv_csv(path: Path) -> pd.DataFrame:
    """Read any accepted CSV layout into raw OHLCV columns indexed by date (not yet validated).

    Raises:
        DataError: the file cannot be read or lacks a required column.
    """
    try:
        frame = _read_table(Path(path))
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"cannot read {Path(path).name}: {first_line(exc)}") from None
    if frame.empty:
        raise DataError(f"{Path(path).name}: no rows")
    index = parse_dates(_date_text(frame))
    columns = {name: _price_column(frame, name).to_numpy(dtype=float) for name in PRICE_COLUMNS}
    volume = _pick(frame, _VOLUME_NAMES)
    raw = pd.to_numeric(frame[volume], errors="coerce") if volume else pd.Series(0.0, index=frame.index)
    columns["volume"] = raw.to_numpy(dtype=float)
    return pd.DataFrame(columns, index=pd.DatetimeIndex(index, name="date"))


def read_csv_table(path: Path) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Any accepted CSV layout as its columns as read (lower-case names, rows in file order) and their dates.

    For readers stricter than `read_ohlcv_csv` (`ktrdr data append`, issue 27), which see each cell before any
    coercion.

    Raises:
        DataError: the file cannot be read, has no rows, or no readable date column.
    """
    try:
        frame = _read_table(Path(path))
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise DataError(f"cannot read {Path(path).name}: {first_line(exc)}") from None
    if frame.empty:
        raise DataError(f"{Path(path).name}: no rows")
    return frame, pd.DatetimeIndex(parse_dates(_date_text(frame)), name="date")


def volume_column(frame: pd.DataFrame) -> str | None:
    """The name of a table's volume column (`volume`, `tickvol`, ...), None when it has none."""
    return _pick(frame, _VOLUME_NAMES)


# --------------------------------------------------------------------------- validation


def _weekday_clock(index: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds of weekday time (Saturdays and Sundays removed) since a reference Monday."""
    since = (index.as_unit("ns").to_numpy() - _MONDAY).astype(np.int64)
    week, within = np.divmod(since, pd.Timedelta(weeks=1).value)
    workweek = pd.Timedelta(days=5).value
    return week * workweek + np.minimum(within, workweek)


def weekday_gaps(index: pd.DatetimeIndex) -> pd.TimedeltaIndex:
    """The weekday time between consecutive bars (Saturdays and Sundays never count), as `count_gaps` measures it."""
    return pd.to_timedelta(np.diff(_weekday_clock(index)), unit="ns")


def count_gaps(index: pd.DatetimeIndex, timeframe: str) -> tuple[int, pd.Timedelta]:
    """Count unusual gaps in a sorted index and return (count, largest calendar gap among them).

    A gap is unusual when the weekday time between two bars exceeds one bar step plus GAP_TOLERANCE:
    weekends (FX closes, exchange weekends) never count and a one-day holiday is tolerated.
    """
    if len(index) < 2:
        return 0, pd.Timedelta(0)
    weekday_gaps = np.diff(_weekday_clock(index))
    limit = (TIMEFRAME_STEPS[timeframe] + GAP_TOLERANCE).value
    unusual = weekday_gaps > limit
    if not unusual.any():
        return 0, pd.Timedelta(0)
    calendar = np.diff(index.as_unit("ns").to_numpy()).astype(np.int64)
    return int(unusual.sum()), pd.Timedelta(int(calendar[unusual].max()))


def _check_fatal(frame: pd.DataFrame, timeframe: str) -> None:
    problems = []
    if frame.empty:
        raise DataError("no rows")
    no_date = int(frame.index.isna().sum())
    if no_date:
        problems.append(f"{no_date} rows without a date")
    nan_close = int(frame["close"].isna().sum())
    if nan_close:
        problems.append(f"{nan_close} rows with NaN close")
    crossed = int((frame["high"] < frame["low"]).sum())
    if crossed:
        problems.append(f"{crossed} rows with high < low")
    non_positive = int((frame[list(PRICE_COLUMNS)] <= 0).any(axis=1).sum())
    if non_positive:
        problems.append(f"{non_positive} rows with non-positive prices")
    if problems:
        raise DataError("invalid data: " + ", ".join(problems))
    _check_spacing(frame.index, timeframe)


def _check_spacing(index: pd.DatetimeIndex, timeframe: str) -> None:
    """Refuse data whose usual spacing (the most common one, the shortest on ties) is not the timeframe."""
    if len(index) < 2:
        return
    spacing = pd.Series(np.diff(index.as_unit("ns").to_numpy()).astype(np.int64)).mode().min()
    if pd.Timedelta(int(spacing)) != TIMEFRAME_STEPS[timeframe]:
        raise DataError(f"bars are {pd.Timedelta(int(spacing))} apart (usually) but the timeframe is {timeframe}")


def _fix_order(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    if not frame.index.is_monotonic_increasing:
        warnings.append("rows were not in date order: sorted")
        frame = frame.sort_index(kind="stable")
    duplicated = int(frame.index.duplicated(keep="last").sum())
    if duplicated:
        warnings.append(f"{duplicated} duplicate timestamps: kept the last row of each")
        frame = frame[~frame.index.duplicated(keep="last")]
    return frame


def is_close_only(bars: pd.DataFrame) -> bool:
    """True when the bars have closes and no open, high or low at all (a missing column counts as empty)."""
    return len(bars) > 0 and all(column not in bars or bars[column].isna().all() for column in RANGE_COLUMNS)


def close_bars(closes: pd.Series) -> pd.DataFrame:
    """A close-only series (not yet validated) from closes on a date index; missing closes are no bars."""
    closes = pd.to_numeric(closes, errors="coerce").dropna()
    return pd.DataFrame({"close": closes.to_numpy(dtype=float)}, index=pd.DatetimeIndex(closes.index, name="date"))


def _fix_values(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    empty = frame[list(PRICE_COLUMNS)].isna().all(axis=1)
    if empty.any():
        warnings.append(f"{int(empty.sum())} rows without prices: dropped")
        frame = frame[~empty]
    frame = frame.copy()
    if is_close_only(frame):
        return frame  # nothing to fill from: its open, high, low and volume stay unknown (NaN)
    missing = int(frame[["open", "high", "low"]].isna().any(axis=1).sum())
    if missing:
        warnings.append(f"{missing} rows with NaN open/high/low: filled from close")
        for column in ("open", "high", "low"):
            frame[column] = frame[column].fillna(frame["close"])
    if frame["volume"].isna().any():
        warnings.append(f"{int(frame['volume'].isna().sum())} rows with NaN volume: set to 0")
        frame["volume"] = frame["volume"].fillna(0.0)
    return frame


def _fix_range(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    body_high = frame[["open", "close"]].max(axis=1)
    body_low = frame[["open", "close"]].min(axis=1)
    outside = int(((frame["high"] < body_high) | (frame["low"] > body_low)).sum())
    if outside:
        warnings.append(f"{outside} rows with open/close outside high-low: widened high/low")
        frame["high"] = np.maximum(frame["high"], body_high)
        frame["low"] = np.minimum(frame["low"], body_low)
    return frame


def validate_bars(frame: pd.DataFrame, timeframe: str) -> tuple[pd.DataFrame, ValidationReport]:
    """Check and repair raw OHLCV rows.

    Fixable problems are repaired and reported: unsorted rows (sorted), duplicate timestamps (last kept),
    rows with no prices (dropped), NaN open/high/low (filled from close), NaN volume (0), open/close
    outside high-low (range widened), unusual gaps (only reported; see `count_gaps`). A missing column is
    empty; a close-only series (`is_close_only`) keeps its open, high, low and volume NaN.

    Raises:
        DataError: no rows, NaN closes, high < low, non-positive prices, or a bar spacing that does not
            match the timeframe; the message gives the counts.
    """
    warnings: list[str] = []
    frame = _fix_values(_fix_order(frame.reindex(columns=list(COLUMNS)).astype(float), warnings), warnings)
    _check_fatal(frame, timeframe)
    frame = _fix_range(frame, warnings)
    gaps, largest = count_gaps(frame.index, timeframe)
    if gaps:
        warnings.append(f"{gaps} unusual gaps in the data (largest {largest})")
    return frame, ValidationReport(warnings=tuple(warnings), gaps=gaps)


# --------------------------------------------------------------------------- storage


def _write_atomically(frame: pd.DataFrame, target: Path) -> None:
    stored = frame[["close"]] if is_close_only(frame) else frame  # close-only: `date,close`, nothing invented
    text = stored.to_csv(float_format="%.10g", date_format="%Y-%m-%d %H:%M:%S", index_label="date")

    def compress(raw: BinaryIO) -> None:
        # filename="": no name in the gzip header (the temp's would be); mtime=0: the same bytes each time.
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as handle:
            handle.write(text.encode())

    atomic_write_with(target, compress)  # readers see the old file or the new one, never half of one


@lru_cache(maxsize=32)
def _read_stored(path: str, version: tuple[int, int, int], timeframe: str) -> tuple[pd.DataFrame, ValidationReport]:
    """Parse and validate a stored file once per version (inode, mtime, size); callers must copy the frame."""
    frame = pd.read_csv(path, index_col="date", parse_dates=["date"])
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    return validate_bars(frame, timeframe)


def _load_file(path: Path, timeframe: str) -> tuple[pd.DataFrame, ValidationReport]:
    stat = path.stat()
    try:
        # The atomic write (a rename) gives a re-imported file a new inode, so a stale cache entry is never reused.
        return _read_stored(str(path), (stat.st_ino, stat.st_mtime_ns, stat.st_size), timeframe)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from None


def _info(pair: tuple[str, str], path: Path, source: str, warnings: tuple[str, ...] | None = None) -> DatasetInfo:
    frame, report = _load_file(path, pair[1])
    start, end = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
    found = report.warnings if warnings is None else warnings
    return DatasetInfo(pair[0], pair[1], start, end, len(frame), source, path, found, is_close_only(frame))


def import_csv(path: Path, *, symbol: str, timeframe: str, data_dir: Path) -> DatasetInfo:
    """Validate a CSV file and store it in the data folder as `<SYMBOL>_<timeframe>.csv.gz`.

    Args:
        path: a CSV (optionally gzip) in one of the layouts in this module's docstring.
        symbol: e.g. `EURUSD` (stored upper case).
        timeframe: one of strategy.TIMEFRAMES.
        data_dir: the user's data folder (created if missing).

    Returns:
        The stored series, with the validation warnings.

    Raises:
        DataError: unreadable file, bad symbol/timeframe, or fatal validation problems.
    """
    target = dataset_path(symbol, timeframe, data_dir)
    frame, report = validate_bars(read_ohlcv_csv(Path(path)), timeframe)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(frame, target)
    for warning in report.warnings:
        log.warning("import %s %s: %s", symbol.upper(), timeframe, warning)
    # The stored file is already repaired: report what the import itself fixed.
    return _info((symbol.upper(), timeframe), target, "user", report.warnings)


def store_bars(frame: pd.DataFrame, *, symbol: str, timeframe: str, data_dir: Path) -> DatasetInfo:
    """Validate bars already in memory (e.g. generated ones) and store them as `import_csv` does.

    Raises:
        DataError: bad symbol/timeframe, or fatal validation problems.
    """
    target = dataset_path(symbol, timeframe, data_dir)
    clean, report = validate_bars(frame, timeframe)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(clean, target)
    return _info((symbol.upper(), timeframe), target, "user", report.warnings)


def _sources(data_dir: Path | None) -> dict[tuple[str, str], tuple[Path, str]]:
    sources = {pair: (path, "bundled") for pair, path in _files(BUNDLED_DIR).items()}
    sources.update({pair: (path, "user") for pair, path in _files(data_dir).items()})
    return sources


def list_datasets(data_dir: Path | None = None) -> list[DatasetInfo]:
    """Every usable series, bundled and the user's (the user's override a bundled one), by symbol.

    A user file that fails to load is skipped with a logged warning, so one bad file hides nothing else.
    """
    infos = []
    for pair, (path, source) in sorted(_sources(data_dir).items()):
        try:
            infos.append(_info(pair, path, source))
        except DataError as exc:
            log.warning("skipping %s: %s", path, exc)
    return infos


def available_pairs(data_dir: Path | None = None) -> set[tuple[str, str]]:
    """The (symbol, timeframe) pairs that have data, for `parse_strategy(available=...)`.

    A bundled universe's series are left to their universe (a strategy names `universe:`, the next step of issue
    24), so a single-series strategy, and its error listing what is available, sees the files only.
    """
    return set(_sources(data_dir))


def close_only_pairs(data_dir: Path | None = None) -> set[tuple[str, str]]:
    """The pairs of `available_pairs` whose series are close-only, for `parse_strategy(close_only=...)`."""
    return {pair for pair in available_pairs(data_dir) if is_close_only(_load_pair(pair, data_dir))}


@lru_cache(maxsize=64)
def _bundled_bars(universe: str, column: str, timeframe: str) -> pd.DataFrame:
    """A bundled universe's series, validated once per process; callers must copy the frame."""
    frame, _ = validate_bars(close_bars(bundled_closes(universe)[column]), timeframe)
    return frame


def _load_pair(pair: tuple[str, str], data_dir: Path | None) -> pd.DataFrame:
    """The cached bars of a pair that has data (a file, or a bundled universe's column); do not modify them."""
    sources = _sources(data_dir)
    if pair in sources:
        return _load_file(sources[pair][0], pair[1])[0]
    return _bundled_bars(*bundled_symbols()[pair], pair[1])


def load_bars(symbol: str, timeframe: str, data_dir: Path | None = None) -> pd.DataFrame:
    """The validated bars of a series: a sorted, unique, tz-naive DatetimeIndex and float64 OHLCV columns.

    Returns a fresh copy each call (parsed files are cached in-process), so callers may modify it.

    Raises:
        DataError: the pair has no data (the message lists what is available) or the file is invalid.
    """
    sources = _sources(data_dir)
    key = (symbol.upper(), timeframe)
    if key not in sources and key not in bundled_symbols():
        offered = ", ".join(f"{s} {t}" for s, t in sorted(sources)) or "none"
        raise DataError(f"no data for {symbol} {timeframe} (available: {offered}, and the bundled universes' series)")
    return _load_pair(key, data_dir).copy()


def random_walk_bars(bars: int, *, seed: int, start: str = "1999-01-04") -> pd.DataFrame:
    """A driftless geometric random walk of business-day OHLCV bars (1% a day): no strategy has an edge on it.

    The control series of the research benchmark and of the tests that expect no discovery; columns
    `timestamp, open, high, low, close, volume`, as `ktrdr data import` reads them.
    """
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
    open_ = np.concatenate(([100.0], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.004, bars)) * close
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range(start, periods=bars).strftime("%Y-%m-%d"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(1_000, 10_000, bars),
        }
    )
