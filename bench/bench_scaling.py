"""Throughput with 1, 2 and 4 GPU worker processes, trainings of a fixed length (issue 16).

Starts its own redis-server (free port) and a fresh database on the local Postgres, one research worker
(`-c 2`, or `--research-concurrency`: design, gates, backtest, assessment and every training's supervisor) and
N GPU worker processes (`-c 1` each), all running `bench.scaling_worker`: the real app, chain and tasks, trivial
phase bodies, and a training that sleeps `--training-s` seconds with its real heartbeats. It keeps 2N cycles in flight
(KTRDR_MAX_CONCURRENT_CYCLES = 2N) until `--rounds` x N cycles have completed, and reports:

- cycles per minute in steady state (the cycles completed after the first N, over the time from the N-th
  completion to the last: the ramp-up, N first designs and trainings starting together, left out; the overall
  figure from the first trigger is reported too) and scaling efficiency = throughput(N) / (N x throughput(1));
  the issue's goal is >= 90% at N = 4;
- what each cycle costs the shared services: Postgres rows written and transactions committed (pg_stat; the
  commits include read-only transactions, this bench's own polling among them), Redis
  commands (INFO stats), and the CPU seconds of Redis and of the research worker (the supervisors), so the first
  to saturate can be named: the one that needs the most CPU per cycle. (Postgres' CPU is not separable from
  the other databases on a shared server; its commits per cycle are reported instead.)

Results go to bench/results/scaling.json and a table. Run: python bench/bench_scaling.py [--training-s 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_orchestration import ADMIN_DSN, Stack, wait_for  # noqa: E402
from bench.results_meta import add_options, reset_gate_env, write  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "scaling.json"
WORKER_COUNTS = (1, 2, 4)
GOAL_EFFICIENCY = 0.90
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ScalingStack(Stack):
    """bench_orchestration's stack without the API, with N GPU workers of the scaling app."""

    def __init__(self, folder: Path, gpu_workers: int, training_s: float, research_concurrency: int = 2) -> None:
        super().__init__(folder)
        self.gpu_workers, self.research_concurrency = gpu_workers, research_concurrency
        self.env.update(
            {
                "KTRDR_MAX_CONCURRENT_CYCLES": str(2 * gpu_workers),
                "KTRDR_BENCH_TRAINING_S": str(training_s),
                "KTRDR_DESIGNER": "offline",
            }
        )
        self.pids: dict[str, list[int]] = {}

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
        self._scaling_worker("research", "research", "-c", str(self.research_concurrency))
        for k in range(self.gpu_workers):
            self._scaling_worker(f"gpu{k}", "gpu", "-c", "1")

    def _scaling_worker(self, name: str, queue: str, *options: str) -> None:
        self._spawn(
            name,
            [sys.executable, "-m", "celery", "-A", "bench.scaling_worker", "worker", "-Q", queue,
             "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "-l", "WARNING", *options],
        )  # fmt: skip
        wait_for(lambda: _ready(self.processes[-1].pid), timeout=90, every=0.2)
        self.pids[name] = [self.processes[-1].pid]

    def research_cpu_s(self) -> float:
        return _group_cpu_s(self.pids["research"][0])

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    def redis_cpu_s(self) -> float:
        info = self.redis_client().info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _ready(pid: int) -> bool:
    """A worker is ready when its pool children exist (its log is quiet at WARNING)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return children.exists() and bool(children.read_text().split())


def _group_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (the prefork pool)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLOCK_TICKS
            stack += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def _pg_counters(database: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(ADMIN_DSN.replace("dbname=postgres", f"dbname={database}"), autocommit=True) as conn:
        commits = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
        rows = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        ).fetchone()
    return {"commits": int(commits[0] if commits else 0), "rows": int(rows[0] if rows else 0)}


def run_load(stack: ScalingStack, cycles: int) -> dict[str, Any]:
    """Keep 2N cycles in flight until `cycles` have completed; the figures of that run."""
    from agent_pipeline.errors import CapacityError
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.pipeline.context import CycleOptions
    from agent_pipeline.store.operations import get_store

    store = get_store()
    redis = stack.redis_client()
    time.sleep(2.0)  # let the stats settle after start-up
    pg0, cmd0 = _pg_counters(stack.database), int(redis.info("stats")["total_commands_processed"])
    cpu0 = {"research": stack.research_cpu_s(), "redis": stack.redis_cpu_s()}
    started, triggered, done = time.monotonic(), 0, []
    in_flight: set[str] = set()
    while len(done) < cycles:
        for cycle_id in list(in_flight):
            op = store.get(cycle_id)
            if op.status.is_finished:
                in_flight.discard(cycle_id)
                assert op.status.value == "completed", op.error_message
                done.append(time.monotonic())
        while triggered < cycles and len(in_flight) < 2 * stack.gpu_workers:
            try:
                in_flight.add(cycle.trigger(CycleOptions(bypass_gates=True), store=store).operation_id)
                triggered += 1
            except CapacityError:
                break  # a finished cycle's row is not yet released: next round
        time.sleep(0.2)  # the bench's own reads count in pg_stat's commits: poll gently
        if time.monotonic() - started > 900:
            raise TimeoutError(f"{len(done)} of {cycles} cycles completed in 900 s")
    wall = done[-1] - started
    # Steady state: from the first wave's last completion to the end, without the ramp-up (the first designs)
    n = stack.gpu_workers
    steady = 60.0 * (cycles - n) / (done[-1] - done[n - 1]) if cycles > n else 0.0
    pg1, cmd1 = _pg_counters(stack.database), int(redis.info("stats")["total_commands_processed"])
    cpu = {"research": stack.research_cpu_s() - cpu0["research"], "redis": stack.redis_cpu_s() - cpu0["redis"]}
    return {
        "gpu_workers": stack.gpu_workers,
        "cycles": cycles,
        "wall_s": round(wall, 2),
        "cycles_per_minute_overall": round(60.0 * cycles / wall, 2),
        "cycles_per_minute": round(steady, 2),
        "postgres_commits_per_cycle": round((pg1["commits"] - pg0["commits"]) / cycles, 1),
        "postgres_rows_written_per_cycle": round((pg1["rows"] - pg0["rows"]) / cycles, 1),
        "redis_commands_per_cycle": round((cmd1 - cmd0) / cycles, 1),
        "research_worker_cpu_s_per_cycle": round(cpu["research"] / cycles, 3),
        "redis_cpu_s_per_cycle": round(cpu["redis"] / cycles, 4),
        "research_worker_cpu_share": round(cpu["research"] / wall, 3),
        "redis_cpu_share": round(cpu["redis"] / wall, 3),
    }


def measure(gpu_workers: int, training_s: float, rounds: int, research_concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ktrdr-scaling-") as folder:
        stack = ScalingStack(Path(folder), gpu_workers, training_s, research_concurrency)
        try:
            stack.start()
            return run_load(stack, rounds * gpu_workers)
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--training-s", type=float, default=4.0, help="seconds one training takes")
    parser.add_argument("--rounds", type=int, default=5, help="cycles per GPU worker")
    parser.add_argument("--research-concurrency", type=int, default=2, help="research worker processes (-c)")
    add_options(parser, RESULTS)
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)  # the stack's processes inherit this environment
    runs = [measure(n, args.training_s, args.rounds, args.research_concurrency) for n in WORKER_COUNTS]
    base = runs[0]["cycles_per_minute"]
    for run in runs:
        run["scaling_efficiency"] = round(run["cycles_per_minute"] / (run["gpu_workers"] * base), 3)
    ideal = 60.0 / args.training_s
    largest = runs[-1]
    # Per cycle/s of throughput, the share of one core each shared piece needs: the largest saturates first.
    needs = {
        "research worker (supervisors)": largest["research_worker_cpu_s_per_cycle"],
        "redis": largest["redis_cpu_s_per_cycle"],
    }
    first = max(needs, key=lambda k: needs[k])
    result = {
        "training_s": args.training_s,
        "research_concurrency": args.research_concurrency,
        "ideal_cycles_per_minute_per_gpu_worker": round(ideal, 2),
        "runs": runs,
        "efficiency_at_4": largest["scaling_efficiency"],
        "goal_efficiency_at_4": GOAL_EFFICIENCY,
        "saturates_first": first,
        "cycles_per_second_one_core_of_it_feeds": {k: round(1.0 / v, 1) if v else None for k, v in needs.items()},
        "cores": os.cpu_count(),
    }
    note = "no research cycle: trivial-phase cycles with trainings that sleep --training-s (no gate evaluated)"
    write(args.results, result, cycles=None, cycles_note=note, rounds=args.rounds, training_s=args.training_s)
    print(f"{'GPU workers':>11} {'cycles/min':>10} {'efficiency':>10} {'PG commits/cycle':>16} "
          f"{'PG rows/cycle':>13} {'Redis cmds/cycle':>16} {'research CPU s/cycle':>20}")  # fmt: skip
    for run in runs:
        print(
            f"{run['gpu_workers']:>11} {run['cycles_per_minute']:>10.1f} {run['scaling_efficiency']:>10.0%} "
            f"{run['postgres_commits_per_cycle']:>16.0f} {run['postgres_rows_written_per_cycle']:>13.0f} "
            f"{run['redis_commands_per_cycle']:>16.0f} {run['research_worker_cpu_s_per_cycle']:>20.3f}"
        )
    print(f"ideal per GPU worker: {ideal:.1f} cycles/min; saturates first: {first}; written to {args.results}")


if __name__ == "__main__":
    main()
