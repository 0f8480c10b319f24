"""Reading operations: one, a page, a count, a series' cycles, and the figures the metrics and history need."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from agent_pipeline.errors import (
    OperationNotFoundError,
)
from agent_pipeline.store.base import MAX_LIST_LIMIT, StoreBase
from agent_pipeline.store.models import (
    ACTIVE,
    Operation,
    OperationRow,
    OperationStatus,
    OperationType,
    aware,
    to_record,
)


class Queries(StoreBase):
    """Reads only; every one an indexed query (see models.py's indexes)."""

    def get(self, operation_id: str) -> Operation:
        """Raises: OperationNotFoundError."""
        with self._session() as session:
            row = session.get(OperationRow, operation_id)
            if row is None:
                raise OperationNotFoundError(f"operation not found: {operation_id}")
            return to_record(row)

    def list(
        self,
        *,
        operation_type: OperationType | None = None,
        status: OperationStatus | None = None,
        parent_operation_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[Operation]:
        """Newest first. No total count here: an exact COUNT(*) costs 60x the page on a big table."""
        query = self._filtered(select(OperationRow), operation_type, status, parent_operation_id)
        query = query.order_by(OperationRow.created_at.desc(), OperationRow.operation_id.desc())
        query = query.limit(max(1, min(limit, MAX_LIST_LIMIT))).offset(max(0, offset))
        with self._session() as session:
            return [to_record(row) for row in session.scalars(query)]

    def count(
        self,
        *,
        operation_type: OperationType | None = None,
        status: OperationStatus | None = None,
        parent_operation_id: str | None = None,
    ) -> int:
        """Exact total for the same filters as `list`, asked for separately."""
        query = self._filtered(
            select(func.count()).select_from(OperationRow), operation_type, status, parent_operation_id
        )
        with self._session() as session:
            return int(session.scalar(query) or 0)

    @staticmethod
    def _filtered(query: Any, operation_type: Any, status: Any, parent_operation_id: str | None) -> Any:
        if operation_type is not None:
            query = query.where(OperationRow.operation_type == OperationType(operation_type).value)
        if status is not None:
            query = query.where(OperationRow.status == OperationStatus(status).value)
        if parent_operation_id is not None:
            query = query.where(OperationRow.parent_operation_id == parent_operation_id)
        return query

    def active_cycles(self) -> builtins.list[Operation]:
        """Active `agent_research` operations, newest first."""
        with self._session() as session:
            rows = session.scalars(
                select(OperationRow)
                .where(
                    OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
                    OperationRow.status.in_([s.value for s in ACTIVE]),
                )
                .order_by(OperationRow.created_at.desc())
            )
            return [to_record(row) for row in rows]

    def spend_since(self, since: datetime) -> float:
        """USD spent on LLM calls by cycles created since `since` (their metadata's `cost_usd`)."""
        with self._session() as session:
            rows = session.scalars(
                select(OperationRow.metadata_).where(
                    OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
                    OperationRow.created_at >= since,
                )
            ).all()
        return float(sum(float((meta or {}).get("cost_usd") or 0.0) for meta in rows))

    def series_cycles(self, *, symbol: str, timeframe: str) -> builtins.list[Operation]:
        """Every research cycle whose strategy trades `symbol` / `timeframe` (any status), oldest first.

        The statistics that count trials read this: a trial is a strategy designed on the series.
        """
        meta = OperationRow.metadata_
        with self._session() as session:
            rows = session.scalars(
                select(OperationRow)
                .where(
                    OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
                    meta["symbol"].as_string() == symbol,
                    meta["timeframe"].as_string() == timeframe,
                )
                .order_by(OperationRow.created_at)
            ).all()
            return [to_record(row) for row in rows]

    def series(self) -> builtins.list[tuple[str, str]]:
        """The (symbol, timeframe) pairs research cycles have designed strategies for."""
        meta = OperationRow.metadata_
        symbol, timeframe = meta["symbol"].as_string(), meta["timeframe"].as_string()
        with self._session() as session:
            rows = session.execute(
                select(symbol, timeframe)
                .where(OperationRow.operation_type == OperationType.AGENT_RESEARCH.value, symbol.is_not(None))
                .distinct()
            ).all()
        return sorted((str(a), str(b)) for a, b in rows if a is not None and b is not None)

    def active_counts(self) -> dict[tuple[str, str], int]:
        """(operation_type, status) -> rows, for the pending and running rows (ix_operations_status_type)."""
        query = (
            select(OperationRow.operation_type, OperationRow.status, func.count())
            .where(OperationRow.status.in_([s.value for s in ACTIVE]))
            .group_by(OperationRow.operation_type, OperationRow.status)
        )
        with self._session() as session:
            return {(str(kind), str(status)): int(n) for kind, status, n in session.execute(query)}

    def created_since(
        self, since: datetime, *, operation_types: tuple[OperationType, ...], limit: int = 10_000
    ) -> builtins.list[Operation]:
        """Rows of these types created since `since`, newest first (ix_operations_type_created), at most `limit`."""
        query = (
            select(OperationRow)
            .where(
                OperationRow.operation_type.in_([t.value for t in operation_types]),
                OperationRow.created_at >= since,
            )
            .order_by(OperationRow.created_at.desc())
            .limit(limit)
        )
        with self._session() as session:
            return [to_record(row) for row in session.scalars(query)]

    def run_times_since(
        self, since: datetime, *, operation_types: tuple[OperationType, ...], limit: int = 10_000
    ) -> builtins.list[tuple[OperationType, float]]:
        """(type, seconds from start to completion) of the completed rows created since `since`, at most `limit`."""
        query = (
            select(OperationRow.operation_type, OperationRow.started_at, OperationRow.completed_at)
            .where(
                OperationRow.operation_type.in_([t.value for t in operation_types]),
                OperationRow.created_at >= since,
                OperationRow.status == OperationStatus.COMPLETED.value,
            )
            .limit(limit)
        )
        with self._session() as session:
            rows = session.execute(query).all()
        return [
            (OperationType(kind), (aware(done) - aware(began)).total_seconds())  # type: ignore[operator]
            for kind, began, done in rows
            if began is not None and done is not None
        ]

    def last_completed(self, operation_type: OperationType, *, window: int = 50) -> datetime | None:
        """When the newest of the last `window` completed rows of this type completed (None when none)."""
        recent = (
            select(OperationRow.completed_at)
            .where(
                OperationRow.operation_type == operation_type.value,
                OperationRow.status == OperationStatus.COMPLETED.value,
            )
            .order_by(OperationRow.created_at.desc())
            .limit(window)
            .subquery()
        )
        with self._session() as session:
            return aware(session.scalar(select(func.max(recent.c.completed_at))))
