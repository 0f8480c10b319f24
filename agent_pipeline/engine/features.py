"""Indicators and fuzzy memberships: the model's inputs.

Every indicator is vectorised and causal: its value at bar t uses only bars <= t (pandas `rolling` and
`ewm(adjust=False)` are both one-pass, left-to-right). Warm-up values are NaN.

Each strategy indicator yields one *primary* series, the one its fuzzy sets apply to (under its
`feature_id`). Primaries are scale-free so the same fuzzy sets suit EURUSD at 1.1 and the S&P 500 at 2,500:

| type | primary value | typical range |
|---|---|---|
| rsi | Wilder RSI | 0 .. 100 |
| sma, ema | close / average - 1 (price distance, a fraction) | -0.05 .. 0.05 |
| macd | MACD histogram (line - signal) / close (a fraction) | -0.005 .. 0.005 |
| bollinger | %B: (close - lower) / (upper - lower) | -0.2 .. 1.2 (0 = lower band, 1 = upper) |
| atr | Wilder ATR / close (a fraction) | 0.001 .. 0.05 |
| stochastic | slow %K: fast %K averaged over `smooth` bars | 0 .. 100 |
| roc | 100 * (close / close `period` bars ago - 1), percent | -10 .. 10 |
| obv | OBV flow: OBV change over 20 bars / volume over those bars | -1 .. 1 |
| williams_r | Williams %R | -100 .. 0 |
| cci | Commodity Channel Index (constant 0.015) | -200 .. 200 |
| adx | Wilder ADX (trend strength, no direction) | 0 .. 60 |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from agent_pipeline.engine.data import is_close_only
from agent_pipeline.engine.strategy import FuzzySet, Strategy, close_only_problems
from agent_pipeline.errors import DataError

# Window of the OBV flow transform (OBV has no period in the strategy grammar).
OBV_WINDOW = 20
# Lambert's constant: scales CCI so that most values fall within +-100.
CCI_CONSTANT = 0.015
# %D is this many bars' simple average of %K.
STOCHASTIC_D = 3


def _wilder(values: pd.Series, period: int) -> pd.Series:
    """Wilder's smoothing (an EMA with alpha = 1/period), NaN until `period` values were seen."""
    return values.ewm(alpha=1.0 / period, min_periods=period, adjust=False).mean()


def _ratio(numerator: pd.Series, denominator: pd.Series, empty: float = np.nan) -> pd.Series:
    """numerator / denominator, with `empty` where the denominator is 0 (flat prices, no volume)."""
    quotient = (numerator / denominator.where(denominator != 0)).where(denominator != 0, empty)
    return quotient.where(numerator.notna() & denominator.notna())


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's RSI, 0..100: 100 * avg gain / (avg gain + avg loss), the same as 100 - 100 / (1 + RS).

    50 when prices have not moved at all in the smoothing memory.
    """
    change = close.diff()
    gain = _wilder(change.clip(lower=0), period)
    loss = _wilder(-change.clip(upper=0), period)
    return 100 * _ratio(gain, gain + loss, empty=0.5)


def sma(close: pd.Series, period: int = 14) -> pd.Series:
    """Simple moving average."""
    return close.rolling(period, min_periods=period).mean()


def ema(close: pd.Series, period: int = 14) -> pd.Series:
    """Exponential moving average (span = period, seeded with the first close, NaN for period-1 bars)."""
    return close.ewm(span=period, min_periods=period, adjust=False).mean()


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[pd.Series, ...]:
    """MACD in price units.

    Returns:
        (line, signal line, histogram) where line = EMA(fast) - EMA(slow), histogram = line - signal.
    """
    line = ema(close, fast) - ema(close, slow)
    signal_line = line.ewm(span=signal, min_periods=signal, adjust=False).mean()
    return line, signal_line, line - signal_line


def bollinger(close: pd.Series, period: int = 20, std: float = 2.0) -> tuple[pd.Series, pd.Series]:
    """Bollinger bands with the population standard deviation (ddof=0, as Bollinger defines them).

    Returns:
        (%B, bandwidth) with %B = (close - lower) / (upper - lower) and bandwidth = (upper - lower) / middle.
    """
    middle = sma(close, period)
    width = 2 * std * close.rolling(period, min_periods=period).std(ddof=0)
    return _ratio(close - (middle - width / 2), width, empty=0.5), width / middle


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(high, previous close) - min(low, previous close); high - low on the first bar."""
    previous = close.shift(1)
    return pd.concat([high, previous], axis=1).max(axis=1) - pd.concat([low, previous], axis=1).min(axis=1)


def atr(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's Average True Range divided by close: a scale-free fraction of price."""
    return _wilder(true_range(high, low, close), period) / close


def stochastic(
    high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14, smooth: int = 3
) -> tuple[pd.Series, pd.Series]:
    """Stochastic oscillator, 0..100.

    Returns:
        (%K, %D): %K is the fast %K averaged over `smooth` bars (smooth=1 gives the fast %K, smooth=3 the
        usual "slow" %K); %D is the 3-bar average of %K. A flat window gives 50.
    """
    lowest = low.rolling(period, min_periods=period).min()
    highest = high.rolling(period, min_periods=period).max()
    fast = 100 * _ratio(close - lowest, highest - lowest, empty=0.5)
    k = fast.rolling(smooth, min_periods=smooth).mean()
    return k, k.rolling(STOCHASTIC_D, min_periods=STOCHASTIC_D).mean()


def roc(close: pd.Series, period: int = 14) -> pd.Series:
    """Rate of change in percent: 100 * (close / close `period` bars ago - 1)."""
    return 100 * (close / close.shift(period) - 1)


def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """On-balance volume (raw, cumulative): +volume on bars that do not close lower, -volume otherwise."""
    return volume.where(~(close < close.shift(1)), -volume).cumsum()


def obv_flow(close: pd.Series, volume: pd.Series, window: int = OBV_WINDOW) -> pd.Series:
    """OBV made scale-free: OBV's change over `window` bars / the volume traded over them, in [-1, 1].

    +1 means every bar of the window closed higher or unchanged, -1 lower; 0 where no volume was traded.
    """
    change = obv(close, volume).diff(window)
    traded = volume.rolling(window, min_periods=window).sum().where(change.notna())
    return _ratio(change, traded, empty=0.0)


def williams_r(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Williams %R, -100 (close at the window's low) .. 0 (at its high); -50 in a flat window."""
    highest = high.rolling(period, min_periods=period).max()
    lowest = low.rolling(period, min_periods=period).min()
    return -100 * _ratio(highest - close, highest - lowest, empty=0.5)


def _mean_absolute_deviation(values: pd.Series, period: int) -> pd.Series:
    result = np.full(len(values), np.nan)
    if len(values) >= period:
        windows = sliding_window_view(values.to_numpy(dtype=float), period)
        result[period - 1 :] = np.abs(windows - windows.mean(axis=1, keepdims=True)).mean(axis=1)
    return pd.Series(result, index=values.index)


def cci(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 20) -> pd.Series:
    """Commodity Channel Index of the typical price (high + low + close) / 3; 0 in a flat window."""
    typical = (high + low + close) / 3
    deviation = typical - typical.rolling(period, min_periods=period).mean()
    return _ratio(deviation, CCI_CONSTANT * _mean_absolute_deviation(typical, period), empty=0.0)


def adx(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's Average Directional Index, 0..100 (trend strength regardless of direction)."""
    up, down = high.diff(), -low.diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0).where(up.notna())
    minus_dm = down.where((down > up) & (down > 0), 0.0).where(down.notna())
    range_ = _wilder(true_range(high, low, close).iloc[1:], period)
    plus_di = _ratio(_wilder(plus_dm.iloc[1:], period), range_, empty=0.0)
    minus_di = _ratio(_wilder(minus_dm.iloc[1:], period), range_, empty=0.0)
    dx = 100 * _ratio((plus_di - minus_di).abs(), plus_di + minus_di, empty=0.0)
    return _wilder(dx, period).reindex(close.index)


def _distance(close: pd.Series, average: pd.Series) -> pd.Series:
    return close / average - 1


# type -> the primary series of one strategy indicator (see the module docstring for units).
PRIMARY: dict[str, Callable[[Any, pd.DataFrame], pd.Series]] = {
    "rsi": lambda ind, b: rsi(b["close"], ind.period),
    "sma": lambda ind, b: _distance(b["close"], sma(b["close"], ind.period)),
    "ema": lambda ind, b: _distance(b["close"], ema(b["close"], ind.period)),
    "macd": lambda ind, b: macd(b["close"], ind.fast, ind.slow, ind.signal)[2] / b["close"],
    "bollinger": lambda ind, b: bollinger(b["close"], ind.period, ind.std)[0],
    "atr": lambda ind, b: atr(b["high"], b["low"], b["close"], ind.period),
    "stochastic": lambda ind, b: stochastic(b["high"], b["low"], b["close"], ind.period, ind.smooth)[0],
    "roc": lambda ind, b: roc(b["close"], ind.period),
    "obv": lambda ind, b: obv_flow(b["close"], b["volume"]),
    "williams_r": lambda ind, b: williams_r(b["high"], b["low"], b["close"], ind.period),
    "cci": lambda ind, b: cci(b["high"], b["low"], b["close"], ind.period),
    "adx": lambda ind, b: adx(b["high"], b["low"], b["close"], ind.period),
}


# --------------------------------------------------------------------------- fuzzy sets


def trapezoidal(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """Trapezoidal membership: 0 below a, rising to 1 at b, 1 up to c, falling to 0 at d.

    A vertical edge is a shoulder: a == b means 1 for every x <= c (down to -inf), c == d means 1 for
    every x >= b. So `[0, 0, 30]` on RSI is "oversold" and `[70, 100, 100]` "overbought". NaN stays NaN.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.ones_like(x) if a == b else np.clip((x - a) / (b - a), 0, 1)
        falling = np.ones_like(x) if c == d else np.clip((d - x) / (d - c), 0, 1)
    result = np.minimum(rising, falling)
    return np.where(np.isnan(x), np.nan, result)


def triangular(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Triangular membership: 0 at a, 1 at b, 0 at c (a trapezoid with b == c; same shoulder rule)."""
    return trapezoidal(x, a, b, b, c)


def gaussian(x: np.ndarray, mean: float, sigma: float) -> np.ndarray:
    """Gaussian membership exp(-(x - mean)^2 / (2 sigma^2)), 1 at the mean."""
    x = np.asarray(x, dtype=float)
    return np.exp(-0.5 * ((x - mean) / sigma) ** 2)


MEMBERSHIPS: dict[str, Callable[..., np.ndarray]] = {
    "triangular": triangular,
    "trapezoidal": trapezoidal,
    "gaussian": gaussian,
}


def membership(fuzzy_set: FuzzySet, values: np.ndarray) -> np.ndarray:
    """The membership of `values` in one fuzzy set, in [0, 1] (NaN where the value is NaN)."""
    return MEMBERSHIPS[fuzzy_set.type](values, *fuzzy_set.parameters)


# --------------------------------------------------------------------------- strategy features


def compute_indicators(strategy: Strategy, bars: pd.DataFrame) -> pd.DataFrame:
    """The primary series of every indicator of the strategy, one column per feature_id.

    Raises:
        DataError: the bars are close-only and an indicator needs high, low or volume (issue 24). Nothing invents
            them, and pandas would skip the NaN highs and lows and compute an ATR of 0. A DataError, one plain
            message, crosses the GPU queue intact; a StrategyValidationError rebuilt from its text would not.
    """
    problems = close_only_problems(strategy) if is_close_only(bars) else []
    if problems:
        raise DataError("; ".join(problems))
    return pd.DataFrame({ind.feature_id: PRIMARY[ind.type](ind, bars) for ind in strategy.indicators})


def compute_features(strategy: Strategy, bars: pd.DataFrame) -> pd.DataFrame:
    """The model inputs: one column `<feature_id>.<set_name>` per fuzzy set, memberships in [0, 1].

    Args:
        strategy: a validated strategy.
        bars: OHLCV bars as `engine.data.load_bars` returns them.

    Returns:
        A frame on the bars' index; warm-up rows are NaN (dataset assembly drops them).
    """
    indicators = compute_indicators(strategy, bars)
    columns = {}
    for feature_id, sets in strategy.fuzzy_sets.items():
        values = indicators[feature_id].to_numpy(dtype=float)
        for set_name, fuzzy_set in sets.items():
            columns[f"{feature_id}.{set_name}"] = membership(fuzzy_set, values)
    return pd.DataFrame(columns, index=bars.index)
