"""The `ktrdr` command line: operations, database and data commands (agent, api and worker plug in here too).

Import-time cost matters (`ktrdr --help` must be instant): this module imports click and the operations store
only; rich, the engine, Celery and the LLM SDK are imported inside the commands that use them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent_pipeline.errors import KtrdrError
from agent_pipeline.operations import (
    Operation,
    OperationsStore,
    OperationStatus,
    OperationType,
    get_store,
    safe_url,
    utcnow,
)

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("agent_pipeline.cli")

# Longest error text shown in a table cell; `ktrdr operations status` shows it whole.
ERROR_CELL_WIDTH = 48
# Width rich lays out tables at when stdout is not a terminal (pipes, tests): wide enough for full op ids.
PIPE_WIDTH = 200


class KtrdrGroup(click.Group):
    """The root group: expected errors become one line on stderr and exit 1, never a traceback.

    Click's own usage errors keep their exit code 2; anything unexpected is one line plus a hint, with the
    traceback logged at debug level (`ktrdr --verbose ...` shows it).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KtrdrError as exc:
            fail(str(exc))
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            fail(f"unexpected {type(exc).__name__}: {exc} (run `ktrdr --verbose ...` for the traceback)")


def fail(message: str) -> None:
    """Print `Error: <message>` as one line on stderr and exit 1."""
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(1)


def console() -> Console:
    """A rich console on the current stdout (created per call so that click's CliRunner captures it)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False)


def echo_json(data: Any) -> None:
    """Print the API's envelope: `{"success": true, "data": ...}`."""
    click.echo(json.dumps({"success": True, "data": data}, indent=2, default=str))


def open_store() -> OperationsStore:
    """The settings' operations store, its schema brought up to date (cheap when current).

    Every command that touches the database calls this, so a fresh machine just works.

    Raises:
        ConfigurationError: a malformed setting.
        DatabaseUnavailableError: the database does not answer.
    """
    from agent_pipeline.config import get_settings

    store = get_store(get_settings().database_url)
    store.upgrade()
    return store


@click.group(cls=KtrdrGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level (tracebacks included) on stderr.")
@click.version_option(package_name="ktrdr-agent-pipeline", prog_name="ktrdr")
def cli(verbose: bool) -> None:
    """ktrdr: an autonomous research loop for trading strategies."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# -- operations ----------------------------------------------------------------------------------------


@cli.group()
def operations() -> None:
    """List, inspect and cancel operations (cycles and their phases)."""


TYPE_CHOICE = click.Choice([t.value for t in OperationType])
STATUS_CHOICE = click.Choice([s.value for s in OperationStatus])


@operations.command("list")
@click.option("--type", "operation_type", type=TYPE_CHOICE, help="Only operations of this type.")
@click.option("--status", type=STATUS_CHOICE, help="Only operations in this status.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Rows to show.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip.")
@click.option("--parent", "parent_operation_id", help="Only children of this operation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def list_operations(
    operation_type: str | None,
    status: str | None,
    limit: int,
    offset: int,
    parent_operation_id: str | None,
    as_json: bool,
) -> None:
    """List operations, newest first."""
    found = open_store().list(
        operation_type=OperationType(operation_type) if operation_type else None,
        status=OperationStatus(status) if status else None,
        parent_operation_id=parent_operation_id,
        limit=limit,
        offset=offset,
    )
    if as_json:
        echo_json([op.to_dict() for op in found])
    else:
        console().print(operations_table(found))


@operations.command("status")
@click.argument("operation_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def operation_status(operation_id: str, as_json: bool) -> None:
    """Show every field of one operation, and its children."""
    store = open_store()
    operation = store.get(operation_id)
    if as_json:
        echo_json(operation.to_dict())
        return
    children = store.list(parent_operation_id=operation_id, limit=500)
    console().print(operation_panel(operation, children))


@operations.command("cancel")
@click.argument("operation_id")
@click.option(
    "--reason", default="Cancelled by user", show_default=True, help="Recorded as the error message."
)
def cancel_operation(operation_id: str, reason: str) -> None:
    """Cancel a pending or running operation and its active children."""
    store = open_store()
    store.require_transition(operation_id, OperationStatus.CANCELLED)
    children = [
        op for op in store.list(parent_operation_id=operation_id, limit=500) if not op.status.is_finished
    ]
    if not store.cancel(operation_id, reason=reason):
        # It finished between the check and the cancel.
        fail(f"operation {operation_id} finished before it could be cancelled")
    suffix = f" and {len(children)} active child operation(s)" if children else ""
    click.echo(f"Cancelled {operation_id}{suffix}.")


# -- rendering -----------------------------------------------------------------------------------------

STATUS_STYLES = {
    OperationStatus.PENDING: "yellow",
    OperationStatus.RUNNING: "cyan",
    OperationStatus.COMPLETED: "green",
    OperationStatus.FAILED: "red",
    OperationStatus.CANCELLED: "magenta",
}


def format_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def format_duration(operation: Operation) -> str:
    """Run time so far (or in all, once finished), e.g. `42.0s`, `3m 05s`, `2h 07m`."""
    if operation.started_at is None:
        return "-"
    seconds = ((operation.completed_at or utcnow()) - operation.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def truncate(text: str | None, width: int = ERROR_CELL_WIDTH) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_percentage(operation: Operation) -> str:
    return f"{float(operation.progress.get('percentage') or 0.0):.0f}%"


def operations_table(found: Sequence[Operation]) -> Any:
    """A rich table of operations; headers only when empty."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Operations", title_justify="left")
    table.add_column("ID", no_wrap=True)
    for header in ("Type", "Status"):
        table.add_column(header, no_wrap=True)
    table.add_column("Progress", justify="right", no_wrap=True)
    for header in ("Step", "Created (UTC)", "Duration", "Error"):
        table.add_column(header)
    for op in found:
        table.add_row(
            op.operation_id,
            op.operation_type.value,
            Text(op.status.value, style=STATUS_STYLES[op.status]),
            format_percentage(op),
            Text(str(op.progress.get("current_step") or "")),
            format_time(op.created_at),
            format_duration(op),
            Text(truncate(op.error_message)),
        )
    return table


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def operation_panel(operation: Operation, children: Sequence[Operation]) -> Any:
    """A rich panel with every field of `operation` and one line per child."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in operation_fields(operation, children):
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    status = Text(operation.status.value, style=STATUS_STYLES[operation.status])
    return Panel(grid, title=Text.assemble(operation.operation_id, " ", status), title_align="left")


def operation_fields(operation: Operation, children: Sequence[Operation]) -> list[tuple[str, Any]]:
    """(label, value) rows of the status panel."""
    progress = dict(operation.progress)
    step = progress.pop("current_step", "") or ""
    progress.pop("percentage", None)
    rows: list[tuple[str, Any]] = [
        ("Type", operation.operation_type.value),
        ("Status", operation.status.value),
        ("Parent", operation.parent_operation_id or "-"),
        ("Created", format_time(operation.created_at)),
        ("Started", format_time(operation.started_at)),
        ("Completed", format_time(operation.completed_at)),
        ("Duration", format_duration(operation)),
        ("Heartbeat", format_time(operation.heartbeat_at)),
        ("Progress", f"{format_percentage(operation)} {step}".strip()),
    ]
    if progress:
        rows.append(("Progress detail", pretty_json(progress)))
    rows.append(("Error", operation.error_message or "-"))
    rows.append(("Metadata", pretty_json(operation.metadata) if operation.metadata else "-"))
    summary = operation.result_summary
    rows.append(("Result summary", pretty_json(summary) if summary else "-"))
    lines = [f"{c.operation_id}  {c.operation_type.value}  {c.status.value}" for c in children]
    rows.append(("Children", "\n".join(lines) or "-"))
    return rows


# -- database --------------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Manage the operations database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the operations table to the newest schema (idempotent)."""
    from agent_pipeline.config import get_settings

    url = get_settings().database_url
    get_store(url).upgrade()
    click.echo(f"Database is up to date: {safe_url(url)}")


# -- market data ------------------------------------------------------------------------------------------


@cli.group()
def data() -> None:
    """List and import OHLCV market data."""


def data_folder() -> Path:
    """The settings' data folder (always filled in by Settings' validator)."""
    from agent_pipeline.config import get_settings

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
    from agent_pipeline.engine.data import list_datasets

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
    from agent_pipeline.engine.data import import_csv

    info = as_record(import_csv(file, symbol=symbol, timeframe=timeframe, data_dir=data_folder()))
    click.echo(
        f"Imported {info.get('bars')} bars of {info.get('symbol')} {info.get('timeframe')} "
        f"({info.get('start')} to {info.get('end')}) into {info.get('path')}"
    )


# -- more commands plug in below: the `agent` group and the `api` / `worker` commands ---------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`ktrdr`)."""
    run: Callable[..., Any] = cli.main
    run(args=list(argv) if argv is not None else None, prog_name="ktrdr")
