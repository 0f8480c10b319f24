"""A running operation's progress, heartbeat and metadata: the writes that never change its status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update

from agent_pipeline.errors import (
    OperationNotFoundError,
)
from agent_pipeline.store.base import _rowcount
from agent_pipeline.store.models import (
    ACTIVE,
    OperationRow,
    utcnow,
)
from agent_pipeline.store.queries import Queries


class Progress(Queries):
    """Progress, heartbeats and metadata merges of active operations (row-locked where they read first)."""

    def update_progress(self, operation_id: str, *, percentage: float, current_step: str, **extra: Any) -> bool:
        """Replace the progress of an active operation (ignored once finished)."""
        progress = {"percentage": round(float(percentage), 2), "current_step": current_step, **extra}
        return self._update_active(operation_id, progress=progress)

    def heartbeat(self, operation_id: str) -> bool:
        """Say the operation's worker is alive; the reconciler fails rows whose heartbeat goes stale."""
        return self._update_active(operation_id)

    def _update_active(self, operation_id: str, **values: Any) -> bool:
        statement = (
            update(OperationRow)
            .where(
                OperationRow.operation_id == operation_id,
                OperationRow.status.in_([s.value for s in ACTIVE]),
            )
            .values(heartbeat_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        with self._session() as session:
            return _rowcount(session.execute(statement)) == 1

    def merge_metadata(self, operation_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Merge keys into the operation's metadata (row-locked read-modify-write); returns the result."""
        with self._session() as session:
            row = session.get(OperationRow, operation_id, with_for_update=self.is_postgres)
            if row is None:
                raise OperationNotFoundError(f"operation not found: {operation_id}")
            merged = {**(row.metadata_ or {}), **values}
            row.metadata_ = merged
            return dict(merged)

    def claim_metadata(self, operation_id: str, key: str, value: Any) -> bool:
        """Set `metadata[key] = value` only if the key is absent: a once-only claim shared by racing tasks."""
        with self._session() as session:
            row = session.get(OperationRow, operation_id, with_for_update=self.is_postgres)
            if row is None:
                raise OperationNotFoundError(f"operation not found: {operation_id}")
            if key in (row.metadata_ or {}):
                return False
            row.metadata_ = {**(row.metadata_ or {}), key: value}
            return True
