"""`ktrdr universe`: group series that exist into a universe (issue 24); `ktrdr data list` shows universes."""

from __future__ import annotations

import click

from agent_pipeline.cli.app import cli
from agent_pipeline.cli.data import data_folder, describe_universe


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
    from agent_pipeline.engine.universe import create_universe  # lazy: start-up cost (pandas)

    info = create_universe(
        name, timeframe=timeframe, symbols=symbols.split(","), data_dir=data_folder(), replace=replace
    )
    click.echo(describe_universe(info, "Created"))
