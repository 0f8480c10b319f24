"""Evidence across trials: for each series, how many strategies were tried, the best by deflated Sharpe, the
discoveries, Hansen's SPA p-value of the whole set against buy-and-hold, and the probability of backtest overfitting.

Everything here is research-period, out-of-sample figures; the lockbox is never read. Both tests across trials
read every backtested cycle's stitched out-of-sample record (`oos_returns.csv` in its backtest folder, written by
`engine.backtest.save_walk_forward`), aligned on the bars all of them share (`aligned_returns`).
SPA: Hansen, P. R. (2005), "A Test for Superior Predictive Ability", Journal of Business & Economic Statistics
23(4), computed by `arch.bootstrap.SPA` (stationary bootstrap, studentized) on per-bar losses (minus returns).
PBO: Bailey, Borwein, López de Prado and Zhu (2017), "The probability of backtest overfitting", Journal of
Computational Finance 20(4), by CSCV over the trials' per-bar returns (`engine.pbo`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import child_of, fetch
from agent_pipeline.engine.pbo import DEFAULT_BLOCKS, measure_overfitting
from agent_pipeline.errors import ArtifactNotFoundError
from agent_pipeline.store.discoveries import Judgement, SeriesOverfitting, judge
from agent_pipeline.store.history import outcome_of
from agent_pipeline.store.operations import Operation, OperationsStore

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# How many strategies `best` lists per series.
BEST_LIMIT = 5
# SPA needs a common out-of-sample stretch at least this long to mean anything.
MIN_COMMON_BARS = 50
# Bootstrap replications of the SPA test, and its seed (a repeatable p-value for the same records).
SPA_REPS = 1000
SPA_SEED = 7
# PBO ranks the trials against each other: below this many trials with out-of-sample returns it says nothing
# (KTRDR_PBO_MIN_TRIALS's default; tests lower the setting to reach a PBO in a few cycles).
PBO_MIN_TRIALS = 8
# ... and each of its CSCV blocks needs this many shared bars for a Sharpe ratio of its own.
PBO_MIN_BLOCK_BARS = 4


class Trial(BaseModel):
    """One strategy's research-period figures.

    `deflated_sharpe` is recomputed against every trial on the series now; `deflated_sharpe_at_run` is what the
    cycle recorded when it ran, with the trials known then (never higher in a growing search, as a rule). A trial
    stopped by a gate or let through by `--bypass-gates` counts, and is listed, but is never a candidate.
    """

    cycle_id: str
    strategy_name: str | None
    status: str
    outcome: str  # passed, bypassed, training_gate, backtest_gate, error, cancelled; or the status while active
    discovery: bool  # a candidate promoted (issue 25): the series' PBO and the cycle's paths hold up
    promotion: str | None = None  # candidate, discovery or rejected; None: no candidate (completed, gates, DSR 0.95)
    deflated_sharpe: float | None
    deflated_sharpe_at_run: float | None
    psr: float | None
    sharpe_ratio: float | None
    num_trades: int | None
    excess_return: float | None
    # A universe's portfolio (issue 24): timing or rank; for rank the daily rank IC and ICIR. None on a series.
    portfolio_mode: str | None = None
    rank_ic: float | None = None
    icir: float | None = None


class OverfittingSummary(BaseModel):
    """A series' probability of backtest overfitting by CSCV (`engine.pbo`) and its summary.

    `pbo` is the share of the C(blocks, blocks/2) splits in which the in-sample best trial ranks at or below the
    median out of sample (logit <= 0); near 0.5 the selection is no better than chance, near 0 it holds up.
    """

    pbo: float
    logit_mean: float
    logit_quantiles: dict[str, float]  # q05, q25, q50, q75, q95
    degradation_slope: float | None  # out-of-sample Sharpe of the in-sample best on its in-sample Sharpe, per bar
    degradation_intercept: float | None
    probability_of_loss: float  # share of splits where the in-sample best loses out of sample
    n_trials: int
    blocks: int
    bars: int  # shared bars used (the earliest bars % blocks dropped)
    splits: int


class SeriesEvidence(BaseModel):
    symbol: str
    timeframe: str
    trials: int
    spa_pvalue: float | None  # None when fewer than one backtested strategy or too few common bars
    spa_models: int  # strategies the SPA test compared against buy-and-hold
    pbo: OverfittingSummary | None  # None until PBO_MIN_TRIALS trials with enough shared bars; pbo_reason says why
    pbo_reason: str | None
    best: list[Trial]
    discoveries: list[Trial]
    candidates: list[Trial] = []  # every candidate, promoted or not (each trial's `promotion` says where it stands)


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
    """The series' trials judged over all of them now; a discovery is a promoted candidate (`store.discoveries`)."""
    cycles = store.series_cycles(symbol=symbol, timeframe=timeframe)
    tested = [c for c in cycles if c.record.backtest_result]
    frames = oos_returns([c.record.backtest_dir for c in tested])
    pvalue, models = spa_pvalue(frames)
    overfitting, reason = overfitting_of(frames)
    # A discovery is a promoted candidate (issue 25): the judgement needs the series' PBO now.
    judged = judge(cycles, timeframe, SeriesOverfitting(overfitting.pbo if overfitting else None, reason))
    found = [_trial(c, judged[c.operation_id]) for c in tested]
    trials = sorted(found, key=lambda t: t.deflated_sharpe or 0.0, reverse=True)
    return SeriesEvidence(
        symbol=symbol,
        timeframe=timeframe,
        trials=len(cycles),
        spa_pvalue=pvalue,
        spa_models=models,
        pbo=overfitting,
        pbo_reason=reason,
        best=trials[:BEST_LIMIT],
        discoveries=[t for t in trials if t.discovery],
        candidates=[t for t in trials if t.promotion is not None],
    )


def _trial(cycle: Operation, judgement: Judgement) -> Trial:
    result = cycle.record.backtest_result or {}
    return Trial(
        cycle_id=cycle.operation_id,
        strategy_name=cycle.record.strategy_name,
        status=cycle.status.value,
        outcome=outcome_of(cycle)[0].value if cycle.status.is_finished else cycle.status.value,
        discovery=judgement.discovery,
        promotion=judgement.promotion.status.value if judgement.promotion.status else None,
        deflated_sharpe=judgement.deflated_sharpe,
        deflated_sharpe_at_run=result.get("deflated_sharpe"),
        psr=result.get("psr"),
        sharpe_ratio=result.get("sharpe_ratio"),
        num_trades=result.get("num_trades"),
        excess_return=result.get("excess_return"),
        portfolio_mode=result.get("portfolio_mode"),
        rank_ic=result.get("rank_ic"),
        icir=result.get("icir"),
    )


def oos_returns(backtest_dirs: list[str | None]) -> list[pd.DataFrame]:
    """The `oos_returns.csv` (timestamp index; return, buy_and_hold) of each backtest folder that has one."""
    import pandas as pd

    frames = []
    for folder in backtest_dirs:
        if not folder:
            continue
        try:  # a folder's URL (file:// or s3://, issue 16) or an older row's host path
            path = fetch(child_of(folder, "oos_returns.csv"))
        except ArtifactNotFoundError:
            continue
        frame = pd.read_csv(path, index_col="timestamp", parse_dates=["timestamp"])
        frames.append(frame[~frame.index.duplicated(keep="last")])
    return frames


def aligned_returns(frames: list[pd.DataFrame], column: str = "return") -> pd.DataFrame:
    """The T x N matrix of the frames' `column` on the bars all of them share, in time order; rows with a gap
    dropped. Column k is frames[k]."""
    import pandas as pd

    if not frames:
        return pd.DataFrame()
    common = frames[0].index
    for frame in frames[1:]:
        common = common.intersection(frame.index)
    matrix = pd.concat([frame[column].reindex(common) for frame in frames], axis=1)
    matrix.columns = range(len(frames))
    return matrix.sort_index().dropna()


def spa_pvalue(frames: list[pd.DataFrame]) -> tuple[float | None, int]:
    """Hansen's SPA p-value (consistent) of the strategies' OOS returns against buy-and-hold on the same bars.

    Returns:
        (p-value, number of strategies compared); (None, n) when no strategy or too few common bars.
    """
    if not frames:
        return None, 0
    models = aligned_returns(frames)
    if len(models) < MIN_COMMON_BARS:
        logger.info("SPA skipped: %d common out-of-sample bars (minimum %d)", len(models), MIN_COMMON_BARS)
        return None, len(frames)
    benchmark = frames[0]["buy_and_hold"].loc[models.index].to_numpy()
    return _spa(-benchmark, -models.to_numpy()), len(frames)


def overfitting_of(frames: list[pd.DataFrame]) -> tuple[OverfittingSummary | None, str | None]:
    """The CSCV probability of backtest overfitting over the trials' shared bars, or None and the reason why not."""
    min_trials = get_settings().pbo_min_trials  # KTRDR_PBO_MIN_TRIALS, default PBO_MIN_TRIALS
    if len(frames) < min_trials:
        return None, f"too few trials: {len(frames)} < {min_trials}"
    matrix = aligned_returns(frames)
    needed = DEFAULT_BLOCKS * PBO_MIN_BLOCK_BARS
    if len(matrix) < needed:
        return None, f"too few shared bars: {len(matrix)} < {needed}"
    found = measure_overfitting(matrix.to_numpy(), DEFAULT_BLOCKS)
    return OverfittingSummary(
        pbo=found.pbo,
        logit_mean=float(found.logits.mean()),
        logit_quantiles=found.logit_quantiles(),
        degradation_slope=_finite(found.degradation_slope),
        degradation_intercept=_finite(found.degradation_intercept),
        probability_of_loss=found.probability_of_loss,
        n_trials=found.trials,
        blocks=found.blocks,
        bars=found.bars,
        splits=found.splits,
    ), None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _spa(benchmark_losses: Any, model_losses: Any) -> float:
    from arch.bootstrap import SPA

    test = SPA(benchmark_losses, model_losses, reps=SPA_REPS, seed=SPA_SEED)
    test.compute()
    return float(test.pvalues["consistent"])
