"""Paper trading a universe (issue 27 after issue 24): its strategy's portfolio mode over the common forward dates.

The model is a fixed contrarian rule on the first feature (a stand-in for a trained one: the portfolio, not the
model, is under test); the universe is a small synthetic one in memory (`engine.synth_universe`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.backtest import simulate
from agent_pipeline.engine.broker import Position
from agent_pipeline.engine.paper import Book, Traded, targets_of
from agent_pipeline.engine.paper_universe import Forward, forward_period, run_portfolio, trade_universe
from agent_pipeline.engine.portfolio import rank_portfolio, timing_portfolio
from agent_pipeline.engine.strategy import Strategy, parse_strategy
from agent_pipeline.engine.synth_universe import UniverseRecipe, universe_frames
from agent_pipeline.errors import DataError
from tests.universes import pooled_strategy

CAPITAL, COST = 1000.0, 0.0003  # the strategy's default commission + slippage
BARS, FORWARD = 400, 60  # bars in the universe; the last FORWARD of them are forward bars


def strategy(**portfolio: Any) -> Strategy:
    return parse_strategy(pooled_strategy("U", **({"portfolio": portfolio} if portfolio else {})))


def predict(x: np.ndarray) -> np.ndarray:
    """P(SELL, HOLD, BUY): buy what the first feature says fell, sell what it says rose."""
    buy = 1.0 / (1.0 + np.exp(4.0 * (x[:, 0] - x[:, 1])))
    return np.column_stack([1.0 - buy, np.zeros(len(x)), buy])


@pytest.fixture(scope="module")
def series() -> dict[str, pd.DataFrame]:
    frames = universe_frames(UniverseRecipe("reversal", 2.0, 7, 4, bars=BARS))
    return {f"U.S{i:02d}": frame for i, (frame, _) in enumerate(frames)}


def start_of(series: dict[str, pd.DataFrame]) -> pd.Timestamp:
    return next(iter(series.values())).index[BARS - FORWARD - 1]


def fresh() -> Book:
    return Book(cash=CAPITAL, position=Position("U"), equity=CAPITAL)


def traded(rules: Strategy, series: dict[str, pd.DataFrame], book: Book | None = None) -> Traded:
    forward = forward_period(rules, series, start_of(series), predict)
    run = run_portfolio(rules, forward)
    return trade_universe(run, book or fresh(), capital=CAPITAL, cost_rate=COST, name="U")


def test_timing_and_rank_trade_the_same_bars_differently(series: dict[str, pd.DataFrame]) -> None:
    # Given the same universe, model and forward dates, traded in each mode
    timing, rank = traded(strategy(), series), traded(strategy(mode="rank", fraction=0.25), series)
    # Then both book every forward date, with different equity and different fills
    assert [b.at for b in timing.bars] == [b.at for b in rank.bars] == list(series["U.S00"].index[-FORWARD:])
    assert not np.allclose([b.equity for b in timing.bars], [b.equity for b in rank.bars])
    timing_fills = [(f.at, f.symbol, f.reason) for b in timing.bars for f in b.fills]
    rank_fills = [(f.at, f.symbol, f.reason) for b in rank.bars for f in b.fills]
    assert timing_fills and rank_fills and timing_fills != rank_fills
    # And rank is dollar-neutral (one long, one short), timing each symbol's side over four
    assert all(b.position == pytest.approx(0.0) for b in rank.bars)
    assert {round(b.position * 4) / 4 for b in timing.bars} == {b.position for b in timing.bars}
    assert {p.symbol for p in timing.positions} == set(series) == {p.symbol for p in rank.positions}


def test_the_timing_account_earns_the_timing_backtest_of_its_dates_but_its_final_liquidation(
    series: dict[str, pd.DataFrame],
) -> None:
    rules = strategy()
    forward = forward_period(rules, series, start_of(series), predict)
    results = [
        simulate(forward.bars[s], targets_of(rules, forward.probabilities[s], forward.finite[s]), commission=COST,
                 slippage=0.0, periods_per_year=252)
        for s in forward.symbols
    ]  # fmt: skip
    expected = timing_portfolio(results, periods_per_year=252).equity.to_numpy()
    booked = np.array([b.equity for b in traded(rules, series).bars]) / CAPITAL
    np.testing.assert_allclose(booked[:-1], expected[1:-1], rtol=1e-12)
    assert booked[-1] > expected[-1]  # the backtest's last close pays for leaving every position


def test_the_rank_account_earns_the_rank_backtest_of_its_dates_but_its_final_liquidation(
    series: dict[str, pd.DataFrame],
) -> None:
    rules = strategy(mode="rank", fraction=0.25)
    forward = forward_period(rules, series, start_of(series), predict)
    scores = np.column_stack([forward.probabilities[s][:, 2] for s in forward.symbols])
    closes = np.column_stack([forward.bars[s]["close"].to_numpy() for s in forward.symbols])
    expected = rank_portfolio(scores, closes, forward.dates, fraction=0.25, cost=COST, periods=252).equity.to_numpy()
    booked = np.array([b.equity for b in traded(rules, series).bars]) / CAPITAL
    np.testing.assert_allclose(booked[:-1], expected[1:-1], rtol=1e-12)
    assert booked[-1] > expected[-1]


@pytest.mark.parametrize("portfolio", [{}, {"mode": "rank", "fraction": 0.25}])
def test_dates_booked_over_several_steps_are_booked_as_one_step_books_them(
    series: dict[str, pd.DataFrame], portfolio: dict[str, Any]
) -> None:
    # Given the forward bars arriving in three parts, a step after each
    rules = strategy(**portfolio)
    whole = traded(rules, series)
    book, parts = fresh(), []
    for end in (BARS - FORWARD + 10, BARS - FORWARD + 11, BARS):
        step = traded(rules, {s: frame.iloc[:end] for s, frame in series.items()}, book)
        parts.extend(step.bars)
        book = step.book
        # And the step run again on the same bars (a redelivery) finds nothing new
        assert traded(rules, {s: frame.iloc[:end] for s, frame in series.items()}, book).bars == []
    # Then every date is booked once, with the equity, fills and positions of one step over all of them
    assert [(b.at, b.equity, b.fills) for b in parts] == [(b.at, b.equity, b.fills) for b in whole.bars]
    assert book == whole.book and step.positions == whole.positions


def test_a_date_is_booked_only_once_every_symbol_has_it(series: dict[str, pd.DataFrame]) -> None:
    # Given a symbol without the 5th forward date, and the others with one more date than it has
    dates = series["U.S00"].index
    gap, last = dates[BARS - FORWARD + 4], dates[-1]
    partial = {s: frame.drop(index=[gap]) if s == "U.S01" else frame for s, frame in series.items()}
    partial["U.S02"] = partial["U.S02"].iloc[:-1]
    # Then neither the date it lacks nor the one it has not reached yet is booked
    booked = [b.at for b in traded(strategy(), partial).bars]
    assert gap not in booked and last not in booked and len(booked) == FORWARD - 2


def test_a_start_that_is_no_longer_a_common_date_is_one_line(series: dict[str, pd.DataFrame]) -> None:
    start = start_of(series)
    replaced = {s: frame.drop(index=[start]) if s == "U.S03" else frame for s, frame in series.items()}
    with pytest.raises(DataError, match=r"^the account's start .* is not a date every symbol of the universe has"):
        forward_period(strategy(), replaced, start, predict)


def test_forward_scores_every_symbol_from_the_start_on(series: dict[str, pd.DataFrame]) -> None:
    forward: Forward = forward_period(strategy(), series, start_of(series), predict)
    assert forward.dates[0] == start_of(series) and len(forward.dates) == FORWARD + 1
    assert all(
        len(p) == FORWARD + 1 and f.all()
        for p, f in zip(forward.probabilities.values(), forward.finite.values(), strict=True)
    )


def test_a_step_whose_recomputed_portfolio_disagrees_with_the_booked_equity_books_nothing(
    series: dict[str, pd.DataFrame],
) -> None:
    from dataclasses import replace

    # Given an account that booked the first half of the forward dates
    rules = strategy()
    half = {symbol: frame.iloc[: BARS - FORWARD // 2] for symbol, frame in series.items()}
    first = traded(rules, half)
    # When the next step's portfolio, recomputed from the start, no longer gives the equity booked at that date
    # (as a flipped prediction would), or gives it exactly
    wrong = replace(first.book, equity=first.book.equity * 1.001)
    # Then it refuses with one line naming both figures, and otherwise books the dates after the last booked one
    with pytest.raises(DataError, match=r"recomputed to .* gives equity [\d.]+, not the [\d.]+ booked"):
        traded(rules, series, wrong)
    assert [b.at for b in traded(rules, series, first.book).bars] == list(series["U.S00"].index[-FORWARD // 2 :])
