"""What the database benchmarks share: a scratch Postgres database dropped afterwards, and best-of timing.

Imported by the `bench_*.py` scripts, which run as `python bench/bench_x.py` (so this folder is on sys.path).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from agent_pipeline.store.operations import OperationsStore

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@contextmanager
def scratch_database() -> Iterator[tuple[str, OperationsStore]]:
    """A fresh database on the local Postgres with the schema up to date: (its name, a store on it)."""
    name = f"ktrdr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = OperationsStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        store.upgrade()
        yield name, store
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(name: str) -> psycopg.Connection:
    """An autocommit psycopg connection to the scratch database, for bulk fills."""
    return psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}", autocommit=True)


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings of `work`, in seconds."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)
