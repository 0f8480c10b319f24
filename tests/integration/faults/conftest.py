"""Fixtures for fault tests: a private redis-server and a private Postgres cluster, per test module."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.private_servers import PrivatePostgres, PrivateRedis
from tests.services import service_missing


def _missing(tool: str) -> bool:
    return shutil.which(tool) is None


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    if _missing("redis-server") or _missing("redis-cli"):
        service_missing("redis-server / redis-cli executables", "not on PATH")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop(keep_data=False)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    if _missing("initdb") or _missing("pg_ctl") or _missing("runuser") or os.geteuid() != 0:
        service_missing("initdb / pg_ctl (run as root, to initdb as user postgres)", "not available")
    # Not under pytest's temp root: that is private to root, and the cluster runs as user postgres.
    folder = Path(tempfile.mkdtemp(prefix="ktrdr-faults-pg-"))
    server = PrivatePostgres(folder)
    server.init()
    server.start()
    yield server
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(server.data), "-m", "immediate", "stop"],
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(folder, ignore_errors=True)
