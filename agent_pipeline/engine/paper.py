"""Paper trading a cycle's final model on forward bars (issue 27): its decisions, fills and equity, bar by bar.

Paper only: orders go to a `Broker` (`engine.broker`); the one here is `PaperBroker`, and no live broker exists.

**Decisions** are the backtest's (`engine.backtest`): the model's class at each bar's close becomes a target position
(BUY long, SELL short, HOLD or a top probability under the strategy's `confidence_threshold` keeps the position,
`min_hold` respected). Features are computed on the whole stored series from its first bar, so the indicators are
warm and a bar's row is the same whatever came after it. The decisions start flat at the account's `start_after`
bar (the series' last bar when the account opened): the decision at that close trades at the first forward bar's
open. They are recomputed over every forward bar at each step: deterministic, so a step run again decides the same.

**Execution** is the backtest's too: a target decided at bar t's close is executed at bar t+1's open (a close-only
series: at bar t's close), sized at the whole equity, through the broker, which charges the strategy's own
`commission + slippage`. Equity at each close is cash plus the position marked at the close (no liquidation), and a
bar's return is its equity over the one before (the first forward bar's: over the capital). An account whose equity
reaches zero trades no more.

`trade` books only the bars it is given: the caller gives each bar once (`store.paper` refuses a bar twice). An
account of a universe trades its strategy's portfolio instead (`engine.paper_universe`), from the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent_pipeline.engine.broker import Broker, Fill, Order, PaperBroker, Position
from agent_pipeline.engine.data import is_close_only
from agent_pipeline.engine.decay import DecayMonitor, DecayState
from agent_pipeline.engine.features import compute_features
from agent_pipeline.engine.strategy import Strategy

# z of the confidence band drawn around the backtest's expected path (two-sided 95%).
BAND_Z = 1.96


@dataclass(frozen=True)
class Book:
    """An account after its last booked bar: its cash, its position, its equity, and how many bars it booked."""

    cash: float
    position: Position
    equity: float
    bars: int = 0
    last_bar: pd.Timestamp | None = None

    @property
    def side(self) -> float:
        """The position's direction: 1 long, -1 short, 0 flat."""
        return float(np.sign(self.position.quantity))


@dataclass(frozen=True)
class BookedBar:
    """One forward bar as booked: the side held over it, the target decided at its close, its fills and equity."""

    at: pd.Timestamp
    bar: int  # forward bar number, from 0
    close: float
    position: float  # side held during the bar (from its open): 1, -1 or 0
    target: float  # decided at its close, traded at the next bar's open
    cash: float
    equity: float
    bar_return: float
    fills: tuple[Fill, ...] = ()


@dataclass(frozen=True)
class Traded:
    """What a step traded: the bars booked, in order, the book after them, and every position held then (a
    universe's, one per symbol; empty: the book's one position)."""

    bars: list[BookedBar]
    book: Book
    positions: tuple[Position, ...] = ()

    @property
    def held(self) -> tuple[Position, ...]:
        """The positions after the step, one per symbol."""
        return self.positions or (self.book.position,)

    @property
    def returns(self) -> np.ndarray:
        return np.array([bar.bar_return for bar in self.bars], dtype=np.float64)


def decisions(strategy: Strategy, model_path: Path, bars: pd.DataFrame, start_after: pd.Timestamp) -> pd.Series:
    """The target position decided at each bar's close from `start_after` on, by the bar's time.

    Args:
        bars: the whole stored series, oldest first.

    Raises:
        TrainingError: the model cannot be read, or it expects other features.
    """
    from agent_pipeline.engine.trainer import predict_probabilities  # lazy: start-up cost (torch)

    index, x, finite = feature_rows(strategy, bars, start_after)
    probabilities = predict_probabilities(Path(model_path), np.nan_to_num(x))
    return pd.Series(targets_of(strategy, probabilities, finite), index=index, name="target")


def feature_rows(
    strategy: Strategy, bars: pd.DataFrame, start_after: pd.Timestamp
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """The bars' times from `start_after` on, their feature rows (computed on every bar, so warm) and which of them
    are finite."""
    features = compute_features(strategy, bars)
    rows = features[features.index >= start_after]
    x = rows.to_numpy(dtype=np.float32)
    return pd.DatetimeIndex(rows.index), x, np.isfinite(x).all(axis=1)


def targets_of(strategy: Strategy, probabilities: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """The backtest's target positions from the model's probabilities (module docstring): a row that is not finite,
    or whose top probability is under the confidence threshold, keeps the position."""
    from agent_pipeline.engine.backtest import positions_from_classes  # lazy: start-up cost (torch)

    rules = strategy.backtest
    confident = finite & (probabilities.max(axis=1) >= rules.confidence_threshold)
    return positions_from_classes(probabilities.argmax(axis=1), confident, rules.min_hold)


def opens_of(bars: pd.DataFrame) -> pd.Series:
    """Each bar's execution price: its open, or the close before it for a close-only series."""
    if is_close_only(bars):
        return bars["close"].shift(1).fillna(bars["close"])
    return bars["open"]


def trade(
    book: Book, bars: pd.DataFrame, targets: pd.Series, broker: Broker, *, symbol: str, start_after: pd.Timestamp
) -> Traded:
    """Book `bars` (the forward bars after `book.last_bar`, in order) through `broker` (module docstring).

    Args:
        bars: the whole stored series or any part of it holding the bars to book and the one before the first.
        targets: `decisions` from `start_after` on.
    """
    previous = book.last_bar if book.last_bar is not None else start_after
    new = bars.index[bars.index > previous]
    wanted = targets.shift(1).fillna(0.0)  # held over a bar: the decision at the close before it
    opens, booked, equity = opens_of(bars), [], book.equity
    for offset, at in enumerate(new):
        want = float(wanted.at[at]) if equity > 0 else 0.0
        fills = _rebalance(broker, symbol, want, float(opens.at[at]), at)
        position = broker.positions().get(symbol, Position(symbol))
        close = float(bars.at[at, "close"])
        value = broker.cash + position.quantity * close
        change = value / equity - 1.0 if equity > 0 else 0.0
        bar = BookedBar(at, book.bars + offset, close, want, float(targets.at[at]), broker.cash, value, change, fills)
        booked.append(bar)
        equity = value
    position = broker.positions().get(symbol, Position(symbol))
    last = booked[-1].at if booked else book.last_bar
    return Traded(booked, Book(broker.cash, position, equity, book.bars + len(booked), last))


def _rebalance(broker: Broker, symbol: str, want: float, price: float, at: pd.Timestamp) -> tuple[Fill, ...]:
    """Move the position to side `want` at `price`: exit what is held, then enter at the whole equity left."""
    held = broker.positions().get(symbol, Position(symbol)).quantity
    if float(np.sign(held)) == want:
        return ()
    fills = []
    if held != 0:
        fills.append(broker.submit(Order(symbol, -held, price, at, "exit")))
    if want != 0 and broker.cash > 0:
        fills.append(broker.submit(Order(symbol, want * broker.cash / price, price, at, "entry")))
    return tuple(fills)


def paper_broker(book: Book, cost_rate: float, symbol: str) -> PaperBroker:
    """The paper broker holding `book`'s cash and position."""
    return PaperBroker(cash=book.cash, cost_rate=cost_rate, held={symbol: book.position})


def watch(decay: dict, traded: Traded, first: int) -> tuple[dict, DecayState]:
    """Feed the traded bars' returns to the decay monitor kept as `decay` (`DecayMonitor.to_dict`).

    Args:
        first: the forward bar number of the first traded bar; bars the monitor saw already are skipped.

    Returns:
        The monitor as data again, and its state.
    """
    monitor = DecayMonitor.from_dict(decay)
    state = monitor.update(traded.returns, first=first)
    return monitor.to_dict(), state


@dataclass(frozen=True)
class Band:
    """The backtest's expected equity path over n forward bars and its confidence band (`expected_band`)."""

    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray


def expected_band(capital: float, mean: float, std: float, bars: int, z: float = BAND_Z) -> Band:
    """Equity the backtest expects after k = 1..bars forward bars: capital (1 + k mean), and the band
    capital (1 + k mean -/+ z std sqrt(k)): the normal approximation of a sum of k i.i.d. per-bar returns."""
    k = np.arange(1, bars + 1, dtype=np.float64)
    spread = z * std * np.sqrt(k)
    return Band(capital * (1 + k * mean), capital * (1 + k * mean - spread), capital * (1 + k * mean + spread))


def backtest_moments(returns: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation with ddof 1) of a backtest's per-bar returns.

    Raises:
        ValueError: fewer than two returns, or a standard deviation that is not positive.
    """
    values = np.asarray(returns, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 or not math.isfinite(std := float(values.std(ddof=1))) or std <= 0:
        raise ValueError(f"{len(values)} backtest returns have no spread to test forward returns against")
    return float(values.mean()), std
