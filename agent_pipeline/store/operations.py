"""The operations store: the `operations` table and the only code that writes it.

The store is built in rooms, each a module and a class on top of the one before (dramatiq's small rooms):
`base` (engine, sessions, schema), `queries` (reads), `progress` (progress, heartbeats, metadata), `transitions`
(create and the lifecycle) and `reconciliation` (stale rows). `OperationsStore` is the whole house; callers import
it and the record types from here.
"""

from __future__ import annotations

import threading

from agent_pipeline.config import get_settings
from agent_pipeline.store.base import MAX_LIST_LIMIT, safe_url
from agent_pipeline.store.models import (
    ACTIVE,
    ALLOWED_FROM,
    FINISHED,
    Operation,
    OperationStatus,
    OperationType,
    new_operation_id,
    utcnow,
)
from agent_pipeline.store.reconciliation import Reconciliation

__all__ = [
    "ACTIVE", "ALLOWED_FROM", "FINISHED", "MAX_LIST_LIMIT", "Operation", "OperationStatus", "OperationType",
    "OperationsStore", "forget_inherited_connections", "get_store", "new_operation_id", "safe_url", "utcnow",
]  # fmt: skip


class OperationsStore(Reconciliation):
    """Create, read and move operations through their lifecycle; keyword-only arguments throughout."""


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
