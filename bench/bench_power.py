"""Power benchmark (issue 14): how strong must a planted edge be for the loop to find it, and is TPE faster than random.

Run: make bench-power, or
     .venv/bin/python bench/bench_power.py [--cycles 20] [--seeds 1,2,3] [--strengths 0.5,1.0,1.5,2.0] [--arms ...]
                                           [--trend-strengths 0.5,...] [--random-strengths 1.5] [--jobs 2]
     .venv/bin/python bench/bench_power.py --table   # re-render the README table from the results file

Each arm is one `ktrdr agent calibrate --json` process with its own home (its own SQLite file, studies and trial
counts), run with the default gates: the Optuna designer (`offline`) on reversal and trend edges of every
strength and on noise; random search (`random`, same space, same seeds) on reversal and trend edges of 1.5. An arm
is one kind, designer and strength. The `offline-trend-<strength>-open` arms, run only when named in `--arms`, open
the win-rate gate (BACKTEST_GATE_MIN_WIN_RATE=0.3). A series stops at its first discovery (deflated Sharpe >= 0.95,
both gates passed). Arms run `--jobs` at a time, one torch thread each. The merged record goes to
bench/results/power.json; the table is printed as Markdown.
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


def run_arm(name: str, args: list[str], home: Path, env_extra: dict[str, str]) -> dict[str, Any]:
    """One calibrate process; its progress goes to `<home>.log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "DATABASE_URL", "ANTHROPIC_"))}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra}
    started = time.perf_counter()
    with open(f"{home}.log", "w") as log:
        done = subprocess.run(
            [str(KTRDR), "agent", "calibrate", "--home", str(home), *args, "--json"],
            env=env, stdout=subprocess.PIPE, stderr=log, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"arm {name} failed ({done.returncode}); see {home}.log")
    print(f"arm {name}: {time.perf_counter() - started:.0f} s", flush=True)
    record = dict(json.loads(done.stdout)["data"])
    if env_extra:  # a gate opened for this arm: its rows say so
        for series in record["series"]:
            series["designer"] += " (" + ", ".join(f"{k}={v}" for k, v in env_extra.items()) + ")"
    return record


# The gate setting that opens the win-rate check for trend-following (which wins rarely and big).
OPEN_WIN_RATE = {"BACKTEST_GATE_MIN_WIN_RATE": "0.3"}


def arms(options: argparse.Namespace) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (calibrate arguments, extra environment): one arm per kind, designer and strength, so `--jobs`
    processes share the work evenly. Default gates everywhere but the `-open` arms (run only when named)."""
    common = ["--seeds", options.seeds, "--cycles", str(options.cycles)]
    # noise first: it never stops early, so it would otherwise finish alone at the end
    planned: dict[str, tuple[list[str], dict[str, str]]] = {
        "noise": (["--kinds", "noise", "--designers", "offline"], {})
    }
    for designer, kind, strengths in (
        ("offline", "reversal", options.strengths),
        ("offline", "trend", options.trend_strengths),
        ("random", "reversal", options.random_strengths),
        ("random", "trend", options.random_trend_strengths),
    ):
        for strength in filter(None, strengths.split(",")):
            planned[f"{designer}-{kind}-{strength}"] = (
                ["--kinds", kind, "--strengths", strength, "--designers", designer],
                {},
            )
            if designer == "offline" and kind == "trend":
                planned[f"offline-trend-{strength}-open"] = (
                    ["--kinds", kind, "--strengths", strength, "--designers", designer],
                    OPEN_WIN_RATE,
                )
    chosen = options.arms.split(",") if options.arms else [name for name in planned if not name.endswith("-open")]
    unknown = sorted(set(chosen) - set(planned))
    if unknown:
        raise SystemExit(f"unknown arms: {', '.join(unknown)} (known: {', '.join(planned)})")
    return {name: ([*planned[name][0], *common], planned[name][1]) for name in chosen}


def merge(records: dict[str, dict[str, Any]], options: argparse.Namespace, seconds: float) -> dict[str, Any]:
    from agent_pipeline.insight.calibration import outcomes_of, run_record

    outcomes = [outcome for record in records.values() for outcome in outcomes_of(record)]
    plan = {"cycles": options.cycles, "seeds": options.seeds, "strengths": options.strengths,
            "trend_strengths": options.trend_strengths, "random_strengths": options.random_strengths,
            "random_trend_strengths": options.random_trend_strengths}  # fmt: skip
    return run_record(outcomes, plan, seconds) | {"arms": {name: r["seconds"] for name, r in records.items()}}


def table(record: dict[str, Any]) -> str:
    """The Markdown table; the rows are recomputed from the series, so an older results file gains new columns."""
    from agent_pipeline.insight.calibration import outcomes_of, power_table

    outcomes = outcomes_of(record)
    lines = [
        "| Kind | Strength | Designer | Discoveries | Cycles to 1st: found / all (median) | Best WF Sharpe (median) "
        "| Rule Sharpe (gross) | Lockbox Sharpe of discovery (median) | Rule lockbox Sharpe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in power_table(outcomes):
        cycles = f"{row['median_cycles_to_discovery'] or '-'} / {row['median_cycles_to_discovery_all']}"
        cells = [row["kind"], row["strength"], row["designer"], f"{row['discoveries']}/{row['series']}", cycles,
                 row["median_best_sharpe"], row["mean_rule_sharpe"], row["median_discovery_lockbox_sharpe"],
                 row["mean_rule_lockbox_sharpe"]]  # fmt: skip
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    lines.append(f"\nFalse-discovery rate on noise: {record['false_discovery_rate']}; {record['seconds']:.0f} s wall.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--strengths", default="0.5,1.0,1.5,2.0", help="Reversal strengths (Optuna designer).")
    parser.add_argument("--trend-strengths", default="0.5,1.0,1.5,2.0", help="Trend strengths (Optuna designer).")
    parser.add_argument("--random-strengths", default="1.5", help="Reversal strengths for random search.")
    parser.add_argument("--random-trend-strengths", default="1.5", help="Trend strengths for random search.")
    parser.add_argument("--arms", default="", help="Comma-separated subset of the arms (default: all).")
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
        futures = {name: pool.submit(run_arm, name, args, work / name, env) for name, (args, env) in planned.items()}
        records = {name: future.result() for name, future in futures.items()}
    record = merge(records, options, time.perf_counter() - started)
    options.results.parent.mkdir(parents=True, exist_ok=True)
    options.results.write_text(json.dumps(record, indent=2) + "\n")
    print(table(record))


if __name__ == "__main__":
    main()
