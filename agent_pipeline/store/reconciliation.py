"""Reconciliation: failing what lost its heartbeat (a worker killed mid-task stops beating)."""

from __future__ import annotations

import builtins
from datetime import timedelta

from sqlalchemy import select

from agent_pipeline.store.models import (
    ACTIVE,
    Operation,
    OperationRow,
    OperationType,
    to_record,
    utcnow,
)
from agent_pipeline.store.transitions import Transitions


class Reconciliation(Transitions):
    """Finds and fails stale operations; `pipeline.reconcile` stops their trainings first."""

    def stale(self, *, stale_after: float) -> builtins.list[Operation]:
        """Active operations whose heartbeat is older than `stale_after` seconds, children before their cycles."""
        cutoff = utcnow() - timedelta(seconds=stale_after)
        with self._session() as session:
            rows = session.scalars(
                select(OperationRow).where(
                    OperationRow.status.in_([s.value for s in ACTIVE]),
                    OperationRow.heartbeat_at < cutoff,
                )
            ).all()
            found = [to_record(row) for row in rows]
        return sorted(found, key=lambda op: op.operation_type == OperationType.AGENT_RESEARCH)

    def reconcile_stale(self, *, stale_after: float) -> builtins.list[str]:
        """Fail active operations whose heartbeat is older than `stale_after` seconds, children first.

        A worker killed mid-task stops heartbeating; without this its row would stay `running` forever.
        Returns the ids it failed. `pipeline.reconcile` adds what the store cannot do: it stops a lost cycle's
        trainings before its row is failed.
        """
        return [op.operation_id for op in self.stale(stale_after=stale_after) if self.fail_lost(op, stale_after)]

    def fail_lost(self, operation: Operation, stale_after: float) -> bool:
        """Fail one operation that lost its heartbeat; True when this call failed it."""
        message = f"Lost: no heartbeat for {stale_after:.0f} s (worker died or was stopped)"
        return self.fail(operation.operation_id, error_message=message)
