"""Creating operations and moving them through their lifecycle, rq's `Job` style: one named method a transition.

Every status change goes through `_transition`, a conditional UPDATE (`WHERE status IN (...)`), so when two
processes finish the same row at once exactly one wins and a finished row never changes status again. A cycle that
finishes gets its leaderboard row in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from agent_pipeline.errors import (
    CapacityError,
    InvalidTransitionError,
    OperationNotFoundError,
)
from agent_pipeline.logs import redact
from agent_pipeline.store.base import CYCLE_LOCK_KEY, MAX_LIST_LIMIT, _rowcount
from agent_pipeline.store.history import record_result
from agent_pipeline.store.models import (
    ACTIVE,
    ALLOWED_FROM,
    FINISHED,
    Operation,
    OperationRow,
    OperationStatus,
    OperationType,
    new_operation_id,
    to_record,
    utcnow,
)
from agent_pipeline.store.progress import Progress


def _record_finished(session: Session, operation_id: str) -> None:
    """A cycle that just finished gets its leaderboard row in the same transaction (history.py, issue 10).

    Inside a savepoint: a row that cannot be written is logged and skipped, never blocking the transition.
    """
    row = session.get(OperationRow, operation_id)
    if row is None or row.operation_type != OperationType.AGENT_RESEARCH.value:
        return
    try:
        with session.begin_nested():
            record_result(session, to_record(row))
    except Exception:
        logging.getLogger(__name__).exception("leaderboard row not written", extra={"operation_id": operation_id})


class Transitions(Progress):
    """create -> pending -> running -> completed | failed | cancelled; legal moves only (models.ALLOWED_FROM)."""

    def create(
        self,
        *,
        operation_type: OperationType,
        parent_operation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: OperationStatus = OperationStatus.PENDING,
    ) -> Operation:
        with self._session() as session:
            return self._insert(session, operation_type, parent_operation_id, metadata, status)

    def _insert(
        self,
        session: Session,
        operation_type: OperationType,
        parent_operation_id: str | None,
        metadata: Mapping[str, Any] | None,
        status: OperationStatus,
    ) -> Operation:
        now = utcnow()
        row = OperationRow(
            operation_id=new_operation_id(operation_type, now),
            operation_type=operation_type.value,
            status=status.value,
            parent_operation_id=parent_operation_id,
            created_at=now,
            started_at=now if status == OperationStatus.RUNNING else None,
            heartbeat_at=now,
            progress={"percentage": 0.0, "current_step": "queued"},
            metadata_=dict(metadata or {}),
        )
        session.add(row)
        session.flush()
        return to_record(row)

    def create_cycle(self, *, max_active: int, metadata: Mapping[str, Any] | None = None) -> Operation:
        """Create an `agent_research` operation unless `max_active` cycles are already active.

        Race-free: on Postgres an advisory transaction lock serialises the count-then-insert; on SQLite the
        transaction's BEGIN IMMEDIATE does.

        Raises:
            CapacityError: the limit is reached (reason `active_cycle_exists`).
        """
        with self._session() as session:
            if self.is_postgres:
                session.execute(select(func.pg_advisory_xact_lock(CYCLE_LOCK_KEY)))
            active = session.scalar(
                select(func.count())
                .select_from(OperationRow)
                .where(
                    OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
                    OperationRow.status.in_([s.value for s in ACTIVE]),
                )
            )
            if (active or 0) >= max_active:
                raise CapacityError(f"{active} research cycle(s) already active (limit {max_active})")
            return self._insert(session, OperationType.AGENT_RESEARCH, None, metadata, OperationStatus.PENDING)

    def _transition(self, operation_id: str, target: OperationStatus, **values: Any) -> bool:
        """Move to `target` if the current status allows it; True when this call made the change."""
        now = utcnow()
        if target == OperationStatus.RUNNING:
            values.setdefault("started_at", now)
        elif target in FINISHED:
            values.setdefault("completed_at", now)
        statement = (
            update(OperationRow)
            .where(
                OperationRow.operation_id == operation_id,
                OperationRow.status.in_([s.value for s in ALLOWED_FROM[target]]),
            )
            .values(status=target.value, heartbeat_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        with self._session() as session:
            changed = _rowcount(session.execute(statement)) == 1
            if not changed and session.get(OperationRow, operation_id) is None:
                raise OperationNotFoundError(f"operation not found: {operation_id}")
            if changed and target in FINISHED:
                _record_finished(session, operation_id)
            return changed

    def start(self, operation_id: str) -> bool:
        """pending -> running."""
        return self._transition(operation_id, OperationStatus.RUNNING)

    def complete(self, operation_id: str, *, result_summary: Mapping[str, Any] | None = None) -> bool:
        """running -> completed, with the result summary and progress at 100%."""
        return self._transition(
            operation_id,
            OperationStatus.COMPLETED,
            result_summary=dict(result_summary or {}),
            progress={"percentage": 100.0, "current_step": "completed"},
        )

    def fail(self, operation_id: str, *, error_message: str) -> bool:
        """pending/running -> failed. Idempotent: a second call (or one on a finished row) returns False."""
        return self._transition(operation_id, OperationStatus.FAILED, error_message=redact(error_message))

    def cancel(self, operation_id: str, *, reason: str = "Cancelled by user") -> bool:
        """pending/running -> cancelled, cascading to the active children (and theirs).

        Raises:
            OperationNotFoundError: unknown id.
        """
        changed = self._transition(operation_id, OperationStatus.CANCELLED, error_message=redact(reason))
        for child in self.list(parent_operation_id=operation_id, limit=MAX_LIST_LIMIT):
            if child.status in ACTIVE:
                self.cancel(child.operation_id, reason=f"Parent {operation_id} cancelled")
        return changed

    def require_transition(self, operation_id: str, target: OperationStatus) -> Operation:
        """The operation, if `target` is legal from its current status.

        Raises:
            InvalidTransitionError: e.g. cancelling a completed operation.
        """
        operation = self.get(operation_id)
        if operation.status not in ALLOWED_FROM[target]:
            raise InvalidTransitionError(
                f"operation {operation_id} is already {operation.status.value}; it cannot become {target.value}"
            )
        return operation
