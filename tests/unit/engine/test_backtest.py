"""The backtester: a hand-checked case, an independent loop, next-bar execution, metrics, signals, saving."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import torch

from agent_pipeline.engine.backtest import (
    PERIODS_PER_YEAR,
    periods_per_year,
    positions_from_classes,
    predict_signals,
    run_backtest,
    simulate,
)
from agent_pipeline.engine.trainer import ModelSpec, atomic_torch_save, build_model
from agent_pipeline.errors import BacktestError


def make_bars(opens, closes) -> pd.DataFrame:
    opens, closes = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, closes),
            "low": np.minimum(opens, closes),
            "close": closes,
            "volume": 1.0,
        },
        index=pd.date_range("2024-01-01", periods=len(opens), freq="D"),
    )


def random_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate(([100.0], closes[:-1])) * np.exp(rng.normal(0, 0.002, n))
    return make_bars(opens, closes)


def reference_equity(bars: pd.DataFrame, signals, rate: float) -> tuple[list[float], list[float]]:
    """A plain loop with cash and units: the independent check of the vectorised simulator.

    Bar k's open executes signals[k-1]: close the old position, then open the new one sized at the equity.
    Returns the equity at each close and each closed trade's pnl.
    """
    cash, units, current, entry_equity = 1.0, 0.0, 0.0, 1.0
    equity, pnls = [], []
    opens, closes = bars["open"].tolist(), bars["close"].tolist()
    for k in range(len(opens)):
        target = float(signals[k - 1]) if k else 0.0
        price = opens[k]
        if target != current:
            if units:
                cash += units * price - abs(units) * price * rate
                units = 0.0
                pnls.append(cash - entry_equity)
            if target:
                entry_equity = cash
                units = target * cash / price
                cash -= units * price + abs(units) * price * rate
            current = target
        equity.append(cash + units * closes[k])
    if units:
        price = closes[-1]
        cash += units * price - abs(units) * price * rate
        pnls.append(cash - entry_equity)
        equity[-1] = cash
    return equity, pnls


def test_hand_checked_single_long_trade():
    # Given 5 bars and a BUY signal at bars 0 and 1, flat from bar 2
    bars = make_bars([100, 100, 110, 121, 120], [100, 105, 115, 120, 118])
    # When simulated with 0.1% commission and no slippage
    result = simulate(bars, np.array([1, 1, 0, 0, 0]), commission=0.001, slippage=0.0, periods_per_year=252)
    # Then the trade enters at bar 1's open (100), exits at bar 3's open (121), paying 0.1% on each side:
    # 1 - 0.001 (entry) + 0.21 (gain) - 0.001 * 1.21 (exit on the grown notional) = 1.20779
    assert result.total_return == pytest.approx(0.20779, abs=1e-12)
    assert result.equity.tolist() == pytest.approx([1.0, 1.049, 1.149, 1.20779, 1.20779], abs=1e-12)
    assert result.positions.tolist() == [0, 1, 1, 0, 0]
    assert result.num_trades == 1 and result.win_rate == 1.0
    assert result.buy_and_hold_return == pytest.approx(0.18)
    assert result.excess_return == pytest.approx(0.02779)
    assert result.exposure == pytest.approx(0.4)
    assert result.max_drawdown == 0.0
    assert math.isinf(result.profit_factor)


def test_hand_checked_short_trade_with_slippage():
    bars = make_bars([100, 100, 90, 95], [100, 95, 92, 96])
    result = simulate(bars, np.array([-1, 0, 0, 0]), commission=0.0005, slippage=0.0005, periods_per_year=252)
    # Short from 100 to 90: 1 - 0.001 + 0.1 - 0.001 * 0.9 = 1.0981
    assert result.total_return == pytest.approx(0.0981, abs=1e-12)
    assert result.num_trades == 1 and result.win_rate == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulator_matches_an_independent_loop_on_random_signals(seed):
    bars = random_bars(400, seed)
    rng = np.random.default_rng(seed + 10)
    signals = rng.choice([-1.0, 0.0, 1.0, 0.5], size=400, p=[0.3, 0.3, 0.3, 0.1])
    signals = np.repeat(signals[::4], 4)  # trades that last a few bars
    rate = 0.0002 + 0.0001
    result = simulate(bars, signals, commission=0.0002, slippage=0.0001, periods_per_year=252)
    equity, pnls = reference_equity(bars, signals, rate)
    assert result.equity.to_numpy() == pytest.approx(equity, rel=1e-10)
    assert result.num_trades == len(pnls)
    assert result.win_rate == pytest.approx(sum(p > 0 for p in pnls) / len(pnls))
    gains, losses = sum(p for p in pnls if p > 0), -sum(p for p in pnls if p < 0)
    assert result.profit_factor == pytest.approx(gains / losses)


def test_risk_metrics_match_textbook_formulas():
    bars = random_bars(300, 5)
    signals = np.repeat(np.random.default_rng(3).choice([-1.0, 1.0, 0.0], size=30), 10)
    result = simulate(bars, signals, commission=0.0001, slippage=0.0, periods_per_year=252)
    equity = [1.0, *result.equity.tolist()]
    returns = [equity[i] / equity[i - 1] - 1 for i in range(1, len(equity))]
    mean, std = statistics.mean(returns), statistics.stdev(returns)
    assert result.volatility == pytest.approx(std * math.sqrt(252))
    assert result.sharpe_ratio == pytest.approx(mean / std * math.sqrt(252))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / len(returns))
    assert result.sortino_ratio == pytest.approx(mean / downside * math.sqrt(252))
    peak, worst = 1.0, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, 1 - value / peak)
    assert result.max_drawdown == pytest.approx(worst)
    annualised = equity[-1] ** (252 / 300) - 1
    assert result.annualised_return == pytest.approx(annualised)
    assert result.calmar_ratio == pytest.approx(annualised / worst)
    assert result.total_return == pytest.approx(equity[-1] - 1)


def test_a_signal_trades_at_the_next_bars_open():
    signals = np.array([1, 0, 0, 0, 0])  # long during bar 1 only (open 1 -> open 2)
    base = simulate(make_bars([100, 100, 110, 110, 110], [100, 105, 110, 110, 110]), signals, commission=0,
                    slippage=0, periods_per_year=252)  # fmt: skip
    assert base.total_return == pytest.approx(0.10)
    # Changing the next bar's open (the fill price) changes the result ...
    moved_fill = simulate(make_bars([100, 105, 110, 110, 110], [100, 105, 110, 110, 110]), signals,
                          commission=0, slippage=0, periods_per_year=252)  # fmt: skip
    assert moved_fill.total_return == pytest.approx(110 / 105 - 1)
    # ... changing the signal bar's own close does not: the position was not held then.
    moved_close = simulate(make_bars([100, 100, 110, 110, 110], [130, 105, 110, 110, 110]), signals,
                           commission=0, slippage=0, periods_per_year=252)  # fmt: skip
    assert moved_close.total_return == pytest.approx(base.total_return)


def test_the_last_bars_signal_is_never_executed():
    bars = make_bars([100, 101, 102, 103], [101, 102, 103, 104])
    result = simulate(bars, np.array([0, 0, 0, 1]), commission=0.001, slippage=0, periods_per_year=252)
    assert result.total_return == 0.0 and result.num_trades == 0 and result.exposure == 0.0


def test_a_flip_pays_exit_and_entry_costs_and_counts_two_trades():
    bars = make_bars([100] * 5, [100] * 5)
    result = simulate(bars, np.array([1, -1, -1, -1, -1]), commission=0.001, slippage=0, periods_per_year=252)
    # enter long (0.001), exit long (0.001), enter short (0.000999), liquidate short at the end
    assert result.num_trades == 2 and result.win_rate == 0.0 and result.profit_factor == 0.0
    equity, _ = reference_equity(bars, [1, -1, -1, -1, -1], 0.001)
    assert result.total_return == pytest.approx(equity[-1] - 1)


def test_no_trades_gives_zero_metrics():
    result = simulate(random_bars(50), np.zeros(50), commission=0.001, slippage=0.0, periods_per_year=252)
    assert (result.total_return, result.num_trades, result.win_rate, result.profit_factor) == (
        0.0,
        0,
        0.0,
        0.0,
    )
    assert (result.sharpe_ratio, result.max_drawdown, result.calmar_ratio) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("bars", "signals", "message"),
    [
        (make_bars([100], [100]), [0], "at least 2 bars"),
        (make_bars([100, 100], [100, 100]), [0, 0, 0], "3 signals for 2 bars"),
        (make_bars([100, -1], [100, 100]), [0, 0], "positive and finite"),
        (make_bars([100, 100], [100, 100]), [0, 2], "in \\[-1, 1\\]"),
        (make_bars([100, 100], [100, 100]), [0, np.nan], "in \\[-1, 1\\]"),
    ],
)
def test_simulate_rejects_bad_input(bars, signals, message):
    with pytest.raises(BacktestError, match=message):
        simulate(bars, np.array(signals, float), commission=0, slippage=0, periods_per_year=252)


def test_positions_keep_the_previous_position_on_hold_and_low_confidence():
    classes = np.array([1, 2, 1, 0, 2, 0, 1])  # HOLD BUY HOLD SELL BUY(unsure) SELL HOLD
    confident = np.array([True, True, True, True, False, True, True])
    assert positions_from_classes(classes, confident).tolist() == [0, 1, 1, -1, -1, -1, -1]


def test_a_minimum_hold_keeps_a_position_that_many_bars_then_follows_the_latest_call():
    classes = np.array([2, 0, 0, 2, 1, 1, 0, 2])  # BUY SELL SELL BUY HOLD HOLD SELL BUY
    confident = np.ones(len(classes), dtype=bool)
    assert positions_from_classes(classes, confident, min_hold=3).tolist() == [1, 1, 1, 1, 1, 1, -1, -1]
    # the SELL called during the hold is the latest call when the hold ends: it is taken then
    assert positions_from_classes(np.array([2, 0, 1, 1]), np.ones(4, bool), min_hold=2).tolist() == [1, 1, -1, -1]
    assert positions_from_classes(classes, confident, min_hold=1).tolist() == [1, -1, -1, 1, 1, 1, -1, 1]


def test_every_position_but_the_last_lasts_at_least_the_minimum_hold():
    rng = np.random.default_rng(3)
    for min_hold in (2, 5, 13):
        classes, confident = rng.integers(0, 3, 500), rng.random(500) > 0.3
        held = positions_from_classes(classes, confident, min_hold=min_hold)
        changes = np.flatnonzero(np.diff(held)) + 1
        runs = np.diff(changes)
        assert len(runs) > 5 and runs.min() >= min_hold
        # and it never holds what the model no longer wants longer than it must: each change is to the latest call
        wanted = positions_from_classes(classes, confident)
        assert (held[changes] == wanted[changes]).all()


def write_model(path, n_features=2, bias=(0.0, 0.0, 0.0)) -> None:
    """A model whose logits ignore inputs except through `bias` and feature 0 (weight on BUY)."""
    spec = ModelSpec(n_features=n_features, hidden_layers=[2], activation="relu", dropout=0.0,
                     feature_names=[f"f{i}" for i in range(n_features)])  # fmt: skip
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model[1].weight[0, 0] = 1.0  # hidden 0 = relu(feature 0)
        model[-1].weight[2, 0] = 10.0  # BUY logit grows with feature 0
        model[-1].bias.copy_(torch.tensor(bias))
    atomic_torch_save({"format": 1, "spec": spec.__dict__, "state_dict": model.state_dict()}, path)


def test_predict_signals_applies_the_confidence_threshold(tmp_path):
    write_model(tmp_path / "m.pt", bias=(1.0, 0.0, 0.0))  # SELL slightly favoured when feature 0 <= 0
    x = np.array([[0.0, 0], [1.0, 0], [0.0, 0], [0.0, 0]], dtype=np.float32)
    # feature 0 = 0: probabilities (0.58, 0.21, 0.21) -> SELL at 0.58
    assert predict_signals(tmp_path / "m.pt", x, confidence_threshold=0.5).tolist() == [-1, 1, -1, -1]
    assert predict_signals(tmp_path / "m.pt", x, confidence_threshold=0.6).tolist() == [0, 1, 1, 1]


def test_predict_signals_rejects_a_feature_mismatch(tmp_path):
    write_model(tmp_path / "m.pt", n_features=2)
    with pytest.raises(BacktestError, match="expects 2 columns"):
        predict_signals(tmp_path / "m.pt", np.zeros((3, 4), np.float32), confidence_threshold=0.4)
    with pytest.raises(BacktestError, match="not found"):
        predict_signals(tmp_path / "nope.pt", np.zeros((3, 2), np.float32), confidence_threshold=0.4)


def test_periods_per_year_follow_the_timeframe():
    assert periods_per_year("1h") == 24 * 252 and periods_per_year("1d") == 252
    assert set(PERIODS_PER_YEAR) >= {"1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"}
    with pytest.raises(BacktestError):
        periods_per_year("2d")


def test_run_backtest_saves_equity_and_metrics(tmp_path):
    from agent_pipeline.engine.dataset import Dataset
    from agent_pipeline.engine.strategy import parse_strategy

    write_model(tmp_path / "m.pt")
    bars = random_bars(60)
    x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    empty = np.zeros((0, 2), np.float32)
    dataset = Dataset(["f0", "f1"], empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64), x,
                      np.zeros(60, np.int64), bars)  # fmt: skip
    strategy = parse_strategy({
        "name": "bt", "symbol": "SP500", "timeframe": "1d", "indicators": [{"type": "rsi"}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 30, 50]}}},
    })  # fmt: skip
    result = run_backtest(strategy, dataset, tmp_path / "m.pt", out_dir=tmp_path / "bt")
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert metrics["total_return"] == pytest.approx(result.total_return)
    assert metrics["n_bars"] == 60 and result.num_trades > 0
    curve = pd.read_csv(tmp_path / "bt" / "equity.csv", index_col="timestamp")
    assert curve["equity"].to_numpy() == pytest.approx(result.equity.to_numpy())
    assert sorted(p.name for p in (tmp_path / "bt").iterdir()) == ["equity.csv", "metrics.json"]
    json.dumps(result.to_summary(), allow_nan=False)


def test_run_backtest_refuses_a_model_trained_on_other_features(tmp_path):
    from agent_pipeline.engine.dataset import Dataset

    write_model(tmp_path / "m.pt")
    x = np.zeros((5, 2), np.float32)
    y = np.zeros(5, np.int64)
    dataset = Dataset(["other", "names"], x, y, x, y, x, y, random_bars(5))
    with pytest.raises(BacktestError, match="other features"):
        run_backtest(None, dataset, tmp_path / "m.pt", out_dir=tmp_path / "bt")  # type: ignore[arg-type]


def test_a_short_that_loses_more_than_the_account_is_ruined_at_zero_not_below():
    # Given a short entered at 100 while the price triples
    bars = pd.DataFrame({"open": [100.0, 100.0, 200.0, 300.0, 310.0], "close": [100.0, 150.0, 300.0, 305.0, 300.0]})
    result = simulate(bars, np.array([-1.0, -1.0, -1.0, 1.0, 1.0]), commission=0.0, slippage=0.0, periods_per_year=252)
    # Then the equity stops at 0, the drawdown is 100%, and nothing trades after the ruin
    assert result.equity.min() == 0.0 and result.equity.iloc[-1] == 0.0
    assert result.max_drawdown == pytest.approx(1.0)
    assert result.num_trades == 1
    assert np.isfinite(result.returns).all()
