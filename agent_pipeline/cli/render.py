"""Rendering for the CLI: rich tables and panels, and the formatting of figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agent_pipeline.insight.summary import num, pct, plural, report_rows
from agent_pipeline.store.operations import (
    Operation,
    OperationStatus,
    utcnow,
)

# Longest error text shown in a table cell; `ktrdr operations status` shows it whole.
ERROR_CELL_WIDTH = 48


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


def cycles_table(finals: Sequence[Operation]) -> Any:
    """One line per cycle of a multi-cycle run: what was tried and how it ended."""
    from rich.table import Table
    from rich.text import Text

    # lazy: the study pulls pandas and the engine, kept off `ktrdr --help`'s start-up path
    from agent_pipeline.llm.study import told

    table = Table(title="Research cycles", title_justify="left")
    headers = ("#", "Cycle", "Strategy", "Accuracy", "Return", "Buy & hold", "Objective", "Best so far", "Outcome")
    for header in headers:
        table.add_column(header)
    best: float | None = None  # the running best of the optimiser's walk-forward objective (issue 9)
    for number, op in enumerate(finals, 1):
        training = op.record.training_result or {}
        backtest = op.record.backtest_result or {}
        outcome = op.status.value if op.status == OperationStatus.COMPLETED else (op.error_message or op.status.value)
        value = told(op)[0]
        best = value if best is None or (value is not None and value > best) else best
        table.add_row(
            str(number),
            op.operation_id,
            str(op.record.strategy_name or "-"),
            pct(training.get("accuracy")),
            pct(backtest.get("total_return")),
            pct(backtest.get("buy_and_hold_return")),
            num(value, 2),
            num(best, 2),
            Text(truncate(outcome, 70), style=STATUS_STYLES[op.status]),
        )
    return table


def progress_view(operation: Operation, child: Operation | None) -> Any:
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_row("Cycle", operation.operation_id, operation.status.value)
    table.add_row("Phase", str(operation.record.phase or "queued"), f"{format_percentage(operation)}")
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


# The lockbox column's mark and the note under the history table that explains it.
LOCKBOX_MARK = "†"
LOCKBOX_NOTE = f"{LOCKBOX_MARK} lockbox: traded once after research, shown to people, never fed back to the loop"


def outcome_text(result: Any) -> str:
    """`passed` (`passed, discovery`), `bypassed: <what each gate would have said>`, `training gate: <reason>`,
    `backtest gate: <reason>`, `cancelled` or `error: <message>`."""
    if result.outcome == "passed":
        return "passed, discovery" if result.discovery else "passed"
    label = result.outcome.replace("_", " ")
    return f"{label}: {result.reason}" if result.reason and result.outcome != "cancelled" else label


def history_table(results: Sequence[Any]) -> Any:
    """The leaderboard: one line per finished cycle, the lockbox return in its own marked column."""
    from rich.table import Table

    caption = "\n".join([LOCKBOX_NOTE, *lockbox_lines(results)])
    table = Table(title="Research history", title_justify="left", caption=caption, caption_justify="left")
    table.add_column("Cycle", no_wrap=True, min_width=42)  # full ids: `ktrdr agent report <id>` takes them
    for header in ("Strategy", "Series", "Designer", "Outcome"):
        table.add_column(header)
    for header in ("Bal. acc", "OOS Sharpe", "Trades", "DSR", "Excess", "Cost", f"Lockbox{LOCKBOX_MARK}"):
        table.add_column(header, justify="right", no_wrap=True)
    for result in results:
        series = f"{result.symbol} {result.timeframe}" if result.symbol else "-"
        cost = f"${result.cost_usd:.4f}" if result.cost_usd is not None else "-"
        table.add_row(
            result.operation_id,
            result.strategy_name or "-",
            series,
            result.designer or "-",
            truncate(outcome_text(result), 60),
            pct(result.balanced_accuracy),
            num(result.sharpe_ratio, 2),
            str(result.num_trades) if result.num_trades is not None else "-",
            num(result.deflated_sharpe, 2),
            pct(result.excess_return),
            cost,
            pct(result.lockbox_return),
        )
    return table


def lockbox_lines(results: Sequence[Any]) -> list[str]:
    """Per series on the page: its lockbox reads, and the best lockbox Sharpe deflated over them (issue 25)."""
    seen = {(r.symbol, r.timeframe): r.series_lockbox for r in results if r.series_lockbox is not None}
    return [
        f"{LOCKBOX_MARK} {symbol} {timeframe}: {plural(box.reads, 'lockbox read')}; best lockbox Sharpe "
        f"{num(box.best_sharpe, 2)}, deflated over the reads (DSR) {num(box.deflated_sharpe, 2)}"
        for (symbol, timeframe), box in seen.items()
    ]


def evidence_tables(found: Any) -> list[Any]:
    """One table per series: its trials, SPA p-value, PBO and best strategies (an `evidence.Evidence`)."""
    from rich.table import Table

    if not found.series:
        return ["No research cycles with a designed strategy yet."]
    tables = []
    for series in found.series:
        spa = num(series.spa_pvalue, 3) if series.spa_pvalue is not None else "- (too little data)"
        discoveries = "discovery" if len(series.discoveries) == 1 else "discoveries"
        strategies = "strategy" if series.spa_models == 1 else "strategies"
        title = (
            f"{series.symbol} {series.timeframe}: {plural(series.trials, 'trial')}, "
            f"{len(series.discoveries)} {discoveries}, SPA p-value vs buy-and-hold {spa} over "
            f"{series.spa_models} {strategies}\n{overfitting_line(series)}"
        )
        table = Table(title=title, title_justify="left")
        for header in ("Cycle", "Strategy", "Outcome", "Deflated Sharpe", "PSR", "Sharpe", "Trades", "Excess"):
            table.add_column(header)
        for trial in series.best:
            table.add_row(
                trial.cycle_id,
                trial.strategy_name or "-",
                f"{trial.outcome}, discovery" if trial.discovery else trial.outcome,
                num(trial.deflated_sharpe, 2),
                num(trial.psr, 2),
                num(trial.sharpe_ratio, 2),
                str(trial.num_trades if trial.num_trades is not None else "-"),
                pct(trial.excess_return),
            )
        tables.append(table)
    return tables


def overfitting_line(series: Any) -> str:
    """The series' probability of backtest overfitting (an `evidence.SeriesEvidence`), or why there is none yet."""
    found = series.pbo
    if found is None:
        return f"Probability of backtest overfitting: - ({series.pbo_reason})"
    return (
        f"Probability of backtest overfitting (CSCV, {plural(found.n_trials, 'trial')}, {found.blocks} blocks): "
        f"{pct(found.pbo)}; median logit {num(found.logit_quantiles.get('q50'), 2)}; in-sample best loses out of "
        f"sample in {pct(found.probability_of_loss)} of splits"
    )
