"""Calibration results: the loop's power on planted edges and its size on noise, as a table, a file and a plot.

A calibration run (`ktrdr agent calibrate`, pipeline/calibrate.py) runs the loop on synthetic series whose edge is
known, each for its whole budget of cycles. Each series gives one `SeriesOutcome`: its discoveries as judged at the
end over all its trials, and its withdrawn flags (cycles that called themselves a discovery when they ran, with
fewer trials known, but are not one at the end). `power_table` groups them by kind, strength and designer. The last
run is kept as JSON under `$KTRDR_ARTIFACTS_DIR/calibration/` (the API serves it) beside its power-curve plot.
matplotlib (Agg canvas, no pyplot state) is imported only inside `plot_power_curve`.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent_pipeline.engine.files import atomic_write, atomic_write_with
from agent_pipeline.errors import CalibrationNotFoundError

LAST_RUN = "last.json"
POWER_CURVE = "power_curve.png"


@dataclass(frozen=True)
class SeriesOutcome:
    """What the loop did on one synthetic series over its whole budget of cycles."""

    kind: str
    strength: float
    seed: int
    designer: str
    symbol: str  # neutral (a hash): the kind and strength are known here only
    cycles_run: int
    rule_sharpe: float | None  # the planted rule's annualised Sharpe on the research period
    rule_lockbox_sharpe: float | None
    # 1-based number of the earliest cycle that is a discovery in the end judgement (over all trials), or None
    first_lasting_discovery: int | None = None
    discoveries: list[int] = field(default_factory=list)  # every cycle that is a discovery in the end judgement
    withdrawn_flags: list[int] = field(default_factory=list)  # flagged when they ran, not discoveries at the end
    best_sharpe: float | None = None  # the best walk-forward (out-of-sample) Sharpe of any backtested cycle
    discovery_lockbox_sharpe: float | None = None  # the first lasting discovery's lockbox Sharpe
    outcomes: list[str] = field(default_factory=list)  # per cycle: passed / training_gate / backtest_gate / ...
    # Every cycle that is a candidate at the end (completed, both gates passed, deflated Sharpe >= 0.95 over all
    # trials): issue 23's discoveries, before the promotion step (issue 25) promotes or rejects them.
    candidates: list[int] = field(default_factory=list)

    @property
    def discovered(self) -> bool:
        """Found: a discovery stands at the end of the budget."""
        return self.first_lasting_discovery is not None


def outcomes_of(record: dict[str, Any]) -> list[SeriesOutcome]:
    """The series of a saved run record (its JSON `series`), as outcomes again."""
    fields = set(SeriesOutcome.__dataclass_fields__)
    return [SeriesOutcome(**{k: v for k, v in series.items() if k in fields}) for series in record["series"]]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def censored_median(members: list[SeriesOutcome]) -> str | None:
    """The median cycle of the first lasting discovery over every series, a series without one counted as beyond
    its budget (a survival median): `"13"`, or `">20"` when half or more found nothing within 20 cycles."""
    if not members:
        return None
    budget = max(m.cycles_run for m in members)
    values = sorted(
        math.inf if m.first_lasting_discovery is None else float(m.first_lasting_discovery) for m in members
    )
    middle = statistics.median(values)
    return f">{budget}" if math.isinf(middle) else f"{middle:g}"


def power_table(outcomes: list[SeriesOutcome]) -> list[dict[str, Any]]:
    """One row per (kind, strength, designer): discovery rate at the end, the cycle of the first lasting
    discovery, withdrawn flags, Sharpes.

    On noise the discovery rate is the false-discovery rate: every discovery there is false. The cycle of the first
    lasting discovery comes twice: its median over the series that found one, and over all (`censored_median`),
    the fair comparison between designers that found different numbers. `withdrawn_flags` counts the group's
    cycles that called themselves a discovery when they ran but are not one at the end.
    """
    groups: dict[tuple[str, float, str], list[SeriesOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.kind, outcome.strength, outcome.designer), []).append(outcome)
    rows = []
    for (kind, strength, designer), members in sorted(groups.items()):
        found = [m for m in members if m.discovered]
        rule_lockbox = [m.rule_lockbox_sharpe for m in members if m.rule_lockbox_sharpe is not None]
        rows.append({
            "kind": kind,
            "strength": strength,
            "designer": designer,
            "series": len(members),
            "discoveries": len(found),
            "discovery_rate": round(len(found) / len(members), 3),
            # the cycle of the first lasting discovery (the keys kept from when it was the first flag)
            "median_cycles_to_discovery": _median([float(m.first_lasting_discovery or 0) for m in found]),
            "median_cycles_to_discovery_all": censored_median(members),
            "withdrawn_flags": sum(len(m.withdrawn_flags) for m in members),
            "median_best_sharpe": _median([m.best_sharpe for m in members if m.best_sharpe is not None]),
            "mean_rule_sharpe": _mean([m.rule_sharpe for m in members if m.rule_sharpe is not None]),
            "median_discovery_lockbox_sharpe": _median(
                [m.discovery_lockbox_sharpe for m in found if m.discovery_lockbox_sharpe is not None]
            ),
            "mean_rule_lockbox_sharpe": _mean(rule_lockbox),
        })  # fmt: skip
    return rows


def false_discovery_rate(outcomes: list[SeriesOutcome]) -> float | None:
    """Discoveries per noise series (None without noise series)."""
    noise = [o for o in outcomes if o.kind == "noise"]
    return round(sum(o.discovered for o in noise) / len(noise), 3) if noise else None


def withdrawn_flags(outcomes: list[SeriesOutcome]) -> int:
    """Cycles flagged as discoveries when they ran that the end judgement withdrew, over every series."""
    return sum(len(o.withdrawn_flags) for o in outcomes)


def run_record(outcomes: list[SeriesOutcome], plan: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The JSON document of a calibration run: its plan, the power table, and every series."""
    return {
        "plan": plan,
        "seconds": round(seconds, 1),
        "false_discovery_rate": false_discovery_rate(outcomes),
        "withdrawn_flags": withdrawn_flags(outcomes),
        "power": power_table(outcomes),
        "series": [asdict(o) | {"discovered": o.discovered} for o in outcomes],
    }


def save_run(record: dict[str, Any], folder: Path) -> Path:
    """Write the run as `folder/last.json`, atomically (a reader never sees half a file); returns the path."""
    target = folder / LAST_RUN
    atomic_write(target, json.dumps(record, indent=2).encode())
    return target


def load_run(folder: Path) -> dict[str, Any]:
    """The last calibration run saved in `folder`.

    Raises:
        CalibrationNotFoundError: no run was saved there yet.
    """
    path = folder / LAST_RUN
    if not path.is_file():
        raise CalibrationNotFoundError("no calibration run yet: run `ktrdr agent calibrate`")
    return dict(json.loads(path.read_text()))


def plot_power_curve(record: dict[str, Any], path: Path) -> Path:
    """Discovery rate against strength, one line per kind and designer; noise as the false-discovery level."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: start-up cost (matplotlib)
    from matplotlib.figure import Figure  # lazy: start-up cost (matplotlib)

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in record["power"]:
        if row["kind"] != "noise":
            lines.setdefault((row["kind"], row["designer"]), []).append((row["strength"], row["discovery_rate"]))
    for (kind, designer), points in sorted(lines.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=f"{kind} ({designer})")
    if record.get("false_discovery_rate") is not None:
        ax.axhline(record["false_discovery_rate"], color="grey", linestyle="--", label="noise (false discoveries)")
    ax.set_xlabel("planted rule's Sharpe (research period)")
    ax.set_ylabel("discovery rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Power of the loop: discoveries standing at the end of the cycle budget")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return atomic_write_with(path, lambda handle: figure.savefig(handle, format="png"))
