"""Fixtures of the integration tests: the real worker stack, and a store on each database the project supports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_pipeline.config import reset_settings
from agent_pipeline.store.operations import OperationsStore
from tests.stack import make_module_stack, make_stack  # noqa: F401 - fixtures, used by name


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[OperationsStore]:
    """A migrated store on a fresh SQLite file, then on a fresh Postgres database; DATABASE_URL names it."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    store = OperationsStore(url)
    store.upgrade()
    yield store
    store.engine.dispose()
