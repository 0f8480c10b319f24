"""The suite's real services: Postgres databases and Redis db numbers of its own, and the rule for a missing one.

A test that needs Postgres, Redis or a tool that CI installs and finds none skips with a loud reason locally and
FAILS under `CI=true` (`requirement_missing`). Plain helpers, imported by conftests, tests and benches alike.
"""

from __future__ import annotations

import os
import uuid

import pytest

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


def requirement_missing(message: str) -> None:
    """Skip (locally) or fail (under CI=true, where every requirement is installed) a test missing `message`'s thing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def service_missing(service: str, error: object) -> None:
    """Skip (locally) or fail (under CI=true) a test whose service does not answer."""
    requirement_missing(f"{service} is not answering ({error}); start it, or see README 'Development'")


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


def forget_store(url: str) -> None:
    """Forget the cached store for `url` and close its connections (before its database is dropped)."""
    from agent_pipeline.store import operations

    store = operations._stores.pop(url, None)
    if store is not None:
        store.engine.dispose()
