"""`ktrdr agent replay CYCLE_ID`: a cycle's research period trained and backtested again from its record, every
figure beside the recorded one (issue 25; `engine/replay.py`). It never trades the lockbox: it is no lockbox read."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent_pipeline.cli.agent import agent
from agent_pipeline.cli.app import open_store
from agent_pipeline.errors import OperationNotFoundError
from agent_pipeline.store.operations import Operation, OperationsStore, OperationStatus, OperationType
from agent_pipeline.store.record import ReplayRecord

if TYPE_CHECKING:
    from agent_pipeline.engine.replay import Figure, ReplayPlan

T = TypeVar("T")
# Width of a figure's value columns: a float's repr has at most 24 characters.
VALUE_WIDTH = 24


@agent.command("replay")
@click.argument("cycle_id")
def replay(cycle_id: str) -> None:
    """Train and backtest CYCLE_ID's research period again from its record, and compare every figure.

    Ends with `identical` (exit 0) when every figure matches: bit for bit for a cycle trained on the CPU, within
    1e-6 relative for one trained on CUDA. Otherwise `differs: <figures>` (exit 1). Refused when the research bars
    changed since the cycle. The lockbox is not traded: a replay is no lockbox read.
    """
    from agent_pipeline.engine import replay as engine  # lazy: start-up cost (torch, pandas)
    from agent_pipeline.engine.datastore import synced_data_dir  # lazy: start-up cost (the artifact store)

    record, training, backtest = recorded(open_store(), cycle_id)
    plan = replay_plan(cycle_id, record, with_backtest=backtest is not None)
    tolerance = 0.0 if record.device == "cpu" else engine.CUDA_TOLERANCE
    with tempfile.TemporaryDirectory(prefix="ktrdr-replay-") as work:
        replayed = engine.replay(
            plan,
            data_dir=synced_data_dir(),
            work_dir=Path(work),
            on_checked=lambda: click.echo(header(cycle_id, record, plan, tolerance)),
        )
    figures = engine.compare("training", training, replayed.training, engine.TRAINING_FIGURES, tolerance)
    if backtest is not None and replayed.backtest is not None:
        figures += engine.compare("backtest", backtest, replayed.backtest, engine.BACKTEST_FIGURES, tolerance)
    click.echo(figures_table(figures))
    for name, (then, now) in sorted(changed_versions(record.versions or {}, engine.versions()).items()):
        click.echo(f"note: {name} {then} when recorded, {now} now")
    differs = [f"{figure.phase} {figure.name}" for figure in figures if not figure.same]
    if differs:
        click.echo(f"differs: {', '.join(differs)}")
        sys.exit(1)
    click.echo("identical")


def recorded(store: OperationsStore, cycle_id: str) -> tuple[ReplayRecord, dict[str, Any], dict[str, Any] | None]:
    """The cycle's replay record, its training's summary and its backtest's (None when it never backtested).

    Raises:
        ClickException: an unknown or unfinished cycle, one without a finished training, or without a record.
    """
    try:
        cycle = store.get(cycle_id)
    except OperationNotFoundError:
        raise click.ClickException(f"unknown cycle {cycle_id}") from None
    if cycle.operation_type != OperationType.AGENT_RESEARCH:
        raise click.ClickException(f"{cycle_id} is not a research cycle")
    if not cycle.status.is_finished:
        raise click.ClickException(f"cycle {cycle_id} has not finished ({cycle.status}): replay it once it has")
    training = finished_child(store, cycle.record.training_op_id)
    if training is None:
        raise click.ClickException(f"cycle {cycle_id} has no finished training to replay")
    backtest = finished_child(store, cycle.record.backtest_op_id)
    record = ReplayRecord.of(training.result_summary, backtest.result_summary if backtest else None)
    if record is None:
        raise click.ClickException(no_record(cycle_id))
    return record, training.result_summary or {}, backtest.result_summary if backtest else None


def finished_child(store: OperationsStore, operation_id: str | None) -> Operation | None:
    """The phase's operation when it completed; None when it never ran or did not complete."""
    if operation_id is None:
        return None
    child = store.get(operation_id)
    return child if child.status == OperationStatus.COMPLETED and child.result_summary else None


def no_record(cycle_id: str) -> str:
    return f"cycle {cycle_id} has no replay record (it ran before replays were recorded)"


def replay_plan(cycle_id: str, record: ReplayRecord, *, with_backtest: bool) -> ReplayPlan:
    """What the engine runs: the record's document, bars, seeds and settings; on the CPU for a CPU record.

    Raises:
        ClickException: the record lacks a value the replay needs.
    """
    from agent_pipeline.engine.replay import ReplayPlan  # lazy: start-up cost (torch, pandas)
    from agent_pipeline.engine.research import Evaluation, Trials  # lazy: start-up cost (torch, pandas)

    def need(value: T | None) -> T:
        if value is None:
            raise click.ClickException(no_record(cycle_id))
        return value

    trials = Trials(need(record.trials) - 1, tuple(need(record.trial_sharpes))) if with_backtest else None
    return ReplayPlan(
        strategy_yaml=need(record.strategy_yaml),
        bars_sha256=need(record.bars_sha256),
        bars_end=need(record.bars_end),
        seed=need(record.seed),
        evaluation=Evaluation(lockbox_fraction=need(record.lockbox_fraction), folds=need(record.folds)),
        batched=bool(record.batched),
        torch_threads=record.torch_threads or 0,
        device="cpu" if record.device == "cpu" else "auto",
        trials=trials,
    )


def header(cycle_id: str, record: ReplayRecord, plan: ReplayPlan, tolerance: float) -> str:
    """What is replayed, from what, and how the figures are compared."""
    recorded_on = f"{record.device} ({record.device_name})" if record.device_name else str(record.device)
    how = "bit for bit" if tolerance == 0 else f"within {tolerance:g} relative (trained on {recorded_on})"
    together = "together" if plan.batched else "one by one"
    lines = [
        f"Replay of {cycle_id}: the research period of {', '.join(record.symbols or [])} as the cycle cut it",
        f"  bars up to {plan.bars_end} less the lockbox, sha256 {plan.bars_sha256} (unchanged)",
        f"  seed {plan.seed}, {plan.evaluation.folds} folds trained {together}, lockbox fraction "
        f"{plan.evaluation.lockbox_fraction:g} (not traded), {plan.torch_threads or 'default'} torch thread(s)",
        f"  trained on {recorded_on}, replayed on {'cpu' if plan.device == 'cpu' else 'the best device here'}",
    ]
    if plan.trials is not None:
        lines.append(f"  deflated Sharpe over the recorded {plan.trials.count + 1} trial(s) on the series")
    return "\n".join([*lines, f"Figures compared {how}:"])


def figures_table(figures: Sequence[Figure]) -> str:
    """One line a figure: its name, recorded and replayed values in full (repr), and `=` or `!=`."""
    width = max((len(f"{figure.phase} {figure.name}") for figure in figures), default=0)
    rows = [f"  {'figure':<{width}}  {'recorded':>{VALUE_WIDTH}}  {'replayed':>{VALUE_WIDTH}}"]
    for figure in figures:
        then, now, mark = show(figure.recorded), show(figure.replayed), "=" if figure.same else "!="
        rows.append(
            f"  {figure.phase + ' ' + figure.name:<{width}}  {then:>{VALUE_WIDTH}}  {now:>{VALUE_WIDTH}}  {mark}"
        )
    return "\n".join(rows)


def show(value: Any) -> str:
    """A value in full: a float as its shortest exact repr, so equal text means equal bits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


def changed_versions(then: dict[str, str], now: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The packages whose version differs from the record's (a note: figures may differ with them)."""
    return {name: (version, now.get(name, "?")) for name, version in then.items() if now.get(name) != version}
