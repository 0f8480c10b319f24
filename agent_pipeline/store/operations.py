"""The operations store: the `operations` table and the only code that writes it.

Every status change goes through `_transition`, a conditional UPDATE (`WHERE status IN (...)`), so when two
processes finish the same row at once exactly one wins and a finished row never changes status again.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agent_pipeline.config import get_settings
from agent_pipeline.errors import (
    CapacityError,
    DatabaseUnavailableError,
    InvalidTransitionError,
    OperationNotFoundError,
)
from agent_pipeline.logs import redact
from agent_pipeline.store.history import record_result
from agent_pipeline.store.migrations import upgrade_database
from agent_pipeline.store.models import (
    ACTIVE,
    ALLOWED_FROM,
    FINISHED,
    Operation,
    OperationRow,
    OperationStatus,
    OperationType,
    aware,
    new_operation_id,
    to_record,
    utcnow,
)

# Key of the Postgres advisory lock that serialises cycle creation (any constant unique to this app).
CYCLE_LOCK_KEY = 0x6B747264
# Longest page a list call returns; protects the API from `?limit=10000000`.
MAX_LIST_LIMIT = 500


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


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _ensure_sqlite_folder(url: str) -> None:
    # SQLite creates the file but not its folder; the default `.ktrdr/ktrdr.db` must work on a fresh machine.
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _rowcount(result: Any) -> int:
    # An UPDATE's result is a CursorResult; the generic Result type does not declare rowcount.
    return int(result.rowcount)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        # pysqlite's own transaction handling defers BEGIN; take the write lock up front instead so
        # concurrent read-modify-write transactions serialise (SQLAlchemy's documented recipe).
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class OperationsStore:
    """Create, read and move operations through their lifecycle; keyword-only arguments throughout."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _make_engine(url)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
            raise DatabaseUnavailableError(f"cannot reach the database at {safe_url(self.url)}: {reason}") from None

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (workers and the API call this at start)."""
        try:
            upgrade_database(self.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
            raise DatabaseUnavailableError(f"cannot reach the database at {safe_url(self.url)}: {reason}") from None

    # -- create and read -------------------------------------------------------------------------

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

    # -- lifecycle -----------------------------------------------------------------------------

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

    # -- progress, metadata, heartbeats ---------------------------------------------------------

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

    # -- figures for the metrics endpoint (issue 10): indexed reads only -------------------------

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

    def ping(self) -> None:
        """Raises: DatabaseUnavailableError."""
        with self._session() as session:
            session.execute(text("SELECT 1"))


_stores: dict[str, OperationsStore] = {}
_stores_lock = threading.Lock()


def get_store(url: str | None = None) -> OperationsStore:
    """The process's store for `url` (default: settings.database_url), created once."""
    if url is None:
        url = get_settings().database_url
    with _stores_lock:
        if url not in _stores:
            _stores[url] = OperationsStore(url)
        return _stores[url]


def forget_inherited_connections() -> None:
    """Drop pooled connections inherited across a fork (without closing the parent's sockets).

    SQLAlchemy's documented rule for multiprocessing: a forked child must not reuse its parent's connections.
    """
    with _stores_lock:
        for store in _stores.values():
            store.engine.dispose(close=False)
