"""Where each series ends for research (issue 27): one `series_cuts` row per (symbol, timeframe), written once.

The first cycle on a series fixes its research and lockbox end at the series' last bar then (`engine.series_cut`);
every later cycle reads the same row, so an append never moves the lockbox and never turns lockbox bars into
research bars. Two first cycles racing both try to insert; the primary key keeps the first, and both read it back.
A universe's row is keyed by the universe's name, as its cycles' `symbol` is. `ktrdr data append` fixes the row
before its first append (`engine.series_cut.series_end`), and a replaced series is a new one: its row is dropped
(`drop_cuts`), and its next cycle fixes another. Series are replaced by `ktrdr data import` and `ktrdr data synth`
(with `--replace` for a universe: `cli.data.forget_series`), `ktrdr universe create` (its name: `cli.universe`) and
calibration, which writes its series anew (`pipeline.calibrate.plant`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from agent_pipeline.store.base import _rowcount
from agent_pipeline.store.models import Base, aware, utcnow

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase


class SeriesCutRow(Base):
    """A series' fixed research and lockbox end, and the cycle that fixed it."""

    __tablename__ = "series_cuts"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    series_end: Mapped[str] = mapped_column(String(40))  # the last bar, as `str(pd.Timestamp)` writes it
    cycle_id: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class SeriesCut:
    """Where a series ends for research, who fixed it, and when (UTC)."""

    symbol: str
    timeframe: str
    series_end: str
    cycle_id: str
    at: datetime


def _to_cut(row: SeriesCutRow) -> SeriesCut:
    at = (aware(row.at) or utcnow()).astimezone(UTC)
    return SeriesCut(row.symbol, row.timeframe, row.series_end, row.cycle_id, at)


def series_cut(store: StoreBase, *, symbol: str, timeframe: str) -> SeriesCut | None:
    """The series' fixed end, or None while no cycle fixed one.

    Raises:
        DatabaseUnavailableError.
    """
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        row = session.get(SeriesCutRow, (symbol.upper()[:32], timeframe[:8]))
        return _to_cut(row) if row is not None else None


def fix_series_end(store: StoreBase, *, symbol: str, timeframe: str, end: str, cycle_id: str) -> SeriesCut:
    """The series' end: the one fixed before, else `end`, fixed now by `cycle_id`.

    Raises:
        DatabaseUnavailableError.
    """
    found = series_cut(store, symbol=symbol, timeframe=timeframe)
    if found is not None:
        return found
    row = SeriesCutRow(
        symbol=symbol.upper()[:32], timeframe=timeframe[:8], series_end=end, cycle_id=cycle_id, at=utcnow()
    )
    try:
        with store._session() as session:
            session.add(row)
    except IntegrityError:  # another first cycle fixed it meanwhile: its end holds
        raced = series_cut(store, symbol=symbol, timeframe=timeframe)
        if raced is None:
            raise
        return raced
    return _to_cut(row)


def list_cuts(store: StoreBase) -> list[SeriesCut]:
    """Every fixed series end, by symbol and timeframe."""
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        rows = session.scalars(select(SeriesCutRow).order_by(SeriesCutRow.symbol, SeriesCutRow.timeframe))
        return [_to_cut(row) for row in rows]


def drop_cuts(store: StoreBase, *, symbols: Iterable[str], timeframe: str) -> int:
    """Forget the fixed ends of `symbols` (series or universes) on `timeframe`: they were replaced. Returns how many.

    Raises:
        DatabaseUnavailableError.
    """
    names = sorted({symbol.upper()[:32] for symbol in symbols})
    if not names:
        return 0
    query = delete(SeriesCutRow).where(SeriesCutRow.symbol.in_(names), SeriesCutRow.timeframe == timeframe[:8])
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return _rowcount(session.execute(query))
