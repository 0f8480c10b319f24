"""A real stack for cycle tests: Postgres, Redis, and `research` and `gpu` Celery worker processes.

The integration and e2e conftests re-export the `make_stack` and `make_module_stack` fixtures; tests import the
rest (`start_stack`, `wait_until`, `finished`, the gate settings).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services import POSTGRES_URL_PREFIX, create_database, drop_database, redis_test_url, service_missing

# A Redis database of its own for the worker stack (see tests/services.py REDIS_ROLES).
STACK_REDIS_URL = redis_test_url("stack")
# Seconds to wait for a worker to answer a ping.
WORKER_START_TIMEOUT = 60
# Gates that always pass, so a test can reach the later phases whatever the model learned.
OPEN_GATES = {
    "TRAINING_GATE_MIN_ACCURACY": "0",
    "TRAINING_GATE_MAX_LOSS": "100",
    "TRAINING_GATE_MIN_LOSS_DECREASE": "-1",
    "BACKTEST_GATE_MIN_WIN_RATE": "0",
    "BACKTEST_GATE_MAX_DRAWDOWN": "1",
    "BACKTEST_GATE_MIN_SHARPE": "-1000",
    "TRAINING_GATE_MAX_P": "1",
    "BACKTEST_GATE_MIN_TRADES": "0",
}
# A few epochs keep the cycles short; the trainer's own tests cover long runs.
QUICK = {"KTRDR_TRAINING_EPOCHS": "3"}


@dataclass
class Stack:
    """The environment shared by the test process and its workers, and the worker processes."""

    env: dict[str, str]
    home: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def start_worker(
        self, name: str, queue: str, *extra: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> None:
        """Start `celery -A agent_pipeline worker` for `queue` and (with `wait`) wait until it is ready.

        Workers started with `wait=False` start side by side; `wait_ready` then waits for all of them.
        """
        log = self.home / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "agent_pipeline", "worker", "-Q", queue, "-n", f"{name}@%h",
            "--without-mingle", "--without-gossip", "-l", "INFO", *extra,
        ]  # fmt: skip
        handle = log.open("wb")
        self.workers[name] = subprocess.Popen(
            command,
            env={**os.environ, **self.env, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a test can kill the worker and its children
        )
        self.logs[name] = log
        if wait:
            self.wait_ready(name)

    def wait_ready(self, *names: str) -> None:
        """Wait until every named worker has logged `ready.`; a worker that exits fails at once with its log."""
        waiting = set(names)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                if self.workers[name].poll() is not None:
                    raise RuntimeError(f"worker {name} exited:\n{self.logs[name].read_text()[-3000:]}")
                if "ready." in self.logs[name].read_text(errors="replace"):
                    waiting.discard(name)
            time.sleep(0.1)
        if waiting:
            raise RuntimeError(f"workers {sorted(waiting)} not ready in {WORKER_START_TIMEOUT} s")

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its pool processes at once, as a lost machine would."""
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_worker(self, name: str, grace: float = 5.0) -> None:
        """SIGTERM (warm shutdown); after `grace` seconds, SIGKILL the whole process group."""
        process = self.workers.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self, grace: float = 5.0) -> None:
        """Warm-shut every worker at once (SIGTERM), then SIGKILL whichever is still up after `grace` seconds."""
        for process in self.workers.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.workers.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers.clear()

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def flush_stack_redis() -> None:
    """Empty the stack's Redis db (its broker and result backend)."""
    import redis

    client = redis.Redis.from_url(STACK_REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        service_missing("Redis on 127.0.0.1:6379", exc)
    finally:
        client.close()


@contextlib.contextmanager
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """Build stacks: each a fresh Postgres database, a flushed Redis db and a KTRDR_HOME; workers started on
    demand. On exit every worker stops, every database is dropped and the Redis db is flushed."""
    created: list[tuple[Stack, str]] = []

    def build(**settings: str) -> Stack:
        flush_stack_redis()
        name = create_database("ktrdr_stack")
        home = tmp_path_factory.mktemp("stack")
        env = {
            "DATABASE_URL": POSTGRES_URL_PREFIX + name,
            "KTRDR_BROKER_URL": STACK_REDIS_URL,
            "KTRDR_RESULT_BACKEND": STACK_REDIS_URL,
            "KTRDR_HOME": str(home),
            "KTRDR_POLL_INTERVAL": "0.5",
            "KTRDR_DESIGNER": "offline",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        stack = Stack(env=env, home=home)
        created.append((stack, name))
        return stack

    try:
        yield build
    finally:
        for stack, name in created:
            stack.stop()
            drop_database(name)
        flush_stack_redis()


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """A test's own stacks (see `stacks`)."""
    with stacks(tmp_path_factory) as build:
        yield build


@pytest.fixture(scope="module")
def make_module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """Stacks that the tests of one module share (started once): a module using it uses no other stack, since
    all stacks of a test process share one Redis db."""
    with stacks(tmp_path_factory) as build:
        yield build


def use_stack_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this test process's settings, store and Celery app at the stack."""
    from agent_pipeline.config import get_settings, reset_settings
    from agent_pipeline.pipeline.celery_app import app, configure

    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    configure(app, get_settings())


def wait_until(predicate: Callable[[], Any], timeout: float = 120, interval: float = 0.25) -> Any:
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def finished(cycle_id: str) -> Callable[[], Any]:
    """A `wait_until` predicate: the operation once it has finished, else None."""
    from agent_pipeline.store.operations import get_store

    def check() -> Any:
        op = get_store().get(cycle_id)
        return op if op.status.is_finished else None

    return check


def start_stack(make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch, **env: str) -> Stack:
    """A stack with `env`, this process pointed at it, its database migrated, a research and a gpu worker ready."""
    stack = make_stack(**env)
    use_stack_env(stack, monkeypatch)
    from agent_pipeline.store.operations import get_store

    get_store().upgrade()
    stack.start_worker("research", "research", "-c", "1", wait=False)
    stack.start_worker("gpu", "gpu", "-c", "1", "--max-tasks-per-child", "1", wait=False)
    stack.wait_ready("research", "gpu")
    return stack
