"""A paper account's ledger (issue 27): one step booked in one transaction, and the positions, fills and equity
curve read back. See `store.paper` for why a bar is never booked twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent_pipeline.engine.broker import Fill, Position
from agent_pipeline.engine.paper import Traded
from agent_pipeline.store.models import utcnow
from agent_pipeline.store.paper import (
    TRADING,
    Alarm,
    PaperAccount,
    PaperAccountRow,
    PaperEquityRow,
    PaperFillRow,
    PaperPositionRow,
    PaperState,
    bar_time,
    to_db_time,
)

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase

logger = logging.getLogger(__name__)


class _Booked(Exception):
    """Raised inside a booking's transaction to roll it back: another step booked these bars first."""


def book(
    store: StoreBase, account: PaperAccount, traded: Traded, *, decay: dict[str, Any], alarm: Alarm | None
) -> bool:
    """Book one step of `account` (as read before the step): its bars, fills, position, book and decay monitor.

    One transaction, applied only while the account still has `account.bars` bars and trades; otherwise (another
    step booked first, or the account was stopped) nothing changes and False comes back. An alarm raised now moves
    an open account to `decayed`, or to `stopped` with `stop_on_decay`.

    Raises:
        DatabaseUnavailableError.
    """
    try:
        with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
            if not _advance(session, account, traded, decay, alarm):
                raise _Booked()
            session.add_all(_equity_rows(account.id, traded) + _fill_rows(account.id, traded))
            for position in traded.held:
                _keep_position(session, account.id, position)
    except (_Booked, IntegrityError):
        logger.info("paper step already booked", extra={"account": account.id, "bars": account.bars})
        return False
    return True


def _advance(
    session: Session, account: PaperAccount, traded: Traded, decay: dict[str, Any], alarm: Alarm | None
) -> bool:
    """Move the account's book past the step's bars, if nobody did first."""
    now, after = utcnow(), traded.book
    values: dict[str, Any] = {
        "bars": after.bars, "last_bar": to_db_time(after.last_bar) if after.last_bar is not None else None,
        "cash": after.cash, "equity": after.equity, "target": traded.bars[-1].target if traded.bars else account.target,
        "decay": decay, "updated_at": now, "stepped_at": now, "last_error": None,
    }  # fmt: skip
    if alarm is not None and account.decayed_bar is None:
        values.update(decayed_bar=to_db_time(alarm.bar), decay_statistic=alarm.statistic, decayed_at=now)
        if account.stop_on_decay:
            values.update(state=PaperState.STOPPED.value, stopped_at=now, stop_reason="decay")
        elif account.state == PaperState.OPEN:
            values.update(state=PaperState.DECAYED.value)
    moved = session.execute(
        update(PaperAccountRow)
        .where(
            PaperAccountRow.id == account.id,
            PaperAccountRow.bars == account.bars,
            PaperAccountRow.state.in_(TRADING),
        )
        .values(**values)
    )
    return int(getattr(moved, "rowcount", 0)) == 1


def _equity_rows(account_id: str, traded: Traded) -> list[Any]:
    return [
        PaperEquityRow(
            account_id=account_id,
            bar_time=to_db_time(bar.at),
            bar=bar.bar,
            close=bar.close,
            position=bar.position,
            target=bar.target,
            cash=bar.cash,
            equity=bar.equity,
            bar_return=bar.bar_return,
        )  # fmt: skip
        for bar in traded.bars
    ]


def _fill_rows(account_id: str, traded: Traded) -> list[Any]:
    return [
        PaperFillRow(
            account_id=account_id,
            bar_time=to_db_time(fill.at),
            seq=fill.seq,
            symbol=fill.symbol,
            quantity=fill.quantity,
            price=fill.price,
            cost=fill.cost,
            reason=fill.reason,
        )  # fmt: skip
        for bar in traded.bars
        for fill in bar.fills
    ]


def _keep_position(session: Session, account_id: str, position: Position) -> None:
    symbol = position.symbol.upper()[:32]
    row = session.get(PaperPositionRow, (account_id, symbol))
    if row is None:
        row = PaperPositionRow(account_id=account_id, symbol=symbol)
        session.add(row)
    row.quantity = position.quantity
    row.entry_price = position.entry_price
    row.entry_bar = to_db_time(position.entry_bar) if position.entry_bar is not None else None
    row.updated_at = utcnow()


def positions(store: StoreBase, account_id: str) -> dict[str, Position]:
    """The account's positions now, by symbol (flat ones included, quantity 0)."""
    query = select(PaperPositionRow).where(PaperPositionRow.account_id == account_id)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return {
            row.symbol: Position(
                row.symbol, row.quantity, row.entry_price, bar_time(row.entry_bar) if row.entry_bar else None
            )
            for row in session.scalars(query)
        }


def fills(store: StoreBase, account_id: str, *, limit: int = 1000) -> list[Fill]:
    """The account's latest `limit` fills, oldest first."""
    query = (
        select(PaperFillRow)
        .where(PaperFillRow.account_id == account_id)
        .order_by(PaperFillRow.bar_time.desc(), PaperFillRow.seq.desc())
        .limit(limit)
    )
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        rows = list(session.scalars(query))
    return [
        Fill(row.symbol, row.quantity, row.price, row.cost, bar_time(row.bar_time), row.seq, row.reason)
        for row in reversed(rows)
    ]


@dataclass(frozen=True)
class EquityPoint:
    """One booked bar of the account's equity curve."""

    at: pd.Timestamp
    bar: int
    close: float
    position: float
    target: float
    cash: float
    equity: float
    bar_return: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": str(self.at), "bar": self.bar, "close": self.close, "position": self.position,
            "target": self.target, "cash": self.cash, "equity": self.equity, "return": self.bar_return,
        }  # fmt: skip


def equity_curve(store: StoreBase, account_id: str) -> list[EquityPoint]:
    """Every booked bar of the account, in order."""
    query = select(PaperEquityRow).where(PaperEquityRow.account_id == account_id).order_by(PaperEquityRow.bar)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return [
            EquityPoint(
                bar_time(row.bar_time),
                row.bar,
                row.close,
                row.position,
                row.target,
                row.cash,
                row.equity,
                row.bar_return,
            )
            for row in session.scalars(query)
        ]
