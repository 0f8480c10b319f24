"""Research benchmark (issue 9): the optimiser (offline designer, TPE) against random, same budget.

Run: make bench-research, or
     .venv/bin/python bench/bench_research.py [--cycles 24] [--seed 7] [--series SP500:1d ...] [--jobs 1]
                                              [--universes SP500_20:1d:timing ...] [--results FILE]

Universes (issue 24): `--universes NAME:TIMEFRAME:MODE` runs universe cycles (one model across the universe's symbols,
the portfolio traded in MODE, `timing` or `rank`); the default adds SP500_20 in both modes. Their table adds the
daily rank IC and ICIR (rank mode; median over the backtested trials and the best trial's), and the lockbox is
against the universe's equal-weight buy-and-hold.

Arms `offline` (TPE) and `random` (RandomSampler on the same space) each run `--cycles` whole cycles through the
embedded pipeline (the real chain, training and walk-forward backtest, in-process workers), with the same seed
and data, on every bundled series plus RWALK 1d, a driftless random walk on which no strategy has an edge.
Each (series, arm) runs in its own process and home (its own SQLite file, so its own study and trial count).

Per arm and series: median and best walk-forward (out-of-sample) Sharpe of the cycles that reached the
backtest, the share passing both gates, discoveries (deflated Sharpe >= 0.95), the best trial's lockbox result
against buy-and-hold, and the wall time. The lockbox is read here, for people, after the runs; the loop never
sees it. Results go to bench/results/research.json; the table is printed as Markdown.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

ARMS = ("offline", "random")
CONTROL = ("RWALK", "1d")
# The real universe, in both ways of trading it (issue 24).
DEFAULT_UNIVERSES = ("SP500_20:1d:timing", "SP500_20:1d:rank")
RESULTS = RESULTS_DIR / "research.json"


def random_walk(path: Path, bars: int = 5031, seed: int = 20261128) -> Path:
    """The control series, as long as the bundled daily series, written as a CSV to import."""
    from agent_pipeline.engine.data import random_walk_bars

    random_walk_bars(bars, seed=seed, start="1999-01-04").to_csv(path, index=False)
    return path


def run_arm(arm: str, symbol: str, timeframe: str, cycles: int, portfolio: str | None = None) -> dict[str, Any]:
    """`cycles` cycles of one arm on one series (with `portfolio`: on the universe `symbol`, traded so) in this
    process (its environment is already set)."""
    from agent_pipeline.config import get_settings
    from agent_pipeline.pipeline import cycle, embedded
    from agent_pipeline.pipeline.context import CycleOptions
    from agent_pipeline.store.operations import get_store

    embedded.prepare_environment(get_settings().home)
    store = get_store()
    store.upgrade()
    options = CycleOptions(designer=arm, symbol=symbol, timeframe=timeframe)
    if portfolio:
        options = CycleOptions(designer=arm, universe=symbol, timeframe=timeframe, portfolio=portfolio)
    started, finals = time.perf_counter(), []
    with embedded.embedded_worker():
        for _ in range(cycles):
            operation_id = cycle.trigger(options, store=store).operation_id
            while not (operation := store.get(operation_id)).status.is_finished:
                time.sleep(0.5)
            finals.append(operation)
    return summarise(finals, time.perf_counter() - started)


def summarise(finals: list[Any], wall: float) -> dict[str, Any]:
    """The figures of one arm on one series, from its finished cycles (in order)."""
    from agent_pipeline.llm.study import told

    rows = []
    for op in finals:
        summary = op.result_summary or {}
        backtest = op.metadata.get("backtest_result") or {}
        rows.append(
            {
                "cycle": op.operation_id,
                "status": op.status.value,
                "objective": told(op)[0],
                "sharpe": backtest.get("sharpe_ratio"),
                "trades": backtest.get("num_trades"),
                "deflated_sharpe": backtest.get("deflated_sharpe"),
                "discovery": bool(summary.get("discovery")),
                "rank_ic": backtest.get("rank_ic"),
                "icir": backtest.get("icir"),
                "excess_return": backtest.get("excess_return"),
                "lockbox": summary.get("lockbox"),
                "error": op.error_message,
            }
        )
    return figures(rows, wall)


def figures(rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Per arm and series: walk-forward Sharpe (all trials, and those after the startup draws both arms
    share), share passing both gates, discoveries, the best trial (by objective) and the running best."""
    from agent_pipeline.llm.study import STARTUP_TRIALS

    def sharpes(part: list[dict[str, Any]]) -> list[float]:
        return [r["sharpe"] for r in part if isinstance(r["sharpe"], int | float)]

    scored = [r for r in rows if r["objective"] is not None]
    running, best_so_far = [], None
    for r in rows:
        if r["objective"] is not None:
            best_so_far = r["objective"] if best_so_far is None else max(best_so_far, r["objective"])
        running.append(best_so_far)
    later = sharpes(rows[STARTUP_TRIALS:])
    return {
        "cycles": len(rows),
        "backtested": len(sharpes(rows)),
        "median_sharpe": statistics.median(sharpes(rows)) if sharpes(rows) else None,
        "median_sharpe_after_startup": statistics.median(later) if later else None,
        "best_sharpe": max(sharpes(rows), default=None),
        "both_gates": sum(r["status"] == "completed" for r in rows) / max(len(rows), 1),
        "discoveries": sum(r["discovery"] for r in rows),
        "median_rank_ic": _median(r.get("rank_ic") for r in rows),
        "median_icir": _median(r.get("icir") for r in rows),
        "best_trial": max(scored, key=lambda r: r["objective"], default=None),
        "running_best": running,
        "wall_s": round(wall, 1),
        "trials": rows,
    }


def _median(values: Any) -> float | None:
    found = [v for v in values if isinstance(v, int | float)]
    return statistics.median(found) if found else None


def spawn(arm: str, pair: tuple[str, str], args: argparse.Namespace, work: Path, data_dir: Path) -> dict[str, Any]:
    """Run one (series, arm) in a fresh process and home; returns its summary."""
    home = work / f"{arm}-{'-'.join(pair)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_") and k != "DATABASE_URL"}
    env |= {"KTRDR_HOME": str(home), "KTRDR_DATA_DIR": str(data_dir), "KTRDR_SEED": str(args.seed)}
    if args.jobs > 1:  # one core per run: torch would otherwise start a thread per core in every run
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    series = ":".join(pair)
    command = [sys.executable, __file__, "--arm", arm, "--series", series, "--cycles", str(args.cycles)]
    out = home / "summary.json"
    home.mkdir(parents=True)
    with (home / "run.log").open("w") as log:
        subprocess.run([*command, "--out", str(out)], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    result = json.loads(out.read_text())
    print(f"  {' '.join(pair)} {arm}: {row(pair, arm, result)[2:]}", flush=True)
    return {"series": " ".join(pair), "arm": arm, **result}


def fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def lockbox_text(best: dict[str, Any] | None) -> str:
    box = (best or {}).get("lockbox") or {}
    if "total_return" not in box:
        return "-"
    return f"{box['total_return']:+.1%} vs {box.get('buy_and_hold_return', float('nan')):+.1%}"


def row(pair: tuple[str, ...], arm: str, r: dict[str, Any]) -> str:
    cells = [
        " ".join(pair),
        arm,
        f"{r['backtested']}/{r['cycles']}",
        fmt(r["median_sharpe"]),
        fmt(r["median_sharpe_after_startup"]),
        fmt(r["best_sharpe"]),
        f"{r['both_gates']:.0%}",
        str(r["discoveries"]),
        fmt((r["best_trial"] or {}).get("objective")),
        lockbox_text(r["best_trial"]),
        f"{r['wall_s']:.0f}",
    ]
    if len(pair) == 3:  # a universe: its rank IC and ICIR (rank mode), median over trials and the best trial's
        best = r["best_trial"] or {}
        cells[-1:-1] = [ic_text(r["median_rank_ic"], r["median_icir"]), ic_text(best.get("rank_ic"), best.get("icir"))]
    return "| " + " | ".join(cells) + " |"


def ic_text(ic: Any, icir: Any) -> str:
    return "-" if ic is None else f"{ic:+.4f} ({fmt(icir)})"


HEADER = (
    "| Series | Arm | Backtested | Median WF Sharpe | after startup | Best WF Sharpe | Both gates | Discoveries "
    "| Best objective | Best trial's lockbox vs buy & hold | Wall s |\n|---|---|---|---|---|---|---|---|---|---|---|"
)
UNIVERSE_HEADER = (
    "| Universe, mode | Arm | Backtested | Median WF Sharpe | after startup | Best WF Sharpe | Both gates "
    "| Discoveries | Best objective | Best trial's lockbox vs equal-weight buy & hold | Median rank IC (ICIR) "
    "| Best trial's rank IC (ICIR) | Wall s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def print_table(results: dict[str, Any]) -> None:
    """The Markdown table of a results file, re-deriving the figures from its trials."""
    config = results["config"]
    print(f"{config['cycles']} cycles per arm and series, seed {config['seed']}, wall {results['wall_s']:.0f} s")
    for header, size in ((HEADER, 2), (UNIVERSE_HEADER, 3)):
        chosen = [result for result in results["results"] if len(result["series"].split(" ")) == size]
        if chosen:
            print(header)
        for result in chosen:
            pair = tuple(result["series"].split(" "))
            print(row(pair, result["arm"], figures(result["trials"], result["wall_s"])))


def salvage(work: Path, args: argparse.Namespace) -> None:
    """The results of a run stopped before its end, from each arm's home (`<arm>-<series parts>`): its finished
    cycles in order, marked `partial` with the cycles each arm finished."""
    from agent_pipeline.store.operations import OperationsStore, OperationType

    results = []
    for home in sorted(p for p in work.iterdir() if (p / "ktrdr.db").is_file() and "-" in p.name):
        arm, *parts = home.name.split("-")
        store = OperationsStore(f"sqlite:///{home / 'ktrdr.db'}")
        cycles = sorted(store.list(operation_type=OperationType.AGENT_RESEARCH, limit=1000), key=lambda o: o.created_at)
        finals = [op for op in cycles if op.status.is_finished]
        wall = (finals[-1].completed_at - finals[0].created_at).total_seconds() if finals else 0.0
        results.append({"series": " ".join(parts), "arm": arm, **summarise(finals, wall)})
        store.engine.dispose()
    config = {"cycles": args.cycles, "seed": args.seed, "series": sorted({r["series"] for r in results}), "jobs": 0}
    record = {"config": config, "wall_s": max((r["wall_s"] for r in results), default=0.0), "results": results}
    record |= {"partial": any(r["cycles"] < args.cycles for r in results), "salvaged_from": str(work)}
    write(args.results, record, cycles=args.cycles, cycles_per="arm and series (partial: see each arm's cycles)")
    print_table(json.loads(args.results.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=24, help="cycles per arm and series (default 24)")
    parser.add_argument("--seed", type=int, default=7, help="KTRDR_SEED of every arm (default 7)")
    parser.add_argument("--series", nargs="*", help="SYMBOL:TIMEFRAME to run (default: every bundled + RWALK:1d)")
    parser.add_argument(
        "--universes", nargs="*", help="NAME:TIMEFRAME:MODE universes to run (default: SP500_20 1d, timing and rank)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="(series, arm) runs at once (default 1: 2 cores)")
    parser.add_argument("--table", type=Path, help="print the table of a results file and exit")
    parser.add_argument(
        "--salvage", type=Path, help="write the results of a stopped run from its work folder (its finished cycles)"
    )
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one run, in a child process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    add_options(parser, RESULTS)
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(args.table.read_text()))
        return
    if args.salvage:
        salvage(args.salvage, args)
        return
    if args.arm:
        symbol, timeframe, *mode = args.series[0].split(":")
        summary = run_arm(args.arm, symbol, timeframe, args.cycles, *mode)
        args.out.write_text(json.dumps(summary, default=str))
        return

    from agent_pipeline.engine.data import import_csv, list_datasets

    reset_gate_env(keep=args.keep_gate_env)  # every arm's process inherits this environment
    work = Path(tempfile.mkdtemp(prefix="ktrdr-bench-research-"))
    data_dir = work / "data"
    import_csv(random_walk(work / "rwalk.csv"), symbol=CONTROL[0], timeframe=CONTROL[1], data_dir=data_dir)
    everything = args.series is None and args.universes is None  # the default: every series and universe
    pairs: list[tuple[str, ...]] = (
        [(d.symbol, d.timeframe) for d in list_datasets(data_dir)]
        if everything
        else [tuple(s.split(":")) for s in args.series or []]
    )
    pairs += [tuple(u.split(":")) for u in (DEFAULT_UNIVERSES if everything else args.universes or [])]
    print(f"research bench: {args.cycles} cycles per arm, seed {args.seed}, {len(pairs)} series; work in {work}")
    jobs = [(arm, pair) for pair in pairs for arm in ARMS]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: spawn(*job, args, work, data_dir), jobs))
    config = {"cycles": args.cycles, "seed": args.seed, "series": [" ".join(p) for p in pairs], "jobs": args.jobs}
    total = round(time.perf_counter() - started, 1)
    record = {"config": config, "wall_s": total, "results": results}
    write(args.results, record, cycles=args.cycles, cycles_per="arm and series", seed=args.seed, jobs=args.jobs)
    print_table(json.loads(args.results.read_text()))
    print(f"details in {args.results}")


if __name__ == "__main__":
    main()
