"""Statistics that count every trial: the Probabilistic and the Deflated Sharpe Ratio.

Sources:
- PSR: Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk
  15(2), eq. (9): PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)).
- DSR: Bailey, D. H. and López de Prado, M. (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5): DSR = PSR(SR0), where
  SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))) is the expected maximum
  Sharpe ratio of N independent trials with zero true Sharpe, gamma the Euler-Mascheroni constant.

Every Sharpe ratio here is per bar (not annualised): the formulas need the same unit as the returns. The normal
distribution is the standard library's `statistics.NormalDist` (its inverse is Wichura's AS241, about 1e-16
relative error), and the moments are numpy's, so importing this module costs no scipy (over a second of every
worker's start-up on 2 cores).
The tests check the paper's worked example (SR0 = 0.1132, DSR = 0.9004) and an independent implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

# Bars per year: 252 trading days; intraday timeframes assume a 24-hour market (FX), so 1h -> 24 * 252.
PERIODS_PER_YEAR = {
    "1m": 252 * 24 * 60,
    "5m": 252 * 24 * 12,
    "15m": 252 * 24 * 4,
    "30m": 252 * 24 * 2,
    "1h": 252 * 24,
    "4h": 252 * 6,
    "1d": 252,
    "1w": 52,
}
# The Euler-Mascheroni constant, in the expected maximum of N Gaussian draws.
EULER_GAMMA = 0.5772156649015329
# Floor of the PSR denominator's variance term: extreme skew can drive the textbook expression below zero.
_MIN_VARIANCE_TERM = 1e-12
_NORMAL = NormalDist()


@dataclass(frozen=True)
class SharpeEvidence:
    """A per-bar Sharpe ratio with the moments and sample size its confidence depends on."""

    sharpe: float  # per bar
    skewness: float
    kurtosis: float  # Pearson's (a normal distribution has 3), not excess
    n: int

    @classmethod
    def of(cls, returns: np.ndarray) -> SharpeEvidence:
        """Per-bar Sharpe ratio (zero risk-free rate), skewness and kurtosis of `returns`."""
        r = np.asarray(returns, dtype=np.float64)
        std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
        if std <= 0 or not np.isfinite(std):
            return cls(sharpe=0.0, skewness=0.0, kurtosis=3.0, n=len(r))
        # population (biased) central moments, as scipy.stats.skew and kurtosis(fisher=False) compute them
        deviations = r - r.mean()
        m2 = float(np.mean(deviations**2))
        return cls(
            sharpe=float(r.mean()) / std,
            skewness=float(np.mean(deviations**3)) / m2**1.5,
            kurtosis=float(np.mean(deviations**4)) / m2**2,
            n=len(r),
        )

    @property
    def degenerate(self) -> bool:
        """No variation (never traded, or a constant return): there is nothing to be confident about."""
        return self.n < 3 or (self.sharpe == 0.0 and self.skewness == 0.0 and self.kurtosis == 3.0)


def probabilistic_sharpe(evidence: SharpeEvidence, benchmark: float = 0.0) -> float:
    """P(true Sharpe > `benchmark`) given the observed per-bar Sharpe, its moments and sample size.

    Returns 0.0 for degenerate evidence (fewer than 3 returns, or no variation).
    """
    if evidence.degenerate:
        return 0.0
    sr = evidence.sharpe
    variance_term = 1.0 - evidence.skewness * sr + (evidence.kurtosis - 1.0) / 4.0 * sr * sr
    z = (sr - benchmark) * math.sqrt(evidence.n - 1) / math.sqrt(max(variance_term, _MIN_VARIANCE_TERM))
    return _NORMAL.cdf(z)


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the expected maximum per-bar Sharpe of `trials` independent zero-skill trials.

    Args:
        trials: N, the number of strategies tried; with one trial there is no selection (0.0).
        variance: the variance of the trials' per-bar Sharpe ratios.
    """
    if trials <= 1 or variance <= 0:
        return 0.0
    quantile = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / trials)
    quantile += EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    return float(math.sqrt(variance) * quantile)


def deflated_sharpe(evidence: SharpeEvidence, *, trials: int, variance: float) -> float:
    """The Deflated Sharpe Ratio: PSR against the expected maximum Sharpe of `trials` zero-skill trials."""
    return probabilistic_sharpe(evidence, expected_max_sharpe(trials, variance))


def trials_variance(sharpes: list[float], n_bars: int) -> float:
    """The variance of the trials' per-bar Sharpe ratios used by the DSR.

    With at least two recorded Sharpe ratios, their sample variance, but never below the sampling variance of a
    zero Sharpe estimate over `n_bars` returns, 1 / n_bars (Lo, 2002), which is also the value with fewer. The
    floor is honest: trials of one study resemble each other, and their Sharpe ratios can agree far more
    closely than the noise in any one of them, which would let a lucky trial escape the deflation (issue 14).
    """
    floor = 1.0 / max(n_bars, 1)
    finite = [s for s in sharpes if s is not None and math.isfinite(s)]
    if len(finite) >= 2:
        return max(floor, float(np.var(finite, ddof=1)))
    return floor


def deflate_recorded(result: Mapping[str, Any], *, trials: int, sharpes: list[float], timeframe: str) -> float | None:
    """The DSR of a recorded walk-forward backtest against every trial on its series now.

    Args:
        result: the backtest summary; needs the per-bar moments it recorded (`sharpe_ratio` annualised, `n_bars`,
            `skewness`, `kurtosis`). Older records without them keep the figure they were given when they ran.
        trials: every cycle designed on the series, gate-stopped and bypassed ones included.
        sharpes: the annualised Sharpe ratios of the trials that were backtested.
    """
    moments = [result.get(k) for k in ("sharpe_ratio", "n_bars", "skewness", "kurtosis")]
    if not all(isinstance(m, int | float) for m in moments) or timeframe not in PERIODS_PER_YEAR:
        recorded = result.get("deflated_sharpe")
        return float(recorded) if isinstance(recorded, int | float) else None
    per_bar = math.sqrt(PERIODS_PER_YEAR[timeframe])
    sharpe, n_bars, skewness, kurtosis = (float(m) for m in moments)  # type: ignore[arg-type]
    evidence = SharpeEvidence(sharpe / per_bar, skewness, kurtosis, int(n_bars))
    variance = trials_variance([s / per_bar for s in sharpes], int(n_bars))
    return deflated_sharpe(evidence, trials=max(trials, 1), variance=variance)


# --- Skill against chance: the training gate's test (issue 23) ------------------------------------------------

# Permutations of the skill test, and its seed (the same predictions always get the same p-value).
SKILL_PERMUTATIONS = 2000
SKILL_SEED = 7


def balanced_accuracy(actual: np.ndarray, predicted: np.ndarray) -> float:
    """The mean recall over the classes present in `actual` (scikit-learn's `balanced_accuracy_score`)."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    present = np.unique(actual)
    return float(np.mean([np.mean(predicted[actual == c] == c) for c in present]))


def skill_pvalue(
    actual: np.ndarray,
    predicted: np.ndarray,
    *,
    block: int,
    permutations: int = SKILL_PERMUTATIONS,
    seed: int = SKILL_SEED,
) -> float:
    """One-sided p-value that the balanced accuracy of `predicted` beats chance, 1 / (classes in `actual`).

    A label permutation test (Ojala and Garriga, 2010, "Permutation Tests for Studying Classifier Performance",
    JMLR 11, test 1: under H0 the labels are independent of what the model saw), done in blocks because labels
    overlap: a label at bar t reads the closes t+1 .. t+lookahead, so labels fewer than `lookahead` bars apart
    share price moves and are not independent draws. The labels are cut into consecutive blocks of `block` rows
    (the look-ahead) and the blocks are shuffled, which keeps each block's dependence (Kunsch, 1989, the moving
    block idea, here without replacement); the predictions keep their order, so their own autocorrelation, which
    is often far longer (a 50-bar moving average), stays whole. A plain permutation would treat n overlapping
    labels as n independent ones and find skill in noise; the tests show both. With `block=1` the test is the
    plain one, and on balanced classes it agrees with the exact binomial test of accuracy (scipy's binomtest).

    Returns:
        (1 + permutations scoring at least the observed) / (1 + permutations), Phipson and Smyth (2010).
    """
    actual = np.asarray(actual, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    n = len(actual)
    if n == 0 or len(np.unique(actual)) < 2:
        return 1.0
    block = max(1, int(block))
    present, counts = np.unique(actual, return_counts=True)
    classes = int(present.max()) + 1
    weights = np.zeros(classes)
    weights[present] = 1.0 / (counts * len(present))  # balanced accuracy = sum over hits of 1 / (k n_c)
    observed = float(weights[actual[predicted == actual]].sum())
    blocks = [np.arange(start, min(start + block, n)) for start in range(0, n, block)]
    rng = np.random.default_rng(seed)
    at_least = 0
    for _ in range(permutations):
        order = np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])
        shuffled = actual[order]
        score = weights[shuffled[predicted == shuffled]].sum()
        at_least += score >= observed - 1e-12
    return (1 + at_least) / (1 + permutations)
