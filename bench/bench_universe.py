"""What a universe costs (issue 24): one walk-forward cycle's training and backtest on 20 symbols x 8,000 bars, pooled,
against the same on one series of 8,000 bars.

Run: .venv/bin/python bench/bench_universe.py [--symbols 20] [--bars 8000] [--epochs 10] [--rounds 2]
The series are a planted universe (`engine.synth_universe`, reversal 1.0); the one series is its first symbol, so
both arms read the same kind of bars. Same strategy document (short RSI and rate of change, two classes), same
epochs with early stopping off, same process, one torch thread, arms interleaved, best of --rounds each.
Prints the time of each arm, the ratio (goal: universe <= 10 x one series, for 20 x the rows), and each arm's peak
memory, measured in a fresh child process per arm (peak RSS while planning, training and backtesting, above the
RSS once the data are written and the libraries imported).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

from agent_pipeline.engine import research
from agent_pipeline.engine.synth_universe import UniverseRecipe, synth_universe

GOAL = 10.0  # universe cycle / one-series cycle (issue 24)
LOCKBOX_FRACTION = 0.2
NAME = "BENCHU"


def document(where: dict[str, str], epochs: int) -> dict[str, Any]:
    """The strategy both arms run; `where` is `{"symbol": ...}` or `{"universe": ...}`."""
    return {
        "name": "bench_universe",
        **where,
        "timeframe": "1d",
        "indicators": [{"type": "rsi", "period": 2}, {"type": "roc", "period": 2}],
        "fuzzy_sets": {
            "rsi_2": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 50]},
                "high": {"type": "trapezoidal", "parameters": [50, 70, 100, 100]},
            },
            "roc_2": {
                "up": {"type": "gaussian", "parameters": [1.5, 1.5]},
                "down": {"type": "gaussian", "parameters": [-1.5, 1.5]},
            },
        },
        "model": {"hidden_layers": [32]},
        "labels": {"zigzag_threshold": 0.002, "lookahead": 2, "hold": False},
        "training": {"epochs": epochs, "batch_size": 256, "learning_rate": 0.005, "early_stopping_patience": 0},
    }


def prepare(folder: Path, symbols: int, bars: int, epochs: int) -> dict[str, Path]:
    """The planted universe in `folder/data`, and each arm's strategy file."""
    recipe = UniverseRecipe("reversal", 1.0, 101, symbols, bars=bars, lockbox_fraction=LOCKBOX_FRACTION)
    universe = synth_universe(NAME, recipe, data_dir=folder / "data", replace=True)
    paths = {}
    for arm, where in (("series", {"symbol": universe.info.symbols[0]}), ("universe", {"universe": NAME})):
        paths[arm] = folder / f"{arm}.yaml"
        paths[arm].write_text(yaml.safe_dump(document(where, epochs), sort_keys=False))
    return paths


def cycle(path: Path, folder: Path, data_dir: Path, tag: str) -> None:
    """The walk-forward training and backtest of one cycle (the lockbox and the gates cost next to nothing)."""
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=4)
    models = folder / f"models_{tag}"
    research.train_walk_forward(path, model_dir=models, evaluation=evaluation, data_dir=data_dir)
    research.backtest_walk_forward(
        path,
        model_dir=models / "bench_universe",
        evaluation=evaluation,
        out_dir=folder / f"bt_{tag}",
        data_dir=data_dir,
    )


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's peak RSS since the last reset (VmHWM, KiB in /proc/self/status)."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def memory_arm(arm: str, options: argparse.Namespace) -> None:
    """Child process: run one arm's cycle and print the peak RSS it added, as JSON."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = prepare(folder, options.symbols, options.bars, options.epochs)
        gc.collect()
        # The bars on disk, imports loaded: the cycle's plan and training on top. Writing 5 to clear_refs resets the
        # kernel's peak (VmHWM) to the current RSS, so generating the universe's bars does not count (proc(5)).
        Path("/proc/self/clear_refs").write_text("5")
        before = current_rss_mib()
        cycle(paths[arm], folder, folder / "data", arm)
        print(json.dumps({"peak_mib": max(peak_rss_mib() - before, 0.0)}))


def peak_memory(arm: str, options: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--memory-arm", arm, "--symbols", str(options.symbols)]
    command += ["--bars", str(options.bars), "--epochs", str(options.epochs)]
    return float(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["peak_mib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-arm", choices=("series", "universe"), help=argparse.SUPPRESS)
    add_options(parser, RESULTS_DIR / "universe.json")
    options = parser.parse_args()
    if options.memory_arm:
        memory_arm(options.memory_arm, options)
        return
    reset_gate_env(keep=options.keep_gate_env)
    torch.set_num_threads(1)  # comparable figures on a busy 2-core machine
    times: dict[str, list[float]] = {"series": [], "universe": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = prepare(folder, options.symbols, options.bars, options.epochs)
        for r in range(options.rounds):
            for arm in ("series", "universe"):
                started = time.perf_counter()
                cycle(paths[arm], folder, folder / "data", f"{arm}{r}")
                times[arm].append(time.perf_counter() - started)
    best = {arm: min(values) for arm, values in times.items()}
    ratio = best["universe"] / best["series"]
    print(
        f"one cycle's walk-forward training and backtest ({options.epochs} epochs, 4 folds + final): "
        f"one series of {options.bars} bars {best['series']:.2f} s, a universe of {options.symbols} x "
        f"{options.bars} bars {best['universe']:.2f} s, ratio {ratio:.2f} (goal <= {GOAL:g})"
    )
    memory = {arm: peak_memory(arm, options) for arm in ("series", "universe")}
    print(
        f"peak memory added by one cycle: one series {memory['series']:.1f} MiB, universe {memory['universe']:.1f} MiB "
        "(peak RSS above the RSS before, a fresh process each)"
    )
    record = {"symbols": options.symbols, "bars": options.bars, "epochs": options.epochs, "rounds": options.rounds}
    record |= {"times_s": times, "best_s": best, "universe_over_series": ratio, "goal": GOAL}
    record |= {"peak_memory_mib": memory}
    note = "no research cycle: one cycle's walk-forward training and backtest, in process"
    write(options.results, record, cycles=None, cycles_note=note, folds=4, lockbox_fraction=LOCKBOX_FRACTION)


if __name__ == "__main__":
    main()
