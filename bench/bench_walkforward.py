"""What walk-forward costs: K fold models + a final model, trained together and one by one, against one single split.

Run: .venv/bin/python bench/bench_walkforward.py [--epochs 30] [--folds 4] [--rounds 3]
Same strategy (the bundled example on EURUSD 1h), same epochs (early stopping off), same process, one torch
thread; best of --rounds each, interleaved, so a busy shared machine's load hits every arm alike.
Prints the times and two ratios against the single split (goal: batched <= 1.5), then each arm's peak memory,
measured in a fresh child process per arm (peak RSS while training, above the RSS before it).
Measured here (2 cores, 30 epochs), before issue 15: `walk-forward 3.81 s, single split 1.29 s, ratio 2.95`.
The one-by-one ratio is below K + 1 because the fold models train on expanding prefixes (on average about half).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

from agent_pipeline.engine import research

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "eurusd_rsi_atr.yaml"
GOAL = 1.5  # walk-forward trained together / single split (issue 15)
LOCKBOX_FRACTION = 0.2  # the product's default; the folds split what is left


def strategy_file(folder: Path, epochs: int) -> Path:
    """The example with a fixed number of epochs and early stopping off, so every arm does the same epochs."""
    text = EXAMPLE.read_text().replace("epochs: 30", f"epochs: {epochs}")
    text = text.replace("early_stopping_patience: 8", "early_stopping_patience: 0")
    path = folder / "strategy.yaml"
    path.write_text(text)
    return path


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def rss_mib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_memory(arm: str, epochs: int, folds: int) -> float:
    """Peak RSS (MiB) one arm adds while training, in a fresh child process."""
    command = [sys.executable, __file__, "--memory-arm", arm, "--epochs", str(epochs), "--folds", str(folds)]
    return float(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)["peak_mib"])


def memory_arm(arm: str, epochs: int, folds: int) -> None:
    """Child process: train one arm and print the peak RSS it added, as JSON."""
    torch.set_num_threads(1)
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=folds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = strategy_file(folder, epochs)
        research.prepare(path)  # data, features and imports loaded before the baseline is read
        research._walk_forward(path, None, evaluation)
        before = current_rss_mib()
        research.train_walk_forward(path, model_dir=folder / "m", evaluation=evaluation, batched=arm == "batched")
        print(json.dumps({"peak_mib": max(rss_mib() - before, 0.0)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-arm", choices=("batched", "sequential"), help=argparse.SUPPRESS)
    add_options(parser, RESULTS_DIR / "walkforward.json")
    args = parser.parse_args()
    if args.memory_arm:
        memory_arm(args.memory_arm, args.epochs, args.folds)
        return
    reset_gate_env(keep=args.keep_gate_env)
    torch.set_num_threads(1)  # comparable figures on a busy 2-core machine
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=args.folds)
    times: dict[str, list[float]] = {"batched": [], "sequential": [], "single": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = strategy_file(folder, args.epochs)
        for r in range(args.rounds):
            for batched in (True, False):
                arm = "batched" if batched else "sequential"
                model_dir = folder / f"{arm}{r}"
                times[arm].append(
                    timed(
                        lambda d=model_dir, b=batched: research.train_walk_forward(
                            path, model_dir=d, evaluation=evaluation, batched=b
                        )
                    )
                )
            times["single"].append(timed(lambda r=r: research.train_strategy(path, model_dir=folder / f"one{r}")))
    best = {arm: min(values) for arm, values in times.items()}
    print(
        f"walk-forward ({args.folds} folds + final, {args.epochs} epochs each): together {best['batched']:.2f} s, "
        f"one by one {best['sequential']:.2f} s, single split {best['single']:.2f} s"
    )
    print(
        f"walk-forward: together/single {best['batched'] / best['single']:.2f} (goal <= {GOAL}), "
        f"one-by-one/single {best['sequential'] / best['single']:.2f}, "
        f"together/one-by-one {best['batched'] / best['sequential']:.2f}"
    )
    memory = {arm: peak_memory(arm, args.epochs, args.folds) for arm in ("batched", "sequential")}
    print(
        f"walk-forward peak memory while training: together {memory['batched']:.1f} MiB, "
        f"one by one {memory['sequential']:.1f} MiB (peak RSS added, a fresh process each)"
    )
    record = {"epochs": args.epochs, "rounds": args.rounds, "times_s": times, "best_s": best}
    record |= {
        "together_over_single": best["batched"] / best["single"],
        "one_by_one_over_single": best["sequential"] / best["single"],
        "together_over_one_by_one": best["batched"] / best["sequential"],
        "goal_together_over_single": GOAL,
        "peak_memory_mib": memory,
    }
    note = "no research cycle: trains the example strategy's walk-forward models only"
    write(args.results, record, cycles=None, cycles_note=note, folds=args.folds, lockbox_fraction=LOCKBOX_FRACTION)


if __name__ == "__main__":
    main()
