"""`ktrdr universe`: group series that exist into a universe (issue 24); `ktrdr data list` shows universes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from agent_pipeline.cli.app import cli, open_store
from agent_pipeline.cli.data import data_folder, describe_universe

if TYPE_CHECKING:
    from agent_pipeline.engine.universe import Universe, UniverseInfo
    from agent_pipeline.store.operations import OperationsStore


@cli.group()
def universe() -> None:
    """Group series into universes, researched together."""


@universe.command("create")
@click.argument("name")
@click.option("--timeframe", required=True, help="Bar timeframe of every symbol, e.g. 1d.")
@click.option("--symbols", required=True, help="Comma-separated series that exist, e.g. EURUSD,SP500_20.AAPL.")
@click.option("--replace", is_flag=True, help="Replace a universe of that name.")
def create(name: str, timeframe: str, symbols: str, replace: bool) -> None:
    """Record a universe NAME of series that exist already (see `ktrdr data list`)."""
    from agent_pipeline.engine.universe import create_universe, read_registry  # lazy: start-up cost (pandas)

    folder = data_folder()
    old = read_registry(folder).get(name.upper())
    store = open_store()  # before anything is written: an unreachable database leaves the universe as it was
    info = create_universe(name, timeframe=timeframe, symbols=symbols.split(","), data_dir=folder, replace=replace)
    forget_universe(store, old, info)
    click.echo(describe_universe(info, "Created"))


def forget_universe(store: OperationsStore, old: Universe | None, new: UniverseInfo) -> None:
    """A universe created (or replaced) is a new series of dates (issue 27): drop the research end fixed for its
    name, on its timeframe and the old one's, and the ends of the series the old one owned and the new one dropped
    (their files are gone: `engine.universe` retires them). A replace with the same symbols on the same timeframe
    changes no date, and keeps its end: dropping it would let the next cycle fix one past bars appended since."""
    from agent_pipeline.store.series import drop_cuts  # lazy: start-up cost (SQLAlchemy)

    if old is not None and old.timeframe == new.timeframe and set(old.symbols) == set(new.symbols):
        return
    drop_cuts(store, symbols=[new.name], timeframe=new.timeframe)
    if old is None:
        return
    kept = set(new.symbols) if old.timeframe == new.timeframe else set()
    retired = sorted(set(old.symbols) - kept) if old.owned else []
    drop_cuts(store, symbols=[old.name, *retired], timeframe=old.timeframe)
