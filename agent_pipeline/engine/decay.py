"""The decay alarm (issue 27): does a discovery's edge hold on forward bars, or has it gone?

**The test.** Page's CUSUM (Page, 1954, "Continuous Inspection Schemes", Biometrika 41) of the log-likelihood ratio
of two normal means with a known variance, one-sided, on the strategy's forward returns per bar:

    H0: mean = mu0, the shrunk backtest mean (below)      H1: mean = mu1 = decay_to * mu0 (0 by default: no edge)
    z_t = (r_t - mu0) / sigma,  d = (mu0 - mu1) / sigma,  l_t = d (-z_t - d / 2)   (the log-likelihood ratio of r_t)
    S_0 = 0,  S_t = max(0, S_{t-1} + l_t);  the alarm fires at the first t with S_t >= h.

sigma is the backtest's standard deviation of a bar's return, taken as known. The CUSUM is Wald's SPRT restarted
whenever it would accept H0 (Lorden, 1971); it fires once the latest stretch of bars is e^h times likelier under H1.

**The threshold** is set from the in-control average run length `arl0`: the mean number of bars between false
alarms were the forward mean exactly mu0. In sigma units the recursion is the tabular CUSUM with reference value
k = d / 2 and threshold h / d, whose run length Siegmund's approximation gives (Siegmund, 1985, "Sequential
Analysis", eq. (10.18), for a normal random walk with drift D per step):

    ARL(D, h / d) = (exp(-2 D b) + 2 D b - 1) / (2 D^2),  b = h / d + 1.166.

h is the one with ARL(-k, h / d) = arl0. A fixed arl0 rather than a fixed h keeps the false alarms per bar the
same for a weak edge as for a strong one: in log-likelihood units, a fixed h gives a strong edge (a large d) a far
shorter run between false alarms.

**Checked against.** The tests run the recursion on N(0, 1) with k = 0.5 and h = 5 and find Siegmund's in-control
ARL of 938 bars (Montgomery, "Introduction to Statistical Quality Control", Table 9.3 gives 465 for the two-sided
scheme, half of it), and the designed threshold on a small d at its arl0; they run the monitor itself on returns
drawn from H0 and bound its false alarms within a paper account's 600 bars by 1 - exp(-600 / arl0).

**The shrunk mean.** A discovery's backtest Sharpe was the best of many trials, so it is optimistic. H0 takes it
less SR0, the expected maximum per-bar Sharpe of `trials` zero-skill trials (Bailey and López de Prado, 2014, the
benchmark of the deflated Sharpe ratio; `stats.expected_max_sharpe`):

    SR = backtest_mean / backtest_std
    V = trial_variance, or when not given its floor 1 / backtest_bars (`stats.trials_variance`; Lo, 2002)
    SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))),  N = trials, gamma = 0.5772...
    mu0 = max(0, SR - SR0) * backtest_std

Under the null of no skill the winner's expected Sharpe is SR0, so the haircut removes exactly the selection bias of
a lucky zero-skill winner; for a real edge it removes somewhat more than its bias, which lowers H0 and makes the
alarm slower, never quicker. When nothing is left (mu0 = 0) there is no edge to lose: the monitor fires on its first
bar, with the reason `no_edge`.

**Bars are counted once.** `update(returns, first=i)` says that `returns[0]` is forward bar `i`; bars already
consumed are skipped, so a step run again (a redelivered task) never counts a bar twice. The recursion runs bar by
bar in float64, so the state is the same whether the bars come one at a time or all at once. `to_dict` / `from_dict`
give the monitor as plain data for an account to keep between steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from agent_pipeline.engine.stats import expected_max_sharpe, trials_variance

# The in-control average run length the threshold is set for: the mean bars between false alarms were the forward
# mean exactly H0's. Tuned on the planted reversals (bench/bench_decay.py, bench/results/decay.json).
DEFAULT_ARL0 = 4000.0
# The mean H1 says is left, as a fraction of the shrunk mean: 0 watches for the edge to vanish.
DEFAULT_DECAY_TO = 0.0
# Siegmund's correction of a CUSUM threshold for the overshoot of a normal random walk (2 x 0.583).
OVERSHOOT = 1.166
# Bisection steps of `cusum_threshold`: the bracket shrinks 2^-200, below float64's resolution.
_BISECTIONS = 200


class DecayReason(StrEnum):
    """Why a monitor fired."""

    DECAY = "decay"  # the CUSUM reached its threshold: the forward mean is credibly below H0's
    NO_EDGE = "no_edge"  # the shrunk backtest mean is not above zero: there was no edge left to watch


def siegmund_arl(drift: float, threshold: float) -> float:
    """Siegmund's approximation of the average run length of S_t = max(0, S_{t-1} + x_t) to `threshold`.

    Args:
        drift: the mean of x_t, in standard deviations of x_t (negative in control).
        threshold: h, in standard deviations of x_t.
    """
    b = threshold + OVERSHOOT
    if drift == 0:
        return b * b
    x = 2.0 * drift * b
    return (math.exp(-x) + x - 1.0) / (2.0 * drift * drift)


def cusum_threshold(reference: float, arl0: float) -> float:
    """h (in standard deviations) of the CUSUM with reference value `reference` whose in-control ARL is `arl0`.

    In control, x_t = -z_t - reference with z_t ~ N(0, 1), a drift of -reference; the in-control ARL grows with h,
    and h is found by bisection on `siegmund_arl`. Never below 0.
    """
    if reference <= 0 or arl0 <= 0:
        raise ValueError(f"reference and arl0 must be positive, got {reference}, {arl0}")
    low, high = 0.0, 1.0
    while siegmund_arl(-reference, high) < arl0:
        high *= 2.0
    if siegmund_arl(-reference, low) >= arl0:
        return 0.0
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2.0
        low, high = (middle, high) if siegmund_arl(-reference, middle) < arl0 else (low, middle)
    return high


@dataclass(frozen=True)
class DecayBaseline:
    """What the forward returns are tested against: the backtest's per-bar moments and the selection behind them.

    Attributes:
        backtest_mean: the strategy's mean return per bar in its backtest (costs included).
        backtest_std: the standard deviation of those returns (ddof 1); taken as the forward returns' too.
        trials: N, the strategies tried on the series before this one was kept (1: no selection, no haircut).
        backtest_bars: the returns behind the backtest's figures.
        trial_variance: the variance of the trials' per-bar Sharpe ratios; None takes 1 / backtest_bars.
        decay_to: H1's mean as a fraction of the shrunk mean (0: the edge is gone).
    """

    backtest_mean: float
    backtest_std: float
    trials: int
    backtest_bars: int
    trial_variance: float | None = None
    decay_to: float = DEFAULT_DECAY_TO

    def __post_init__(self) -> None:
        if not (math.isfinite(self.backtest_std) and self.backtest_std > 0):
            raise ValueError(f"backtest_std must be a positive number, got {self.backtest_std}")
        if not math.isfinite(self.backtest_mean):
            raise ValueError(f"backtest_mean must be a finite number, got {self.backtest_mean}")
        if self.trials < 1 or self.backtest_bars < 1:
            raise ValueError(f"trials and backtest_bars must be at least 1, got {self.trials}, {self.backtest_bars}")
        if not 0 <= self.decay_to < 1:
            raise ValueError(f"decay_to must be in [0, 1), got {self.decay_to}")

    @property
    def sharpe(self) -> float:
        """The backtest's per-bar Sharpe ratio, as selected."""
        return self.backtest_mean / self.backtest_std

    @property
    def haircut(self) -> float:
        """SR0: the expected maximum per-bar Sharpe of `trials` zero-skill trials."""
        variance = self.trial_variance if self.trial_variance is not None else trials_variance([], self.backtest_bars)
        return expected_max_sharpe(self.trials, variance)

    @property
    def shrunk_sharpe(self) -> float:
        """The per-bar Sharpe ratio H0 expects: the backtest's less the haircut, never below zero."""
        return max(0.0, self.sharpe - self.haircut)

    @property
    def shrunk_mean(self) -> float:
        """mu0: H0's mean return per bar."""
        return self.shrunk_sharpe * self.backtest_std

    @property
    def shift(self) -> float:
        """d = (mu0 - mu1) / sigma: the drop H1 says, in standard deviations of a bar's return."""
        return self.shrunk_sharpe * (1.0 - self.decay_to)

    def threshold(self, arl0: float) -> float:
        """h in log-likelihood units for the in-control ARL `arl0`; 0 when there is no edge (d = 0)."""
        d = self.shift
        return d * cusum_threshold(d / 2.0, arl0) if d > 0 else 0.0


@dataclass(frozen=True)
class DecayState:
    """Where the alarm stands after the bars consumed so far.

    Attributes:
        bars: forward bars consumed (the next one expected is bar `bars`, counting from 0).
        statistic: the CUSUM S_t now, in log-likelihood units.
        threshold: h, in the same units.
        fired: whether S_t has reached h at some bar (it stays fired).
        fired_bar: the forward bar (from 0) at which it first did; None before.
        fired_statistic: S_t at that bar; None before.
        reason: why it fired (`DecayReason`); None before.
    """

    threshold: float
    bars: int = 0
    statistic: float = 0.0
    fired: bool = False
    fired_bar: int | None = None
    fired_statistic: float | None = None
    reason: DecayReason | None = None

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-safe data."""
        return asdict(self) | {"reason": self.reason.value if self.reason else None}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> DecayState:
        """The state `to_dict` wrote."""
        reason = record.get("reason")
        return cls(**{**record, "reason": DecayReason(reason) if reason else None})


class DecayMonitor:
    """The one-sided CUSUM of a strategy's forward returns against its shrunk backtest mean (module docstring)."""

    def __init__(self, baseline: DecayBaseline, *, arl0: float = DEFAULT_ARL0, state: DecayState | None = None) -> None:
        if not (math.isfinite(arl0) and arl0 > 0):
            raise ValueError(f"arl0 must be a positive number of bars, got {arl0}")
        self.baseline = baseline
        self.arl0 = float(arl0)
        self.state = state if state is not None else DecayState(threshold=baseline.threshold(self.arl0))

    @classmethod
    def of(
        cls, backtest_mean: float, backtest_std: float, trials: int, *, backtest_bars: int, **options: Any
    ) -> DecayMonitor:
        """A fresh monitor from the backtest's figures; `options` are `arl0` and `DecayBaseline`'s optional fields."""
        arl0 = float(options.pop("arl0", DEFAULT_ARL0))
        return cls(DecayBaseline(backtest_mean, backtest_std, trials, backtest_bars, **options), arl0=arl0)

    def update(self, returns: Sequence[float] | np.ndarray, *, first: int = 0) -> DecayState:
        """Consume the forward returns not yet seen and return the new state.

        Args:
            returns: per-bar returns of the strategy, `returns[i]` being forward bar `first + i`.
            first: the forward bar of `returns[0]`; 0 when the whole forward history is given.

        Raises:
            ValueError: `first` is past the bars consumed (a bar would be missed) or a return is not finite.
        """
        if first > self.state.bars:
            raise ValueError(f"forward bar {self.state.bars} is missing: the returns start at bar {first}")
        fresh = np.asarray(returns, dtype=np.float64)[self.state.bars - first :]
        if not np.isfinite(fresh).all():
            raise ValueError("forward returns must be finite")
        self.state = self._consume(fresh)
        return self.state

    def _consume(self, fresh: np.ndarray) -> DecayState:
        state, base = self.state, self.baseline
        if len(fresh) == 0:
            return state
        if base.shift <= 0:  # nothing to lose: H0 already says no edge
            fired = state if state.fired else _fire(state, state.bars, DecayReason.NO_EDGE)
            return replace(fired, bars=state.bars + len(fresh))
        d, mu0, sigma = base.shift, base.shrunk_mean, base.backtest_std
        statistic = state.statistic
        for offset, value in enumerate(fresh.tolist()):
            statistic = max(0.0, statistic + d * ((mu0 - value) / sigma - d / 2.0))
            if statistic >= state.threshold and not state.fired:
                state = _fire(replace(state, statistic=statistic), self.state.bars + offset, DecayReason.DECAY)
        return replace(state, bars=self.state.bars + len(fresh), statistic=statistic)

    def to_dict(self) -> dict[str, Any]:
        """The monitor as JSON-safe data: `{"baseline": {...}, "arl0": ..., "state": {...}}`."""
        return {"baseline": asdict(self.baseline), "arl0": self.arl0, "state": self.state.to_dict()}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> DecayMonitor:
        """The monitor `to_dict` wrote."""
        state = DecayState.from_dict(record["state"])
        return cls(DecayBaseline(**record["baseline"]), arl0=record["arl0"], state=state)


def _fire(state: DecayState, bar: int, reason: DecayReason) -> DecayState:
    """`state`, fired at forward bar `bar` with its statistic as it stands."""
    return replace(state, fired=True, fired_bar=bar, fired_statistic=state.statistic, reason=reason)
