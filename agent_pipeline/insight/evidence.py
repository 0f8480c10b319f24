"""Evidence across trials: for each series, how many strategies were tried, the best by deflated Sharpe, the
discoveries, and Hansen's SPA p-value of the whole set against buy-and-hold.

Everything here is research-period, out-of-sample figures; the lockbox is never read.
SPA: Hansen, P. R. (2005), "A Test for Superior Predictive Ability", Journal of Business & Economic Statistics
23(4), computed by `arch.bootstrap.SPA` (stationary bootstrap, studentized) on per-bar losses (minus returns)
of every strategy's stitched out-of-sample record, aligned on the bars they share.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from agent_pipeline.engine.artifacts import child_of, fetch
from agent_pipeline.errors import ArtifactNotFoundError
from agent_pipeline.store.discoveries import Judgement, judge
from agent_pipeline.store.history import outcome_of
from agent_pipeline.store.operations import Operation, OperationsStore

logger = logging.getLogger(__name__)

# How many strategies `best` lists per series.
BEST_LIMIT = 5
# SPA needs a common out-of-sample stretch at least this long to mean anything.
MIN_COMMON_BARS = 50
# Bootstrap replications of the SPA test, and its seed (a repeatable p-value for the same records).
SPA_REPS = 1000
SPA_SEED = 7


class Trial(BaseModel):
    """One strategy's research-period figures.

    `deflated_sharpe` is recomputed against every trial on the series now; `deflated_sharpe_at_run` is what the
    cycle recorded when it ran, with the trials known then (never higher in a growing search, as a rule). A trial
    stopped by a gate or let through by `--bypass-gates` counts, and is listed, but is never a discovery.
    """

    cycle_id: str
    strategy_name: str | None
    status: str
    outcome: str  # passed, bypassed, training_gate, backtest_gate, error, cancelled; or the status while active
    discovery: bool  # completed, both gates passed (not bypassed), deflated_sharpe >= 0.95
    deflated_sharpe: float | None
    deflated_sharpe_at_run: float | None
    psr: float | None
    sharpe_ratio: float | None
    num_trades: int | None
    excess_return: float | None


class SeriesEvidence(BaseModel):
    symbol: str
    timeframe: str
    trials: int
    spa_pvalue: float | None  # None when fewer than one backtested strategy or too few common bars
    spa_models: int  # strategies the SPA test compared against buy-and-hold
    best: list[Trial]
    discoveries: list[Trial]


class Evidence(BaseModel):
    series: list[SeriesEvidence]


def collect(store: OperationsStore, *, symbol: str | None = None, timeframe: str | None = None) -> Evidence:
    """The evidence of every series with research cycles, optionally one symbol and/or timeframe."""
    pairs = [
        (s, t)
        for s, t in store.series()
        if (symbol is None or s.upper() == symbol.upper()) and (timeframe is None or t == timeframe)
    ]
    return Evidence(series=[series_evidence(store, s, t) for s, t in pairs])


def series_evidence(store: OperationsStore, symbol: str, timeframe: str) -> SeriesEvidence:
    """The series' trials judged over all of them now; a discovery passed every gate (`store.discoveries`)."""
    cycles = store.series_cycles(symbol=symbol, timeframe=timeframe)
    tested = [c for c in cycles if c.record.backtest_result]
    judged = judge(cycles, timeframe)
    found = [_trial(c, judged[c.operation_id]) for c in tested]
    trials = sorted(found, key=lambda t: t.deflated_sharpe or 0.0, reverse=True)
    pvalue, models = spa_pvalue([c.record.backtest_dir for c in tested])
    return SeriesEvidence(
        symbol=symbol,
        timeframe=timeframe,
        trials=len(cycles),
        spa_pvalue=pvalue,
        spa_models=models,
        best=trials[:BEST_LIMIT],
        discoveries=[t for t in trials if t.discovery],
    )


def _trial(cycle: Operation, judgement: Judgement) -> Trial:
    result = cycle.record.backtest_result or {}
    return Trial(
        cycle_id=cycle.operation_id,
        strategy_name=cycle.record.strategy_name,
        status=cycle.status.value,
        outcome=outcome_of(cycle)[0].value if cycle.status.is_finished else cycle.status.value,
        discovery=judgement.discovery,
        deflated_sharpe=judgement.deflated_sharpe,
        deflated_sharpe_at_run=result.get("deflated_sharpe"),
        psr=result.get("psr"),
        sharpe_ratio=result.get("sharpe_ratio"),
        num_trades=result.get("num_trades"),
        excess_return=result.get("excess_return"),
    )


def spa_pvalue(backtest_dirs: list[str | None]) -> tuple[float | None, int]:
    """Hansen's SPA p-value (consistent) of the strategies' OOS returns against buy-and-hold on the same bars.

    Returns:
        (p-value, number of strategies compared); (None, n) when no strategy or too few common bars.
    """
    import pandas as pd

    frames = []
    for folder in backtest_dirs:
        if not folder:
            continue
        try:  # a folder's URL (file:// or s3://, issue 16) or an older row's host path
            path = fetch(child_of(folder, "oos_returns.csv"))
        except ArtifactNotFoundError:
            continue
        frames.append(pd.read_csv(path, index_col="timestamp"))
    if not frames:
        return None, 0
    common = frames[0].index
    for frame in frames[1:]:
        common = common.intersection(frame.index)
    if len(common) < MIN_COMMON_BARS:
        logger.info("SPA skipped: %d common out-of-sample bars (minimum %d)", len(common), MIN_COMMON_BARS)
        return None, len(frames)
    benchmark = frames[0].loc[common, "buy_and_hold"].to_numpy()
    models = pd.concat([f.loc[common, "return"] for f in frames], axis=1).to_numpy()
    return _spa(-benchmark, -models), len(frames)


def _spa(benchmark_losses: Any, model_losses: Any) -> float:
    from arch.bootstrap import SPA

    test = SPA(benchmark_losses, model_losses, reps=SPA_REPS, seed=SPA_SEED)
    test.compute()
    return float(test.pvalues["consistent"])
