"""Planted-edge synthetic series: data with a known edge, of a known size, for a known simple rule.

Three kinds, each deterministic from its seed (`synth_bars`):
- `noise`: the driftless random walk of `data.random_walk_bars`; no rule has an edge on it.
- `trend`: returns with a slowly wandering AR(1) drift; 20-bar momentum exploits it.
- `reversal`: returns that are AR(1) with a negative coefficient; the one-bar contrarian rule exploits it.

The strength asked for is the annualised Sharpe ratio the kind's rule is expected to earn (close to close, no
costs, long or short one unit): the process parameter is solved from it in closed form. For a rule holding
sign(X_t) over bar t + 1, with X_t and the next return r_{t+1} jointly Gaussian with zero mean and correlation
rho, E[sign(X) r] = sqrt(2/pi) rho sd(r) and E[(sign(X) r)^2] = var(r), so the per-bar Sharpe ratio is

    k = sqrt(2/pi) rho / sqrt(1 - 2 rho^2 / pi),  hence  rho = sqrt(pi/2 * k^2 / (1 + k^2)),

with k = strength / sqrt(bars per year). `reversal` sets its AR coefficient to -rho; `trend` solves its drift's
share of the variance so that corr(sum of the last 20 returns, next return) = rho (a quadratic). Every series
is written beside a sidecar (`<SYMBOL>_<tf>.synth.json`) that records how it was made and the rule's realised
Sharpe on the research period and on the lockbox (`write_synth`, `read_sidecar`). The generators take their noise
shocks from the caller when asked, so a universe (`engine.synth_universe`) can mix a market factor into them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from agent_pipeline.engine.data import (
    SUFFIX,
    TIMEFRAME_STEPS,
    DatasetInfo,
    dataset_path,
    random_walk_bars,
    store_bars,
)
from agent_pipeline.engine.files import atomic_write
from agent_pipeline.engine.stats import PERIODS_PER_YEAR
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.errors import DataError

KINDS = ("trend", "reversal", "noise")
# The strongest edge one may ask for (annualised Sharpe); real edges this large do not survive.
MAX_STRENGTH = 4.0
# Default series length: 5031 business days, about twenty years of daily bars.
DEFAULT_BARS = 5031
# Shortest series: the momentum warm-up plus a lockbox long enough to trade.
MIN_BARS = 200
# Settings.lockbox_fraction's default; the CLI passes the setting itself.
DEFAULT_LOCKBOX_FRACTION = 0.2
# First bar's date (a Monday) and price, as random_walk_bars starts.
START_DATE = "1999-01-04"
START_PRICE = 100.0
# Standard deviation of one daily return; other timeframes scale it by sqrt(bar length in days).
DAILY_VOLATILITY = 0.01
# Extra range of a bar beyond its open and close, as a fraction of the close (the sd of a half-normal draw).
SPREAD_FRACTION = 0.004
# Persistence of the trend's drift per bar: a half-life of about 34 bars, slow next to the 20-bar window.
TREND_PHI = 0.98
# Look-back of the momentum rule, in bars.
MOMENTUM_WINDOW = 20
# Volume of each bar: a uniform integer in [low, high).
VOLUME_RANGE = (1_000, 10_000)
SIDECAR_SUFFIX = ".synth.json"
Process = dict[str, float]  # a generator's parameters, by name, as the sidecar records them
RULES = {
    "trend": f"{MOMENTUM_WINDOW}-bar momentum: at each close hold sign(sum of the last {MOMENTUM_WINDOW} log returns)"
    " over the next bar",
    "reversal": "one-bar contrarian: at each close hold -sign(that bar's return) over the next bar",
    "noise": f"{MOMENTUM_WINDOW}-bar momentum (a control: no rule has an edge on a random walk)",
}


@dataclass(frozen=True)
class SynthInfo:
    """How a synthetic series was made, and what its planted rule earned on it (Sharpe annualised)."""

    kind: str
    strength: float  # the annualised Sharpe asked for
    seed: int
    bars: int
    timeframe: str
    rule: str
    research_sharpe: float
    lockbox_sharpe: float
    lockbox_fraction: float
    lockbox_start: int  # position of the first lockbox bar
    process: Process = field(default_factory=dict)
    correlation: float = 0.0  # pairwise correlation of returns with the other series of its universe (if any)


# --------------------------------------------------------------------------- calibration


def rule_correlation(strength: float, timeframe: str = "1d") -> float:
    """The correlation rho of the rule's signal with the next return that gives an annualised Sharpe of `strength`."""
    k = strength / math.sqrt(PERIODS_PER_YEAR[timeframe])
    return math.sqrt(math.pi / 2 * k * k / (1 + k * k))


def trend_signal_share(rho: float, phi: float = TREND_PHI, window: int = MOMENTUM_WINDOW) -> float:
    """The drift-to-noise variance ratio h = var(mu) / sigma^2 at which corr(window sum, next return) = rho.

    With S = r_{t-w+1} + ... + r_t: cov(S, r_{t+1}) = var(mu) A and var(S) = w sigma^2 + var(mu) B, where
    A = sum_{i=1..w} phi^i and B = sum_{i,j<w} phi^|i-j|, so rho^2 (w + h B)(1 + h) = h^2 A^2, a quadratic in h.

    Raises:
        DataError: no drift can make the correlation that large.
    """
    if rho == 0:
        return 0.0
    lags = np.arange(window)
    a_sum = float(np.sum(phi ** (lags + 1)))
    b_sum = float(np.sum(phi ** np.abs(lags[:, None] - lags[None, :])))
    quad = a_sum**2 - rho**2 * b_sum
    if quad <= 0:
        raise DataError(f"a trend cannot reach correlation {rho:.3f} with a {window}-bar momentum rule")
    lin = rho**2 * (window + b_sum)
    return (lin + math.sqrt(lin**2 + 4 * quad * window * rho**2)) / (2 * quad)


def bar_volatility(timeframe: str) -> float:
    """Standard deviation of one bar's log return: DAILY_VOLATILITY scaled to the bar's length."""
    return DAILY_VOLATILITY * math.sqrt(PERIODS_PER_YEAR["1d"] / PERIODS_PER_YEAR[timeframe])


# --------------------------------------------------------------------------- generators


def trend_returns(
    strength: float, rng: np.random.Generator, bars: int, timeframe: str, *, shocks: np.ndarray | None = None
) -> tuple[np.ndarray, Process]:
    """Log returns r_t = mu_t + sigma e_t with a slow AR(1) drift mu_t = phi mu_{t-1} + tau eta_t.

    Exploited by momentum: hold sign(sum of the last 20 returns) over the next bar. The drift's share of the
    variance is solved (`trend_signal_share`) so that this rule's expected annualised Sharpe is `strength`;
    the total variance of a return is bar_volatility(timeframe)^2 whatever the strength. `shocks`, when given,
    are the noise e_t (i.i.d. standard normal); otherwise they are drawn from `rng`.
    """
    share = trend_signal_share(rule_correlation(strength, timeframe))
    sigma = bar_volatility(timeframe) / math.sqrt(1 + share)
    drift_sd = sigma * math.sqrt(share)
    tau = drift_sd * math.sqrt(1 - TREND_PHI**2)
    start = rng.normal(0.0, drift_sd)  # the drift starts from its stationary distribution
    drift = lfilter([1.0], [1.0, -TREND_PHI], tau * rng.normal(0.0, 1.0, bars), zi=[TREND_PHI * start])[0]
    returns = drift + sigma * (rng.normal(0.0, 1.0, bars) if shocks is None else shocks)
    return returns, {"phi": TREND_PHI, "drift_sd": drift_sd, "drift_innovation_sd": tau, "noise_sd": sigma}


def reversal_returns(
    strength: float, rng: np.random.Generator, bars: int, timeframe: str, *, shocks: np.ndarray | None = None
) -> tuple[np.ndarray, Process]:
    """Log returns that are AR(1) with a negative coefficient: r_t = -a r_{t-1} + s e_t.

    Exploited by the one-bar contrarian rule: hold -sign(r_t) over bar t + 1. Its correlation with the next
    return is a, so a = rho (`rule_correlation`) makes its expected annualised Sharpe `strength`; s keeps the
    variance of a return at bar_volatility(timeframe)^2. `shocks`, when given, are the innovations e_t (i.i.d.
    standard normal); otherwise they are drawn from `rng`.
    """
    coefficient = rule_correlation(strength, timeframe)
    volatility = bar_volatility(timeframe)
    innovation = volatility * math.sqrt(1 - coefficient**2)
    start = rng.normal(0.0, volatility)  # the previous return, drawn from the stationary distribution
    noise = innovation * (rng.normal(0.0, 1.0, bars) if shocks is None else shocks)
    returns = lfilter([1.0], [1.0, coefficient], noise, zi=[-coefficient * start])[0]
    return returns, {"ar_coefficient": -coefficient, "innovation_sd": innovation}


def noise_returns(
    strength: float, rng: np.random.Generator, bars: int, timeframe: str, *, shocks: np.ndarray | None = None
) -> tuple[np.ndarray, Process]:
    """Driftless log returns bar_volatility(timeframe) e_t: the random walk of a universe's `noise` series.

    A one-series `noise` keeps `noise_frame`; a universe needs its noise from `shocks` (i.i.d. standard normal,
    drawn from `rng` when None) so that a market factor can enter. `strength` is 0 (`check_request`).
    """
    volatility = bar_volatility(timeframe)
    returns = volatility * (rng.normal(0.0, 1.0, bars) if shocks is None else shocks)
    return returns, {"bar_sd": volatility, "spread_sd": SPREAD_FRACTION}


def noise_frame(bars: int, seed: int) -> tuple[pd.DataFrame, Process]:
    """`data.random_walk_bars`, unchanged: a driftless geometric random walk with 1% per bar.

    No rule exploits it: momentum and contrarian rules both earn a Sharpe of zero in expectation.
    """
    walk = random_walk_bars(bars, seed=seed, start=START_DATE)
    frame = walk[["open", "high", "low", "close", "volume"]].astype(float)
    return frame, {"bar_sd": DAILY_VOLATILITY, "spread_sd": SPREAD_FRACTION}


def bar_dates(bars: int, timeframe: str) -> pd.DatetimeIndex:
    """`bars` weekday timestamps one step of `timeframe` apart from START_DATE (business days for 1d)."""
    if timeframe == "1d":
        return pd.DatetimeIndex(pd.bdate_range(START_DATE, periods=bars), name="date")
    if timeframe == "1w":
        return pd.DatetimeIndex(pd.date_range(START_DATE, periods=bars, freq="W-MON"), name="date")
    step = TIMEFRAME_STEPS[timeframe]
    per_day = pd.Timedelta(days=1) // step
    stamps = pd.date_range(START_DATE, periods=(bars // (5 * per_day) + 2) * 7 * per_day, freq=step)
    return pd.DatetimeIndex(stamps[stamps.dayofweek < 5][:bars], name="date")


def ohlcv_from_returns(returns: np.ndarray, rng: np.random.Generator, timeframe: str) -> pd.DataFrame:
    """Bars whose closes follow the log `returns` from START_PRICE; each opens at the previous close."""
    close = START_PRICE * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([START_PRICE], close[:-1]))
    spread = np.abs(rng.normal(0.0, SPREAD_FRACTION * bar_volatility(timeframe) / DAILY_VOLATILITY, len(close)))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(*VOLUME_RANGE, len(close)).astype(float),
        }
    )


def check_request(kind: str, strength: float, bars: int) -> None:
    """Refuse an unknown kind, a strength outside [0, MAX_STRENGTH] (noise: only 0), or too few bars.

    Raises:
        DataError: with the one-line reason.
    """
    if kind not in KINDS:
        raise DataError(f"unknown kind {kind!r}: must be one of {', '.join(KINDS)}")
    if not 0 <= strength <= MAX_STRENGTH:  # NaN fails too
        raise DataError(f"strength must be an annualised Sharpe between 0 and {MAX_STRENGTH:g}, got {strength}")
    if kind == "noise" and strength != 0:
        raise DataError(f"noise has no edge: its strength must be 0, got {strength}")
    if bars < MIN_BARS:
        raise DataError(f"a synthetic series needs at least {MIN_BARS} bars, got {bars}")


def check_timeframe(timeframe: str) -> None:
    """Refuse a timeframe the bar dates cannot be laid out on.

    Raises:
        DataError: with the one-line reason.
    """
    if timeframe not in TIMEFRAME_STEPS:
        raise DataError(f"invalid timeframe {timeframe!r}: must be one of {', '.join(TIMEFRAME_STEPS)}")


def synth_bars(
    kind: str,
    strength: float,
    seed: int,
    bars: int = DEFAULT_BARS,
    *,
    timeframe: str = "1d",
    lockbox_fraction: float = DEFAULT_LOCKBOX_FRACTION,
) -> tuple[pd.DataFrame, SynthInfo]:
    """A synthetic series of `kind` whose rule earns an annualised Sharpe of about `strength`, and its record.

    Returns:
        Bars as `data.load_bars` returns them (a DatetimeIndex named `date`, float OHLCV columns), and how they
        were made with the rule's realised Sharpe on the research period and the lockbox.

    Raises:
        DataError: a bad kind, strength, bar count or timeframe.
    """
    check_request(kind, strength, bars)
    check_timeframe(timeframe)
    if kind == "noise":
        frame, process = noise_frame(bars, seed)
    else:
        rng = np.random.default_rng(seed)
        make = trend_returns if kind == "trend" else reversal_returns
        returns, process = make(strength, rng, bars, timeframe)
        frame = ohlcv_from_returns(returns, rng, timeframe)
    frame.index = bar_dates(bars, timeframe)
    research, lockbox, cut = split_sharpes(kind, frame, timeframe, lockbox_fraction)
    info = SynthInfo(
        kind, float(strength), seed, bars, timeframe, RULES[kind], research, lockbox, lockbox_fraction, cut, process
    )
    return frame, info


# --------------------------------------------------------------------------- the planted rule


def warmup(kind: str) -> int:
    """Bars the kind's rule needs before its first position."""
    return 1 if kind == "reversal" else MOMENTUM_WINDOW


def rule_positions(kind: str, bars: pd.DataFrame) -> np.ndarray:
    """The position (-1, 0 or 1) the kind's rule takes at each bar's close, held over the next bar.

    `trend` and `noise`: sign of the last MOMENTUM_WINDOW log returns; `reversal`: -sign of the bar's return.
    The first `warmup(kind)` bars, without enough history, are flat (0).
    """
    if kind not in KINDS:
        raise DataError(f"unknown kind {kind!r}: must be one of {', '.join(KINDS)}")
    log_close = np.log(bars["close"].to_numpy(dtype=float))
    lag = warmup(kind)
    positions = np.zeros(len(log_close))
    if len(log_close) > lag:
        moved = np.sign(log_close[lag:] - log_close[:-lag])
        positions[lag:] = -moved if kind == "reversal" else moved
    return positions


def rule_returns(kind: str, bars: pd.DataFrame) -> np.ndarray:
    """The rule's simple return over each bar after its warm-up: position at close t times bar t + 1's return."""
    close = bars["close"].to_numpy(dtype=float)
    positions = rule_positions(kind, bars)
    start = warmup(kind)
    return positions[start:-1] * (close[start + 1 :] / close[start:-1] - 1)


def annualised_sharpe(returns: np.ndarray, timeframe: str = "1d") -> float:
    """Mean over standard deviation (ddof 1), times sqrt(bars per year); 0.0 without variation."""
    if len(returns) < 2:
        return 0.0
    std = float(np.std(returns, ddof=1))
    if not std > 0:
        return 0.0
    return float(np.mean(returns)) / std * math.sqrt(PERIODS_PER_YEAR[timeframe])


def rule_sharpe(kind: str, bars_frame: pd.DataFrame, timeframe: str = "1d") -> float:
    """The annualised Sharpe of the kind's rule on `bars_frame` alone (its first bars are the warm-up)."""
    return annualised_sharpe(rule_returns(kind, bars_frame), timeframe)


def split_sharpes(kind: str, frame: pd.DataFrame, timeframe: str, lockbox_fraction: float) -> tuple[float, float, int]:
    """The rule's Sharpe on the research period and on the lockbox, and the lockbox's first bar.

    The research figure is `rule_sharpe` of the research bars; the lockbox one counts the returns of the
    lockbox bars, with positions decided on the history before them (the rule needs no warm-up there).
    """
    cut = lockbox_start(len(frame), lockbox_fraction)
    research = rule_sharpe(kind, frame.iloc[:cut], timeframe)
    everything = rule_returns(kind, frame)  # element i is the return of bar warmup + 1 + i
    lockbox = annualised_sharpe(everything[max(0, cut - warmup(kind) - 1) :], timeframe)
    return research, lockbox, cut


# --------------------------------------------------------------------------- storage


def sidecar_path(data_file: Path) -> Path:
    """The record beside a stored series: `<SYMBOL>_<tf>.synth.json` next to `<SYMBOL>_<tf>.csv.gz`."""
    return data_file.with_name(data_file.name.removesuffix(SUFFIX) + SIDECAR_SUFFIX)


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_synth(
    kind: str,
    strength: float,
    seed: int,
    *,
    symbol: str,
    timeframe: str,
    data_dir: Path,
    bars: int = DEFAULT_BARS,
    lockbox_fraction: float = DEFAULT_LOCKBOX_FRACTION,
) -> tuple[DatasetInfo, SynthInfo]:
    """Generate a series and store it as `ktrdr data import` would, with its sidecar record beside it.

    Raises:
        DataError: a bad kind, strength, bar count, symbol or timeframe (nothing is written then).
    """
    dataset_path(symbol, timeframe, data_dir)  # a bad name fails before anything is generated
    frame, info = synth_bars(kind, strength, seed, bars, timeframe=timeframe, lockbox_fraction=lockbox_fraction)
    return store_synth(frame, info, symbol=symbol, data_dir=data_dir), info


def store_synth(frame: pd.DataFrame, info: SynthInfo, *, symbol: str, data_dir: Path) -> DatasetInfo:
    """Store generated bars as `ktrdr data import` would, with the sidecar that says how they were made.

    Raises:
        DataError: a bad symbol or timeframe, or bars that fail validation.
    """
    stored = store_bars(frame, symbol=symbol, timeframe=info.timeframe, data_dir=data_dir)
    record = {**asdict(info), "symbol": stored.symbol, "data_sha256": _fingerprint(stored.path)}
    atomic_write(sidecar_path(stored.path), json.dumps(record, indent=2, sort_keys=True))
    return stored


def read_sidecar(data_file: Path) -> SynthInfo | None:
    """The record of a synthetic series, or None: no sidecar, an unreadable one, or one of an older file.

    A sidecar names the SHA-256 of the file it describes, so a series re-imported or re-made over it since is
    not mistaken for the synthetic one.
    """
    path = sidecar_path(Path(data_file))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.pop("data_sha256") != _fingerprint(Path(data_file)):
            return None
        record.pop("symbol", None)
        return SynthInfo(**record)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
