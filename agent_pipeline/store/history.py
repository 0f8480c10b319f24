"""The leaderboard of finished cycles: one narrow, typed, indexed `cycle_results` row per cycle.

The operations table keeps every figure inside JSON; sorting 100,000 cycles by a JSON field would read every
row on every call. So when a cycle reaches a finished status, the store writes its figures here in the same
transaction (`Transitions._transition` -> `record_result`), and `ktrdr agent history` and
`GET /api/v1/agent/history` read one indexed page of this table. Each line also carries its series' lockbox
reads and the best lockbox Sharpe deflated over them (`store.lockbox`), for people: the loop never reads this.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from agent_pipeline.gates import bypassed_gates, stopping_verdict
from agent_pipeline.store.lockbox import SeriesLockbox, series_lockbox
from agent_pipeline.store.models import Base, Operation, OperationRow, OperationStatus, OperationType, aware

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase

# Longest gate reason or error message kept in a row (the operation keeps the whole text).
REASON_LENGTH = 500
# The largest page a history call returns.
MAX_HISTORY_LIMIT = 500


class Outcome(enum.StrEnum):
    """How a cycle ended, in the families the leaderboard and the metrics count."""

    PASSED = "passed"
    BYPASSED = "bypassed"  # completed only because --bypass-gates let a failed gate through
    TRAINING_GATE = "training_gate"
    BACKTEST_GATE = "backtest_gate"
    ERROR = "error"
    CANCELLED = "cancelled"


class SortKey(enum.StrEnum):
    """The leaderboard's orderings; each has an index (see migration 0002)."""

    DSR = "dsr"
    SHARPE = "sharpe"
    RETURN = "return"
    CREATED = "created"


# The gate a recorded verdict names -> the outcome family of a cycle it stopped.
GATE_OUTCOMES = {"training": Outcome.TRAINING_GATE, "backtest": Outcome.BACKTEST_GATE}


class CycleResultRow(Base):
    __tablename__ = "cycle_results"

    operation_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    strategy_name: Mapped[str | None] = mapped_column(String(80))
    symbol: Mapped[str | None] = mapped_column(String(32))
    timeframe: Mapped[str | None] = mapped_column(String(8))
    designer: Mapped[str | None] = mapped_column(String(16))
    balanced_accuracy: Mapped[float | None] = mapped_column(Float)
    sharpe_ratio: Mapped[float | None] = mapped_column(Float)
    num_trades: Mapped[int | None] = mapped_column(Integer)
    deflated_sharpe: Mapped[float | None] = mapped_column(Float)
    total_return: Mapped[float | None] = mapped_column(Float)
    excess_return: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    discovery: Mapped[bool | None] = mapped_column(Boolean)
    lockbox_return: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class CycleResult:
    """One leaderboard line. `lockbox_return` and `series_lockbox` are shown to people only: nothing that feeds the
    loop reads them."""

    operation_id: str
    created_at: datetime
    completed_at: datetime | None
    status: str
    outcome: str
    reason: str | None
    strategy_name: str | None
    symbol: str | None
    timeframe: str | None
    designer: str | None
    balanced_accuracy: float | None
    sharpe_ratio: float | None
    num_trades: int | None
    deflated_sharpe: float | None
    total_return: float | None
    excess_return: float | None
    cost_usd: float | None
    discovery: bool | None
    lockbox_return: float | None
    series_lockbox: SeriesLockbox | None = None  # the series' lockbox reads, its best read deflated over them
    # The promotion step (issue 25): candidate, discovery or rejected; None for a cycle that is no candidate.
    promotion: str | None = None
    # A universe's portfolio (issue 24): timing or rank, and for rank the daily rank IC and ICIR; None on a series.
    portfolio_mode: str | None = None
    rank_ic: float | None = None
    icir: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "completed_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


SORT_COLUMNS = {
    SortKey.DSR: CycleResultRow.deflated_sharpe,
    SortKey.SHARPE: CycleResultRow.sharpe_ratio,
    SortKey.RETURN: CycleResultRow.total_return,
    SortKey.CREATED: CycleResultRow.created_at,
}


def outcome_of(operation: Operation) -> tuple[Outcome, str | None]:
    """The outcome family of a finished cycle and its reason (the gate reason, or the error).

    A cycle that completed because `--bypass-gates` let a failed gate through is `bypassed`, never `passed`; its
    reason is what each bypassed gate would have said.
    """
    message = operation.error_message
    if operation.status == OperationStatus.COMPLETED:
        bypassed = bypassed_gates(operation.metadata)
        if bypassed:
            return Outcome.BYPASSED, "; ".join(f"{label.lower()} gate: {reason}" for label, reason in bypassed)
        return Outcome.PASSED, None
    if operation.status == OperationStatus.CANCELLED:
        return Outcome.CANCELLED, message
    verdict = stopping_verdict(operation.metadata)
    if verdict is not None and not verdict.bypassed and verdict.gate in GATE_OUTCOMES:
        return GATE_OUTCOMES[verdict.gate], verdict.message
    return Outcome.ERROR, message


def _number(value: Any) -> float | None:
    """A finite float, or None (NaN would sort first in Postgres' DESC order)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any, length: int) -> str | None:
    return str(value)[:length] if value else None


def result_row(operation: Operation) -> CycleResultRow:
    """The leaderboard row of a finished cycle, from its metadata and result summary."""
    meta, summary = operation.record, operation.result_summary or {}
    training = meta.training_result or {}
    backtest = meta.backtest_result or {}
    outcome, reason = outcome_of(operation)
    excess = _number(backtest.get("excess_return"))
    total, hold = _number(backtest.get("total_return")), _number(backtest.get("buy_and_hold_return"))
    if excess is None and total is not None and hold is not None:
        excess = total - hold
    trades = _number(backtest.get("num_trades", backtest.get("total_trades")))
    lockbox = summary.get("lockbox") or {}
    return CycleResultRow(
        operation_id=operation.operation_id,
        created_at=operation.created_at,
        completed_at=operation.completed_at,
        status=operation.status.value,
        outcome=outcome.value,
        reason=reason[:REASON_LENGTH] if reason else None,
        strategy_name=_text(meta.strategy_name, 80),
        symbol=_text(str(meta.symbol or "").upper(), 32),
        timeframe=_text(meta.timeframe, 8),
        designer=_text(meta.designer, 16),
        balanced_accuracy=_number(training.get("balanced_accuracy")),
        sharpe_ratio=_number(backtest.get("sharpe_ratio")),
        num_trades=int(trades) if trades is not None else None,
        deflated_sharpe=_number(backtest.get("deflated_sharpe")),
        total_return=total,
        excess_return=excess,
        cost_usd=_number(meta.cost_usd),
        discovery=summary.get("discovery") if isinstance(summary.get("discovery"), bool) else None,
        lockbox_return=_number(lockbox.get("total_return")),
    )


def record_result(session: Session, operation: Operation) -> None:
    """Write (or rewrite) the finished cycle's row, inside the caller's transaction; other types are ignored."""
    if operation.operation_type == OperationType.AGENT_RESEARCH and operation.status.is_finished:
        session.merge(result_row(operation))


def _to_result(row: CycleResultRow) -> CycleResult:
    values = {column.key: getattr(row, column.key) for column in CycleResultRow.__table__.columns}
    values["created_at"] = aware(row.created_at)
    values["completed_at"] = aware(row.completed_at)
    return CycleResult(**values)


def leaderboard(
    store: StoreBase,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    sort: SortKey = SortKey.DSR,
    limit: int = 20,
    offset: int = 0,
) -> list[CycleResult]:
    """One page of finished cycles, best first by `sort` (cycles without that figure last), newest on ties.

    One indexed range scan: `(symbol, timeframe, <sort column> DESC NULLS LAST, operation_id DESC)`, then one
    query of the lockbox reads of the page's series (`store.lockbox.series_lockbox`) and one of the page's promotion
    statuses by primary key (`promotions`).
    """
    column = SORT_COLUMNS[SortKey(sort)]
    query = select(CycleResultRow)
    if symbol is not None:
        query = query.where(CycleResultRow.symbol == symbol.upper())
    if timeframe is not None:
        query = query.where(CycleResultRow.timeframe == timeframe)
    query = query.order_by(column.desc().nulls_last(), CycleResultRow.operation_id.desc())
    query = query.limit(max(1, min(limit, MAX_HISTORY_LIMIT))).offset(max(0, offset))
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        results = [_to_result(row) for row in session.scalars(query)]
    lockboxes = series_lockbox(store, {(r.symbol, r.timeframe) for r in results if r.symbol and r.timeframe})
    found = row_extras(store, [r.operation_id for r in results])
    return [
        replace(r, series_lockbox=lockboxes.get((r.symbol or "", r.timeframe or "")), **found.get(r.operation_id, {}))
        for r in results
    ]


def row_extras(store: StoreBase, operation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per listed cycle: its promotion status (`result_summary.promotion.status`) and its universe portfolio's
    mode, rank IC and ICIR (`backtest_result`), the ones it has.

    Read from the operations row by primary key rather than kept in `cycle_results`: no page sorts or filters by
    them, and a column would need every migration that writes leaderboard rows to know it.
    """
    if not operation_ids:
        return {}
    backtest = OperationRow.metadata_["backtest_result"]
    columns = {
        "promotion": OperationRow.result_summary["promotion"]["status"].as_string(),
        "portfolio_mode": backtest["portfolio_mode"].as_string(),
        "rank_ic": backtest["rank_ic"].as_float(),
        "icir": backtest["icir"].as_float(),
    }
    query = select(OperationRow.operation_id, *columns.values()).where(OperationRow.operation_id.in_(operation_ids))
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        rows = session.execute(query).all()
    return {str(row[0]): {k: v for k, v in zip(columns, row[1:], strict=True) if v is not None} for row in rows}


def outcome_counts(store: StoreBase) -> dict[str, int]:
    """Finished cycles per outcome family (one grouped count on an indexed column)."""
    from sqlalchemy import func

    query = select(CycleResultRow.outcome, func.count()).group_by(CycleResultRow.outcome)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        return {str(outcome): int(count) for outcome, count in session.execute(query)}
