"""The store's ground floor: the engine, its sessions (database errors become one readable error), the schema.

Every room of the store (`queries`, `progress`, `transitions`, `reconciliation`) builds on `StoreBase`;
`operations.OperationsStore` is all of them together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agent_pipeline.errors import (
    DatabaseUnavailableError,
)
from agent_pipeline.store.migrations import upgrade_database

# Key of the Postgres advisory lock that serialises cycle creation (any constant unique to this app).
CYCLE_LOCK_KEY = 0x6B747264
# Longest page a list call returns; protects the API from `?limit=10000000`.
MAX_LIST_LIMIT = 500


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


class StoreBase:
    """The database behind the store: its URL, engine, sessions and schema."""

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

    def ping(self) -> None:
        """Raises: DatabaseUnavailableError."""
        with self._session() as session:
            session.execute(text("SELECT 1"))
