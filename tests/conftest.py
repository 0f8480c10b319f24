"""Fixtures shared by the whole suite: isolated settings and real Postgres / Redis / SQLite databases.

A test that needs Postgres or Redis and finds none skips with a loud reason locally and FAILS under `CI=true`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_pipeline.config import reset_settings

POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
POSTGRES_URL_PREFIX = "postgresql+psycopg://postgres@127.0.0.1:5432/"
# Redis database numbers of the suite's own, so tests never touch a developer's db 0. Each pytest-xdist worker
# (`gw0`, `gw1`, ...) gets three of its own, counting down from 15: the `redis_url` fixture, the cycle stacks and
# Flower's stack. Three workers at most fit above db 6. KTRDR_TEST_REDIS_PORT points the suite at another
# redis-server, so two checkouts can run their suites side by side without sharing a database.
REDIS_ROLES = {"fixture": 0, "stack": 1, "flower": 2}
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_TEST_PORT = int(os.environ.get("KTRDR_TEST_REDIS_PORT", "6379"))


def redis_test_url(role: str) -> str:
    """The Redis URL of `role` for this test process (see REDIS_ROLES)."""
    return f"redis://127.0.0.1:{REDIS_TEST_PORT}/{15 - 3 * XDIST_WORKER - REDIS_ROLES[role]}"


REDIS_TEST_URL = redis_test_url("fixture")
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


def service_missing(service: str, error: object) -> None:
    """Skip (locally) or fail (under CI=true) a test whose service does not answer."""
    message = f"{service} is not answering ({error}); start it, or see README 'Development'"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


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


def create_database(prefix: str = "ktrdr_test") -> str:
    """Create a fresh, uniquely named Postgres database and return its name."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        service_missing("Postgres on 127.0.0.1:5432 (user postgres)", str(exc).strip().splitlines()[0])
    return name


def drop_database(name: str) -> None:
    """Close this process's connections to the database, then drop it."""
    import psycopg

    forget_store(POSTGRES_URL_PREFIX + name)
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def forget_store(url: str) -> None:
    """Forget the cached store for `url` and close its connections (before its database is dropped)."""
    from agent_pipeline.store import operations

    store = operations._stores.pop(url, None)
    if store is not None:
        store.engine.dispose()


# Property tests explore new examples on every local run; under CI they replay a fixed derandomized set, so a red CI
# run is reproducible and a green one is not luck. (A failure found locally is fixed, then kept as an @example.)
def _hypothesis_profiles() -> None:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI", "").lower() == "true":
        settings.load_profile("ci")


_hypothesis_profiles()
