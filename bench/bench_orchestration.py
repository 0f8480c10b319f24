"""What orchestration costs, on the real stack through the HTTP API (issue 11).

Starts its own redis-server (free port), a fresh database on the local Postgres, a research worker, a GPU
worker and the API (uvicorn), all stopped at the end. The workers run `bench.orchestration_worker`: the real
app, chain and tasks with trivial phase bodies, so the figures are the orchestration's alone. Measures:

- trigger -> first phase starts (p50 / p95): POST /agent/trigger sent -> the cycle row's `started_at`; and
  through `ktrdr agent trigger` (a fresh process), the row's `created_at` -> `started_at`;
- training end -> next phase starts (p95): the GPU task's `date_done` -> the backtest row's `started_at`;
- cancel via the API -> both rows cancelled (p50): DELETE /agent/cancel sent mid-training -> cycle and
  training rows both `cancelled`;
- a whole trivial-phase cycle (trigger -> completed) against a raw Celery chain of 7 no-op tasks on the same
  Redis and workers, both measured in this run (goal: at most 1.5x).

Results go to bench/results/orchestration.json and a table. Run: python bench/bench_orchestration.py [--cycles N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_meta import add_options, reset_gate_env, write  # noqa: E402
from tests.private_servers import PrivateRedis, free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "orchestration.json"
ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
# The ratio the issue sets as the goal: a trivial cycle at most this many times a raw 7-task chain.
GOAL_RATIO = 1.5
RAW_CHAIN_LENGTH = 7


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"not met within {timeout} s")


class Stack:
    """Redis, a database, two workers and the API, started here and stopped on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis = PrivateRedis(folder / "redis")
        self.database = f"ktrdr_bench_{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.database}",
            "KTRDR_BROKER_URL": self.redis.url,
            "KTRDR_RESULT_BACKEND": self.redis.url,
            "KTRDR_HOME": str(folder / "home"),
            "KTRDR_MAX_CONCURRENT_CYCLES": "1",
            "KTRDR_POLL_INTERVAL": "0.5",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }

    def start(self) -> None:
        import psycopg

        (self.folder / "redis").mkdir()
        self.redis.start()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("KTRDR_", "DATABASE_URL"))})
        from agent_pipeline.config import get_settings, reset_settings
        from agent_pipeline.pipeline.celery_app import app, configure
        from agent_pipeline.store.operations import get_store

        reset_settings()
        configure(app, get_settings())
        get_store().upgrade()
        self._worker("research", "-c", "2")
        self._worker("gpu", "-c", "1", "--max-tasks-per-child", "1")
        self._spawn(
            "api", [sys.executable, "-m", "uvicorn", "agent_pipeline.api.app:app", "--port", str(self.api_port)]
        )
        wait_for(lambda: self._answers(f"{self.api_url}/health"), timeout=60, every=0.2)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    def _worker(self, queue: str, *options: str) -> None:
        log = self._spawn(
            queue,
            [sys.executable, "-m", "celery", "-A", "bench.orchestration_worker", "worker", "-Q", queue,
             "-n", f"{queue}@%h", "--without-mingle", "--without-gossip", "-l", "INFO", *options],
        )  # fmt: skip
        wait_for(lambda: "ready." in log.read_text(errors="replace"), timeout=60, every=0.2)

    def _spawn(self, name: str, command: list[str]) -> Path:
        log = self.folder / f"{name}.log"
        process = subprocess.Popen(
            command, env=self.env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return log

    @staticmethod
    def _answers(url: str) -> bool:
        import httpx

        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        import psycopg

        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        from tests.services import forget_store

        forget_store(self.env["DATABASE_URL"])
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.redis.stop(keep_data=False)


@contextmanager
def running_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-") as folder:
        stack = Stack(Path(folder))
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


def _epoch(moment: datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


def trivial_cycles(stack: Stack, count: int) -> dict[str, list[float]]:
    """Whole trivial cycles through the API: trigger -> first phase, training end -> next phase, whole cycle."""
    import httpx

    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.store.operations import get_store

    store = get_store()
    first_phase, after_training, whole = [], [], []
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        for _ in range(count):
            sent = time.time()
            answer = client.post("/agent/trigger", json={"bypass_gates": True})
            assert answer.status_code == 202, answer.text
            cycle_id = answer.json()["operation_id"]
            done = wait_for(lambda c=cycle_id: (op := store.get(c)).status.is_finished and op, every=0.005)
            assert done.status.value == "completed", done.error_message
            first_phase.append(_epoch(done.started_at) - sent)
            whole.append(_epoch(done.completed_at) - sent)
            training_end = app.AsyncResult(done.metadata["training_task_id"]).date_done
            backtest = store.get(done.metadata["backtest_op_id"])
            after_training.append(_epoch(backtest.started_at) - _as_utc(training_end))
    return {"trigger_to_first_phase": first_phase, "training_end_to_next_phase": after_training, "cycle": whole}


def _as_utc(moment: Any) -> float:
    """Celery's `date_done`: an aware datetime, or a naive one in UTC (older backends)."""
    from datetime import UTC

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cancels(stack: Stack, count: int) -> list[float]:
    """Cancel through the API mid-training; time until the cycle and its training rows are both cancelled."""
    import httpx

    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.store.operations import OperationStatus, get_store
    from bench.orchestration_worker import SLOW_TRAINING_KEY

    store = get_store()
    redis = app.backend.client
    took = []
    redis.set(SLOW_TRAINING_KEY, 1)
    try:
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            for _ in range(count):
                cycle_id = client.post("/agent/trigger", json={"bypass_gates": True}).json()["operation_id"]

                def training(cycle_id: str = cycle_id) -> Any:
                    child_id = store.get(cycle_id).metadata.get("training_op_id")
                    child = store.get(child_id) if child_id else None
                    return child if child and child.status == OperationStatus.RUNNING else None

                child = wait_for(training, every=0.02)
                sent = time.time()
                assert client.delete("/agent/cancel").status_code == 200
                wait_for(
                    lambda c=child, p=cycle_id: (
                        store.get(p).status == OperationStatus.CANCELLED
                        and store.get(c.operation_id).status == OperationStatus.CANCELLED
                    ),
                    every=0.002,
                )
                took.append(time.time() - sent)
                wait_for(lambda: client.get("/agent/status").json()["status"] == "idle", every=0.05)
    finally:
        redis.delete(SLOW_TRAINING_KEY)
    return took


def cli_triggers(stack: Stack, count: int) -> list[float]:
    """`ktrdr agent trigger` in a fresh process, as the issue measured it: the row's `created_at` -> `started_at`.

    A fresh process has imported nothing: this shows whether the trigger still pays for imports after the row.
    """
    from agent_pipeline.store.operations import get_store

    store = get_store()
    command = [sys.executable, "-c", "from agent_pipeline.cli import main; main()"]
    took = []
    for _ in range(count):
        answer = subprocess.run(
            [*command, "agent", "trigger", "--bypass-gates", "--json"],
            env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        cycle_id = json.loads(answer.stdout.strip().splitlines()[-1])["operation_id"]
        done = wait_for(lambda c=cycle_id: (op := store.get(c)).status.is_finished and op, every=0.01)
        took.append(_epoch(done.started_at) - _epoch(done.created_at))
    return took


def raw_chains(count: int) -> list[float]:
    """A Celery chain of 7 no-op tasks on the same Redis and research worker: apply -> last result."""
    from celery import chain

    from bench.orchestration_worker import noop

    took = []
    for _ in range(count):
        started = time.time()
        result = chain(*[noop.si(i) for i in range(RAW_CHAIN_LENGTH)]).apply_async(queue="research")
        result.get(timeout=30)
        took.append(time.time() - started)
    return took


def summarise(samples: dict[str, list[float]]) -> dict[str, Any]:
    ms = {name: [v * 1000 for v in values] for name, values in samples.items()}
    cycle_p50, raw_p50 = statistics.median(ms["cycle"]), statistics.median(ms["raw_chain"])
    return {
        "trigger_to_first_phase_ms": {"p50": statistics.median(ms["trigger_to_first_phase"]),
                                      "p95": percentile(ms["trigger_to_first_phase"], 0.95)},
        "training_end_to_next_phase_ms": {"p50": statistics.median(ms["training_end_to_next_phase"]),
                                          "p95": percentile(ms["training_end_to_next_phase"], 0.95)},
        "cancel_to_both_rows_cancelled_ms": {"p50": statistics.median(ms["cancel"]),
                                             "p95": percentile(ms["cancel"], 0.95)},
        "cli_row_to_first_phase_ms": {"p50": statistics.median(ms["cli_trigger"]),
                                      "p95": percentile(ms["cli_trigger"], 0.95)},
        "trivial_cycle_ms": {"p50": cycle_p50, "p95": percentile(ms["cycle"], 0.95)},
        "raw_chain_7_noop_ms": {"p50": raw_p50, "p95": percentile(ms["raw_chain"], 0.95)},
        "cycle_vs_raw_chain_ratio": cycle_p50 / raw_p50,
        "goal_ratio": GOAL_RATIO,
        "samples": {name: len(values) for name, values in samples.items()},
    }  # fmt: skip


def print_table(result: dict[str, Any]) -> None:
    print(f"{'measure':40} {'p50 ms':>10} {'p95 ms':>10}")
    for key, value in result.items():
        if isinstance(value, dict) and "p50" in value:
            print(f"{key:40} {value['p50']:10.1f} {value['p95']:10.1f}")
    ratio = result["cycle_vs_raw_chain_ratio"]
    print(f"{'trivial cycle / raw 7-task chain (p50)':40} {ratio:10.2f}x   goal <= {GOAL_RATIO}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=20, help="trivial cycles (and raw chains) to time")
    parser.add_argument("--cancels", type=int, default=10, help="cancels to time")
    parser.add_argument("--cli", type=int, default=3, help="triggers through the CLI (a fresh process each) to time")
    add_options(parser, RESULTS)
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)  # the stack's processes inherit this environment
    with running_stack() as stack:
        trivial_cycles(stack, 2)  # warm-up: imports and connections in every process
        raw_chains(3)
        samples = trivial_cycles(stack, args.cycles)
        samples["raw_chain"] = raw_chains(args.cycles)
        samples["cancel"] = cancels(stack, args.cancels)
        samples["cli_trigger"] = cli_triggers(stack, args.cli)
    note = "no research cycle: trivial-phase cycles (no training, backtest or gate), gates bypassed"
    counts = {"trivial_cycles": args.cycles, "cancels": args.cancels, "cli_triggers": args.cli}
    result = write(args.results, summarise(samples), cycles=None, cycles_note=note, **counts)
    print_table(result)


if __name__ == "__main__":
    main()
