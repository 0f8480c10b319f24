"""Promotion benchmark (issue 25): false promotions on noise, and the power the promotion step costs.

Run: make bench-promotion, or
     .venv/bin/python bench/bench_promotion.py [--null-seeds 201-220] [--universe-seeds 201] [--cycles 20]
                                              [--planted reversal:1.5,reversal:2.0,trend:1.5,trend:2.0]
                                              [--held-out-seeds 101,...,105] [--jobs 3] [--replays 2]
     .venv/bin/python bench/bench_promotion.py --table   # re-render the tables from the results file

Every series runs its whole budget of cycles with the default gates and promotion limits (KTRDR_MAX_PBO 0.2,
KTRDR_MIN_PATHS_POSITIVE 0.8, KTRDR_PBO_MIN_TRIALS 8), as a user runs it, each arm one `ktrdr agent calibrate
--json` process with its own home (bench_power.run_arm). At the end of its budget a series counts:
- a *candidate* when a cycle completed with both gates passed and a deflated Sharpe of at least 0.95 over all the
  series' trials (issue 23's discovery);
- a *discovery* when such a candidate is promoted: the series' PBO at most 0.2 and its purged combinatorial paths'
  median Sharpe above 0 with at least 80% of them positive.

Rows:
- **null**: seeded random walks (one series each) and a 20-symbol null universe. Goal: at most 1 discovery in 20
  series (5%).
- **planted**: the power table's planted edges on its held-out seeds (bench/bench_power.py): the power the step costs
  is the series found as a candidate and not promoted.

Beside the counts, from each arm's home through the product's own commands: every series' PBO (`ktrdr agent evidence
--json`), every candidate's promotion record with its path Sharpe ratios (`ktrdr operations status --json`), the
lockbox reads per series (`ktrdr agent lockbox-log --json`), and `--replays` cycles replayed (`ktrdr agent replay`:
`identical` or `differs`, and its time). The results file is rewritten after every arm (`"partial": true` until the
last).
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
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_power import KTRDR, arm_env, run_arm, save  # noqa: E402 - the bench folder, added above
from results_meta import reset_gate_env, stamp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "promotion.json"
GOAL_NULL_DISCOVERIES = 1  # at most this many discoveries over 20 null series
UNIVERSE_BARS = 2520  # ten years of daily bars per symbol, as bench-power-universe
TIMEFRAME = "1d"


def seeds(text: str) -> list[int]:
    """`201-220` or `101,102`: a list of seeds."""
    found: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return found


def arms(options: argparse.Namespace) -> dict[str, tuple[str, list[str]]]:
    """name -> (row group, calibrate arguments). The null walks are split over `--jobs` arms so they run at once."""
    common = ["--designers", "offline", "--cycles", str(options.cycles)]
    planned: dict[str, tuple[str, list[str]]] = {}
    null = seeds(options.null_seeds)
    parts = max(1, min(options.jobs - 1, len(null)))
    for index in range(parts):
        chunk = null[index::parts]
        if chunk:
            planned[f"null-walks-{index + 1}"] = ("null", ["--kinds", "noise", "--seeds", _join(chunk), *common])
    if options.universe_seeds:
        universe = ["--universe-size", "20", "--bars", str(UNIVERSE_BARS)]
        universe_seeds = _join(seeds(options.universe_seeds))
        planned["null-universe"] = ("null", ["--kinds", "noise", "--seeds", universe_seeds, *universe, *common])
    open_seeds = seeds(options.open_null_seeds)
    open_parts = max(1, min(options.jobs - 1, len(open_seeds)))
    for index in range(open_parts if open_seeds else 0):
        chunk = open_seeds[index::open_parts]
        if chunk:  # every gate opened: each cycle is backtested, so chance candidates reach the promotion step
            planned[f"null-walks-open-{index + 1}"] = ("open", ["--kinds", "noise", "--seeds", _join(chunk), *common])
    held_out = _join(seeds(options.held_out_seeds))
    for item in filter(None, options.planted.split(",")):
        kind, _, strength = item.partition(":")
        args = ["--kinds", kind, "--strengths", strength, "--seeds", held_out, *common]
        planned[f"{kind}-{strength}"] = ("planted", args)
    return planned


def _join(values: list[int]) -> str:
    return ",".join(map(str, values))


def cli(home: Path, *args: str) -> Any:
    """One `ktrdr` command's JSON against an arm's home (its SQLite file): the house envelope's `data`."""
    env = arm_env({"KTRDR_HOME": str(home)}, keep_gates=False)
    done = subprocess.run([str(KTRDR), *args, "--json"], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ktrdr {' '.join(args)}: {done.stderr.strip()[-500:]}")
    found = json.loads(done.stdout)
    return found.get("data", found) if isinstance(found, dict) else found


def inspect(home: Path, record: dict[str, Any], *, universe: bool) -> list[dict[str, Any]]:
    """Each series of an arm: its candidates and discoveries at the end, PBO, promotion records and lockbox reads."""
    reads = cli(home, "agent", "lockbox-log")
    rows = []
    for series in record["series"]:
        symbol = series["symbol"]
        history = cli(home, "agent", "history", "--symbol", symbol)
        lockbox = (history[0].get("series_lockbox") if history else None) or {}
        evidence = cli(home, "agent", "evidence", "--symbol", symbol)["series"]
        found = evidence[0] if evidence else {}
        overfitting = found.get("pbo") or {}
        promotions = []
        for trial in found.get("candidates") or []:
            summary = cli(home, "operations", "status", trial["cycle_id"]).get("result_summary") or {}
            promotion = summary.get("promotion") or {}
            paths = promotion.get("paths") or {}
            promotions.append({
                "cycle_id": trial["cycle_id"], "status": trial["promotion"],
                "deflated_sharpe": trial["deflated_sharpe"],
                "codes": promotion.get("codes"), "pbo_at_judgement": promotion.get("pbo"),
                "path_sharpes": paths.get("sharpes"), "paths_reason": promotion.get("paths_reason"),
            })  # fmt: skip
        rows.append({
            "symbol": symbol, "kind": series["kind"], "strength": series["strength"], "seed": series["seed"],
            "universe": universe,
            "cycles": series["cycles_run"], "trials": found.get("trials"),
            "candidate_cycles": series.get("candidates") or [], "discovery_cycles": series.get("discoveries") or [],
            "candidate": bool(series.get("candidates")), "discovery": bool(series.get("discoveries")),
            "pbo": overfitting.get("pbo"), "pbo_reason": found.get("pbo_reason"),
            "pbo_probability_of_loss": overfitting.get("probability_of_loss"),
            "pbo_degradation_slope": overfitting.get("degradation_slope"),
            "promotions": promotions,
            "lockbox_reads": sum(1 for read in reads if read["symbol"] == symbol),
            # the leaderboard's figure: the best lockbox Sharpe deflated by the series' read count
            "lockbox_best_sharpe": lockbox.get("best_sharpe"), "lockbox_best_deflated": lockbox.get("deflated_sharpe"),
            "rule_sharpe": series.get("rule_sharpe"), "outcomes": series.get("outcomes"),
        })  # fmt: skip
    return rows


def replays(home: Path, rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Replay up to `count` of the arm's cycles, candidates first, then any completed one: exit code, verdict line,
    seconds."""
    wanted = [p["cycle_id"] for row in rows for p in row["promotions"]]
    if len(wanted) < count:
        for row in rows:
            history = cli(home, "agent", "history", "--symbol", row["symbol"])
            wanted += [h["operation_id"] for h in history if h.get("status") == "completed"]
    done = []
    for cycle_id in list(dict.fromkeys(wanted))[:count]:
        env = arm_env({"KTRDR_HOME": str(home)}, keep_gates=False)
        started = time.perf_counter()
        run = subprocess.run([str(KTRDR), "agent", "replay", cycle_id], env=env, capture_output=True, text=True)
        lines = (run.stdout + run.stderr).strip().splitlines()
        done.append({
            "cycle_id": cycle_id, "exit": run.returncode, "verdict": lines[-1] if lines else "",
            "seconds": round(time.perf_counter() - started, 1),
        })  # fmt: skip
    return done


# Every gate threshold opened (as tests/stack.py's OPEN_GATES): the `--open-null-seeds` walks' cycles are all
# backtested and may become candidates by chance, which only the promotion step can then stop.
OPEN_GATES = {
    "TRAINING_GATE_MIN_ACCURACY": "0", "TRAINING_GATE_MAX_LOSS": "100", "TRAINING_GATE_MIN_LOSS_DECREASE": "-1",
    "TRAINING_GATE_MAX_P": "1", "BACKTEST_GATE_MIN_WIN_RATE": "0", "BACKTEST_GATE_MAX_DRAWDOWN": "1",
    "BACKTEST_GATE_MIN_SHARPE": "-1000", "BACKTEST_GATE_MIN_TRADES": "0",
}  # fmt: skip
# Outcomes of a cycle that was backtested (calibrate's per-cycle outcomes): it has out-of-sample returns.
BACKTESTED = ("passed", "backtest_gate")
# PBO limits the recorded figures are judged at again (`what_if`): KTRDR_MAX_PBO's default first.
WHAT_IF_MAX_PBO = (0.2, 0.35, 0.5)


def promoted_at(row: dict[str, Any], max_pbo: float) -> bool:
    """Whether a series would end with a discovery were KTRDR_MAX_PBO `max_pbo`: its candidates judged again by
    `gates.judge_promotion` on the figures the run recorded (the series' PBO at the end, each candidate's paths)."""
    from agent_pipeline.gates import PromotionThresholds, judge_promotion

    limits = PromotionThresholds(max_pbo=max_pbo)
    return any(
        judge_promotion(
            candidate=True, pbo=row["pbo"], paths={"sharpes": p["path_sharpes"]} if p["path_sharpes"] else None,
            thresholds=limits,
        ).is_discovery
        for p in row["promotions"]
    )  # fmt: skip


def counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pbos = [r["pbo"] for r in rows if r["pbo"] is not None]
    return {
        "series": len(rows),
        # a row whose series backtested nothing could not have made a candidate: the table says so
        "backtested_trials": sum(1 for r in rows for o in r.get("outcomes") or [] if o in BACKTESTED),
        "series_with_pbo": len(pbos),
        "candidates": sum(r["candidate"] for r in rows),
        "discoveries": sum(r["discovery"] for r in rows),
        "rejected_candidates": sum(1 for r in rows for p in r["promotions"] if p["status"] == "rejected"),
        "pending_candidates": sum(1 for r in rows for p in r["promotions"] if p["status"] == "candidate"),
        "pbo_median": round(statistics.median(pbos), 3) if pbos else None,
        "pbo_range": [round(min(pbos), 3), round(max(pbos), 3)] if pbos else None,
        "lockbox_reads_median": statistics.median([r["lockbox_reads"] for r in rows]) if rows else None,
        # the same figures judged at looser PBO limits (the first is the run's own limit, as a check)
        "what_if": {f"max_pbo {limit:g}": sum(promoted_at(r, limit) for r in rows) for limit in WHAT_IF_MAX_PBO},
    }


def null_row(null: list[dict[str, Any]]) -> dict[str, Any]:
    """The null series' counts, the walks' and the universes' apart, and whether the goal is met."""
    found = counts(null)
    return found | {
        "walks": counts([r for r in null if not r["universe"]]),
        "universes": counts([r for r in null if r["universe"]]),
        "goal_met": found["discoveries"] <= GOAL_NULL_DISCOVERIES * max(1, len(null)) / 20,
    }


def tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of the series rows: `null` (default gates), `null_open_gates` and `planted` by kind and strength."""
    null = [r for r in rows if r["kind"] == "noise" and r.get("gates") != "open"]
    planted: dict[str, list[dict[str, Any]]] = {}
    for row in (r for r in rows if r["kind"] != "noise" and r.get("gates") != "open"):
        planted.setdefault(f"{row['kind']} {row['strength']:g}", []).append(row)
    return {
        "null": null_row(null),
        "null_open_gates": counts([r for r in rows if r.get("gates") == "open"]),
        "planted": {name: counts(members) for name, members in planted.items()},
    }


def merge(
    done: dict[str, dict[str, Any]], planned: dict[str, Any], options: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    from agent_pipeline.config import Settings

    rows = [row for arm in done.values() for row in arm["rows"]]
    record = {
        "partial": len(done) < len(planned),
        "arms_done": f"{len(done)} of {len(planned)}",
        "plan": {"cycles": options.cycles, "null_seeds": options.null_seeds, "universe_seeds": options.universe_seeds,
                 "planted": options.planted, "held_out_seeds": options.held_out_seeds, "universe_bars": UNIVERSE_BARS},
        "seconds": round(seconds, 1),
        "goal": f"at most {GOAL_NULL_DISCOVERIES} discovery in 20 null series",
        **tables(rows),
        "replays": [r for arm in done.values() for r in arm["replays"]],
        "series": rows,
        "arms": {name: arm["seconds"] for name, arm in done.items()},
    }  # fmt: skip
    defaults = Settings.model_fields
    return stamp(
        record,
        cycles=options.cycles,
        folds=defaults["walk_forward_folds"].default,
        lockbox_fraction=defaults["lockbox_fraction"].default,
        max_pbo=defaults["max_pbo"].default,
        min_paths_positive=defaults["min_paths_positive"].default,
        pbo_min_trials=defaults["pbo_min_trials"].default,
        bars=5031,
        universe_bars=UNIVERSE_BARS,
    )


def report(record: dict[str, Any]) -> str:
    """The README's table: candidates and discoveries per row, and what promotion cost the planted edges."""
    lines = [
        "| Series | Count | Candidates at the end | Discoveries (promoted) | Rejected candidates "
        "| Backtested trials (series with a PBO) | PBO median (range) | Discoveries were KTRDR_MAX_PBO "
        + " / ".join(f"{x:g}" for x in WHAT_IF_MAX_PBO)
        + " |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def line(name: str, c: dict[str, Any]) -> str:
        span = f"{c['pbo_median']} ({c['pbo_range'][0]}-{c['pbo_range'][1]})" if c["pbo_range"] else "-"
        what_if = " / ".join(str(n) for n in (c.get("what_if") or {}).values()) or "-"
        return (f"| {name} | {c['series']} | {c['candidates']}/{c['series']} | {c['discoveries']}/{c['series']} "
                f"| {c['rejected_candidates']} | {c.get('backtested_trials', '-')} ({c.get('series_with_pbo', '-')}) "
                f"| {span} | {what_if} |")  # fmt: skip

    null = record["null"]
    if null["walks"]["series"]:
        lines.append(line("random walk", null["walks"]))
    if null["universes"]["series"]:
        lines.append(line("null universe (20 symbols)", null["universes"]))
    if (record.get("null_open_gates") or {}).get("series"):
        lines.append(line("random walk, every gate open", record["null_open_gates"]))
    for name, c in record["planted"].items():
        lines.append(line(f"planted {name} (held-out seeds)", c))
    replayed = record.get("replays") or []
    identical = sum(1 for r in replayed if r["exit"] == 0)
    partial = " PARTIAL: " + record["arms_done"] + " arms." if record.get("partial") else ""
    return "\n".join([
        *lines, "",
        f"Null: {null['discoveries']} discoveries in {null['series']} series (goal: {record['goal']}; "
        f"{'met' if null['goal_met'] else 'NOT met'}); {null['candidates']} candidates.",
        *([f"Every gate open: {opened['candidates']} candidates and {opened['discoveries']} discoveries in "
           f"{opened['series']} random walks (only the promotion step stood between a chance candidate and a "
           "discovery)."] if (opened := record.get("null_open_gates") or {}).get("series") else []),
        f"Replays: {identical} of {len(replayed)} identical"
        + (f" (median {statistics.median(r['seconds'] for r in replayed):.0f} s)." if replayed else "."),
        f"{record['seconds']:.0f} s wall; {record['command']} at {record['commit']}, {record['date']}.{partial}",
    ])  # fmt: skip


def run(name: str, group: str, args: list[str], home: Path, replay_count: int) -> dict[str, Any]:
    record = run_arm(name, args, home, OPEN_GATES if group == "open" else {}, False)
    rows = [row | {"gates": "open" if group == "open" else "default"} for row in
            inspect(home, record, universe="--universe-size" in args)]  # fmt: skip
    return {"seconds": record["seconds"], "rows": rows, "replays": replays(home, rows, replay_count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--null-seeds", default="201-220", help="Seeds of the random walks (one series each).")
    parser.add_argument(
        "--open-null-seeds", default="301-320", help="Random walks run with every gate open ('' for none)."
    )
    parser.add_argument("--universe-seeds", default="201", help="Seeds of 20-symbol null universes ('' for none).")
    parser.add_argument("--planted", default="reversal:1.5,reversal:2.0,trend:1.5,trend:2.0", help="KIND:STRENGTH,...")
    parser.add_argument("--held-out-seeds", default="101-105", help="The power table's held-out seeds.")
    parser.add_argument("--replays", type=int, default=1, help="Cycles replayed per arm (candidates first).")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="Print the table of the results file and stop.")
    parser.add_argument("--rejudge", action="store_true", help="Recount the results file's series (adds what_if).")
    options = parser.parse_args()
    if options.table:
        print(report(json.loads(options.results.read_text())))
        return
    if options.rejudge:  # the counts (and what_if) recomputed from the file's series, its provenance kept
        from results_meta import command_line, commit

        record = json.loads(options.results.read_text())
        record |= tables(record["series"]) | {"rejudged": {"command": command_line(), "commit": commit()}}
        save(record, options.results)
        print(report(record))
        return
    reset_gate_env()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ktrdr-promotion-"))
    planned = arms(options)
    print(f"{len(planned)} arms, logs under {work}", flush=True)
    done: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {
            pool.submit(run, name, group, args, work / name, options.replays): name
            for name, (group, args) in planned.items()
        }
        for future in as_completed(futures):
            try:
                done[futures[future]] = future.result()
            except RuntimeError as error:  # one arm's failure leaves the others' results standing
                print(error, flush=True)
                continue
            ordered = {name: done[name] for name in planned if name in done}
            save(merge(ordered, planned, options, time.perf_counter() - started), options.results)
    if done:
        print(report(json.loads(options.results.read_text())))
    os.sync()


if __name__ == "__main__":
    main()
