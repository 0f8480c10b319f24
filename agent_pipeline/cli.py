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
@click.option("--reason", default="Cancelled by user", show_default=True, help="Recorded as the error message.")
def cancel_operation(operation_id: str, reason: str) -> None:
    """Cancel a pending or running operation and its active children (a training stops within one epoch)."""
    from agent_pipeline import cycle

    store = open_store()
    active = [op for op in store.list(parent_operation_id=operation_id, limit=500) if not op.status.is_finished]
    cycle.cancel(operation_id, store=store, reason=reason)
    suffix = f" and {len(active)} active child operation(s)" if active else ""
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


# -- agent ------------------------------------------------------------------------------------------------

# Seconds between two reads of the operations table while following a cycle.
FOLLOW_INTERVAL = 0.5
DESIGNER_CHOICE = click.Choice(["auto", "anthropic", "offline"])


@cli.group()
def agent() -> None:
    """Trigger, follow and cancel research cycles."""


def cycle_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by `agent trigger` and `agent run`."""
    options = [
        click.option("--bypass-gates", is_flag=True, help="Record gate failures and go on."),
        click.option("--designer", type=DESIGNER_CHOICE, envvar="KTRDR_DESIGNER", help="Who designs the strategy."),
        click.option("--model", envvar="KTRDR_MODEL", help="LLM model or alias (opus, sonnet, haiku)."),
        click.option("--symbol", help="Ask the designer for this symbol."),
        click.option("--timeframe", help="Ask the designer for this timeframe."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def to_options(**values: Any) -> Any:
    from agent_pipeline.context import CycleOptions

    return CycleOptions(bypass_gates=bool(values.pop("bypass_gates", False)), **values)


@agent.command("trigger")
@cycle_options
@click.option("--follow", is_flag=True, help="Show live progress until the cycle ends, then its report.")
@click.option(
    "--cycles", type=click.IntRange(1, 100_000), default=1, show_default=True,
    help="Run this many cycles one after another (implies --follow); each design reads the ones before.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_trigger(follow: bool, cycles: int, as_json: bool, **values: Any) -> None:
    """Start a research cycle on the workers (design, train, gates, backtest, assess)."""
    from agent_pipeline import cycle

    store = open_store()
    if cycles > 1:
        finals = run_cycles(store, to_options(**values), cycles)
        console().print(cycles_table(finals))
        return
    operation = cycle.trigger(to_options(**values), store=store)
    if as_json:
        click.echo(json.dumps({"triggered": True, "operation_id": operation.operation_id}))
    else:
        designer = operation.metadata.get("designer")
        click.echo(f"Triggered research cycle {operation.operation_id} (designer: {designer})")
    if follow:
        follow_cycle(store, operation.operation_id)


def run_cycles(store: OperationsStore, options: Any, cycles: int) -> list[Operation]:
    """Trigger and follow `cycles` cycles one after another; Ctrl-C cancels the one running and stops."""
    from agent_pipeline import cycle

    finals: list[Operation] = []
    for number in range(1, cycles + 1):
        operation = cycle.trigger(options, store=store)
        designer = operation.metadata.get("designer")
        click.echo(f"Research cycle {number}/{cycles}: {operation.operation_id} (designer: {designer})")
        try:
            finals.append(follow_cycle(store, operation.operation_id))
        except KeyboardInterrupt:
            # Leave no cycle `running` behind to block the next run; the training stops at its next check.
            cycle.cancel(operation.operation_id, store=store, reason="Interrupted (Ctrl-C)")
            click.echo(f"Cancelled {operation.operation_id}.", err=True)
            sys.exit(130)
    return finals


@agent.command("status")
@click.option("--follow", is_flag=True, help="Keep showing live progress until the cycle ends.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_status(follow: bool, as_json: bool) -> None:
    """Show the active cycle (phase, progress, child operation) or, when idle, the last cycle."""
    from agent_pipeline import cycle

    store = open_store()
    state = cycle.status(store)
    if as_json:
        click.echo(state.model_dump_json(indent=2))
    elif follow and isinstance(state, cycle.ActiveStatus):
        follow_cycle(store, state.operation_id)
    else:
        click.echo(describe_status(state))


def describe_status(state: Any) -> str:
    """The agent status as plain lines (`Status: active`, `Phase: training`, ...)."""
    if state.status == "idle":
        last = state.last_cycle
        lines = ["Status: idle", "Phase: -"]
        if last:
            lines.append(f"Last cycle: {last.operation_id} {last.status}")
            if last.strategy_name:
                lines.append(f"Strategy: {last.strategy_name}")
            if last.error_message:
                lines.append(f"Error: {last.error_message}")
        return "\n".join(lines)
    progress, child = state.progress, state.child_progress or {}
    percentage = float(progress.get("percentage") or 0)
    lines = [
        "Status: active",
        f"Operation: {state.operation_id}",
        f"Phase: {state.phase}",
        f"Progress: {percentage:.0f}% {progress.get('current_step') or ''}".rstrip(),
        f"Strategy: {state.strategy_name or '-'}",
    ]
    if state.child_operation_id:
        step = child.get("current_step") or ""
        lines.append(f"Child: {state.child_operation_id} ({state.child_status}) {step}".rstrip())
    return "\n".join(lines)


@agent.command("cancel")
def agent_cancel() -> None:
    """Cancel the active cycle and its running phase (a training stops within one epoch)."""
    from agent_pipeline import cycle

    operation = cycle.cancel(store=open_store())
    click.echo(f"Cancelled {operation.operation_id}.")


@agent.command("budget")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_budget(as_json: bool) -> None:
    """Show today's LLM spend against the daily budget."""
    from agent_pipeline import cycle
    from agent_pipeline.config import get_settings

    spent, budget = cycle.spent_today(open_store()), get_settings().daily_budget_usd
    if as_json:
        click.echo(json.dumps({"spent_usd": round(spent, 6), "budget_usd": budget}))
    else:
        click.echo(f"Today's LLM spend: ${spent:.4f} of ${budget:.2f} (${max(0.0, budget - spent):.4f} left)")


@agent.command("run")
@cycle_options
@click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".ktrdr"), show_default=True,
    envvar="KTRDR_HOME", help="Folder for the SQLite file, strategies, models and backtests.",
)  # fmt: skip
@click.option(
    "--cycles", type=click.IntRange(1, 1000), default=1, show_default=True,
    help="Cycles to run one after another; each design reads the results of the ones before.",
)  # fmt: skip
def agent_run(home: Path, cycles: int, **values: Any) -> None:
    """Run whole cycles in this process: no servers (SQLite, in-memory broker, in-process workers)."""
    from agent_pipeline import embedded

    embedded.prepare_environment(home)
    store = open_store()
    with embedded.embedded_worker():
        finals = run_cycles(store, to_options(**values), cycles)
    if cycles > 1:
        console().print(cycles_table(finals))
    sys.exit(run_exit_code(finals))


# `ktrdr agent run` exit codes: a gate rejecting a strategy is a research outcome, not a crash.
EXIT_COMPLETED, EXIT_FAILED, EXIT_GATE_REJECTED = 0, 1, 3


def run_exit_code(finals: Sequence[Operation]) -> int:
    """0 when a cycle completed, 3 when every cycle was stopped by a gate, 1 otherwise."""
    if any(op.status == OperationStatus.COMPLETED for op in finals):
        return EXIT_COMPLETED
    if finals and all(" gate failed: " in (op.error_message or "") for op in finals):
        return EXIT_GATE_REJECTED
    return EXIT_FAILED


def cycles_table(finals: Sequence[Operation]) -> Any:
    """One line per cycle of a multi-cycle run: what was tried and how it ended."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Research cycles", title_justify="left")
    for header in ("#", "Cycle", "Strategy", "Accuracy", "Return", "Buy & hold", "Outcome"):
        table.add_column(header)
    for number, op in enumerate(finals, 1):
        training = op.metadata.get("training_result") or {}
        backtest = op.metadata.get("backtest_result") or {}
        outcome = op.status.value if op.status == OperationStatus.COMPLETED else (op.error_message or op.status.value)
        table.add_row(
            str(number),
            op.operation_id,
            str(op.metadata.get("strategy_name") or "-"),
            pct(training.get("accuracy")),
            pct(backtest.get("total_return")),
            pct(backtest.get("buy_and_hold_return")),
            Text(truncate(outcome, 70), style=STATUS_STYLES[op.status]),
        )
    return table


def follow_cycle(store: OperationsStore, operation_id: str) -> Operation:
    """Live progress of the cycle and its child until it ends; then its report. Returns the final row."""
    from rich.live import Live

    from agent_pipeline.cycle import current_child

    out = console()
    with Live(console=out, refresh_per_second=4, transient=True) as live:
        while True:
            operation = store.get(operation_id)
            live.update(progress_view(operation, current_child(store, operation)))
            if operation.status.is_finished:
                break
            import time

            time.sleep(FOLLOW_INTERVAL)
    out.print(cycle_report(operation))
    return operation


def progress_view(operation: Operation, child: Operation | None) -> Any:
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_row("Cycle", operation.operation_id, operation.status.value)
    table.add_row("Phase", str(operation.metadata.get("phase") or "queued"), f"{format_percentage(operation)}")
    if child is not None:
        step = str(child.progress.get("current_step") or "")
        detail = child.progress
        if "val_accuracy" in detail:
            step += f"  loss {detail.get('train_loss', 0):.3f}  val acc {detail.get('val_accuracy', 0):.1%}"
        table.add_row(child.operation_type.value, child.status.value, f"{format_percentage(child)} {step}")
    return table


def cycle_report(operation: Operation) -> Any:
    """The final report: strategy, training, gates, backtest vs buy-and-hold, assessment, artifacts."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, value in report_rows(operation):
        grid.add_row(label, Text(value))
    status = Text(operation.status.value, style=STATUS_STYLES[operation.status])
    title = Text.assemble("Research cycle ", operation.operation_id, " ", status)
    return Panel(grid, title=title, title_align="left")


def pct(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "-"


def plural(count: Any, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count if count is not None else '-'} {noun}s"


def num(value: Any, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, int | float) else "-"


def gate_row(meta: dict[str, Any], key: str, label: str) -> list[tuple[str, str]]:
    """`passed`, `failed: <reason>` or `bypassed: <reason>` for one gate, if it ran."""
    gate = meta.get(key)
    if not gate:
        return []
    if gate.get("passed"):
        return [(label, "passed")]
    return [(label, f"{'bypassed' if gate.get('bypassed') else 'failed'}: {gate.get('reason')}")]


def report_rows(operation: Operation) -> list[tuple[str, str]]:
    meta = operation.metadata
    rows = [("Strategy", f"{meta.get('strategy_name') or '-'}  (designer: {meta.get('designer') or '-'})")]
    training = meta.get("training_result")
    if training:
        rows.append((
            "Training",
            f"test accuracy {pct(training.get('accuracy'))}, val accuracy {pct(training.get('val_accuracy'))}, "
            f"loss {num(training.get('initial_loss'))} -> {num(training.get('final_loss'))}, "
            f"{training.get('epochs_run', '-')} epochs on {training.get('device', '-')}",
        ))  # fmt: skip
    rows += gate_row(meta, "training_gate", "Training gate")
    backtest = meta.get("backtest_result")
    if backtest:
        rows.append((
            "Backtest",
            f"return {pct(backtest.get('total_return'))} vs buy-and-hold {pct(backtest.get('buy_and_hold_return'))}, "
            f"Sharpe {num(backtest.get('sharpe_ratio'), 2)}, max drawdown {pct(backtest.get('max_drawdown'))}, "
            f"win rate {pct(backtest.get('win_rate'))}, {plural(backtest.get('num_trades'), 'trade')}",
        ))  # fmt: skip
    rows += gate_row(meta, "backtest_gate", "Backtest gate")
    assessment = meta.get("assessment")
    if assessment:
        rows.append(("Assessment", str(assessment.get("verdict"))))
        for key in ("strengths", "weaknesses", "suggestions"):
            rows.append((f"  {key}", "\n".join(f"- {item}" for item in assessment.get(key) or [])))
    if operation.error_message:
        rows.append(("Error", operation.error_message))
        if " gate failed: " in operation.error_message:
            rows.append(("Next", "run again: the designer reads this failure; --bypass-gates shows every phase"))
    for key, label in (
        ("strategy_path", "Strategy file"), ("model_path", "Model"), ("backtest_dir", "Backtest files"),
        ("assessment_path", "Assessment file"),
    ):  # fmt: skip
        if meta.get(key):
            rows.append((label, str(meta[key])))
    if meta.get("cost_usd"):
        rows.append(("LLM cost", f"${float(meta['cost_usd']):.4f}"))
    return rows


# -- servers ------------------------------------------------------------------------------------------------


@cli.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KTRDR_API_HOST")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), envvar="KTRDR_API_PORT")
def api_command(host: str, port: int) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /docs)."""
    import uvicorn

    uvicorn.run("agent_pipeline.api:app", host=host, port=port, log_level="info")


QUEUE_CHOICES = ("research", "gpu")


@cli.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", default="research", show_default=True, help="research, gpu, or both (comma-separated).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker_command(queues: str, concurrency: int, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker with the flags its queue needs (extra arguments go to celery)."""
    import os

    command = worker_argv(queues, concurrency, loglevel, celery_args)
    os.execvp(command[0], command)


def worker_argv(queues: str, concurrency: int, loglevel: str, extra: Sequence[str] = ()) -> list[str]:
    """The `celery worker` command line for `queues`.

    The gpu queue gets the prefork pool with one task per child process: CUDA is initialised only in the child
    (never in the parent, which would break fork), and each training's GPU memory is returned when its child exits.
    """
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUE_CHOICES]
    if unknown or not names:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown) or '(none)'}; use research and/or gpu")
    argv = [sys.executable, "-m", "celery", "-A", "agent_pipeline", "worker", "-Q", ",".join(names)]
    argv += ["-c", str(concurrency), "-l", loglevel, "-n", f"{'-'.join(names)}@%h", "--pool", "prefork"]
    if "gpu" in names:
        argv += ["--max-tasks-per-child", "1"]
    return [*argv, *extra]


# -- more commands plug in below: the `agent` group and the `api` / `worker` commands ---------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`ktrdr`)."""
    run: Callable[..., Any] = cli.main
    run(args=list(argv) if argv is not None else None, prog_name="ktrdr")
