"""`ktrdr data`: list and import OHLCV market data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from agent_pipeline.cli.app import cli, console, echo_json
from agent_pipeline.config import get_settings


@cli.group()
def data() -> None:
    """List and import OHLCV market data."""


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
    """List the datasets available for training and backtesting."""
    from agent_pipeline.engine.data import list_datasets  # lazy: start-up cost (pandas)

    records = [as_record(info) for info in list_datasets(data_folder())]
    if as_json:
        echo_json(records)
        return
    from rich.table import Table

    table = Table(title="Datasets", title_justify="left")
    columns = ("symbol", "timeframe", "start", "end", "bars", "source")
    for column in columns:
        table.add_column(column.capitalize(), justify="right" if column == "bars" else "left")
    for record in records:
        table.add_row(*(str(record.get(column, "")) for column in columns))
    console().print(table)


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", required=True, help="Instrument symbol, e.g. EURUSD.")
@click.option("--timeframe", required=True, help="Bar timeframe, e.g. 1h or 1d.")
def import_data(file: Path, symbol: str, timeframe: str) -> None:
    """Validate an OHLCV CSV file and add it to the data folder."""
    from agent_pipeline.engine.data import import_csv  # lazy: start-up cost (pandas)

    info = as_record(import_csv(file, symbol=symbol, timeframe=timeframe, data_dir=data_folder()))
    click.echo(
        f"Imported {info.get('bars')} bars of {info.get('symbol')} {info.get('timeframe')} "
        f"({info.get('start')} to {info.get('end')}) into {info.get('path')}"
    )
