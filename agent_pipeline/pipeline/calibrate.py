"""`ktrdr agent calibrate`: run the loop, unattended, on planted edges and on noise, and measure its power.

Each (kind, strength, seed, designer) gets its own synthetic series (`engine.synth`) under a neutral symbol of
its own (a hash: the designer's prompt must not tell what is planted), so its own optimiser study and its own
trial count: deflation sees only the trials made on that series. The loop runs with the default gates, as a
user runs it, for the whole budget of `cycles` cycles. A series is *found* when a discovery stands at the end,
judged over all its trials (`insight.evidence.series_evidence`); a cycle flagged as a discovery when it ran but
not in that judgement is a withdrawn flag (issue 23: a flag over 2 trials fell to DSR 0.65 over 20). Nothing here
reads the lockbox to steer the loop: the lockbox Sharpe of a discovery is read afterwards, for the table.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import mean
from typing import Any

from agent_pipeline.config import Settings, get_settings
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.engine.synth_universe import UniverseRecipe, synth_universe
from agent_pipeline.insight.calibration import SeriesOutcome, run_record
from agent_pipeline.insight.evidence import series_evidence
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.store.history import outcome_of
from agent_pipeline.store.operations import Operation, OperationsStore
from agent_pipeline.store.series import drop_cuts

logger = logging.getLogger(__name__)

TIMEFRAME = "1d"
# Seconds between two reads of a running cycle's row.
POLL_S = 0.5


@dataclass(frozen=True)
class CalibrationPlan:
    """What a calibration run covers. The default runs 40 cycles: a few minutes on 2 CPU cores (a cycle on a
    synthetic daily series took about 2.6 s of one core in bench/results/power.json)."""

    kinds: tuple[str, ...] = ("trend", "reversal", "noise")
    strengths: tuple[float, ...] = (1.0, 2.0)
    seeds: tuple[int, ...] = (1,)
    designers: tuple[str, ...] = ("offline",)
    cycles: int = 8
    bars: int = 5031
    universe_size: int = 0  # 0: one series each; N: a planted universe of N symbols each (issue 24)
    correlation: float = 0.0  # a universe's pairwise correlation of returns (one market factor)


@dataclass(frozen=True)
class SeriesSpec:
    kind: str
    strength: float
    seed: int
    designer: str
    shape: str = ""  # a universe's size and correlation (`u20c0.3`); empty for one series

    @property
    def symbol(self) -> str:
        """`CAL_<8 hex digits>`: one study and one trial count per series (or universe), and a name that tells
        nothing of the kind or strength (the Claude designer reads it in its prompt; issue 23)."""
        key = f"{self.kind}:{self.strength:.4f}:{self.seed}:{self.designer}" + (f":{self.shape}" if self.shape else "")
        return "CAL_" + hashlib.sha256(key.encode()).hexdigest()[:8].upper()


def series_of(plan: CalibrationPlan) -> list[SeriesSpec]:
    """Every series of the plan; noise has no strength, so it gets one series per seed and designer."""
    specs: list[SeriesSpec] = []
    shape = f"u{plan.universe_size}c{plan.correlation:g}" if plan.universe_size else ""
    for kind in plan.kinds:
        for strength in (0.0,) if kind == "noise" else plan.strengths:
            for seed in plan.seeds:
                specs.extend(SeriesSpec(kind, strength, seed, designer, shape) for designer in plan.designers)
    return specs


def wait_for(store: OperationsStore, operation_id: str) -> Operation:
    while not (operation := store.get(operation_id)).status.is_finished:
        time.sleep(POLL_S)
    return operation


def run_series(
    spec: SeriesSpec, plan: CalibrationPlan, store: OperationsStore, settings: Settings, say: Callable[[str], None]
) -> SeriesOutcome:
    """Write the series, run its whole budget of cycles, then judge its discoveries over all its trials."""
    rule_sharpes, options = plant(spec, plan, settings, store)
    cycles: list[Operation] = []
    for number in range(1, plan.cycles + 1):
        cycles.append(wait_for(store, cycle.trigger(options, store=store, settings=settings).operation_id))
        flag = " (flagged a discovery)" if _flagged(cycles[-1]) else ""
        say(f"  {spec.symbol} cycle {number}/{plan.cycles}: {outcome_of(cycles[-1])[0].value}{flag}, "
            f"walk-forward Sharpe {_sharpe(cycles[-1])}")  # fmt: skip
    lasting, withdrawn, candidates = judge_series(store, spec.symbol, cycles)
    say(f"  {spec.symbol}: discoveries at the end {lasting or 'none'}, withdrawn flags {withdrawn or 'none'}")
    sharpes = [s for s in map(_sharpe, cycles) if s is not None]
    first = lasting[0] if lasting else None
    return SeriesOutcome(
        kind=spec.kind,
        strength=spec.strength,
        seed=spec.seed,
        designer=spec.designer,
        symbol=spec.symbol,
        cycles_run=len(cycles),
        rule_sharpe=rule_sharpes[0],
        rule_lockbox_sharpe=rule_sharpes[1],
        first_lasting_discovery=first,
        discoveries=lasting,
        withdrawn_flags=withdrawn,
        best_sharpe=max(sharpes) if sharpes else None,
        discovery_lockbox_sharpe=_lockbox_sharpe(cycles[first - 1]) if first else None,
        outcomes=[outcome_of(c)[0].value for c in cycles],
        candidates=candidates,
    )


def plant(
    spec: SeriesSpec, plan: CalibrationPlan, settings: Settings, store: OperationsStore
) -> tuple[tuple[float, float], CycleOptions]:
    """Write the spec's series, or its planted universe, and return its rule's Sharpe (research period, lockbox;
    a universe's: the mean of its symbols') and the options of its cycles.

    The series is written anew (replaced), so it is a new series (issue 27): the research ends fixed for it (the
    universe's and each symbol's) are dropped, and its first cycle fixes them again on the bars written now.
    """
    assert settings.data_dir is not None
    if plan.universe_size:
        recipe = UniverseRecipe(
            spec.kind, spec.strength, spec.seed, plan.universe_size, correlation=plan.correlation, bars=plan.bars,
            timeframe=TIMEFRAME, lockbox_fraction=settings.lockbox_fraction,
        )  # fmt: skip
        made = synth_universe(spec.symbol, recipe, data_dir=settings.data_dir, replace=True)
        drop_cuts(store, symbols=[spec.symbol, *made.info.symbols], timeframe=TIMEFRAME)
        series = made.series
        sharpes = (mean(s.research_sharpe for s in series), mean(s.lockbox_sharpe for s in series))
        return sharpes, CycleOptions(designer=spec.designer, universe=spec.symbol, timeframe=TIMEFRAME)
    _, info = write_synth(
        spec.kind, spec.strength, spec.seed, symbol=spec.symbol, timeframe=TIMEFRAME, data_dir=settings.data_dir,
        bars=plan.bars, lockbox_fraction=settings.lockbox_fraction,
    )  # fmt: skip
    drop_cuts(store, symbols=[spec.symbol], timeframe=TIMEFRAME)
    sharpes = (info.research_sharpe, info.lockbox_sharpe)
    return sharpes, CycleOptions(designer=spec.designer, symbol=spec.symbol, timeframe=TIMEFRAME)


def judge_series(
    store: OperationsStore, symbol: str, cycles: list[Operation]
) -> tuple[list[int], list[int], list[int]]:
    """The end judgement of a series over all its trials (one `series_evidence`), as 1-based numbers of `cycles`.

    Returns:
        (the cycles that are discoveries now, the cycles flagged a discovery when they ran that are not, the cycles
        that are candidates now: issue 23's discoveries, which the promotion step then promotes or rejects; both
        definitions are reported, issue 24).
    """
    evidence = series_evidence(store, symbol, TIMEFRAME)
    found = {trial.cycle_id for trial in evidence.discoveries}
    candidates = {trial.cycle_id for trial in evidence.candidates}
    lasting = [number for number, run in enumerate(cycles, 1) if run.operation_id in found]
    withdrawn = [number for number, run in enumerate(cycles, 1) if _flagged(run) and number not in lasting]
    return lasting, withdrawn, [number for number, run in enumerate(cycles, 1) if run.operation_id in candidates]


def _flagged(run: Operation) -> bool:
    """Whether the cycle called itself a discovery when it ran, with the trials known then. A later cycle's end
    may rewrite `discovery`; `discovery_at_run` then keeps the first verdict (store.discoveries)."""
    summary = run.result_summary or {}
    return bool(summary["discovery_at_run"] if "discovery_at_run" in summary else summary.get("discovery"))


def _sharpe(run: Operation) -> float | None:
    sharpe = (run.record.backtest_result or {}).get("sharpe_ratio")
    return float(sharpe) if isinstance(sharpe, int | float) else None


def _lockbox_sharpe(run: Operation) -> float | None:
    sharpe = ((run.result_summary or {}).get("lockbox") or {}).get("sharpe_ratio")
    return float(sharpe) if isinstance(sharpe, int | float) else None


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
