"""The probability of backtest overfitting (PBO) of a set of trials, by combinatorially symmetric cross-validation.

Source: Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017), "The probability of backtest
overfitting", Journal of Computational Finance 20(4), section 2 (CSCV). The T x N matrix M of the N trials'
per-bar returns on their shared bars is cut into S contiguous blocks of equal length. For each of the C(S, S/2)
ways of choosing S/2 blocks as the in-sample set J (the other S/2 are the out-of-sample set J-bar):

- R and R-bar: every trial's performance on J and on J-bar (the Sharpe ratio, mean over standard deviation, per
  bar, as the paper does);
- n* = argmax R, the trial a researcher would have picked in sample;
- w = (rank of R-bar[n*] among R-bar) / (N + 1), its relative out-of-sample rank, and the logit ln(w / (1 - w)).

PBO is the share of splits whose logit is <= 0: the in-sample best is at or below the median out of sample.
Performance degradation is the least-squares line of R-bar[n*] on R[n*] over the splits, and the probability of
loss the share of splits where R-bar[n*] < 0.

Conventions (the same as pypbo, github.com/esvhd/pypbo, and R's pbo, github.com/mrbcuda/pbo, where they agree):
- T not a multiple of S: the earliest T mod S rows are dropped, so every block has T // S rows.
- Ties: out-of-sample ranks are average ranks (scipy's `rankdata` default, R's `rank`); n* is the first of
  the trials tied for the in-sample best (numpy's `argmax`, R's `which.max`).
- The denominator N + 1 (the paper's; R's pbo uses N) keeps w below 1, so every logit is finite.
- A trial with no variation in a half (out of the market all along) performs 0 there: it neither wins nor loses.
- Standard deviations are sample ones (ddof = 1); the factor is the same for every trial and both halves, so it
  changes no rank, no PBO, no probability of loss and no degradation slope.

Each split's sums are sums over its blocks, so the S per-block sums and sums of squares are computed once and
every split is a matrix product (12,870 splits of N = 50 trials over 5,000 bars take milliseconds).
tests/unit/engine/test_pbo.py checks it against a literal loop over `itertools.combinations` and against figures
of pypbo's `pbo()` on a seeded matrix.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

# Blocks the shared bars are cut into: the paper's choice, C(16, 8) = 12,870 splits.
DEFAULT_BLOCKS = 16
# Splits handled per matrix product: bounds memory at about 5 x SPLITS_PER_CHUNK x N doubles for many trials.
SPLITS_PER_CHUNK = 4096
# A half whose variance is below this share of its mean square counts as flat (round-off of sum-of-squares).
FLAT_VARIANCE = 1e-10


@dataclass(frozen=True)
class Overfitting:
    """The CSCV estimate over one set of trials: PBO, the logits, degradation and the probability of loss."""

    pbo: float  # share of splits whose logit is <= 0
    logits: np.ndarray = field(repr=False, compare=False)  # one per split, in `itertools.combinations` order
    degradation_slope: float  # of R-bar[n*] on R[n*]; nan when R[n*] is the same in every split
    degradation_intercept: float
    probability_of_loss: float  # share of splits where R-bar[n*] < 0
    blocks: int  # S
    trials: int  # N
    bars: int  # T used: the input's rows less the T mod S earliest

    @property
    def splits(self) -> int:
        """C(S, S/2)."""
        return len(self.logits)

    def logit_quantiles(self, quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[str, float]:
        """The logits' quantiles keyed `q05`, `q25`, ... (numpy's linear interpolation)."""
        values = np.quantile(self.logits, quantiles)
        return {f"q{round(q * 100):02d}": float(v) for q, v in zip(quantiles, values, strict=True)}


def measure_overfitting(returns: np.ndarray, blocks: int = DEFAULT_BLOCKS) -> Overfitting:
    """The probability of backtest overfitting of the trials in the columns of `returns`, by CSCV.

    Args:
        returns: T x N per-bar returns, one column per trial, rows the shared bars in time order.
        blocks: S, even; the earliest T mod S rows are dropped.

    Raises:
        ValueError: S odd or below 2, fewer than 2 trials, a half shorter than 2 bars, or a value not finite.
    """
    m = _checked(returns, blocks)
    size = len(m) // blocks
    m = m[len(m) - size * blocks :]
    by_block = m.reshape(blocks, size, m.shape[1])
    sums, squares = by_block.sum(axis=1), (by_block**2).sum(axis=1)
    chosen = _splits(blocks)
    chunks = np.array_split(chosen, math.ceil(len(chosen) / SPLITS_PER_CHUNK))
    parts = [_best_of(c, sums, squares, size * blocks // 2) for c in chunks]
    is_best, oos_best, ranks = (np.concatenate(p) for p in zip(*parts, strict=True))
    w = ranks / (m.shape[1] + 1)
    logits = np.log(w / (1.0 - w))
    slope, intercept = _line(is_best, oos_best)
    return Overfitting(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        degradation_slope=slope,
        degradation_intercept=intercept,
        probability_of_loss=float(np.mean(oos_best < 0)),
        blocks=blocks,
        trials=m.shape[1],
        bars=len(m),
    )


def _checked(returns: np.ndarray, blocks: int) -> np.ndarray:
    m = np.asarray(returns, dtype=np.float64)
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be even and at least 2, not {blocks}")
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"need a T x N matrix of at least 2 trials, not shape {m.shape}")
    if m.shape[0] // blocks * blocks // 2 < 2:
        raise ValueError(f"{m.shape[0]} bars in {blocks} blocks leave a half shorter than 2 bars")
    if not np.isfinite(m).all():
        raise ValueError("returns must be finite")
    return m


def _splits(blocks: int) -> np.ndarray:
    """One row per split, 1.0 on its in-sample blocks, in `itertools.combinations` order."""
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    chosen = np.zeros((len(combos), blocks))
    np.put_along_axis(chosen, combos, 1.0, axis=1)
    return chosen


def _best_of(
    chosen: np.ndarray, sums: np.ndarray, squares: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each split: R[n*], R-bar[n*] and the average rank of R-bar[n*] among R-bar (1 = worst)."""
    other = 1.0 - chosen
    r = _sharpe(chosen @ sums, chosen @ squares, half)
    r_bar = _sharpe(other @ sums, other @ squares, half)
    rows = np.arange(len(chosen))
    best = np.argmax(r, axis=1)
    picked = r_bar[rows, best]
    below = (r_bar < picked[:, None]).sum(axis=1)
    tied = (r_bar == picked[:, None]).sum(axis=1)  # n* itself included
    return r[rows, best], picked, below + (tied + 1) / 2.0


def _sharpe(sums: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Mean over sample standard deviation from sums over n bars; 0 where a half does not vary."""
    mean = sums / n
    mean_square = squares / n
    variance = np.maximum(mean_square - mean**2, 0.0) * n / (n - 1)
    flat = variance <= FLAT_VARIANCE * mean_square
    return np.divide(mean, np.sqrt(variance), out=np.zeros_like(mean), where=~flat)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x; (nan, mean y) when x does not vary."""
    dx = x - x.mean()
    spread = float(dx @ dx)
    if spread <= 0:
        return math.nan, float(y.mean())
    slope = float(dx @ (y - y.mean())) / spread
    return slope, float(y.mean() - slope * x.mean())
