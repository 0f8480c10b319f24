"""Universes (issue 24): named groups of series on one timeframe, researched together.

A universe is either imported from a wide CSV (`import_universe`: a date column, then one column of closes per
symbol), whose columns become series that belong to it, stored as `<NAME>.<COLUMN>` (so two universes may both
have a column `S00`), or made of series that exist already (`create_universe`). Imported closes are close-only
series (`engine.data`): nothing invents their open, high, low or volume.

The registry is `universes.json` in the data folder, written through the one atomic write; the bundled universes
(`engine.bundled`, `SP500_20`) are not in it and cannot be replaced. Bad input is one `DataError` line, raised
before anything is written: a ragged file, a duplicate or malformed name, a non-numeric price, a symbol with no
bars in the common range, a name that exists (unless `replace`).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from agent_pipeline.engine.bundled import BUNDLED_UNIVERSES, bundled_columns
from agent_pipeline.engine.data import (
    SYMBOL_PATTERN,
    close_bars,
    dataset_path,
    first_line,
    is_close_only,
    load_bars,
    parse_dates,
    store_bars,
    validate_bars,
)
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.errors import DataError

log = logging.getLogger(__name__)

# The registry of the user's universes, in the data folder beside the series.
REGISTRY = "universes.json"
# A universe's name: no dot (it separates the universe from its column in `<NAME>.<COLUMN>`), stored upper case.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
# Cells a wide CSV may leave empty for "no bar on this date" (lower case); anything else must be a number.
MISSING = frozenset({"", "nan", "null", "na", "n/a", "#n/a", "none"})


@dataclass(frozen=True)
class Universe:
    """One universe as the registry records it."""

    name: str
    timeframe: str
    symbols: tuple[str, ...]
    owned: bool = False  # its series were imported with it (`NAME.S00`): replacing the universe removes them
    source: str = "user"  # "user" (the registry) or "bundled" (engine.bundled)


@dataclass(frozen=True)
class UniverseInfo:
    """A universe with what its series hold together: the dates every symbol has, and whether it is close-only."""

    name: str
    timeframe: str
    symbols: tuple[str, ...]
    source: str
    common_start: datetime | None
    common_end: datetime | None
    common_bars: int
    close_only: bool  # at least one symbol has closes only: only close-based indicators apply


# --------------------------------------------------------------------------- the wide CSV


def read_closes_csv(path: Path) -> pd.DataFrame:
    """Read a wide CSV into closes on a date index, one column per symbol (upper case); NaN where no bar.

    Raises:
        DataError: unreadable, ragged, a duplicate or malformed name, a bad date or a non-numeric price.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
        first = text.splitlines()[0] if text.strip() else ""
        separator = next((s for s in ("\t", ";") if s in first), ",")
        reader = csv.reader(io.StringIO(text), delimiter=separator)
        # each row with the line it ends on, for messages that point at a line; blank lines skipped
        rows = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path.name}: {first_line(exc)}") from None
    if len(rows) < 2:
        raise DataError(f"{path.name}: needs a header and at least one row of closes")
    header = rows[0][1]
    names = _column_names(header)
    _check_ragged(rows[1:], len(header))
    table = pd.DataFrame([row for _, row in rows[1:]], columns=["date", *names])
    closes = _numbers(table[names], [n for n, _ in rows[1:]])
    closes.index = pd.DatetimeIndex(parse_dates(table["date"]), name="date")
    return closes


def _column_names(header: list[str]) -> list[str]:
    if len(header) < 2:
        raise DataError("a universe file needs a date column, then one column of closes per symbol")
    names = [name.strip().upper() for name in header[1:]]
    for position, name in enumerate(names, start=2):
        if not name or not SYMBOL_PATTERN.match(name) or name in {".", ".."}:
            raise DataError(f"column {position}: symbol {name!r} must match {SYMBOL_PATTERN.pattern}")
        if names.index(name) + 2 != position:
            raise DataError(f"duplicate symbol {name!r} in the header (columns {names.index(name) + 2} and {position})")
    return names


def _check_ragged(rows: list[tuple[int, list[str]]], width: int) -> None:
    ragged = [(line, len(row)) for line, row in rows if len(row) != width]
    if ragged:
        line, fields = ragged[0]
        more = f" ({len(ragged)} such lines)" if len(ragged) > 1 else ""
        raise DataError(f"ragged file: line {line} has {fields} fields, the header has {width}{more}")


def _numbers(cells: pd.DataFrame, lines: list[int]) -> pd.DataFrame:
    text = cells.apply(lambda column: column.str.strip())
    numbers = text.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna() & ~text.apply(lambda column: column.str.lower().isin(MISSING))
    if bad.to_numpy().any():
        row, col = (int(i[0]) for i in bad.to_numpy().nonzero())
        column = cells.columns[col]
        raise DataError(f"non-numeric price {text.iat[row, col]!r} for {column} on line {lines[row]}")
    return numbers.astype(float)


# --------------------------------------------------------------------------- checks


def check_name(name: str) -> str:
    """The universe's name, upper case.

    Raises:
        DataError: the name is malformed.
    """
    if not NAME_PATTERN.match(name):
        raise DataError(f"invalid universe name {name!r}: must match {NAME_PATTERN.pattern}")
    return name.upper()


def check_common(closes: pd.DataFrame) -> pd.DatetimeIndex:
    """The dates on which every column has a close.

    Raises:
        DataError: a symbol has no bars in the common range of the others (named), or nothing is common.
    """
    present = closes.notna()
    common = closes.index[present.all(axis=1).to_numpy()]
    if len(common):
        return pd.DatetimeIndex(common)
    for column in closes.columns:
        others = present.drop(columns=column).all(axis=1).to_numpy()
        if others.any():
            span = closes.index[others]
            dates = f"{span[0]:%Y-%m-%d} to {span[-1]:%Y-%m-%d}"
            raise DataError(f"{column} has no bars in the common range of the other symbols ({dates})")
    raise DataError("the symbols have no date in common")


def universe_bars(name: str, closes: pd.DataFrame, timeframe: str) -> dict[str, pd.DataFrame]:
    """Each column as a validated close-only series named `<name>.<column>`.

    Raises:
        DataError: a symbol has no bars in the common range, or fails validation (the message names it).
    """
    check_common(closes)
    found = {}
    for column in closes.columns:
        symbol = f"{name}.{column}"
        dataset_path(symbol, timeframe, Path("."))  # a name too long, or a bad timeframe, before anything is written
        try:
            found[symbol], report = validate_bars(close_bars(closes[column]), timeframe)
        except DataError as exc:
            raise DataError(f"{symbol}: {exc}") from None
        for warning in report.warnings:
            log.warning("import %s %s: %s", symbol, timeframe, warning)
    return found


# --------------------------------------------------------------------------- the registry


def read_registry(data_dir: Path) -> dict[str, Universe]:
    """The user's universes by name.

    Raises:
        DataError: the registry is unreadable.
    """
    path = Path(data_dir) / REGISTRY
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {name: Universe(name, e["timeframe"], tuple(e["symbols"]), e["owned"]) for name, e in entries.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from None


def _write_registry(data_dir: Path, universes: dict[str, Universe]) -> None:
    entries = {}
    for name, universe in sorted(universes.items()):
        record = asdict(universe)
        del record["name"], record["source"]
        entries[name] = record
    atomic_write(Path(data_dir) / REGISTRY, json.dumps(entries, indent=1) + "\n")


def _check_free(name: str, registry: dict[str, Universe], replace: bool) -> None:
    if name in BUNDLED_UNIVERSES:
        raise DataError(f"{name} is a bundled universe and cannot be replaced: choose another name")
    if name in registry and not replace:
        old = registry[name]
        raise DataError(f"universe {name} exists already ({old.timeframe}, {len(old.symbols)} symbols): pass --replace")


def _retire(old: Universe | None, new: Universe, data_dir: Path) -> None:
    """Remove the series an imported universe owned that its replacement does not keep (same name and timeframe)."""
    if old is None or not old.owned:
        return
    keep = set(new.symbols) if new.timeframe == old.timeframe else set()
    for symbol in sorted(set(old.symbols) - keep):
        dataset_path(symbol, old.timeframe, data_dir).unlink(missing_ok=True)


# --------------------------------------------------------------------------- import, create, list


def import_universe(path: Path, *, name: str, timeframe: str, data_dir: Path, replace: bool = False) -> UniverseInfo:
    """Store each column of a wide CSV as a close-only series `<NAME>.<COLUMN>` and record the universe.

    Every check runs before the first write, so bad input writes nothing.

    Raises:
        DataError: bad input (see the module docstring), or a name that exists and `replace` is False.
    """
    name = check_name(name)
    registry = read_registry(data_dir)
    _check_free(name, registry, replace)
    series = universe_bars(name, read_closes_csv(path), timeframe)
    for symbol, frame in series.items():
        store_bars(frame, symbol=symbol, timeframe=timeframe, data_dir=data_dir)
    new = Universe(name, timeframe, tuple(series), owned=True)
    _retire(registry.get(name), new, data_dir)
    registry[name] = new
    _write_registry(data_dir, registry)
    return describe(registry[name], data_dir)


def create_universe(
    name: str, *, timeframe: str, symbols: list[str], data_dir: Path, replace: bool = False
) -> UniverseInfo:
    """Record a universe of series that exist already (the user's, bundled, or another universe's).

    Raises:
        DataError: a malformed or taken name, no symbols, a duplicate, a series without data on that timeframe,
            or a symbol with no bars in the common range.
    """
    name = check_name(name)
    registry = read_registry(data_dir)
    _check_free(name, registry, replace)
    wanted = tuple(symbol.strip().upper() for symbol in symbols if symbol.strip())
    if not wanted:
        raise DataError("a universe needs at least one symbol")
    duplicates = sorted({symbol for symbol in wanted if wanted.count(symbol) > 1})
    if duplicates:
        raise DataError(f"duplicate symbol {duplicates[0]!r} in --symbols")
    check_common(pd.DataFrame({symbol: load_bars(symbol, timeframe, data_dir)["close"] for symbol in wanted}))
    new = Universe(name, timeframe, wanted)
    _retire(registry.get(name), new, data_dir)
    registry[name] = new
    _write_registry(data_dir, registry)
    return describe(registry[name], data_dir)


def claim_name(name: str, *, data_dir: Path, replace: bool = False) -> str:
    """The universe's name, upper case, once it is known to be free (or `replace` allows taking it).

    For makers of owned universes besides `import_universe` (`engine.synth_universe`): claim, store the series
    as `<NAME>.<COLUMN>`, then `register_owned`.

    Raises:
        DataError: a malformed name, a bundled one, or one that exists and `replace` is False.
    """
    name = check_name(name)
    _check_free(name, read_registry(data_dir), replace)
    return name


def register_owned(name: str, *, timeframe: str, symbols: list[str], data_dir: Path) -> UniverseInfo:
    """Record a universe whose series were just stored under its name, as `import_universe` does.

    The universe owns them: the old universe of that name loses the series the new one does not keep.

    Raises:
        DataError: the registry is unreadable, or a series is missing.
    """
    registry = read_registry(data_dir)
    new = Universe(name, timeframe, tuple(symbols), owned=True)
    _retire(registry.get(name), new, data_dir)
    registry[name] = new
    _write_registry(data_dir, registry)
    return describe(new, data_dir)


def describe(universe: Universe, data_dir: Path | None) -> UniverseInfo:
    """The universe with its common dates and whether it is close-only.

    Raises:
        DataError: one of its series is missing or invalid.
    """
    bars = {symbol: load_bars(symbol, universe.timeframe, data_dir) for symbol in universe.symbols}
    common = check_common(pd.DataFrame({symbol: frame["close"] for symbol, frame in bars.items()}))
    start, end = (common[0].to_pydatetime(), common[-1].to_pydatetime()) if len(common) else (None, None)
    close_only = any(is_close_only(frame) for frame in bars.values())
    return UniverseInfo(
        universe.name, universe.timeframe, universe.symbols, universe.source, start, end, len(common), close_only
    )


def universe_names(data_dir: Path | None) -> list[tuple[str, str]]:
    """(name, timeframe) of every universe, bundled first: the registry and the bundled list only, no bars read."""
    registry = read_registry(data_dir) if data_dir is not None else {}
    return [(u.name, u.timeframe) for u in [*bundled_universes(), *(registry[name] for name in sorted(registry))]]


def bundled_universes() -> list[Universe]:
    """The bundled universes whose library is installed."""
    return [
        Universe(name, timeframe, tuple(f"{name}.{c}" for c in columns), source="bundled")
        for name, timeframe, columns in bundled_columns()
    ]


def list_universes(data_dir: Path | None) -> list[UniverseInfo]:
    """Every universe, bundled first, then the user's by name; one that fails to load is skipped with a warning."""
    registry = read_registry(data_dir) if data_dir is not None else {}
    infos = []
    for universe in [*bundled_universes(), *(registry[name] for name in sorted(registry))]:
        try:
            infos.append(describe(universe, data_dir))
        except DataError as exc:
            log.warning("skipping the universe %s: %s", universe.name, exc)
    return infos


def get_universe(name: str, data_dir: Path | None) -> Universe:
    """A universe by name (case-insensitive), bundled or the user's.

    Raises:
        DataError: no such universe (the message lists them).
    """
    registry = read_registry(data_dir) if data_dir is not None else {}
    universes = {u.name: u for u in bundled_universes()} | registry
    if name.upper() not in universes:
        raise DataError(f"no universe {name!r} (available: {', '.join(sorted(universes)) or 'none'})")
    return universes[name.upper()]
