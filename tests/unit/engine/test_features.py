"""Indicators agree with the `ta` library, never look ahead, and fuzzy memberships behave at their edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from agent_pipeline.engine import features as f
from agent_pipeline.engine.strategy import INDICATOR_TYPES

# Wilder smoothers are seeded differently (ta: first value or an SMA); after this many bars they agree.
WARM_UP = 300
TOLERANCE = 1e-6  # relative


def assert_close(ours: pd.Series, theirs: pd.Series) -> None:
    ours_values, their_values = ours.iloc[WARM_UP:].to_numpy(), theirs.iloc[WARM_UP:].to_numpy()
    assert not np.isnan(ours_values).any()
    np.testing.assert_allclose(ours_values, their_values, rtol=TOLERANCE, atol=1e-12)


@pytest.fixture(scope="module")
def hlcv(eurusd):
    return eurusd["high"], eurusd["low"], eurusd["close"], eurusd["volume"]


def test_rsi_matches_ta(hlcv):
    _, _, close, _ = hlcv
    assert_close(f.rsi(close, 14), ta.momentum.RSIIndicator(close, 14).rsi())


def test_sma_and_ema_match_ta(hlcv):
    _, _, close, _ = hlcv
    assert_close(f.sma(close, 20), ta.trend.SMAIndicator(close, 20).sma_indicator())
    assert_close(f.ema(close, 20), ta.trend.EMAIndicator(close, 20).ema_indicator())


def test_macd_line_signal_and_histogram_match_ta(hlcv):
    _, _, close, _ = hlcv
    line, signal, histogram = f.macd(close, 12, 26, 9)
    theirs = ta.trend.MACD(close, window_slow=26, window_fast=12, window_sign=9)
    assert_close(line, theirs.macd())
    assert_close(signal, theirs.macd_signal())
    assert_close(histogram, theirs.macd_diff())


def test_bollinger_percent_b_and_bandwidth_match_ta(hlcv):
    _, _, close, _ = hlcv
    percent_b, bandwidth = f.bollinger(close, 20, 2.0)
    theirs = ta.volatility.BollingerBands(close, 20, 2)
    assert_close(percent_b, theirs.bollinger_pband())
    # ta's bandwidth is in percent; ours is a fraction of the middle band.
    assert_close(bandwidth * 100, theirs.bollinger_wband())


def test_atr_matches_ta_once_divided_by_close(hlcv):
    high, low, close, _ = hlcv
    # Ours is ATR / close (scale-free); ta's is in price units.
    theirs = ta.volatility.AverageTrueRange(high, low, close, 14).average_true_range()
    assert_close(f.atr(high, low, close, 14) * close, theirs)


def test_stochastic_k_matches_ta_fast_and_slow(hlcv):
    high, low, close, _ = hlcv
    theirs = ta.momentum.StochasticOscillator(high, low, close, 14, 3)
    # Convention: our %K is smoothed over `smooth` bars. smooth=1 is ta's %K, smooth=3 is ta's signal (%D).
    assert_close(f.stochastic(high, low, close, 14, 1)[0], theirs.stoch())
    assert_close(f.stochastic(high, low, close, 14, 3)[0], theirs.stoch_signal())


def test_roc_matches_ta(hlcv):
    _, _, close, _ = hlcv
    assert_close(f.roc(close, 12), ta.momentum.ROCIndicator(close, 12).roc())


def test_raw_obv_matches_ta(hlcv):
    _, _, close, volume = hlcv
    assert_close(f.obv(close, volume), ta.volume.OnBalanceVolumeIndicator(close, volume).on_balance_volume())


def test_obv_flow_is_bounded_and_zero_without_volume(hlcv):
    _, _, close, volume = hlcv
    flow = f.obv_flow(close, volume).dropna()
    assert flow.between(-1, 1).all() and flow.std() > 0
    assert (f.obv_flow(close, volume * 0).dropna() == 0).all()


def test_williams_r_matches_ta(hlcv):
    high, low, close, _ = hlcv
    theirs = ta.momentum.WilliamsRIndicator(high, low, close, 14).williams_r()
    assert_close(f.williams_r(high, low, close, 14), theirs)


def test_cci_matches_ta(sp500):
    high, low, close = sp500["high"], sp500["low"], sp500["close"]
    assert_close(f.cci(high, low, close, 20), ta.trend.CCIIndicator(high, low, close, 20).cci())


def test_adx_matches_ta(hlcv):
    high, low, close, _ = hlcv
    assert_close(f.adx(high, low, close, 14), ta.trend.ADXIndicator(high, low, close, 14).adx())


def test_no_indicator_looks_ahead(eurusd, make_strategy):
    # Given every indicator type, computed on 1,000 bars
    indicators = [{"type": kind} for kind in INDICATOR_TYPES]
    sets = {"unused": {"type": "gaussian", "parameters": [0, 1]}}
    fuzzy_sets = {"rsi_14": sets}
    strategy = make_strategy(indicators=indicators, fuzzy_sets=fuzzy_sets)
    bars = eurusd.iloc[:1000].copy()
    before = f.compute_indicators(strategy, bars)
    features_before = f.compute_features(strategy, bars)
    assert list(before.columns) == [ind.feature_id for ind in strategy.indicators]
    # When every bar after t is replaced by wild values
    t = 700
    rng = np.random.default_rng(3)
    mutated = bars.copy()
    scale = rng.uniform(0.5, 2.0, size=(len(bars) - t - 1, 1))
    mutated.iloc[t + 1 :, :4] = mutated.iloc[t + 1 :, :4].to_numpy() * scale
    mutated.iloc[t + 1 :, 4] = rng.uniform(0, 1e9, size=len(bars) - t - 1)
    after = f.compute_indicators(strategy, mutated)
    # Then no value at or before t changes, and the future did change
    pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1])
    features_after = f.compute_features(strategy, mutated)
    pd.testing.assert_frame_equal(features_before.iloc[: t + 1], features_after.iloc[: t + 1])
    assert not before.iloc[t + 1 :].equals(after.iloc[t + 1 :])
    assert before.iloc[t].notna().all()


def test_compute_features_names_columns_and_keeps_memberships_in_unit_interval(eurusd, make_strategy):
    strategy = make_strategy()
    features = f.compute_features(strategy, eurusd)
    assert list(features.columns) == ["rsi_14.low", "rsi_14.high", "macd.flat", "bollinger_20.inside"]
    assert features.index.equals(eurusd.index)
    body = features.iloc[100:]
    assert body.notna().all().all()
    assert ((body >= 0) & (body <= 1)).all().all()
    assert features.iloc[0].isna().all()  # warm-up stays NaN


def test_triangular_peaks_at_b_and_vanishes_outside():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, np.nan])
    result = f.triangular(x, 0, 1, 2)
    np.testing.assert_allclose(result[:-1], [0, 0, 0.5, 1, 0.5, 0, 0])
    assert np.isnan(result[-1])


def test_vertical_edges_are_shoulders():
    x = np.array([-50.0, 0.0, 15.0, 30.0, 85.0, 100.0, 150.0])
    np.testing.assert_allclose(f.triangular(x, 0, 0, 30), [1, 1, 0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(f.triangular(x, 70, 100, 100), [0, 0, 0, 0, 0.5, 1, 1])


def test_trapezoidal_has_a_flat_top():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(f.trapezoidal(x, 0, 2, 3, 5), [0, 0.5, 1, 1, 0.5, 0])


def test_trapezoidal_accepts_infinite_shoulders():
    x = np.array([-1e9, -0.05, -0.025, 0.0])
    np.testing.assert_allclose(f.trapezoidal(x, -np.inf, -np.inf, -0.05, 0), [1, 1, 0.5, 0])


def test_gaussian_is_one_at_the_mean_and_symmetric():
    x = np.array([-1.0, 0.0, 1.0])
    result = f.gaussian(x, 0, 1)
    assert result[1] == 1.0
    assert result[0] == pytest.approx(result[2]) == pytest.approx(np.exp(-0.5))


def test_flat_prices_give_neutral_values_not_nan():
    flat = pd.Series(np.full(100, 1.5))
    assert f.rsi(flat, 14).iloc[-1] == 50
    assert f.bollinger(flat, 20)[0].iloc[-1] == 0.5
    assert f.williams_r(flat, flat, flat, 14).iloc[-1] == -50
    assert f.stochastic(flat, flat, flat, 14, 3)[0].iloc[-1] == 50
    assert f.cci(flat, flat, flat, 20).iloc[-1] == 0
    assert f.adx(flat, flat, flat, 14).iloc[-1] == 0


def test_every_indicator_type_has_a_primary_series():
    assert set(f.PRIMARY) == set(INDICATOR_TYPES)
