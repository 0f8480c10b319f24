"""`ktrdr agent calibrate`: the loop's power on planted edges and its false discoveries on noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agent_pipeline.cli.agent import agent
from agent_pipeline.cli.app import console, echo_json, open_store
from agent_pipeline.config import get_settings
from agent_pipeline.insight.calibration import POWER_CURVE, plot_power_curve, save_run
from agent_pipeline.pipeline import embedded

KINDS = ("trend", "reversal", "noise")
DESIGNERS = ("offline", "random", "anthropic")
MAX_STRENGTH = 4.0


def _names(allowed: tuple[str, ...]) -> Any:
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        unknown = [name for name in names if name not in allowed]
        if not names or unknown:
            raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(allowed)}")
        return names

    return parse


def _numbers(kind: type, low: float, high: float) -> Any:
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[Any, ...]:
        try:
            numbers = tuple(kind(item) for item in value.split(",") if item.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
        if not numbers or any(not low <= n <= high for n in numbers):
            raise click.BadParameter(f"{value!r}: each must lie in [{low:g}, {high:g}]")
        return numbers

    return parse


@agent.command("calibrate")
@click.option(
    "--kinds",
    default="trend,reversal,noise",
    show_default=True,
    callback=_names(KINDS),
    help="Series kinds: planted edges (trend, reversal) and noise (a random walk).",
)
@click.option(
    "--strengths",
    default="1.0,2.0",
    show_default=True,
    callback=_numbers(float, 0.0, MAX_STRENGTH),
    help="Planted edges' strengths: the simple rule's annualised Sharpe on the research period.",
)
@click.option(
    "--seeds",
    default="1",
    show_default=True,
    callback=_numbers(int, 0, 2**31 - 1),
    help="Seeds of the synthetic series (one series per kind, strength, seed and designer).",
)
@click.option(
    "--designers",
    default="offline",
    show_default=True,
    callback=_names(DESIGNERS),
    help="Designers to compare on the same series, each in its own study.",
)
@click.option(
    "--cycles",
    type=click.IntRange(1, 500),
    default=8,
    show_default=True,
    help="Cycle budget per series; every series runs all of it, and is found when a discovery stands at the end.",
)
@click.option("--bars", type=click.IntRange(1000, 50_000), default=5031, show_default=True, help="Bars per series.")
@click.option(
    "--universe-size", type=click.IntRange(0, 500), default=0, show_default=True,
    help="Plant a universe of this many symbols per series (one model across them); 0: one series each.",
)  # fmt: skip
@click.option(
    "--correlation", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
    help="With --universe-size: the symbols' pairwise correlation of returns (one shared market factor).",
)  # fmt: skip
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".ktrdr"),
    show_default=True,
    envvar="KTRDR_HOME",
    help="Folder for the SQLite file, the series, models and the results.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
def agent_calibrate(home: Path, as_json: bool, **values: Any) -> None:
    """Run the loop on planted edges and on noise (gates on, in this process) and print its power table.

    Every series runs its whole budget of cycles under a neutral symbol; it counts as found when a discovery stands
    at the end, judged over all its trials. Flags raised earlier and withdrawn by that judgement are counted.

    The last run is saved under $KTRDR_ARTIFACTS_DIR/calibration/ (last.json and power_curve.png) and served by
    `GET /api/v1/agent/calibration`.
    """
    from agent_pipeline.pipeline.calibrate import CalibrationPlan, calibrate  # lazy: start-up cost (celery, torch)

    plan = CalibrationPlan(**values)
    embedded.prepare_environment(home)
    store = open_store()
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    with embedded.embedded_worker():
        record = calibrate(plan, store, say)
    folder = get_settings().artifacts_dir
    assert folder is not None
    saved = save_run(record, folder / "calibration")
    plot_power_curve(record, saved.parent / POWER_CURVE)
    if as_json:
        echo_json(record)
        return
    console().print(power_table(record))
    click.echo(f"False-discovery rate on noise: {record['false_discovery_rate']}")
    click.echo(f"Withdrawn flags (discoveries when they ran, not at the end): {record['withdrawn_flags']}")
    click.echo(f"Saved {saved} and {saved.parent / POWER_CURVE} ({record['seconds']:.0f} s)")


def power_table(record: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        title="Power of the loop (found: a discovery stands at the end, judged over all the series' trials)",
        title_justify="left",
    )
    columns = (
        ("kind", "Kind"), ("strength", "Strength"), ("designer", "Designer"), ("series", "Series"),
        ("discovery_rate", "Discovery rate"), ("median_cycles_to_discovery", "1st lasting (found)"),
        ("median_cycles_to_discovery_all", "1st lasting (all)"), ("withdrawn_flags", "Withdrawn flags"),
        ("median_best_sharpe", "Best WF Sharpe"), ("mean_rule_sharpe", "Rule Sharpe"),
        ("median_discovery_lockbox_sharpe", "Lockbox Sharpe"), ("mean_rule_lockbox_sharpe", "Rule lockbox"),
    )  # fmt: skip
    for _, header in columns:
        table.add_column(header)
    for row in record["power"]:
        table.add_row(*("-" if row.get(key) is None else str(row[key]) for key, _ in columns))
    return table
