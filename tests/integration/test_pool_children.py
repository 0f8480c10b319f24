"""A GPU worker (`-c 1 --max-tasks-per-child 1`) runs queued tasks back to back: each in a fresh pool child, forked
within a fraction of a second of the last one's end, not at Celery's 5 s pool maintenance (pipeline/worker.py's
PoolKeeper, `hasten_child_exit` and the frozen preloads).

Runs a real worker program against a private redis-server, once for every app module a worker program is started
with: the product's (`celery -A agent_pipeline`) and the orchestration bench's, which measured a trivial cycle at
5 s while its app module left the worker's bootsteps unregistered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from agent_pipeline.pipeline.celery_app import GPU_QUEUE
from tests.private_servers import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
# Trivial tasks queued at once; each after the first waits for its predecessor's child to be replaced.
TASKS = 5
# Seconds allowed between one task's end and the next one's, i.e. for replacing a child. Measured on 2 busy cores:
# 0.1-0.2 s with the fix, 2-5 s without it (Celery's pool maintenance timer); the bound leaves room for load.
MAX_GAP_S = 1.5
# Seconds to wait for the worker to log `ready.`, and for the tasks' results.
READY_TIMEOUT_S = 60
RESULT_TIMEOUT_S = 90


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop(keep_data=False)


def start_gpu_worker(app_module: str, redis: PrivateRedis, home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`celery -A app_module worker -Q gpu -c 1 --max-tasks-per-child 1`, as the GPU host runs it, once ready."""
    log = home / "worker.log"
    env = {**os.environ, "KTRDR_BROKER_URL": redis.url, "KTRDR_RESULT_BACKEND": redis.url, "KTRDR_HOME": str(home)}
    command = [
        sys.executable, "-m", "celery", "-A", app_module, "worker", "-Q", GPU_QUEUE, "-c", "1",
        "--max-tasks-per-child", "1", "--without-mingle", "--without-gossip", "-l", "INFO", "-n", "pool@%h",
    ]  # fmt: skip
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            stop(worker)
            pytest.fail(f"worker not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return worker, log


def stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM; SIGKILL the process group (the pool children too) if it is still up after 10 s."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)
            worker.wait()


def end_times(redis: PrivateRedis, count: int) -> list[float]:
    """Queue `count` no-op tasks at once (Celery's built-in `celery.accumulate`) and return when each ended."""
    client = Celery("pool-probe", broker=redis.url, backend=redis.url)
    try:
        results = [client.send_task("celery.accumulate", args=(i,), queue=GPU_QUEUE) for i in range(count)]
        for result in results:
            result.get(timeout=RESULT_TIMEOUT_S)
        return sorted(result.date_done.timestamp() for result in results)
    finally:
        client.close()


@pytest.mark.parametrize("app_module", ["agent_pipeline", "bench.orchestration_worker"])
def test_a_one_task_child_is_replaced_in_well_under_a_second(
    app_module: str, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    worker, log = start_gpu_worker(app_module, redis_server, tmp_path)
    try:
        ends = end_times(redis_server, TASKS)
    finally:
        stop(worker)
    gaps = [round(later - earlier, 2) for earlier, later in zip(ends, ends[1:], strict=False)]
    assert max(gaps) < MAX_GAP_S, f"seconds between consecutive tasks' ends: {gaps}\n{log.read_text()[-3000:]}"
    assert log.read_text().count("succeeded in") == TASKS  # each in its own child: ForkPoolWorker-1 .. -5
