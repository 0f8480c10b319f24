"""`ktrdr agent calibrate`: run the loop, unattended, on planted edges and on noise, and measure its power.

Each (kind, strength, seed, designer) gets its own synthetic series (`engine.synth`) under a symbol of its own, so
its own optimiser study and its own trial count: deflation sees only the trials made on that series. The loop
runs with the default gates, as a user runs it, for at most `cycles` cycles; a series stops at its first
discovery (deflated Sharpe >= 0.95 on the walk-forward backtest, both gates passed). Nothing here reads the
lockbox to steer the loop: the lockbox Sharpe of a discovery is read afterwards, for the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agent_pipeline.config import Settings, get_settings
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.insight.calibration import SeriesOutcome, run_record
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.store.history import outcome_of
from agent_pipeline.store.operations import Operation, OperationsStore

logger = logging.getLogger(__name__)

TIMEFRAME = "1d"
# Seconds between two reads of a running cycle's row.
POLL_S = 0.5


@dataclass(frozen=True)
class CalibrationPlan:
    """What a calibration run covers. The default finishes in about 15 minutes on 2 CPU cores."""

    kinds: tuple[str, ...] = ("trend", "reversal", "noise")
    strengths: tuple[float, ...] = (1.0, 2.0)
    seeds: tuple[int, ...] = (1,)
    designers: tuple[str, ...] = ("offline",)
    cycles: int = 8
    bars: int = 5031


@dataclass(frozen=True)
class SeriesSpec:
    kind: str
    strength: float
    seed: int
    designer: str

    @property
    def symbol(self) -> str:
        """`CAL_<KIN><strength x100>_S<seed>_<DES>`: one study and one trial count per series."""
        return f"CAL_{self.kind[:3].upper()}{round(self.strength * 100):03d}_S{self.seed}_{self.designer[:3].upper()}"


def series_of(plan: CalibrationPlan) -> list[SeriesSpec]:
    """Every series of the plan; noise has no strength, so it gets one series per seed and designer."""
    specs: list[SeriesSpec] = []
    for kind in plan.kinds:
        for strength in (0.0,) if kind == "noise" else plan.strengths:
            for seed in plan.seeds:
                specs.extend(SeriesSpec(kind, strength, seed, designer) for designer in plan.designers)
    return specs


def wait_for(store: OperationsStore, operation_id: str) -> Operation:
    while not (operation := store.get(operation_id)).status.is_finished:
        time.sleep(POLL_S)
    return operation


def run_series(
    spec: SeriesSpec, plan: CalibrationPlan, store: OperationsStore, settings: Settings, say: Callable[[str], None]
) -> SeriesOutcome:
    """Write the series, then run cycles on it until the first discovery or the budget."""
    assert settings.data_dir is not None
    _, info = write_synth(
        spec.kind, spec.strength, spec.seed, symbol=spec.symbol, timeframe=TIMEFRAME, data_dir=settings.data_dir,
        bars=plan.bars, lockbox_fraction=settings.lockbox_fraction,
    )  # fmt: skip
    options = CycleOptions(designer=spec.designer, symbol=spec.symbol, timeframe=TIMEFRAME)
    outcomes: list[str] = []
    sharpes: list[float] = []
    found: tuple[int, float | None] | None = None  # (cycle number, its lockbox Sharpe)
    for number in range(1, plan.cycles + 1):
        final = wait_for(store, cycle.trigger(options, store=store, settings=settings).operation_id)
        outcomes.append(outcome_of(final)[0].value)
        sharpe = (final.metadata.get("backtest_result") or {}).get("sharpe_ratio")
        sharpes += [float(sharpe)] if isinstance(sharpe, int | float) else []
        say(f"  {spec.symbol} cycle {number}/{plan.cycles}: {outcomes[-1]}, walk-forward Sharpe {sharpe}")
        summary = final.result_summary or {}
        if summary.get("discovery"):
            found = (number, (summary.get("lockbox") or {}).get("sharpe_ratio"))
            break
    return SeriesOutcome(
        kind=spec.kind,
        strength=spec.strength,
        seed=spec.seed,
        designer=spec.designer,
        symbol=spec.symbol,
        cycles_run=len(outcomes),
        rule_sharpe=info.research_sharpe,
        rule_lockbox_sharpe=info.lockbox_sharpe,
        first_discovery=found[0] if found else None,
        best_sharpe=max(sharpes) if sharpes else None,
        discovery_lockbox_sharpe=found[1] if found else None,
        outcomes=outcomes,
    )


def calibrate(
    plan: CalibrationPlan, store: OperationsStore, say: Callable[[str], None] = logger.info
) -> dict[str, Any]:
    """Run the plan (an embedded or full-stack worker must be consuming) and return the run's record."""
    settings, started, results = get_settings(), time.perf_counter(), []
    specs = series_of(plan)
    for number, spec in enumerate(specs, 1):
        say(f"series {number}/{len(specs)}: {spec.kind} strength {spec.strength} seed {spec.seed} ({spec.designer})")
        results.append(run_series(spec, plan, store, settings, say))
    return run_record(results, asdict(plan), time.perf_counter() - started)
