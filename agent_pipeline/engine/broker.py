"""The broker seam of paper trading (issue 27): a `Broker` takes orders and reports positions and fills.

Paper only: `PaperBroker` fills every order at the price it names (the next bar's open), with the strategy's own
costs, and holds cash and positions in memory; the paper loop (`engine.paper`) loads it from an account's book and
the store keeps what it did. A live broker would implement the same protocol (submit a market order, report the
fill it got), and the loop would not change. There is no live broker here.

Costs are the backtest's (`engine.backtest`): `commission + slippage` as a fraction of the traded notional, on each
exit and each entry, so a flip pays both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import pandas as pd


@dataclass(frozen=True)
class Order:
    """Trade `quantity` units of `symbol` (negative sells) at bar `at`, at `price` on paper."""

    symbol: str
    quantity: float
    price: float
    at: pd.Timestamp
    reason: str  # entry, exit


@dataclass(frozen=True)
class Fill:
    """What an order did: units traded (signed), at which price, what it cost; `seq` orders the fills of a bar."""

    symbol: str
    quantity: float
    price: float
    cost: float
    at: pd.Timestamp
    seq: int
    reason: str


@dataclass(frozen=True)
class Position:
    """Units held of a symbol (negative: short), and the price and bar they were entered at (None when flat)."""

    symbol: str
    quantity: float = 0.0
    entry_price: float | None = None
    entry_bar: pd.Timestamp | None = None


class Broker(Protocol):
    """Where the paper loop sends its orders: a paper broker here, a live one could follow."""

    @property
    def cash(self) -> float:
        """The account's cash now (short sale proceeds included)."""
        ...

    def submit(self, order: Order) -> Fill:
        """Execute the order; returns its fill."""
        ...

    def positions(self) -> dict[str, Position]:
        """The positions held now, by symbol."""
        ...

    def fills(self) -> list[Fill]:
        """The fills of this session, oldest first."""
        ...


@dataclass
class PaperBroker:
    """Fills each order in full at its own price, charging `cost_rate` of the traded notional; keeps the ledger."""

    cash: float
    cost_rate: float
    held: dict[str, Position] = field(default_factory=dict)
    done: list[Fill] = field(default_factory=list)

    def submit(self, order: Order) -> Fill:
        cost = self.cost_rate * abs(order.quantity) * order.price
        self.cash -= order.quantity * order.price + cost
        seq = sum(1 for fill in self.done if fill.at == order.at)
        fill = Fill(order.symbol, order.quantity, order.price, cost, order.at, seq, order.reason)
        self.done.append(fill)
        self.held[order.symbol] = self._after(self.held.get(order.symbol, Position(order.symbol)), fill)
        return fill

    def positions(self) -> dict[str, Position]:
        return dict(self.held)

    def fills(self) -> list[Fill]:
        return list(self.done)

    @staticmethod
    def _after(position: Position, fill: Fill) -> Position:
        quantity = position.quantity + fill.quantity
        if abs(quantity) < 1e-12:
            return Position(position.symbol)
        if position.quantity == 0 or (quantity > 0) != (position.quantity > 0):
            return Position(position.symbol, quantity, fill.price, fill.at)  # a new position
        return replace(position, quantity=quantity)
