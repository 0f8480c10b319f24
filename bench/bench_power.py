"""Power benchmark (issue 14): how strong must a planted edge be for the loop to find it, and is TPE faster than random.

Run: make bench-power, or
     .venv/bin/python bench/bench_power.py [--cycles 20] [--seeds 1,2,3] [--strengths 1.0,1.5,2.0]
                                           [--random-strengths 1.5] [--jobs 2] [--results bench/results/power.json]
     .venv/bin/python bench/bench_power.py --table   # re-render the README table from the results file

Each arm is one `ktrdr agent calibrate --json` process with its own home (its own SQLite file, studies and trial
counts), run with the default gates: the Optuna designer (`offline`) on every strength, and random search
(`random`, same space, same seeds) on `--random-strengths`, and the Optuna designer on noise. A series stops at its first discovery
(deflated Sharpe >= 0.95, both gates passed). Arms run `--jobs` at a time, one torch thread each. The merged record
goes to bench/results/power.json; the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "power.json"
KTRDR = Path(sys.executable).parent / "ktrdr"


def run_arm(name: str, args: list[str], home: Path) -> dict[str, Any]:
    """One calibrate process; its progress goes to `<home>.log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "DATABASE_URL", "ANTHROPIC_"))}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with open(f"{home}.log", "w") as log:
        done = subprocess.run(
            [str(KTRDR), "agent", "calibrate", "--home", str(home), *args, "--json"],
            env=env, stdout=subprocess.PIPE, stderr=log, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"arm {name} failed ({done.returncode}); see {home}.log")
    print(f"arm {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return dict(json.loads(done.stdout)["data"])


def arms(options: argparse.Namespace) -> dict[str, list[str]]:
    common = ["--seeds", options.seeds, "--cycles", str(options.cycles)]
    planned = {
        "offline-edges": ["--kinds", "trend,reversal", "--strengths", options.strengths, "--designers", "offline"],
        "random-edges": ["--kinds", "trend,reversal", "--strengths", options.random_strengths, "--designers", "random"],
        "noise": ["--kinds", "noise", "--designers", "offline"],
    }
    return {name: [*args, *common] for name, args in planned.items()}


def merge(records: dict[str, dict[str, Any]], options: argparse.Namespace, seconds: float) -> dict[str, Any]:
    from agent_pipeline.insight.calibration import SeriesOutcome, run_record

    fields = set(SeriesOutcome.__dataclass_fields__)
    outcomes = [
        SeriesOutcome(**{k: v for k, v in series.items() if k in fields})
        for record in records.values()
        for series in record["series"]
    ]
    plan = {"cycles": options.cycles, "seeds": options.seeds, "strengths": options.strengths,
            "random_strengths": options.random_strengths}  # fmt: skip
    return run_record(outcomes, plan, seconds) | {"arms": {name: r["seconds"] for name, r in records.items()}}


def table(record: dict[str, Any]) -> str:
    lines = [
        "| Kind | Strength | Designer | Series | Discoveries | Cycles to 1st (median) | Best WF Sharpe (median) "
        "| Rule Sharpe | Lockbox Sharpe of discovery (median) | Rule lockbox Sharpe |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in record["power"]:
        cells = [row["kind"], row["strength"], row["designer"], row["series"], f"{row['discoveries']}/{row['series']}",
                 row["median_cycles_to_discovery"], row["median_best_sharpe"], row["mean_rule_sharpe"],
                 row["median_discovery_lockbox_sharpe"], row["mean_rule_lockbox_sharpe"]]  # fmt: skip
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    lines.append(f"\nFalse-discovery rate on noise: {record['false_discovery_rate']}; {record['seconds']:.0f} s wall.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--strengths", default="1.0,1.5,2.0")
    parser.add_argument("--random-strengths", default="1.5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="Print the table of the results file and stop.")
    options = parser.parse_args()
    if options.table:
        print(table(json.loads(options.results.read_text())))
        return
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ktrdr-power-"))
    planned = arms(options)
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {name: pool.submit(run_arm, name, args, work / name) for name, args in planned.items()}
        records = {name: future.result() for name, future in futures.items()}
    record = merge(records, options, time.perf_counter() - started)
    options.results.parent.mkdir(parents=True, exist_ok=True)
    options.results.write_text(json.dumps(record, indent=2) + "\n")
    print(table(record))


if __name__ == "__main__":
    main()
