"""Fixtures of the unit tests, which need no server: a store is a SQLite file.

What every level shares (isolated settings, `sqlite_url`, `sqlite_store`, the Postgres and Redis fixtures) is in
tests/conftest.py; the engine's bars and strategies are in tests/unit/engine/conftest.py.
"""

from __future__ import annotations

import pytest

from agent_pipeline.store.operations import OperationsStore


@pytest.fixture
def store(sqlite_store: OperationsStore) -> OperationsStore:
    """The process's store on a fresh SQLite file (tests/conftest.py `sqlite_store`)."""
    return sqlite_store
