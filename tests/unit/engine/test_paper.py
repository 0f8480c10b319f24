"""The paper loop's plain parts (issue 27): the paper broker, trading forward bars as the backtest would, the band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.backtest import simulate
from agent_pipeline.engine.broker import Order, PaperBroker, Position
from agent_pipeline.engine.decay import DecayMonitor
from agent_pipeline.engine.paper import Book, backtest_moments, expected_band, paper_broker, trade, watch
from agent_pipeline.engine.synth import synth_bars

COST = 0.0003  # commission + slippage


def bars_and_targets(n: int = 200, seed: int = 4) -> tuple[pd.DataFrame, pd.Series]:
    bars, _ = synth_bars("reversal", 3.0, seed, n)
    rng = np.random.default_rng(seed)
    targets = pd.Series(rng.choice([-1.0, 0.0, 1.0], size=n), index=bars.index)
    return bars, targets


def fresh(capital: float = 1000.0) -> Book:
    return Book(cash=capital, position=Position("REV"), equity=capital)


def test_the_paper_broker_fills_at_the_orders_price_with_its_costs_and_keeps_the_position() -> None:
    broker = PaperBroker(cash=1000.0, cost_rate=0.001)
    at = pd.Timestamp("2020-01-02")
    entry = broker.submit(Order("X", 10.0, 50.0, at, "entry"))
    assert (entry.cost, entry.seq, broker.cash) == (pytest.approx(0.5), 0, pytest.approx(499.5))
    assert broker.positions()["X"] == Position("X", 10.0, 50.0, at)
    later = pd.Timestamp("2020-01-03")
    broker.submit(Order("X", -10.0, 60.0, later, "exit"))
    flip = broker.submit(Order("X", -5.0, 60.0, later, "entry"))
    assert flip.seq == 1 and broker.positions()["X"] == Position("X", -5.0, 60.0, later)
    assert broker.cash == pytest.approx(499.5 + 600 - 0.6 + 300 - 0.3)
    assert [fill.reason for fill in broker.fills()] == ["entry", "exit", "entry"]


def test_forward_bars_traded_on_paper_follow_the_backtests_equity_up_to_its_final_liquidation() -> None:
    # Given bars and the targets decided at each close, the first bar being the account's start
    bars, targets = bars_and_targets()
    start = bars.index[0]
    # When the paper loop trades the bars after it, and the backtest simulates the same decisions
    traded = trade(fresh(), bars, targets, paper_broker(fresh(), COST, "REV"), symbol="REV", start_after=start)
    result = simulate(bars, targets.to_numpy(), commission=COST, slippage=0.0, periods_per_year=252)
    # Then the equity per bar is the backtest's (scaled by the capital), but for the backtest's final liquidation
    paper = np.array([bar.equity for bar in traded.bars]) / 1000.0
    np.testing.assert_allclose(paper[:-1], result.equity.to_numpy()[1:-1], rtol=1e-12)
    assert [bar.position for bar in traded.bars] == list(result.positions[1:])
    assert traded.book.bars == len(bars) - 1 and traded.book.last_bar == bars.index[-1]
    assert traded.returns[0] == pytest.approx(paper[0] - 1.0)


def test_trading_the_bars_in_several_steps_books_what_one_step_would() -> None:
    bars, targets = bars_and_targets()
    start = bars.index[0]
    whole = trade(fresh(), bars, targets, paper_broker(fresh(), COST, "REV"), symbol="REV", start_after=start)
    book, parts = fresh(), []
    for end in (30, 31, 75, len(bars)):
        step = trade(book, bars.iloc[:end], targets, paper_broker(book, COST, "REV"), symbol="REV", start_after=start)
        parts.extend(step.bars)
        book = step.book
    assert [(b.at, b.equity, b.fills) for b in parts] == [(b.at, b.equity, b.fills) for b in whole.bars]
    assert book == whole.book


def test_an_account_with_nothing_left_trades_no_more() -> None:
    bars, _ = synth_bars("reversal", 3.0, 2, 200)
    broke = Book(cash=0.0, position=Position("REV"), equity=0.0)
    targets = pd.Series(1.0, index=bars.index)
    traded = trade(broke, bars, targets, paper_broker(broke, COST, "REV"), symbol="REV", start_after=bars.index[0])
    assert all(bar.position == 0.0 and not bar.fills for bar in traded.bars)


def test_the_decay_monitor_sees_each_forward_bar_once_across_steps() -> None:
    bars, targets = bars_and_targets()
    traded = trade(fresh(), bars, targets, paper_broker(fresh(), COST, "REV"), symbol="REV", start_after=bars.index[0])
    monitor = DecayMonitor.of(0.001, 0.01, 1, backtest_bars=500).to_dict()
    once, state = watch(monitor, traded, first=0)
    again, repeated = watch(once, traded, first=0)  # the same step redelivered
    assert repeated == state and again == once and state.bars == len(traded.bars)


def test_the_expected_path_and_its_band_grow_with_the_bars() -> None:
    band = expected_band(1000.0, 0.001, 0.01, 4, z=2.0)
    np.testing.assert_allclose(band.expected, [1001, 1002, 1003, 1004])
    np.testing.assert_allclose(band.high - band.expected, 1000 * 2 * 0.01 * np.sqrt([1, 2, 3, 4]))
    np.testing.assert_allclose(band.expected - band.low, band.high - band.expected)


def test_backtest_moments_are_the_returns_mean_and_sample_deviation_and_refuse_no_spread() -> None:
    mean, std = backtest_moments(np.array([0.01, -0.01, 0.02, np.nan]))
    assert mean == pytest.approx(0.02 / 3) and std == pytest.approx(np.std([0.01, -0.01, 0.02], ddof=1))
    with pytest.raises(ValueError, match="no spread"):
        backtest_moments(np.array([0.01, 0.01]))
