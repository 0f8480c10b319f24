"""Private servers a test or a bench may stop and restart: a redis-server and a Postgres cluster on free ports.

Plain Python (no pytest), so `bench/` uses them too. The machine's own Redis (:6379) and Postgres (:5432) are
never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

# Seconds to wait for a private server to accept connections.
SERVER_START_TIMEOUT = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the suite's and the benches' one port picker)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {SERVER_START_TIMEOUT} s")


class PrivateRedis:
    """A redis-server with append-only persistence, as docker-compose runs it, that a test may restart."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--appendonly", "yes", "--save", "",
        ]  # fmt: skip
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.process)

    def stop(self, *, keep_data: bool = True) -> None:
        """SHUTDOWN (flushing the append-only file), or SHUTDOWN NOSAVE and wipe it: every message is lost."""
        if self.process is None or self.process.poll() is not None:
            return
        mode = [] if keep_data else ["nosave"]
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", *mode], capture_output=True, timeout=10)
        self.process.wait(timeout=10)
        if not keep_data:
            for path in self.folder.iterdir():
                if path.name != "redis.log":
                    shutil.rmtree(path) if path.is_dir() else path.unlink()

    def restart(self, *, down_for: float, keep_data: bool = True) -> None:
        self.stop(keep_data=keep_data)
        time.sleep(down_for)
        self.start()


class PrivatePostgres:
    """A Postgres cluster of its own (initdb as user postgres in a temp folder), trust auth, on a free port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.data = folder / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        shutil.chown(self.folder, user="postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "pg.log")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        _wait_for_port(self.port)

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, *, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
