"""Flower on the real stack: it sees a whole cycle's tasks by their stable names, behind basic auth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.private_servers import free_port
from tests.services import redis_test_url, service_missing
from tests.stack import OPEN_GATES, QUICK, Stack, finished, start_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER, PASSWORD = "ktrdr", "s3cret"
# Every task of one passing cycle, by the names Flower shows (and dashboards filter on).
CYCLE_TASKS = {
    "ktrdr.cycle.design",
    "ktrdr.cycle.train",
    "ktrdr.gpu.train_model",
    "ktrdr.cycle.training_gate",
    "ktrdr.cycle.backtest",
    "ktrdr.cycle.backtest_gate",
    "ktrdr.cycle.assess",
    "ktrdr.cycle.finalize",
}
FLOWER_START_TIMEOUT = 30
# A Redis db of its own (the cycle stack's is 14): workers of a cycle test run at the same time elsewhere on
# this machine would otherwise take this test's tasks, and Flower would show theirs.
FLOWER_REDIS_URL = redis_test_url("flower")


class Flower:
    def __init__(self, port: int, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.port, self.log, self.process = port, log, process

    def get(self, path: str, auth: tuple[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = response.read().decode()
                kind = response.headers.get("Content-Type", "")
                return response.status, json.loads(body) if "json" in kind else body
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def private_redis() -> Iterator[dict[str, str]]:
    """Broker and result settings on FLOWER_REDIS_URL, flushed before and after."""
    import redis

    client = redis.Redis.from_url(FLOWER_REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        service_missing("Redis on 127.0.0.1:6379", exc)
    yield {"KTRDR_BROKER_URL": FLOWER_REDIS_URL, "KTRDR_RESULT_BACKEND": FLOWER_REDIS_URL}
    client.flushdb()
    client.close()


@pytest.fixture
def flower_on(tmp_path: Path) -> Iterator[Any]:
    """Start `celery -A agent_pipeline flower` with basic auth against a stack; stopped at teardown."""
    started: list[Flower] = []

    def start(stack: Stack) -> Flower:
        port = free_port()
        log = tmp_path / "flower.log"
        command = [
            sys.executable, "-m", "celery", "-A", "agent_pipeline", "flower",
            f"--port={port}", "--address=127.0.0.1", f"--basic-auth={USER}:{PASSWORD}", "--persistent=False",
        ]  # fmt: skip
        with log.open("wb") as handle:
            process = subprocess.Popen(
                command,
                env={**os.environ, **stack.env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        flower = Flower(port, log, process)
        started.append(flower)
        wait_ready(flower, stack)
        return flower

    yield start
    for flower in started:
        if flower.process.poll() is None:
            flower.process.terminate()
            try:
                flower.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                flower.process.kill()
                flower.process.wait()


def wait_ready(flower: Flower, stack: Stack) -> None:
    """Up when its event receiver has seen every worker's heartbeat (Prometheus metrics at /metrics)."""
    deadline = time.monotonic() + FLOWER_START_TIMEOUT
    while time.monotonic() < deadline:
        if flower.process.poll() is not None:
            raise RuntimeError(f"flower exited:\n{flower.output()}")
        try:
            status, metrics = flower.get("/metrics")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status, metrics = 0, ""
        # flower_worker_online{worker="research@host"} 1.0 once a worker-online/heartbeat event came in.
        online = [line for line in str(metrics).splitlines() if line.startswith("flower_worker_online{")]
        seen = {w for w in stack.workers if any(f'worker="{w}@' in line and line.endswith(" 1.0") for line in online)}
        if status == 200 and seen == set(stack.workers):
            return
        time.sleep(0.3)
    raise RuntimeError(f"flower saw no worker heartbeat in {FLOWER_START_TIMEOUT} s:\n{flower.output()}")


def test_flower_lists_a_cycles_tasks_by_name_and_state(
    make_stack,
    monkeypatch,
    private_redis,
    flower_on,
) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus

    # Given the stack and Flower watching it
    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK, **private_redis)
    flower = flower_on(stack)
    # When a cycle runs to the end
    operation = cycle.trigger()
    try:
        final = wait_until(finished(operation.operation_id), timeout=120)
    except AssertionError:
        pytest.fail(f"cycle did not finish:\n{stack.log('research')[-2000:]}\n{stack.log('gpu')[-2000:]}")
    assert final.status == OperationStatus.COMPLETED, final.error_message

    # Then Flower's API lists every task of the chain, by its stable name, as SUCCESS
    def all_succeeded() -> dict[str, Any] | None:
        status, tasks = flower.get("/api/tasks", auth=(USER, PASSWORD))
        assert status == 200, tasks
        by_name: dict[str, set[str]] = {}
        for task in tasks.values():
            by_name.setdefault(task["name"], set()).add(task["state"])
        return tasks if all("SUCCESS" in by_name.get(name, ()) for name in CYCLE_TASKS) else None

    tasks = wait_until(all_succeeded, timeout=15, interval=0.5)
    states: dict[str, set[str]] = {}
    for task in tasks.values():
        states.setdefault(task["name"], set()).add(task["state"])
    assert set(states) >= CYCLE_TASKS, sorted(states)
    # The training supervisor polls by retrying, so it may show RETRY before SUCCESS; nothing else retries,
    # and nothing failed.
    for name, seen in states.items():
        allowed = {"SUCCESS", "RETRY"} if name == "ktrdr.cycle.train" else {"SUCCESS"}
        assert seen <= allowed, (name, seen)
    # The GPU task ran on the gpu worker, the phases on the research worker.
    workers = {task["name"]: task.get("worker") for task in tasks.values() if task["state"] == "SUCCESS"}
    assert str(workers["ktrdr.gpu.train_model"]).startswith("gpu@")
    assert str(workers["ktrdr.cycle.design"]).startswith("research@")
    # And it filters by task name, as a dashboard would.
    status, designs = flower.get("/api/tasks?taskname=ktrdr.cycle.design", auth=(USER, PASSWORD))
    assert status == 200 and {t["name"] for t in designs.values()} == {"ktrdr.cycle.design"}

    # Basic auth: no credentials or wrong ones get 401, on the API and the dashboard alike.
    assert flower.get("/api/tasks")[0] == 401
    assert flower.get("/api/tasks", auth=(USER, "wrong"))[0] == 401
    assert flower.get("/")[0] == 401
    assert flower.get("/", auth=(USER, PASSWORD))[0] == 200
