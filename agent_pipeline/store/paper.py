"""Paper accounts (issue 27): a cycle's final model traded on paper over forward bars, in the operations database.

Paper only: nothing here reaches a broker. An account keeps its book (cash, position, equity, the bars booked), its
decay monitor (`engine.decay`, as data), and its ledger: positions, fills (with the strategy's own costs) and equity
per bar. A universe account (`engine.paper_universe`) says its universe, its portfolio mode and its symbols; its
`symbol` is the universe's name, its bars are the universe's common dates, and it keeps a position per symbol. A bar
is booked once:

- `book` writes one step in one transaction, and only if the account still has the bars it had when the step read
  it (`bars` unchanged, not stopped): of two steps racing, or a step redelivered after a lost worker, one books and
  the other changes nothing;
- `paper_equity`'s key is (account, bar time) and a fill's (account, bar time, seq): a bar booked twice is refused by
  the database itself.

A killed worker's transaction never commits, so its bars are booked whole by the next step.

States (`PaperState`): `open` trades; `decayed` trades on with its alarm raised; `stopped` trades no more (by
`ktrdr paper stop`, or by its alarm with `--stop-on-decay`). `open -> decayed -> stopped`, `open -> stopped`; a
stopped account never changes again.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agent_pipeline.engine.broker import Position
from agent_pipeline.engine.paper import Book
from agent_pipeline.errors import PaperAccountNotFoundError
from agent_pipeline.store.models import Base, aware, utcnow

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase

_JSON = JSON().with_variant(JSONB(), "postgresql")
WHEN = DateTime(timezone=True)
# Accounts a list returns at most.
MAX_ACCOUNTS = 500


class PaperState(enum.StrEnum):
    OPEN = "open"
    DECAYED = "decayed"
    STOPPED = "stopped"


# States an account books bars in.
TRADING = (PaperState.OPEN.value, PaperState.DECAYED.value)


class PaperAccountRow(Base):
    __tablename__ = "paper_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    cycle_id: Mapped[str] = mapped_column(String(80))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    capital: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))
    model_sha256: Mapped[str] = mapped_column(String(64))
    model_url: Mapped[str] = mapped_column(Text)
    strategy_yaml: Mapped[str] = mapped_column(Text)
    start_after: Mapped[datetime] = mapped_column(WHEN)
    stop_on_decay: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(WHEN)
    updated_at: Mapped[datetime] = mapped_column(WHEN)
    bars: Mapped[int] = mapped_column(Integer, default=0)
    last_bar: Mapped[datetime | None] = mapped_column(WHEN)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    target: Mapped[float] = mapped_column(Float, default=0.0)
    decay: Mapped[dict[str, Any]] = mapped_column(_JSON, default=dict)
    decayed_bar: Mapped[datetime | None] = mapped_column(WHEN)
    decay_statistic: Mapped[float | None] = mapped_column(Float)
    decayed_at: Mapped[datetime | None] = mapped_column(WHEN)
    stopped_at: Mapped[datetime | None] = mapped_column(WHEN)
    stop_reason: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    stepped_at: Mapped[datetime | None] = mapped_column(WHEN)
    universe: Mapped[str | None] = mapped_column(String(32))  # NULL: an account of one series
    portfolio_mode: Mapped[str | None] = mapped_column(String(8))
    symbols: Mapped[list[str] | None] = mapped_column(_JSON)


class PaperPositionRow(Base):
    __tablename__ = "paper_positions"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float | None] = mapped_column(Float)
    entry_bar: Mapped[datetime | None] = mapped_column(WHEN)
    updated_at: Mapped[datetime] = mapped_column(WHEN)


class PaperFillRow(Base):
    __tablename__ = "paper_fills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(40))
    bar_time: Mapped[datetime] = mapped_column(WHEN)
    seq: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(16))


class PaperEquityRow(Base):
    __tablename__ = "paper_equity"

    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bar_time: Mapped[datetime] = mapped_column(WHEN, primary_key=True)
    bar: Mapped[int] = mapped_column(Integer)
    close: Mapped[float] = mapped_column(Float)
    position: Mapped[float] = mapped_column(Float)
    target: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    bar_return: Mapped[float] = mapped_column(Float)


def to_db_time(at: pd.Timestamp | datetime) -> datetime:
    """A bar's time as stored: timezone-aware UTC (a series' naive times are UTC)."""
    stamp = pd.Timestamp(at)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


def bar_time(value: datetime) -> pd.Timestamp:
    """A stored bar time as a series holds it: naive UTC."""
    stamp = pd.Timestamp(aware(value))
    return stamp.tz_convert(UTC).tz_localize(None)


@dataclass(frozen=True)
class Alarm:
    """The decay alarm of a step: the forward bar it fired at, and the CUSUM statistic then."""

    bar: pd.Timestamp
    statistic: float


@dataclass(frozen=True)
class PaperAccount:
    """One paper account, detached from the database (see the module docstring)."""

    id: str
    cycle_id: str
    symbol: str
    timeframe: str
    capital: float
    state: PaperState
    model_sha256: str
    model_url: str
    strategy_yaml: str = field(repr=False)
    start_after: pd.Timestamp
    stop_on_decay: bool
    created_at: datetime
    updated_at: datetime
    bars: int
    last_bar: pd.Timestamp | None
    cash: float
    equity: float
    target: float  # the side decided at the last booked bar's close, held from the next bar's open
    decay: dict[str, Any]
    decayed_bar: pd.Timestamp | None
    decay_statistic: float | None
    decayed_at: datetime | None
    stopped_at: datetime | None
    stop_reason: str | None
    last_error: str | None
    stepped_at: datetime | None
    universe: str | None = None  # the universe it trades (`symbol` is then its name), None for one series
    portfolio_mode: str | None = None  # the universe strategy's `portfolio.mode`: timing or rank
    symbols: tuple[str, ...] = ()  # the universe's symbols when the account opened

    @property
    def trading(self) -> bool:
        return self.state != PaperState.STOPPED

    @property
    def series(self) -> str:
        """What the account trades, in words: `EURUSD 1d`, or `universe PUNI 1d (rank, 4 symbols)`."""
        if self.universe is None:
            return f"{self.symbol} {self.timeframe}"
        return f"universe {self.universe} {self.timeframe} ({self.portfolio_mode}, {len(self.symbols)} symbols)"

    def book(self, position: Position) -> Book:
        """The account's book for the paper loop, with its position."""
        return Book(self.cash, position, self.equity, self.bars, self.last_bar)

    def to_dict(self) -> dict[str, Any]:
        """The account for the CLI and the API: paper only, times in ISO 8601 (bars as the series has them)."""
        decay = self.decay.get("state", {})
        return {
            "id": self.id, "mode": "paper", "cycle_id": self.cycle_id, "symbol": self.symbol,
            "universe": self.universe, "portfolio_mode": self.portfolio_mode, "symbols": list(self.symbols),
            "series": self.series,
            "timeframe": self.timeframe, "state": self.state.value, "capital": self.capital, "equity": self.equity,
            "return": self.equity / self.capital - 1.0, "bars": self.bars, "cash": self.cash,
            "target": self.target, "start_after": str(self.start_after),
            "last_bar": str(self.last_bar) if self.last_bar is not None else None,
            "model_sha256": self.model_sha256, "stop_on_decay": self.stop_on_decay,
            "decay": {
                "fired": bool(decay.get("fired")), "bar": _text(self.decayed_bar),
                "forward_bar": decay.get("fired_bar"), "statistic": self.decay_statistic,
                "now": decay.get("statistic"), "threshold": decay.get("threshold"), "reason": decay.get("reason"),
                "at": _iso(self.decayed_at),
            },
            "created_at": _iso(self.created_at), "stepped_at": _iso(self.stepped_at),
            "stopped_at": _iso(self.stopped_at), "stop_reason": self.stop_reason, "last_error": self.last_error,
        }  # fmt: skip


def _text(value: pd.Timestamp | None) -> str | None:
    return str(value) if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _optional_bar(value: datetime | None) -> pd.Timestamp | None:
    return bar_time(value) if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    found = aware(value)
    return found.astimezone(UTC) if found is not None else None


def _to_account(row: PaperAccountRow) -> PaperAccount:
    return PaperAccount(
        id=row.id, cycle_id=row.cycle_id, symbol=row.symbol, timeframe=row.timeframe, capital=row.capital,
        state=PaperState(row.state), model_sha256=row.model_sha256, model_url=row.model_url,
        strategy_yaml=row.strategy_yaml, start_after=bar_time(row.start_after), stop_on_decay=row.stop_on_decay,
        created_at=_utc(row.created_at) or utcnow(), updated_at=_utc(row.updated_at) or utcnow(), bars=row.bars,
        last_bar=_optional_bar(row.last_bar), cash=row.cash, equity=row.equity, target=row.target,
        decay=dict(row.decay or {}), decayed_bar=_optional_bar(row.decayed_bar), decay_statistic=row.decay_statistic,
        decayed_at=_utc(row.decayed_at), stopped_at=_utc(row.stopped_at), stop_reason=row.stop_reason,
        last_error=row.last_error, stepped_at=_utc(row.stepped_at), universe=row.universe,
        portfolio_mode=row.portfolio_mode, symbols=tuple(row.symbols or ()),
    )  # fmt: skip


def new_account_id(now: datetime | None = None) -> str:
    """`paper_<YYYYMMDD_HHMMSS>_<8 hex>`."""
    return f"paper_{(now or utcnow()).strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class NewAccount:
    """What opening an account needs: the cycle, its model and strategy, the capital, where the forward bars start,
    and the decay monitor as data (`DecayMonitor.to_dict`)."""

    cycle_id: str
    symbol: str
    timeframe: str
    capital: float
    model_sha256: str
    model_url: str
    strategy_yaml: str
    start_after: pd.Timestamp
    stop_on_decay: bool
    decay: dict[str, Any]
    universe: str | None = None  # `symbol` is then the universe's name
    portfolio_mode: str | None = None
    symbols: tuple[str, ...] = ()


def create_account(store: StoreBase, new: NewAccount) -> PaperAccount:
    """Open an account: flat (a universe's: flat in each of its symbols), its capital in cash, no bar booked.

    Raises:
        DatabaseUnavailableError.
    """
    now = utcnow()
    row = PaperAccountRow(
        id=new_account_id(now), cycle_id=new.cycle_id, symbol=new.symbol.upper()[:32], timeframe=new.timeframe[:8],
        capital=new.capital, state=PaperState.OPEN.value, model_sha256=new.model_sha256, model_url=new.model_url,
        strategy_yaml=new.strategy_yaml, start_after=to_db_time(new.start_after), stop_on_decay=new.stop_on_decay,
        created_at=now, updated_at=now, bars=0, cash=new.capital, equity=new.capital, target=0.0, decay=new.decay,
        universe=new.universe, portfolio_mode=new.portfolio_mode, symbols=list(new.symbols) if new.universe else None,
    )  # fmt: skip
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        session.add(row)
        for symbol in new.symbols if new.universe else (row.symbol,):
            session.add(PaperPositionRow(account_id=row.id, symbol=symbol[:32], quantity=0.0, updated_at=now))
    return _to_account(row)


def get_account(store: StoreBase, account_id: str) -> PaperAccount:
    """Raises: PaperAccountNotFoundError, DatabaseUnavailableError."""
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        row = session.get(PaperAccountRow, account_id)
        if row is None:
            raise PaperAccountNotFoundError(f"paper account not found: {account_id}")
        return _to_account(row)


def list_accounts(
    store: StoreBase, *, states: tuple[str, ...] | None = None, limit: int = MAX_ACCOUNTS
) -> list[PaperAccount]:
    """Accounts, newest first; only those in `states` with it."""
    query = select(PaperAccountRow).order_by(PaperAccountRow.created_at.desc(), PaperAccountRow.id.desc())
    if states is not None:
        query = query.where(PaperAccountRow.state.in_(states))
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return [_to_account(row) for row in session.scalars(query.limit(max(1, min(limit, MAX_ACCOUNTS))))]


def trading_accounts(store: StoreBase, *, page: int | None = None) -> Iterator[PaperAccount]:
    """Every account in a TRADING state, oldest id first, read `page` at a time (MAX_ACCOUNTS by default): a step
    reaches every account however many there are, not the newest MAX_ACCOUNTS only."""
    size = max(1, page if page is not None else MAX_ACCOUNTS)
    after = ""
    while True:
        query = (
            select(PaperAccountRow)
            .where(PaperAccountRow.state.in_(TRADING), PaperAccountRow.id > after)
            .order_by(PaperAccountRow.id)
            .limit(size)
        )
        with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
            accounts = [_to_account(row) for row in session.scalars(query)]
        yield from accounts
        if len(accounts) < size:
            return
        after = accounts[-1].id


def stop_account(store: StoreBase, account_id: str, *, reason: str = "user") -> PaperAccount:
    """Stop an account: it books no bar after this. Stopping a stopped account changes nothing.

    Raises:
        PaperAccountNotFoundError, DatabaseUnavailableError.
    """
    now = utcnow()
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        session.execute(
            update(PaperAccountRow)
            .where(PaperAccountRow.id == account_id, PaperAccountRow.state.in_(TRADING))
            .values(state=PaperState.STOPPED.value, stopped_at=now, stop_reason=reason[:16], updated_at=now)
        )
    return get_account(store, account_id)


def record_error(store: StoreBase, account_id: str, message: str) -> None:
    """Keep why the account's last step booked nothing (shown by its status until a step books again)."""
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        session.execute(
            update(PaperAccountRow)
            .where(PaperAccountRow.id == account_id)
            .values(last_error=message[:2000], stepped_at=utcnow())
        )


def alarm_flags(store: StoreBase) -> list[tuple[str, str, bool]]:
    """(id, state, whether its decay alarm fired) of every account, by id, for the per-account metric; one read of
    three columns, with no cap (a capped read left the oldest accounts out of the metrics)."""
    fired = PaperAccountRow.decayed_bar.is_not(None)
    query = select(PaperAccountRow.id, PaperAccountRow.state, fired).order_by(PaperAccountRow.id)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return [(str(i), str(state), bool(fired)) for i, state, fired in session.execute(query)]


@dataclass(frozen=True)
class PaperTotals:
    """The accounts counted in the database: how many in each state (every PaperState, 0 when none), and how many
    raised their decay alarm (an account raises one at most)."""

    by_state: dict[str, int]
    alarms: int


def paper_totals(store: StoreBase) -> PaperTotals:
    """The accounts by state and their alarms, counted by the database (GROUP BY), for the metrics."""
    fired = func.count(PaperAccountRow.decayed_bar)  # COUNT(column) counts the rows where it is set
    query = select(PaperAccountRow.state, func.count(), fired).group_by(PaperAccountRow.state)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        rows = [(str(state), int(count), int(alarms)) for state, count, alarms in session.execute(query)]
    counts = {state.value: 0 for state in PaperState} | {state: count for state, count, _ in rows}
    return PaperTotals(counts, sum(alarms for _, _, alarms in rows))
