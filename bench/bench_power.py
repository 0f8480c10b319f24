"""Power benchmark (issues 14, 23): how strong must a planted edge be for the loop to find it, on seeds kept back.

Run: make bench-power, or
     .venv/bin/python bench/bench_power.py [--cycles 20] [--tuning-seeds 1,2,3] [--held-out-seeds 101,...,105]
                                           [--strengths 1.5,2.0] [--trend-strengths 1.5,2.0]
                                           [--random-strengths ""] [--arms ...] [--jobs 2] [--keep-gate-env]
     .venv/bin/python bench/bench_power.py --table   # re-render the tables from the results file
     .venv/bin/python bench/bench_power.py --universe-size 20 --correlation 0.3 --bars 2520 --tuning-seeds "" \
         --strengths 1.0 --trend-strengths 0.5 --results bench/results/power_universe_c0.3.json   # issue 24

Two disjoint seed sets: the tuning seeds are the ones the space and the assessor's advice were looked at on; the
held-out seeds were not, and only they make the power table. The tuning figures are printed beside, labelled.

Each arm is one `ktrdr agent calibrate --json` process with its own home (its own SQLite file, studies and trial
counts) for one kind, designer, strength and seed set, run with the default gates: gate variables in the
caller's environment are dropped unless `--keep-gate-env`. Every series runs its whole budget of cycles and is
found when a discovery stands at the end, judged over all its trials; flags raised earlier and withdrawn by that
judgement are counted. Held-out arms run first, `--jobs` at a time, one torch thread each; the results file is
rewritten after every arm (`"partial": true` until the last), so a stopped run still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_meta import GATE_ENV_PREFIXES, reset_gate_env, stamp  # noqa: E402 - the bench folder, added above

RESULTS = Path(__file__).resolve().parent / "results" / "power.json"
KTRDR = Path(sys.executable).parent / "ktrdr"
SEED_SETS = ("held_out", "tuning")  # held-out first: the table's arms finish first in a run cut short
# Variables a calibrate process must not inherit: our settings (each arm has its own home) and, unless the bench
# is told to keep them, the gates' thresholds.
PRIVATE_ENV = ("KTRDR_", "DATABASE_URL", "ANTHROPIC_")
# The gate setting that opens the win-rate check for trend-following (which wins rarely and big).
OPEN_WIN_RATE = {"BACKTEST_GATE_MIN_WIN_RATE": "0.3"}


def arm_env(env_extra: dict[str, str], *, keep_gates: bool) -> dict[str, str]:
    """The environment of one calibrate process: ours without private or (unless kept) gate variables."""
    dropped = PRIVATE_ENV if keep_gates else (*PRIVATE_ENV, *GATE_ENV_PREFIXES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return env | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra}


def run_arm(name: str, args: list[str], home: Path, env_extra: dict[str, str], keep_gates: bool) -> dict[str, Any]:
    """One calibrate process; its progress goes to `<home>.log`."""
    started = time.perf_counter()
    with open(f"{home}.log", "w") as log:
        done = subprocess.run(
            [str(KTRDR), "agent", "calibrate", "--home", str(home), *args, "--json"],
            env=arm_env(env_extra, keep_gates=keep_gates), stdout=subprocess.PIPE, stderr=log, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"arm {name} failed ({done.returncode}); see {home}.log")
    print(f"arm {name}: {time.perf_counter() - started:.0f} s", flush=True)
    record = dict(json.loads(done.stdout)["data"])
    if env_extra:  # a gate opened for this arm: its rows say so
        for series in record["series"]:
            series["designer"] += " (" + ", ".join(f"{k}={v}" for k, v in env_extra.items()) + ")"
    return record


def seed_sets(options: argparse.Namespace) -> dict[str, list[int]]:
    """`{"tuning": [...], "held_out": [...]}`; refuses sets that overlap or too few held-out seeds."""
    sets = {name: [int(s) for s in getattr(options, f"{name}_seeds").split(",") if s.strip()] for name in SEED_SETS}
    if set(sets["tuning"]) & set(sets["held_out"]):
        raise SystemExit(f"tuning and held-out seeds overlap: {sorted(set(sets['tuning']) & set(sets['held_out']))}")
    if len(sets["held_out"]) < options.min_held_out:
        raise SystemExit(f"{len(sets['held_out'])} held-out seeds: at least {options.min_held_out} make the table")
    return {"tuning": sets["tuning"], "held_out": sets["held_out"]}


def arms(options: argparse.Namespace) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (calibrate arguments, extra environment): one arm per kind, designer, strength and seed set, so
    `--jobs` processes share the work evenly. Default gates everywhere but the `-open` arms (run only when named).
    """
    kinds: dict[str, tuple[list[str], dict[str, str]]] = {"noise": (["--kinds", "noise", "--designers", "offline"], {})}
    for designer, kind, strengths in (
        ("offline", "reversal", options.strengths),
        ("offline", "trend", options.trend_strengths),
        ("random", "reversal", options.random_strengths),
        ("random", "trend", options.random_trend_strengths),
    ):
        for strength in filter(None, strengths.split(",")):
            args = ["--kinds", kind, "--strengths", strength, "--designers", designer]
            kinds[f"{designer}-{kind}-{strength}"] = (args, {})
            if designer == "offline" and kind == "trend":
                kinds[f"offline-trend-{strength}-open"] = (args, OPEN_WIN_RATE)
    chosen = options.arms.split(",") if options.arms else [name for name in kinds if not name.endswith("-open")]
    unknown = sorted(set(chosen) - set(kinds))
    if unknown:
        raise SystemExit(f"unknown arms: {', '.join(unknown)} (known: {', '.join(kinds)})")
    seeds = seed_sets(options)
    shape = ["--universe-size", str(options.universe_size), "--correlation", str(options.correlation)]
    shape += ["--bars", str(options.bars)] if options.bars else []
    return {
        f"{name}@{which}": (
            [*kinds[name][0], "--seeds", ",".join(map(str, seeds[which])), "--cycles", str(options.cycles), *shape],
            kinds[name][1],
        )
        for which in SEED_SETS
        if seeds[which]
        for name in chosen
    }


def summary(outcomes: list[Any]) -> dict[str, Any]:
    from agent_pipeline.insight.calibration import false_discovery_rate, power_table, withdrawn_flags

    return {
        "series": len(outcomes),
        "false_discovery_rate": false_discovery_rate(outcomes),
        "withdrawn_flags": withdrawn_flags(outcomes),
        "power": power_table(outcomes),
    }


def merge(
    records: dict[str, dict[str, Any]], options: argparse.Namespace, seconds: float, planned: int
) -> dict[str, Any]:
    """The results file: provenance, both seed sets, the held-out power table (the one to quote), the tuning one
    beside it, and every series with the seed set it belongs to."""
    from agent_pipeline.config import Settings
    from agent_pipeline.insight.calibration import outcomes_of

    seeds = seed_sets(options)
    outcomes = [outcome for record in records.values() for outcome in outcomes_of(record)]
    by_set = {which: [o for o in outcomes if o.seed in seeds[which]] for which in SEED_SETS}
    held_out = summary(by_set["held_out"])
    series = [s | {"seed_set": _seed_set(s["seed"], seeds)} for r in records.values() for s in r["series"]]
    record = {
        "seeds": seeds,
        "partial": len(records) < planned,
        "arms_done": f"{len(records)} of {planned}",
        "plan": {"cycles": options.cycles, "strengths": options.strengths,
                 "trend_strengths": options.trend_strengths, "random_strengths": options.random_strengths,
                 "random_trend_strengths": options.random_trend_strengths, "arms": options.arms or "all",
                 "universe_size": options.universe_size, "correlation": options.correlation,
                 "bars": options.bars or 5031},
        "seconds": round(seconds, 1),
        # the table to quote: held-out seeds only
        "false_discovery_rate": held_out["false_discovery_rate"],
        "power": held_out["power"],
        "held_out": held_out,
        "tuning": summary(by_set["tuning"]),
        "withdrawn_flags": sum(len(o.withdrawn_flags) for o in outcomes),
        "series": series,
        "arms": {name: r["seconds"] for name, r in records.items()},
    }  # fmt: skip
    defaults = Settings.model_fields  # the arms run without our variables: the settings' defaults
    return stamp(
        record,
        cycles=options.cycles,
        folds=defaults["walk_forward_folds"].default,
        lockbox_fraction=defaults["lockbox_fraction"].default,
        bars=options.bars or 5031,
        universe_size=options.universe_size,
        correlation=options.correlation,
        keep_gate_env=options.keep_gate_env,
    )


def _seed_set(seed: int, seeds: dict[str, list[int]]) -> str:
    return next(which for which in SEED_SETS if seed in seeds[which])


HEADER = (
    "| Kind | Strength | Designer | Found at the end | First lasting discovery: found / all (median cycle) "
    "| Withdrawn flags | Best WF Sharpe (median) | Rule Sharpe (gross) | Lockbox Sharpe of discovery (median) "
    "| Rule lockbox Sharpe |\n|---|---|---|---|---|---|---|---|---|---|"
)


def table(rows: list[dict[str, Any]]) -> str:
    """One seed set's Markdown power table."""
    lines = [HEADER]
    for row in rows:
        cycles = f"{row['median_cycles_to_discovery'] or '-'} / {row['median_cycles_to_discovery_all']}"
        cells = [row["kind"], row["strength"], row["designer"], f"{row['discoveries']}/{row['series']}", cycles,
                 row["withdrawn_flags"], row["median_best_sharpe"], row["mean_rule_sharpe"],
                 row["median_discovery_lockbox_sharpe"], row["mean_rule_lockbox_sharpe"]]  # fmt: skip
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def side_by_side(held_out: list[dict[str, Any]], tuning: list[dict[str, Any]], seeds: dict[str, list[int]]) -> str:
    """Held-out and tuning counts per row, for the README: the held-out column is the claim."""
    key = ("kind", "strength", "designer")
    tuned = {tuple(row[k] for k in key): row for row in tuning}
    lines = [
        f"| Kind | Strength | Designer | Held-out: found (seeds {_span(seeds['held_out'])}) | Held-out: first lasting "
        f"(found / all) | Held-out: withdrawn flags | Tuning: found (seeds {_span(seeds['tuning'])}) | Tuning: "
        "first lasting (found / all) | Tuning: withdrawn flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in held_out:
        other = tuned.get(tuple(row[k] for k in key))
        cells = [
            row["kind"],
            row["strength"],
            row["designer"],
            *_counts(row),
            *(_counts(other) if other else ["-"] * 3),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _counts(row: dict[str, Any]) -> list[str]:
    cycles = f"{row['median_cycles_to_discovery'] or '-'} / {row['median_cycles_to_discovery_all']}"
    return [f"{row['discoveries']}/{row['series']}", cycles, str(row["withdrawn_flags"])]


def _span(seeds: list[int]) -> str:
    ordered = sorted(seeds)
    consecutive = ordered == list(range(ordered[0], ordered[-1] + 1)) if ordered else False
    return f"{ordered[0]}-{ordered[-1]}" if consecutive and len(ordered) > 2 else ",".join(map(str, ordered))


def report(record: dict[str, Any]) -> str:
    """Every table of a results file, recomputed from its series (an older file gains new columns)."""
    from agent_pipeline.insight.calibration import outcomes_of, power_table

    seeds = record["seeds"]
    outcomes = outcomes_of(record)
    held_out = power_table([o for o in outcomes if o.seed in seeds["held_out"]])
    tuning = power_table([o for o in outcomes if o.seed in seeds["tuning"]])
    partial = " PARTIAL: " + record["arms_done"] + " arms." if record.get("partial") else ""
    return "\n".join([
        f"Held-out seeds {_span(seeds['held_out'])} (the power table):",
        table(held_out),
        f"False-discovery rate on noise (held-out): {record['held_out']['false_discovery_rate']}; withdrawn flags: "
        f"{record['held_out']['withdrawn_flags']}.",
        "",
        f"Tuning seeds {_span(seeds['tuning'])} (looked at while tuning the space; not the claim):",
        table(tuning),
        f"False-discovery rate on noise (tuning): {record['tuning']['false_discovery_rate']}; withdrawn flags: "
        f"{record['tuning']['withdrawn_flags']}.",
        "",
        "Side by side:",
        side_by_side(held_out, tuning, seeds),
        "",
        f"{record['seconds']:.0f} s wall; {record['command']} at {record['commit']}, {record['date']}.{partial}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--tuning-seeds", default="1,2,3", help="Seeds the space was tuned on (the side column).")
    parser.add_argument("--held-out-seeds", default="101,102,103,104,105", help="Seeds kept back (the table).")
    parser.add_argument("--min-held-out", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--strengths", default="1.5,2.0", help="Reversal strengths (Optuna designer).")
    parser.add_argument("--trend-strengths", default="1.5,2.0", help="Trend strengths (Optuna designer).")
    parser.add_argument("--random-strengths", default="", help="Reversal strengths for random search.")
    parser.add_argument("--random-trend-strengths", default="", help="Trend strengths for random search.")
    parser.add_argument("--arms", default="", help="Comma-separated subset of the arms (default: all).")
    parser.add_argument("--universe-size", type=int, default=0, help="Plant universes of this many symbols (issue 24).")
    parser.add_argument("--correlation", type=float, default=0.0, help="A universe's pairwise return correlation.")
    parser.add_argument("--bars", type=int, default=0, help="Bars per series (default: calibrate's, 5031).")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep-gate-env", action="store_true", help="Keep TRAINING_GATE_*/BACKTEST_GATE_* set.")
    parser.add_argument("--table", action="store_true", help="Print the tables of the results file and stop.")
    options = parser.parse_args()
    if options.table:
        print(report(json.loads(options.results.read_text())))
        return
    reset_gate_env(keep=options.keep_gate_env)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ktrdr-power-"))
    planned = arms(options)
    print(f"{len(planned)} arms, logs under {work}", flush=True)
    records: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {
            pool.submit(run_arm, name, args, work / name.replace("@", "_"), env, options.keep_gate_env): name
            for name, (args, env) in planned.items()
        }
        for future in as_completed(futures):
            try:
                records[futures[future]] = future.result()
            except RuntimeError as error:  # one arm's failure leaves the others' results standing
                print(error, flush=True)
                continue
            ordered = {name: records[name] for name in planned if name in records}
            save(merge(ordered, options, time.perf_counter() - started, len(planned)), options.results)
    print(report(json.loads(options.results.read_text())))


def save(record: dict[str, Any], path: Path) -> None:
    from agent_pipeline.engine.artifacts import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
