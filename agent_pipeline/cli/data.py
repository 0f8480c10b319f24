"""`ktrdr data`: list, import and synthesise OHLCV market data, and import universes (issue 24)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent_pipeline.cli.app import cli, console, open_store
from agent_pipeline.config import get_settings
from agent_pipeline.engine.datastore import (
    data_store,
    differs_from_store,
    publish_changed,
    publish_series,
    synced_data_dir,
)
from agent_pipeline.errors import ArtifactNotFoundError, DataError

if TYPE_CHECKING:
    from agent_pipeline.engine.artifacts import ArtifactStore
    from agent_pipeline.engine.synth_universe import UniverseRecipe


@cli.group()
def data() -> None:
    """List, import and synthesise OHLCV market data."""


def data_folder() -> Path:
    """The settings' data folder (always filled in by Settings' validator)."""

    folder = get_settings().data_dir
    assert folder is not None
    return folder


def as_record(info: Any) -> dict[str, Any]:
    """A DatasetInfo (dataclass or pydantic model) as a JSON-safe dict."""
    if dataclasses.is_dataclass(info) and not isinstance(info, type):
        record = dataclasses.asdict(info)
    elif hasattr(info, "model_dump"):
        record = info.model_dump()
    else:
        record = dict(vars(info))
    return {key: json_safe(value) for key, value in record.items()}


def json_safe(value: Any) -> Any:
    if isinstance(value, int | float | bool | None):
        return value
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def list_data(as_json: bool) -> None:
    """List the datasets available for training and backtesting, and the universes.

    Synthetic series (`ktrdr data synth`) also show their kind and their planted rule's Sharpe on the research
    period and on the lockbox; the other series leave those empty. Each universe shows its symbols, the dates
    all of them have (common dates) and whether it is close-only; `--json` adds them under `universes`, beside
    `data`.
    """
    from agent_pipeline.engine.data import list_datasets  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.universe import list_universes  # lazy: start-up cost (pandas, skfolio)

    records = [with_synth(as_record(info), info.path) for info in list_datasets(data_folder())]
    universes = [as_record(info) for info in list_universes(data_folder())]
    if as_json:
        click.echo(json.dumps({"success": True, "data": records, "universes": universes}, indent=2, default=str))
        return
    print_table("Datasets", TABLE_COLUMNS, records)
    print_table("Universes", UNIVERSE_COLUMNS, [{**u, "symbols": symbols_cell(u["symbols"])} for u in universes])


def print_table(title: str, columns: dict[str, str], records: list[dict[str, Any]]) -> None:
    """A rich table of records: record key -> column title; text columns left, numbers right."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column, heading in columns.items():
        table.add_column(heading, justify="left" if column in TEXT_COLUMNS else "right")
    for record in records:
        table.add_row(*(cell(record.get(column)) for column in columns))
    console().print(table)


def symbols_cell(symbols: list[str]) -> str:
    """`20: AAPL, AMD, ...` (the universe's prefix dropped, at most SHOWN_SYMBOLS names)."""
    names = [symbol.split(".", 1)[-1] for symbol in symbols]
    shown = ", ".join(names[:SHOWN_SYMBOLS]) + (", ..." if len(names) > SHOWN_SYMBOLS else "")
    return f"{len(names)}: {shown}"


# The `ktrdr data list` table: record key -> column title.
TABLE_COLUMNS = {
    "symbol": "Symbol",
    "timeframe": "Timeframe",
    "start": "Start",
    "end": "End",
    "bars": "Bars",
    "source": "Source",
    "synth_kind": "Synthetic",
    "rule_research_sharpe": "Rule Sharpe (research)",
    "rule_lockbox_sharpe": "Rule Sharpe (lockbox)",
    "close_only": "Close only",
}
# The universes table: record key -> column title.
UNIVERSE_COLUMNS = {
    "name": "Universe",
    "timeframe": "Timeframe",
    "symbols": "Symbols",
    "common_start": "Common start",
    "common_end": "Common end",
    "common_bars": "Common bars",
    "close_only": "Close only",
    "source": "Source",
}
TEXT_COLUMNS = {"symbol", "timeframe", "start", "end", "source", "synth_kind", "close_only"}
TEXT_COLUMNS |= {"name", "symbols", "common_start", "common_end"}  # the universes table's
# Symbols a universe's table row names before `...`.
SHOWN_SYMBOLS = 8


def cell(value: Any) -> str:
    """A table cell: floats to two decimals, None empty."""
    if value is None or value is False:
        return ""
    if value is True:
        return "yes"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def with_synth(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """The record plus its synthetic kind and the planted rule's Sharpe ratios (None for a real series)."""
    from agent_pipeline.engine.synth import read_sidecar  # lazy: start-up cost (pandas, numpy, scipy)

    synth = read_sidecar(path) if record.get("source") == "user" else None
    return {
        **record,
        "synth_kind": synth.kind if synth else None,
        "rule_research_sharpe": synth.research_sharpe if synth else None,
        "rule_lockbox_sharpe": synth.lockbox_sharpe if synth else None,
    }


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", help="Instrument symbol, e.g. EURUSD (an OHLCV file).")
@click.option("--universe", help="Universe name, e.g. STOCKS (a wide file: a date column, then closes per symbol).")
@click.option("--timeframe", required=True, help="Bar timeframe, e.g. 1h or 1d.")
@click.option("--replace", is_flag=True, help="With --universe: replace a universe of that name.")
def import_data(file: Path, symbol: str | None, universe: str | None, timeframe: str, replace: bool) -> None:
    """Validate an OHLCV CSV file (--symbol), or a wide CSV of closes (--universe), and add it to the data folder.

    With --universe each column becomes a close-only series `<UNIVERSE>.<COLUMN>` of that universe. Bad input
    (a ragged file, a duplicate name, a non-numeric price, a symbol with no bars in the common range) writes
    nothing.
    """
    if (symbol is None) == (universe is None):
        raise click.UsageError("give --symbol (an OHLCV file) or --universe (a wide file of closes), not both")
    if replace and universe is None:
        raise click.UsageError("--replace goes with --universe")
    if universe is not None:
        import_universe_file(file, universe, timeframe, replace)
        return
    from agent_pipeline.engine.data import import_csv  # lazy: start-up cost (pandas)

    assert symbol is not None
    stored = import_csv(file, symbol=symbol, timeframe=timeframe, data_dir=data_folder())
    records = forget_series(data_folder(), [stored.symbol], timeframe)
    info = as_record(stored)
    click.echo(
        f"Imported {info.get('bars')} bars of {info.get('symbol')} {info.get('timeframe')} "
        f"({info.get('start')} to {info.get('end')}) into {info.get('path')}"
    )
    echo_published(stored.path, *records)


def forget_series(folder: Path, symbols: list[str], timeframe: str, universe: str | None = None) -> list[Path]:
    """A series written anew (imported, synthesised) is a new series (issue 27): drop the research ends fixed for it,
    for `universe` and for each universe holding it (`store.series.drop_cuts`), and empty the records of ranges
    appended to it that this host or the data store holds. Returns those records, to publish after the series.
    """
    from agent_pipeline.engine.append import appended_path, clear_appended  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.data import dataset_path  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.series_cut import universes_with  # lazy: start-up cost (pandas)
    from agent_pipeline.store.series import drop_cuts  # lazy: start-up cost (SQLAlchemy)

    holders = {name for symbol in symbols for name in universes_with(symbol, timeframe, folder)}
    drop_cuts(open_store(), symbols=[*symbols, *holders, *([universe] if universe else [])], timeframe=timeframe)
    store = data_store()
    stored = set(store.list(store.url)) if store is not None else set()
    paths = [dataset_path(symbol, timeframe, folder) for symbol in symbols]
    return [
        clear_appended(path) for path in paths if appended_path(path).is_file() or appended_path(path).name in stored
    ]


@data.command("append")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", required=True, help="The series' symbol, e.g. EURUSD.")
@click.option("--timeframe", required=True, help="The series' timeframe, e.g. 1d.")
@click.option(
    "--max-gap",
    help="Largest gap allowed before and between the new bars, in weekday time (pandas: 10D, 3D, 12h); "
    "default 10 bars for 1d and 1w, 3 days for intraday bars.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was appended as JSON.")
def append_data(file: Path, symbol: str, timeframe: str, max_gap: str | None, as_json: bool) -> None:
    """Add the bars of FILE after the end of a stored series: forward bars, as they arrive (issue 27).

    FILE is a CSV in any layout `ktrdr data import` reads; every price must be a number. Bars that overlap the
    series and agree with it are skipped; a disagreeing one, bars out of order or given twice, or a gap over
    --max-gap (Saturdays and Sundays never count) refuse the whole file, and nothing is written. The series is
    stored where `data import` stores it, and published to KTRDR_DATA_URL when that is set (after fetching the
    store's copy first); `<SYMBOL>_<tf>.appended.json` beside it records each appended range.
    """
    from agent_pipeline.engine.append import append_bars  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.bars_source import FileBarSource  # lazy: start-up cost (pandas)

    mine = local_record(data_folder(), symbol, timeframe)  # before the sync, which may fetch the store's over it
    folder = synced_data_dir() or data_folder()
    fetch_appended_record(folder, symbol, timeframe, mine)
    result = append_bars(
        FileBarSource(file), symbol=symbol, timeframe=timeframe, data_dir=folder, max_gap=parse_gap(max_gap),
        before_write=lambda: fix_cuts(folder, symbol, timeframe),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps({"success": True, "data": as_record(result)}, indent=2))
    elif result.appended:
        click.echo(
            f"Appended {result.appended} bars to {result.symbol} {result.timeframe} ({result.start} to {result.end}), "
            f"{result.bars} bars now, skipped {result.skipped} stored bars the file repeats; into {result.path}"
        )
    else:
        click.echo(f"Nothing to append: the {result.skipped} bars of the file are stored already in {result.path}")
    # The record first: a series published without it would show its forward bars to research as research bars.
    # Whatever differs from the store's copy goes, appended now or left unpublished by an earlier append that failed.
    echo_changed(result.record, result.path)


def local_record(folder: Path, symbol: str, timeframe: str) -> bytes | None:
    """This host's record of the series' appended ranges, as it is now; None when it has none."""
    from agent_pipeline.engine.append import appended_path  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.data import dataset_path  # lazy: start-up cost (pandas)

    record = appended_path(dataset_path(symbol, timeframe, folder))
    return record.read_bytes() if record.is_file() else None


def fetch_appended_record(folder: Path, symbol: str, timeframe: str, mine: bytes | None) -> None:
    """Bring the series' record of appended ranges up to the store's (KTRDR_DATA_URL), when it is set, before an
    append adds to it: an append that started from an older record would publish it without the ranges another host
    appended. While this host's series differs from the store's (an earlier append here whose publish failed), the
    ranges of its own record (`mine`, read before the sync) are kept beside the store's.
    """
    from agent_pipeline.engine.append import appended_path, merge_appended  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.data import dataset_path  # lazy: start-up cost (pandas)

    store = data_store()
    if store is None:
        return
    target = dataset_path(symbol, timeframe, folder)
    record = appended_path(target)
    if target.is_file() and differs_from_store(store, target):
        for document in (mine, read_stored(store, record.name)):
            if document is not None:
                merge_appended(target, document)
        return
    with contextlib.suppress(ArtifactNotFoundError):
        store.get_file(store.url_for(record.name), record)


def read_stored(store: ArtifactStore, name: str) -> bytes | None:
    """The data store's file `name`; None when it has none."""
    try:
        return store.read_bytes(store.url_for(name))
    except ArtifactNotFoundError:
        return None


def fix_cuts(folder: Path, symbol: str, timeframe: str) -> None:
    """Fix the research end of the series, and of each universe holding it, where no cycle fixed one yet, at its end
    before this append (`series_cut.series_end`): called just before an append writes, so its first bar is a forward
    bar whatever runs next, a design or a cycle (issue 27). A universe that cannot be read is left to its first cycle.
    """
    from agent_pipeline.engine.series_cut import series_end, universes_with  # lazy: start-up cost (pandas)
    from agent_pipeline.store.series import fix_series_end, series_cut  # lazy: start-up cost (SQLAlchemy)

    store = open_store()
    named = [(symbol.upper(), False), *((name, True) for name in universes_with(symbol, timeframe, folder))]
    for name, universe in named:
        if series_cut(store, symbol=name, timeframe=timeframe) is not None:
            continue
        try:
            end = series_end(name, timeframe, folder, universe=universe)
        except DataError:
            if not universe:
                raise
            continue
        fix_series_end(store, symbol=name, timeframe=timeframe, end=end, cycle_id=APPEND_CUT)


# Who fixed a series' end when `ktrdr data append` did (store.series keeps a cycle id there otherwise).
APPEND_CUT = "ktrdr data append"


def parse_gap(text: str | None) -> Any:
    """`--max-gap` as a positive pandas Timedelta (None: the timeframe's default)."""
    if text is None:
        return None
    import pandas as pd  # lazy: start-up cost

    try:
        gap = pd.Timedelta(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 10D, 3D, 12h)", param_hint="--max-gap") from None
    if not gap > pd.Timedelta(0):
        raise click.BadParameter(f"{text!r} must be positive", param_hint="--max-gap")
    return gap


def import_universe_file(file: Path, name: str, timeframe: str, replace: bool) -> None:
    """`ktrdr data import FILE --universe NAME`: store the universe's series and say what it holds."""
    from agent_pipeline.engine.data import dataset_path  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.universe import import_universe  # lazy: start-up cost (pandas)

    folder = data_folder()
    info = import_universe(file, name=name, timeframe=timeframe, data_dir=folder, replace=replace)
    records = forget_series(folder, list(info.symbols), timeframe, universe=info.name)
    click.echo(describe_universe(info, "Imported"))
    echo_published(*(dataset_path(symbol, timeframe, folder) for symbol in info.symbols), *records)


def describe_universe(info: Any, verb: str) -> str:
    """One line: `Imported universe DEMO 1d: 3 symbols (...), 500 common bars (... to ...), close-only`."""
    record = as_record(info)
    kind = "close-only" if info.close_only else "OHLC"
    return (
        f"{verb} universe {info.name} {info.timeframe}: {len(info.symbols)} symbols ({', '.join(info.symbols)}), "
        f"{info.common_bars} common bars ({record['common_start']} to {record['common_end']}), {kind}"
    )


def echo_published(*paths: Path) -> None:
    """Publish stored files to KTRDR_DATA_URL (issue 16), when it is set, and say where they went."""
    for path in paths:
        url = publish_series(path) if path.is_file() else None
        if url:
            click.echo(f"Published {path.name} to {url}")


def echo_changed(*paths: Path) -> None:
    """`echo_published` of the files whose copy in KTRDR_DATA_URL differs from the local one (or is missing)."""
    for path in paths:
        url = publish_changed(path)
        if url:
            click.echo(f"Published {path.name} to {url}")


@data.command("synth")
@click.option("--kind", required=True, help="trend, reversal or noise.")
@click.option("--strength", type=float, default=0.0, show_default=True, help="Annualised Sharpe of the planted rule.")
@click.option("--seed", type=int, required=True, help="Random seed: the same seed gives the same bars.")
@click.option("--symbol", help="Symbol to store one series under, e.g. SYNTH_TREND.")
@click.option("--universe", help="Universe name, e.g. PLANTED: store --size series NAME.S00, NAME.S01, ...")
@click.option("--size", type=int, help="With --universe: number of symbols (2 to 500).")
@click.option(
    "--correlation", type=float, help="With --universe: pairwise correlation of returns, in [0, 1); 0 if left out."
)
@click.option("--replace", is_flag=True, help="With --universe: replace a universe of that name.")
@click.option("--timeframe", default="1d", show_default=True, help="Bar timeframe.")
@click.option("--bars", type=int, default=5031, show_default=True, help="Number of bars.")
def synth_data(
    kind: str,
    strength: float,
    seed: int,
    symbol: str | None,
    universe: str | None,
    size: int | None,
    correlation: float | None,
    replace: bool,
    timeframe: str,
    bars: int,
) -> None:
    """Write a synthetic series (--symbol), or a universe of them (--universe), with a planted edge of known size.

    trend: a slowly wandering drift, exploited by 20-bar momentum; reversal: returns that are AR(1) with a
    negative coefficient, exploited by the one-bar contrarian rule; noise: a random walk (strength 0). The
    strength is the rule's expected annualised Sharpe on the research period; a sidecar `.synth.json` beside
    each series records how it was made and what the rule earned. With --universe every symbol has its own
    planted rule of that strength, and its noise shares a market factor so that returns correlate by
    --correlation (engine.synth_universe says how).
    """
    if (symbol is None) == (universe is None):
        raise click.UsageError("give --symbol (one series) or --universe (a universe of --size series), not both")
    if universe is None and (size is not None or correlation is not None or replace):
        raise click.UsageError("--size, --correlation and --replace go with --universe")
    if universe is not None:
        if size is None:
            raise click.UsageError("--universe needs --size (the number of symbols)")
        from agent_pipeline.engine.synth_universe import UniverseRecipe  # lazy: start-up cost (pandas, numpy, scipy)

        lockbox_fraction = get_settings().lockbox_fraction
        recipe = UniverseRecipe(kind, strength, seed, size, correlation or 0.0, bars, timeframe, lockbox_fraction)
        synth_universe_data(universe, recipe, replace)
        return
    assert symbol is not None
    synth_series(kind, strength, seed, symbol, timeframe, bars)


def synth_series(kind: str, strength: float, seed: int, symbol: str, timeframe: str, bars: int) -> None:
    """`ktrdr data synth --symbol`: one series and its sidecar."""
    from agent_pipeline.engine.synth import sidecar_path, write_synth  # lazy: start-up cost (pandas, numpy, scipy)

    stored, info = write_synth(
        kind,
        strength,
        seed,
        symbol=symbol,
        timeframe=timeframe,
        data_dir=data_folder(),
        bars=bars,
        lockbox_fraction=get_settings().lockbox_fraction,
    )
    records = forget_series(data_folder(), [stored.symbol], timeframe)
    click.echo(
        f"Wrote {stored.bars} bars of {stored.symbol} {stored.timeframe} ({info.kind}, strength {info.strength:g}, "
        f"seed {info.seed}) into {stored.path}\n"
        f"Rule: {info.rule}\n"
        f"Rule Sharpe: {info.research_sharpe:.2f} on the research period, {info.lockbox_sharpe:.2f} on the lockbox"
    )
    echo_published(stored.path, sidecar_path(stored.path), *records)


def synth_universe_data(name: str, recipe: UniverseRecipe, replace: bool) -> None:
    """`ktrdr data synth --universe NAME`: the universe's series, their sidecars and its registry entry."""
    from agent_pipeline.engine.data import dataset_path  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.synth import sidecar_path  # lazy: start-up cost (pandas, numpy, scipy)
    from agent_pipeline.engine.synth_universe import synth_universe  # lazy: start-up cost (pandas, numpy, scipy)

    folder = data_folder()
    made = synth_universe(name, recipe, data_dir=folder, replace=replace)
    records = forget_series(folder, list(made.info.symbols), recipe.timeframe, universe=made.info.name)
    research = sum(info.research_sharpe for info in made.series) / len(made.series)
    lockbox = sum(info.lockbox_sharpe for info in made.series) / len(made.series)
    click.echo(
        f"{describe_universe(made.info, 'Synthesised')}\n"
        f"Kind {recipe.kind}, strength {recipe.strength:g}, correlation {recipe.correlation:g}, seed {recipe.seed}\n"
        f"Rule: {made.series[0].rule}\n"
        f"Rule Sharpe, mean of {len(made.series)} symbols: {research:.2f} on the research period, "
        f"{lockbox:.2f} on the lockbox"
    )
    paths = [dataset_path(symbol, recipe.timeframe, folder) for symbol in made.info.symbols]
    echo_published(*(p for path in paths for p in (path, sidecar_path(path))), *records)
