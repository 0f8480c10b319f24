"""Close-only series (issue 24): indicators needing high, low or volume are refused; backtests trade close to close."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.backtest import simulate
from agent_pipeline.engine.data import close_bars, load_bars, validate_bars
from agent_pipeline.engine.features import PRIMARY, compute_features
from agent_pipeline.engine.strategy import CLOSE_INDICATORS, INDICATOR_INPUTS, INDICATOR_TYPES, parse_strategy
from agent_pipeline.errors import DataError, StrategyValidationError

NEEDS_RANGE = ("atr", "stochastic", "williams_r", "cci", "adx")


@pytest.fixture(scope="module")
def closes_only() -> pd.DataFrame:
    """The bundled SP500_20's AAPL: adjusted closes, no open, high, low or volume."""
    return load_bars("SP500_20.AAPL", "1d").iloc[:600]


def with_indicator(document: Callable[..., dict[str, Any]], kind: str) -> dict[str, Any]:
    fuzzy = {"mid": {"type": "gaussian", "parameters": [0, 1]}}
    return document(symbol="DEMO.S00", timeframe="1d", indicators=[{"type": kind}], fuzzy_sets={kind_id(kind): fuzzy})


def kind_id(kind: str) -> str:
    return kind if kind in ("obv", "macd") else f"{kind}_{20 if kind == 'bollinger' else 14}"


def test_the_close_based_indicators_are_the_six_that_read_the_close_alone() -> None:
    assert set(CLOSE_INDICATORS) == {"rsi", "sma", "ema", "macd", "bollinger", "roc"}
    assert set(INDICATOR_INPUTS) == set(INDICATOR_TYPES)


@pytest.mark.parametrize("kind", INDICATOR_TYPES)
def test_the_declared_inputs_are_what_each_indicator_reads(sp500: pd.DataFrame, kind: str) -> None:
    # Given real OHLCV bars, and the same bars with other highs, lows and volumes (the closes kept)
    bars = sp500.iloc[:400]
    other = bars.assign(high=bars["high"] * 1.01, low=bars["low"] * 0.98, volume=bars["volume"][::-1].to_numpy())
    indicator = SimpleNamespace(type=kind, period=14, smooth=3, fast=12, slow=26, signal=9, std=2.0)
    # Then exactly the indicators declared close-based ignore them (pandas would compute an ATR of 0 from NaN
    # highs and lows, never an error: hence the refusal)
    same = np.allclose(PRIMARY[kind](indicator, bars), PRIMARY[kind](indicator, other), equal_nan=True)
    assert same == (kind in CLOSE_INDICATORS)


@pytest.mark.parametrize("kind", [*NEEDS_RANGE, "obv"])
def test_validation_names_the_indicator_and_the_reason(document: Callable[..., dict[str, Any]], kind: str) -> None:
    pair = ("DEMO.S00", "1d")
    with pytest.raises(StrategyValidationError) as caught:
        parse_strategy(with_indicator(document, kind), available=[pair], close_only=[pair])
    needs = "volume" if kind == "obv" else "high and low"
    assert caught.value.errors == [f"indicators[0]: {kind} needs {needs}, and DEMO.S00 1d is close-only"]
    assert parse_strategy(with_indicator(document, kind), available=[pair], close_only=[("OTHER", "1d")])


@pytest.mark.parametrize("kind", CLOSE_INDICATORS)
def test_close_based_indicators_pass_on_close_only_data(document: Callable[..., dict[str, Any]], kind: str) -> None:
    pair = ("demo.s00", "1d")  # spelled either way, as symbols are
    assert (
        parse_strategy(with_indicator(document, kind), available=[pair], close_only=[pair]).indicators[0].type == kind
    )


def test_features_refuse_an_atr_on_close_only_bars(document: Callable[..., dict[str, Any]], closes_only) -> None:
    strategy = parse_strategy(with_indicator(document, "atr"))
    with pytest.raises(DataError, match=r"^indicators\[0\]: atr needs high and low, and DEMO.S00 1d is close-only$"):
        compute_features(strategy, closes_only)
    rsi = parse_strategy(with_indicator(document, "rsi"))
    assert compute_features(rsi, closes_only).iloc[20:].notna().all().all()


def test_close_only_bars_are_validated_without_inventing_prices() -> None:
    raw = close_bars(pd.Series([1.0, 1.1, np.nan, 1.2], index=pd.date_range("2020-01-01", periods=4)))
    bars, report = validate_bars(raw, "1d")
    assert bars["close"].tolist() == [1.0, 1.1, 1.2] and bars[["open", "high", "low", "volume"]].isna().all().all()
    assert report.warnings == ()


def test_a_close_only_backtest_trades_close_to_close() -> None:
    # Given 5 close-only bars and a long signal decided at bars 0 and 1's closes, flat from bar 2
    closes = [100.0, 110.0, 121.0, 110.0, 99.0]
    bars, _ = validate_bars(close_bars(pd.Series(closes, index=pd.bdate_range("2020-01-06", periods=5))), "1d")
    result = simulate(bars, np.array([1, 1, 0, 0, 0]), commission=0.001, slippage=0.0, periods_per_year=252)
    # Then the long is filled at bar 0's close (100) and closed at bar 2's close (121), 0.1% a side, the exit
    # cost booked on bar 3 (whose "open" is bar 2's close): 1 - 0.001 + 0.21 - 0.001 * 1.21 = 1.20779
    assert result.positions.tolist() == [0, 1, 1, 0, 0]
    assert result.equity.tolist() == pytest.approx([1.0, 1.099, 1.209, 1.20779, 1.20779], abs=1e-12)
    assert result.num_trades == 1 and result.buy_and_hold_return == pytest.approx(99 / 100 - 1)


def test_a_close_only_backtest_earns_each_bars_close_to_close_return_when_always_long() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    bars, _ = validate_bars(close_bars(pd.Series(closes, index=pd.bdate_range("2001-01-01", periods=200))), "1d")
    result = simulate(bars, np.ones(200), commission=0.0, slippage=0.0, periods_per_year=252)
    assert result.returns[1:] == pytest.approx(closes[1:] / closes[:-1] - 1, rel=1e-9)
    assert result.total_return == pytest.approx(closes[-1] / closes[0] - 1, rel=1e-9)
