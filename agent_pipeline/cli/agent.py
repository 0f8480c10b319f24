"""`ktrdr agent`: trigger, follow, cancel and run research cycles."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from agent_pipeline.cli.app import cli, console, echo_json, open_store
from agent_pipeline.cli.render import (
    cycle_report,
    cycles_table,
    describe_status,
    evidence_tables,
    history_table,
    progress_view,
)
from agent_pipeline.config import get_settings
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.insight import evidence
from agent_pipeline.insight.report import html_page, plots_of, require_cycle
from agent_pipeline.pipeline import embedded
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.pipeline.user_strategy import read_strategy_file
from agent_pipeline.store.history import GATE_OUTCOMES, SortKey, leaderboard, outcome_of
from agent_pipeline.store.operations import (
    Operation,
    OperationsStore,
    OperationStatus,
)

# Seconds between two reads of the operations table while following a cycle.
FOLLOW_INTERVAL = 0.5
DESIGNER_CHOICE = click.Choice(["auto", "anthropic", "offline", "random"])


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
        click.option("--universe", help="Research one model across this universe's symbols (`ktrdr data list`)."),
        click.option(
            "--portfolio",
            type=click.Choice(["timing", "rank"]),
            help="With --universe: each symbol times itself (timing, the default), or long-short ranks (rank).",
        ),  # fmt: skip
        click.option(
            "--strategy",
            "strategy_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Run this strategy file as given (no designer); `ktrdr strategy validate FILE` checks it.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def to_options(**values: Any) -> Any:
    """The CycleOptions of the command's options; a `--strategy` file is read (size-checked) into its text."""

    strategy_file = values.pop("strategy_file", None)
    strategy = read_strategy_file(strategy_file) if strategy_file else None
    return CycleOptions(bypass_gates=bool(values.pop("bypass_gates", False)), strategy=strategy, **values)


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
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

    store = open_store()
    if cycles > 1:
        finals = run_cycles(store, to_options(**values), cycles)
        console().print(cycles_table(finals))
        return
    operation = cycle.trigger(to_options(**values), store=store)
    if as_json:
        click.echo(json.dumps({"triggered": True, "operation_id": operation.operation_id}))
    else:
        designer = operation.record.designer
        click.echo(f"Triggered research cycle {operation.operation_id} (designer: {designer})")
    if follow:
        follow_cycle(store, operation.operation_id)


def run_cycles(store: OperationsStore, options: Any, cycles: int) -> list[Operation]:
    """Trigger and follow `cycles` cycles one after another; Ctrl-C cancels the one running and stops."""
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

    finals: list[Operation] = []
    for number in range(1, cycles + 1):
        operation = cycle.trigger(options, store=store)
        designer = operation.record.designer
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
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

    store = open_store()
    state = cycle.status(store)
    if as_json:
        click.echo(state.model_dump_json(indent=2))
    elif follow and isinstance(state, cycle.ActiveStatus):
        follow_cycle(store, state.operation_id)
    else:
        click.echo(describe_status(state))


@agent.command("cancel")
def agent_cancel() -> None:
    """Cancel the active cycle and its running phase (a training stops within one epoch)."""
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

    operation = cycle.cancel(store=open_store())
    click.echo(f"Cancelled {operation.operation_id}.")


SORT_CHOICE = click.Choice(["dsr", "sharpe", "return", "created"])


@agent.command("history")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Rows to show.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip.")
@click.option("--symbol", help="Only cycles on this symbol.")
@click.option("--timeframe", help="Only cycles on this timeframe.")
@click.option("--sort", type=SORT_CHOICE, default="dsr", show_default=True, help="Best first by this figure.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_history(limit: int, offset: int, symbol: str | None, timeframe: str | None, sort: str, as_json: bool) -> None:
    """The leaderboard of finished cycles: best first, the lockbox return in its own marked column."""

    results = leaderboard(
        open_store(), symbol=symbol, timeframe=timeframe, sort=SortKey(sort), limit=limit, offset=offset
    )
    if as_json:
        echo_json([result.to_dict() for result in results])
    else:
        console().print(history_table(results))


@agent.command("evidence")
@click.option("--symbol", help="Only this symbol.")
@click.option("--timeframe", help="Only this timeframe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_evidence(symbol: str | None, timeframe: str | None, as_json: bool) -> None:
    """Per series: trials, the best strategies by deflated Sharpe, discoveries, Hansen's SPA p-value."""

    found = evidence.collect(open_store(), symbol=symbol, timeframe=timeframe)
    if as_json:
        click.echo(found.model_dump_json(indent=2))
    else:
        console().print(*evidence_tables(found))


@agent.command("budget")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def agent_budget(as_json: bool) -> None:
    """Show today's LLM spend against the daily budget."""
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

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

    embedded.prepare_environment(home)
    store = open_store()
    with embedded.embedded_worker():
        finals = run_cycles(store, to_options(**values), cycles)
    if cycles > 1:
        console().print(cycles_table(finals))
    for final in finals:
        echo_report_location(store, final.operation_id)
    sys.exit(run_exit_code(finals))


def echo_report_location(store: OperationsStore, cycle_id: str) -> None:
    """Say where the cycle's plots are and how to get its HTML page (drawing the plots if finalize did not)."""

    plots = plots_of(store, cycle_id)
    where = f"{len(plots)} plot(s) in {plots[0].parent}" if plots else "no plots (nothing to draw yet)"
    click.echo(f"Report: {where}; `ktrdr agent report {cycle_id} --html report.html` writes the page")


@agent.command("report")
@click.argument("cycle_id")
@click.option(
    "--html", "html_file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write one self-contained HTML page (summary and plots inline) to this file.",
)  # fmt: skip
def agent_report(cycle_id: str, html_file: Path | None) -> None:
    """Print a cycle's summary and the paths of its plots (drawn now if absent); --html writes the page."""

    store = open_store()
    cycle = require_cycle(store, cycle_id)
    plots = plots_of(store, cycle_id)
    out = console()
    out.print(cycle_report(store.get(cycle_id)))
    for path in plots:
        out.print(f"Plot: {path}")
    if html_file is not None:
        atomic_write(html_file, html_page(store.get(cycle.operation_id), plots))
        click.echo(f"Wrote {html_file} ({len(plots)} image(s) inline)")


# `ktrdr agent run` exit codes: a gate rejecting a strategy is a research outcome, not a crash.
EXIT_COMPLETED, EXIT_FAILED, EXIT_GATE_REJECTED = 0, 1, 3


def run_exit_code(finals: Sequence[Operation]) -> int:
    """0 when a cycle completed, 3 when every cycle was stopped by a gate, 1 otherwise."""
    if any(op.status == OperationStatus.COMPLETED for op in finals):
        return EXIT_COMPLETED
    if finals and all(outcome_of(op)[0] in GATE_OUTCOMES.values() for op in finals):
        return EXIT_GATE_REJECTED
    return EXIT_FAILED


def follow_cycle(store: OperationsStore, operation_id: str) -> Operation:
    """Live progress of the cycle and its child until it ends; then its report. Returns the final row."""
    from rich.live import Live

    from agent_pipeline.pipeline.cycle import current_child  # lazy: start-up cost (celery, pandas)

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
