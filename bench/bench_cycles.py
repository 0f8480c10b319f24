"""Research throughput (issue 15): whole cycles per hour, fold models trained one by one against together.

Run: .venv/bin/python bench/bench_cycles.py [--cycles 4] [--series SP500:1d] [--seed 7]
Each arm runs --cycles whole cycles of the embedded pipeline (the real chain: offline designer, walk-forward
training, backtest, assessment; gates bypassed) on a bundled daily series, in a fresh process and home of its own
with the same seed, so every arm designs the same strategies. The arms:
- "before": the pipeline as it stood before issue 15, fold models one by one (`KTRDR_BATCHED_FOLDS=false`) and
  kombu's default 1 s polling of the in-memory broker (set in the arm's own process: the product polls every
  50 ms, `celery_app.MEMORY_POLLING_INTERVAL_S`);
- "one by one": today's polling, fold models one by one;
- "together": today's pipeline, fold models trained together.
Prints each arm's cycles per hour and training seconds per cycle, and the ratios.
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
from pathlib import Path
from typing import Any

from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

ARMS = {"before": "false", "one by one": "false", "together": "true"}  # arm -> KTRDR_BATCHED_FOLDS
# kombu's default polling interval of an idle in-memory broker, which the pipeline used before issue 15
KOMBU_DEFAULT_POLLING_S = 1.0


def run_arm(symbol: str, timeframe: str, cycles: int) -> dict[str, Any]:
    """`cycles` cycles in this process (its environment already names the arm); wall time and training times."""
    from agent_pipeline.config import get_settings
    from agent_pipeline.pipeline import cycle, embedded
    from agent_pipeline.pipeline.context import CycleOptions
    from agent_pipeline.store.operations import get_store

    embedded.prepare_environment(get_settings().home)
    store = get_store()
    store.upgrade()
    options = CycleOptions(designer="offline", symbol=symbol, timeframe=timeframe, bypass_gates=True)
    statuses, training = [], []
    with embedded.embedded_worker():
        started = time.perf_counter()
        for _ in range(cycles):
            operation_id = cycle.trigger(options, store=store).operation_id
            while not (operation := store.get(operation_id)).status.is_finished:
                time.sleep(0.2)
            statuses.append(operation.status.value)
            training_op = operation.metadata.get("training_op_id")
            child = store.get(training_op) if training_op else None
            training.append((child.result_summary or {}).get("duration_s") if child else None)
        wall = time.perf_counter() - started
    return {"wall_s": wall, "statuses": statuses, "training_s": training}


def spawn(arm: str, batched: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / arm.replace(" ", "_")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_") and k != "DATABASE_URL"}
    env |= {"KTRDR_HOME": str(home), "KTRDR_SEED": str(args.seed), "KTRDR_BATCHED_FOLDS": batched}
    out = home / "summary.json"
    home.mkdir(parents=True)
    command = [sys.executable, __file__, "--arm", arm, "--series", args.series, "--cycles", str(args.cycles)]
    with (home / "run.log").open("w") as log:
        subprocess.run([*command, "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return dict(json.loads(out.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=4, help="cycles per arm (default 4)")
    parser.add_argument("--series", default="SP500:1d", help="SYMBOL:TIMEFRAME (default SP500:1d)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in a child process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    add_options(parser, RESULTS_DIR / "cycles.json")
    args = parser.parse_args()
    symbol, timeframe = args.series.split(":")
    if args.arm:
        if args.arm == "before":
            from agent_pipeline.pipeline import celery_app

            celery_app.MEMORY_POLLING_INTERVAL_S = KOMBU_DEFAULT_POLLING_S
        args.out.write_text(json.dumps(run_arm(symbol, timeframe, args.cycles)))
        return
    reset_gate_env(keep=args.keep_gate_env)  # the arms inherit this environment (gates bypassed, recorded anyway)
    work = Path(tempfile.mkdtemp(prefix="ktrdr-bench-cycles-"))
    results = {arm: spawn(arm, batched, args, work) for arm, batched in ARMS.items()}
    per_hour, record = {}, {}
    for arm, result in results.items():
        per_hour[arm] = 3600 * len(result["statuses"]) / result["wall_s"]
        trained = [t for t in result["training_s"] if t is not None]
        median = f"{statistics.median(trained):.1f} s" if trained else "-"
        record[arm] = {**result, "cycles_per_hour": per_hour[arm], "s_per_cycle": result["wall_s"] / args.cycles}
        print(
            f"cycles ({symbol} {timeframe}, {args.cycles} cycles, gates bypassed, embedded), {arm}: "
            f"{per_hour[arm]:.0f} cycles/hour, {result['wall_s'] / args.cycles:.1f} s a cycle, "
            f"median training {median} ({', '.join(result['statuses'])})"
        )
    print(f"cycles per hour: together/one-by-one {per_hour['together'] / per_hour['one by one']:.2f} (batching alone)")
    print(f"cycles per hour: after/before {per_hour['together'] / per_hour['before']:.2f} (goal >= 2)")
    ratios = {
        "together_over_one_by_one": per_hour["together"] / per_hour["one by one"],
        "together_over_before": per_hour["together"] / per_hour["before"],
    }
    summary = {"series": args.series, "seed": args.seed, "gates": "bypassed", "arms": record, "ratios": ratios}
    write(args.results, summary, cycles=args.cycles, cycles_per="arm", bypass_gates=True)


if __name__ == "__main__":
    main()
