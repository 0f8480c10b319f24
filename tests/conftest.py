"""Fixtures shared by the whole suite: isolated settings and real Postgres / Redis / SQLite databases.

A test that needs Postgres or Redis and finds none skips with a loud reason locally and FAILS under `CI=true`
(tests/services.py). Each test level has a conftest of its own for what only its tests share; helpers that
tests import live in modules whose names do not start with `test_` (tests/unit/test_suite_rules.py holds that).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent_pipeline.config import reset_settings
from tests.services import POSTGRES_URL_PREFIX, REDIS_TEST_URL, create_database, drop_database, service_missing

if TYPE_CHECKING:
    from agent_pipeline.store.operations import OperationsStore

# Environment names read by Settings without the KTRDR_ prefix.
UNPREFIXED_SETTINGS = (
    "DATABASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "TRAINING_GATE_MIN_ACCURACY",
    "TRAINING_GATE_MAX_LOSS",
    "TRAINING_GATE_MIN_LOSS_DECREASE",
    "BACKTEST_GATE_MIN_WIN_RATE",
    "BACKTEST_GATE_MAX_DRAWDOWN",
    "BACKTEST_GATE_MIN_SHARPE",
)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own KTRDR_HOME and none of the developer's settings; yields that home."""
    for name in list(os.environ):
        if name.startswith("KTRDR_") or name in UNPREFIXED_SETTINGS:
            monkeypatch.delenv(name)
    home = tmp_path / "ktrdr_home"
    monkeypatch.setenv("KTRDR_HOME", str(home))
    reset_settings()
    yield home
    reset_settings()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'operations.db'}"


@pytest.fixture
def sqlite_store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> OperationsStore:
    """The process's store (`get_store`) on a fresh, migrated SQLite file that DATABASE_URL names."""
    from agent_pipeline.store.operations import get_store

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    store = get_store(sqlite_url)
    store.upgrade()
    return store


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, uniquely named Postgres database, dropped after the test."""
    name = create_database()
    yield POSTGRES_URL_PREFIX + name
    drop_database(name)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a dedicated database number, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        service_missing("Redis on 127.0.0.1:6379", exc)
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


# Property tests explore new examples on every local run; under CI they replay a fixed derandomized set, so a red CI
# run is reproducible and a green one is not luck. (A failure found locally is fixed, then kept as an @example.)
def _hypothesis_profiles() -> None:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI", "").lower() == "true":
        settings.load_profile("ci")


_hypothesis_profiles()
