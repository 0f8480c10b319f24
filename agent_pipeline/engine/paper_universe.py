"""Paper trading a universe (issue 27 after issue 24): the final model trades every symbol of the universe as its
strategy's `portfolio.mode` says, through the universe backtest's own portfolio (`engine.portfolio`).

**Dates.** An account books the universe's common dates (the dates every symbol has a bar on: `pooled.
common_calendar`, as research and the lockbox read a universe) after its `start_after`, the date on which every
symbol's stored series ended when the account opened. A date is booked once every symbol has it; a date that one
symbol never gets is skipped, as the common calendar skips it. `ktrdr data append` only adds bars after a series'
end, so the common dates up to the last one never change, and a step computes again exactly what earlier steps
booked: it books the dates after the last booked one only.

**Decisions.** Each symbol's features are computed on its bars on the common calendar, from the first date, so the
indicators are warm (`pooled` computes them so for research and the lockbox); the model scores every symbol's rows
from `start_after` on in one call.

**The portfolio** is the backtest's, over `start_after` (flat, its return 0) and the forward dates:
- `timing`: each symbol's own target positions (`paper.targets_of`: confidence threshold, minimum hold), traded alone
  by `backtest.simulate` (at the next open, each symbol's costs per trade), then `portfolio.timing_portfolio`: the
  capital split equally across the symbols, rebalanced every date;
- `rank`: `portfolio.rank_portfolio` on P(BUY): long the top `fraction`, short as many at the bottom, dollar-neutral,
  close to close.
Both backtests liquidate at their final close. An account goes on, so the portfolio is computed over one more row
(`_beyond`), a copy of the last date on which nothing moves: the liquidation falls on it, and it is never booked.

**The ledger.** A date's equity is the capital times the portfolio's equity, its return the portfolio's return (what
the decay alarm watches, as the backtest's `oos_returns.csv` holds the portfolio's), `position` the net exposure held
over it, `target` the net exposure decided at its close, `close` the universe's equal-weight buy-and-hold from
`start_after` (1.0). The fills are the portfolio's changes of weight per symbol, sent through the paper broker at
the price the weight trades at (timing: the date's open, or the close before it on close-only bars; rank: the close
before it), sized at the weight times the equity at the close before, with the strategy's cost on the notional; the
positions are what those fills hold. The fills record what the portfolio traded; the equity is the portfolio's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent_pipeline.engine.backtest import BacktestResult, periods_per_year, simulate
from agent_pipeline.engine.broker import Fill, Order, PaperBroker, Position
from agent_pipeline.engine.labels import BUY
from agent_pipeline.engine.paper import Book, BookedBar, Traded, feature_rows, opens_of, targets_of
from agent_pipeline.engine.pooled import common_calendar
from agent_pipeline.engine.portfolio import rank_portfolio, rank_weights, timing_portfolio
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.errors import DataError

# The model: feature rows in, class probabilities out (`trainer.predict_probabilities` on the account's model).
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Forward:
    """A universe over an account's forward period: row 0 is `start_after`, then the forward dates."""

    dates: pd.DatetimeIndex
    bars: dict[str, pd.DataFrame]  # each symbol's bars on `dates`, in the universe's order
    probabilities: dict[str, np.ndarray]  # the model's probabilities at each date's close, per symbol
    finite: dict[str, np.ndarray]  # whether the date's feature row was finite, per symbol

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)


def forward_period(
    strategy: Strategy, series: dict[str, pd.DataFrame], start_after: pd.Timestamp, predict: Predict
) -> Forward:
    """The universe from `start_after` on, scored by the model (module docstring).

    Raises:
        DataError: the symbols have no date in common, or `start_after` is not one of them any more (a replaced
            series).
    """
    calendar = common_calendar(series)
    if pd.Timestamp(start_after) not in calendar:
        raise DataError(f"the account's start {start_after} is not a date every symbol of the universe has now")
    aligned = {symbol: frame.reindex(calendar) for symbol, frame in series.items()}
    rows = {symbol: feature_rows(strategy, frame, start_after) for symbol, frame in aligned.items()}
    dates = next(iter(rows.values()))[0]
    scored = predict(np.nan_to_num(np.concatenate([x for _, x, _ in rows.values()])))
    split = np.split(scored, len(rows))
    return Forward(
        dates=dates,
        bars={symbol: frame.loc[dates] for symbol, frame in aligned.items()},
        probabilities=dict(zip(rows, split, strict=True)),
        finite={symbol: finite for symbol, (_, _, finite) in rows.items()},
    )


@dataclass(frozen=True)
class Run:
    """The portfolio over `dates` and the row beyond them (`_beyond`): what a universe account books."""

    symbols: tuple[str, ...]
    dates: pd.DatetimeIndex
    equity: np.ndarray  # at each date's close, 1.0 at start_after
    hold: np.ndarray  # the equal-weight buy-and-hold, 1.0 at start_after
    held: np.ndarray  # (dates + 1) x symbols: the weight held over each date; the last row, decided at the last close
    prices: np.ndarray  # dates x symbols: the price a change of weight over that date trades at


def run_portfolio(strategy: Strategy, forward: Forward) -> Run:
    """The strategy's `portfolio.mode` over the forward period, flat at `start_after` (module docstring)."""
    rules = strategy.portfolio
    run = _rank(strategy, forward) if rules is not None and rules.mode == "rank" else _timing(strategy, forward)
    return _ruined(run)


def _beyond(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with one more row after its last: its last close again, opened at that close (nothing moves)."""
    row = frame.iloc[[-1]].copy()
    if "open" in row and row["open"].notna().all():
        row["open"] = row["close"]
    row.index = pd.DatetimeIndex([frame.index[-1] + pd.Timedelta(days=1)], name=frame.index.name)
    return pd.concat([frame, row])


def _timing(strategy: Strategy, forward: Forward) -> Run:
    """Each symbol timed alone by `simulate`, the capital split equally (`timing_portfolio`)."""
    costs, periods = strategy.backtest, periods_per_year(strategy.timeframe)
    results = [
        simulate(
            _beyond(frame), np.append(targets_of(strategy, forward.probabilities[s], forward.finite[s]), 0.0),
            commission=costs.commission, slippage=costs.slippage, periods_per_year=periods,
        )
        for s, frame in forward.bars.items()
    ]  # fmt: skip
    portfolio = timing_portfolio(results, periods_per_year=periods)
    held = np.column_stack([result.positions for result in results]) / len(results)  # the last row: the row beyond
    prices = np.column_stack([opens_of(frame).to_numpy(dtype=np.float64) for frame in forward.bars.values()])
    return _run(forward, portfolio, held, prices)


def _rank(strategy: Strategy, forward: Forward) -> Run:
    """The daily ranks of P(BUY), long-short (`rank_portfolio`)."""
    assert strategy.portfolio is not None
    fraction = strategy.portfolio.fraction
    scores = np.column_stack(
        [np.where(forward.finite[s], forward.probabilities[s][:, BUY], np.nan) for s in forward.symbols]
    )
    closes = np.column_stack([frame["close"].to_numpy(dtype=np.float64) for frame in forward.bars.values()])
    scores, closes = np.vstack([scores, np.full(scores.shape[1], np.nan)]), np.vstack([closes, closes[-1:]])
    index = pd.DatetimeIndex(_beyond(next(iter(forward.bars.values()))).index)
    cost = strategy.backtest.commission + strategy.backtest.slippage
    portfolio = rank_portfolio(
        scores, closes, index, fraction=fraction, cost=cost, periods=periods_per_year(strategy.timeframe)
    )
    held = np.vstack([np.zeros(closes.shape[1]), rank_weights(scores[:-1], fraction)])  # held over the next date
    return _run(forward, portfolio, held, np.vstack([closes[:1], closes[:-2]]))  # traded at the close before


def _run(forward: Forward, portfolio: BacktestResult, held: np.ndarray, prices: np.ndarray) -> Run:
    equity = portfolio.equity.to_numpy()[:-1]
    hold = np.asarray(portfolio.closes, dtype=np.float64)[:-1]
    return Run(tuple(forward.symbols), forward.dates, equity, hold / hold[0], held, prices)


def _ruined(run: Run) -> Run:
    """A portfolio whose equity reaches zero holds nothing after that close, and its equity stays at zero."""
    ruin = np.flatnonzero(run.equity <= 0)
    if not len(ruin):
        return run
    equity, held = run.equity.copy(), run.held.copy()
    equity[ruin[0] :] = 0.0
    held[ruin[0] + 1 :] = 0.0
    return Run(run.symbols, run.dates, equity, run.hold, held, run.prices)


# Relative difference allowed between a booked date's equity and the same date recomputed at a later step.
REPLAY_TOLERANCE = 1e-9


def trade_universe(run: Run, book: Book, *, capital: float, cost_rate: float, name: str) -> Traded:
    """Book the dates of `run` after `book.last_bar` (all of them after `start_after`, row 0, on a fresh book).

    The fills go through a paper broker from `start_after` on at every step, so the positions after a step are the
    same however the dates were split across steps.
    """
    previous = book.last_bar if book.last_bar is not None else run.dates[0]
    _check_replayed(run, book, capital)
    broker = PaperBroker(cash=capital, cost_rate=cost_rate)
    booked = []
    for row in range(1, len(run.dates)):
        fills = _rebalance(broker, run, row, worth=capital * run.equity[row - 1])
        if run.dates[row] > previous:
            booked.append(_booked(run, row, capital, fills))
    if not booked:
        return Traded([], book)
    last = booked[-1]
    after = Book(last.cash, Position(name), last.equity, book.bars + len(booked), last.at)
    held = broker.positions()
    return Traded(booked, after, tuple(held.get(symbol, Position(symbol)) for symbol in run.symbols))


def _check_replayed(run: Run, book: Book, capital: float) -> None:
    """The portfolio recomputed from the start must give the equity already booked at the last booked date: a
    prediction that flipped (say, with a batch of another size) would continue the book from a path it never took.

    Raises:
        DataError: the recomputed equity differs (the account keeps it as `last_error` and books nothing).
    """
    if book.last_bar is None:
        return
    rows = np.flatnonzero(np.asarray(run.dates == book.last_bar))
    if not len(rows):
        raise DataError(f"the last booked date {book.last_bar} is no longer among the universe's common dates")
    again = capital * float(run.equity[rows[0]])
    if not math.isclose(again, book.equity, rel_tol=REPLAY_TOLERANCE, abs_tol=REPLAY_TOLERANCE * capital):
        raise DataError(
            f"the portfolio recomputed to {book.last_bar} gives equity {again:.6f}, not the {book.equity:.6f} "
            "booked: the model's decisions on booked dates changed"
        )


def _booked(run: Run, row: int, capital: float, fills: tuple[Fill, ...]) -> BookedBar:
    before, now = run.equity[row - 1], run.equity[row]
    net = float(run.held[row].sum())
    return BookedBar(
        at=run.dates[row], bar=row - 1, close=float(run.hold[row]), position=net,
        target=float(run.held[row + 1].sum()), cash=capital * now * (1.0 - net), equity=capital * now,
        bar_return=now / before - 1.0 if before > 0 else 0.0, fills=fills,
    )  # fmt: skip


def _rebalance(broker: PaperBroker, run: Run, row: int, *, worth: float) -> tuple[Fill, ...]:
    """Move each symbol from the weight held over the date before to the one held over `row`'s date: exit a side
    left, then enter (or resize to) the new weight of `worth`, at the price that weight trades at."""
    at, fills = run.dates[row], []
    for s, symbol in enumerate(run.symbols):
        old, new, price = run.held[row - 1, s], run.held[row, s], float(run.prices[row, s])
        if old == new:
            continue
        units = broker.positions().get(symbol, Position(symbol)).quantity
        if units != 0 and np.sign(new) != np.sign(old):
            fills.append(broker.submit(Order(symbol, -units, price, at, "exit")))
            units = 0.0
        if new != 0 and worth > 0:
            reason = "entry" if units == 0 else "resize"
            fills.append(broker.submit(Order(symbol, new * worth / price - units, price, at, reason)))
    return tuple(fills)
