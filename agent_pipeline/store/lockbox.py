"""The lockbox's read log (issue 25): one `lockbox_reads` row each time a final model trades its series' lockbox.

The lockbox (the last `KTRDR_LOCKBOX_FRACTION` of a series' bars) is held out of research, and each finished
cycle trades it once for people to see. After 200 cycles there are 200 lockbox results, and picking the best of
them is selection on the lockbox itself. So the store counts the reads:

- a read of a strategy document and model that were read before is refused: the first read's figures are shown
  again, marked `repeat_of: <cycle_id>`, and nothing is logged (`read_lockbox`);
- a redelivered task logs no second read for its cycle (`cycle_id` is unique), and of two cycles racing to read
  the same strategy and model only one logs a read (a unique index on the pair);
- the leaderboard deflates each series' best lockbox Sharpe over its reads, the reads being the trials
  (`series_lockbox`; Bailey and López de Prado's DSR, `engine.stats`).

Nothing that feeds the loop (designer memory, evidence, gates, the optimiser) reads this table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from agent_pipeline.engine.stats import deflate_recorded
from agent_pipeline.store.models import LockboxReadRow, Operation, aware, utcnow

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase

# The key a repeated read's figures carry: the cycle whose read they are.
REPEAT_OF = "repeat_of"


@dataclass(frozen=True)
class LockboxRead:
    """One logged read of a series' lockbox, and the figures it showed."""

    symbol: str
    timeframe: str
    cycle_id: str
    strategy_checksum: str | None  # sha256 of the strategy document as the cycle ran it
    model_sha256: str | None  # sha256 of the final model file
    at: datetime  # UTC
    figures: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The log's entry (CLI and API): who read which lockbox when, `at` in ISO 8601 UTC; no figures."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "cycle_id": self.cycle_id,
            "strategy_checksum": self.strategy_checksum,
            "model_sha256": self.model_sha256,
            "at": self.at.isoformat(),
        }

    def shown_to(self, cycle_id: str) -> dict[str, Any]:
        """The lockbox result `cycle_id` shows: these figures, marked `repeat_of` when another cycle read them."""
        return dict(self.figures) if cycle_id == self.cycle_id else {**self.figures, REPEAT_OF: self.cycle_id}


@dataclass(frozen=True)
class SeriesLockbox:
    """A series' lockbox as the leaderboard shows it: how often it was read, and its best read deflated over all."""

    reads: int
    best_cycle_id: str | None
    best_sharpe: float | None  # annualised, as the read showed it
    deflated_sharpe: float | None  # DSR of the best read, the series' reads as its trials


def _to_read(row: LockboxReadRow) -> LockboxRead:
    return LockboxRead(
        symbol=row.symbol,
        timeframe=row.timeframe,
        cycle_id=row.cycle_id,
        strategy_checksum=row.strategy_checksum,
        model_sha256=row.model_sha256,
        at=(aware(row.at) or utcnow()).astimezone(UTC),  # Postgres answers in its session's zone
        figures=dict(row.figures or {}),
    )


def prior_read(
    store: StoreBase, *, cycle_id: str, strategy_checksum: str | None, model_sha256: str | None
) -> LockboxRead | None:
    """The read a new one must not repeat: the cycle's own (a redelivered task), else the first of the same pair.

    A pair with a null half matches nothing: the backfilled reads have no checksums, and refuse no read.
    """
    found = LockboxReadRow.cycle_id == cycle_id
    if strategy_checksum is not None and model_sha256 is not None:
        same_pair = and_(
            LockboxReadRow.strategy_checksum == strategy_checksum, LockboxReadRow.model_sha256 == model_sha256
        )
        found = or_(found, same_pair)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        rows = list(session.scalars(select(LockboxReadRow).where(found).order_by(LockboxReadRow.id)))
    own = [row for row in rows if row.cycle_id == cycle_id]
    return _to_read((own or rows)[0]) if rows else None


def record_read(
    store: StoreBase,
    *,
    symbol: str,
    timeframe: str,
    cycle_id: str,
    strategy_checksum: str | None,
    model_sha256: str | None,
    figures: dict[str, Any],
    at: datetime | None = None,
) -> LockboxRead:
    """Log one read; if the cycle or the same pair was logged meanwhile (a redelivery, a race), return that read.

    Raises:
        DatabaseUnavailableError.
    """
    row = LockboxReadRow(
        symbol=symbol.upper()[:32],
        timeframe=timeframe[:8],
        cycle_id=cycle_id,
        strategy_checksum=strategy_checksum,
        model_sha256=model_sha256,
        at=at or utcnow(),
        figures=figures,
    )
    try:
        with store._session() as session:
            session.add(row)
    except IntegrityError:
        earlier = prior_read(store, cycle_id=cycle_id, strategy_checksum=strategy_checksum, model_sha256=model_sha256)
        if earlier is None:
            raise
        return earlier
    return _to_read(row)


def read_lockbox(
    store: StoreBase,
    *,
    symbol: str,
    timeframe: str,
    cycle_id: str,
    strategy_checksum: str,
    model_sha256: str,
    trade: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The cycle's lockbox result: `trade()` once and log the read, unless this strategy and model were read.

    A repeat is refused: `trade` is not called, nothing is logged, and the first read's figures come back with
    `repeat_of` naming its cycle. A redelivered task gets its own cycle's read back, unmarked.
    """
    earlier = prior_read(store, cycle_id=cycle_id, strategy_checksum=strategy_checksum, model_sha256=model_sha256)
    if earlier is None:
        earlier = record_read(
            store,
            symbol=symbol,
            timeframe=timeframe,
            cycle_id=cycle_id,
            strategy_checksum=strategy_checksum,
            model_sha256=model_sha256,
            figures=trade(),
        )
    return earlier.shown_to(cycle_id)


def list_reads(store: StoreBase, *, symbol: str | None = None) -> list[LockboxRead]:
    """Every logged read, oldest first; only `symbol`'s with one (any case)."""
    query = select(LockboxReadRow)
    if symbol is not None:
        query = query.where(LockboxReadRow.symbol == symbol.upper())
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return [_to_read(row) for row in session.scalars(query.order_by(LockboxReadRow.at, LockboxReadRow.id))]


def series_lockbox(store: StoreBase, series: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SeriesLockbox]:
    """Each named (symbol, timeframe)'s reads and best lockbox Sharpe deflated over them; one query for all."""
    wanted = {(symbol.upper(), timeframe) for symbol, timeframe in series}
    if not wanted:
        return {}
    query = select(LockboxReadRow).where(LockboxReadRow.symbol.in_(sorted({symbol for symbol, _ in wanted})))
    reads: dict[tuple[str, str], list[LockboxRead]] = {key: [] for key in wanted}
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        for row in session.scalars(query):
            if (row.symbol, row.timeframe) in reads:
                reads[(row.symbol, row.timeframe)].append(_to_read(row))
    return {key: deflate_reads(found, key[1]) for key, found in reads.items()}


def deflate_reads(reads: list[LockboxRead], timeframe: str) -> SeriesLockbox:
    """The best read's lockbox Sharpe, deflated with every read of the series as a trial (DSR).

    Reads without a Sharpe (a lockbox too short to trade) still count as trials; the DSR needs the best read's
    per-bar moments (`n_bars`, `skewness`, `kurtosis`), which reads logged before issue 25 lack (None then).
    """
    traded = [(sharpe, read) for read in reads if (sharpe := _finite(read.figures.get("sharpe_ratio"))) is not None]
    if not traded:
        return SeriesLockbox(reads=len(reads), best_cycle_id=None, best_sharpe=None, deflated_sharpe=None)
    best_sharpe, best = max(traded, key=lambda pair: pair[0])
    sharpes = [sharpe for sharpe, _ in traded]
    dsr = deflate_recorded(best.figures, trials=len(reads), sharpes=sharpes, timeframe=timeframe)
    return SeriesLockbox(reads=len(reads), best_cycle_id=best.cycle_id, best_sharpe=best_sharpe, deflated_sharpe=dsr)


def _finite(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def backfilled_read(operation: Operation) -> LockboxReadRow | None:
    """The read a completed cycle made before reads were logged (migration 0004), or None if it traded none."""
    box, meta = (operation.result_summary or {}).get("lockbox"), operation.record
    if not isinstance(box, dict) or not box or "error" in box or REPEAT_OF in box:
        return None
    if not (meta.symbol and meta.timeframe):
        return None
    return LockboxReadRow(
        symbol=str(meta.symbol).upper()[:32],
        timeframe=str(meta.timeframe)[:8],
        cycle_id=operation.operation_id,
        strategy_checksum=None,
        model_sha256=None,
        at=operation.completed_at or operation.created_at,
        figures=box,
    )
