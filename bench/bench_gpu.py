"""The batched walk-forward trainer on a GPU (issue 15): wall time, the GPU's share of it, device memory.

Run: .venv/bin/python bench/bench_gpu.py [--epochs 30] [--folds 4]
Where CUDA is present, trains the bundled example's walk-forward plan (K folds + final model together) on the GPU,
once to warm up and once measured. The GPU's share is the time its kernels kept it busy: a CUDA event pair around
each epoch's work cannot see idle gaps, so the share is the profiler's summed device kernel time over the wall time.
Without CUDA it says so, writes nothing and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

from agent_pipeline.engine import research

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "eurusd_rsi_atr.yaml"
LOCKBOX_FRACTION = 0.2  # the product's default


def strategy_file(folder: Path, epochs: int) -> Path:
    text = EXAMPLE.read_text().replace("epochs: 30", f"epochs: {epochs}")
    path = folder / "strategy.yaml"
    path.write_text(text.replace("early_stopping_patience: 8", "early_stopping_patience: 0"))
    return path


def kernel_seconds(profile: torch.profiler.profile) -> float:
    """Summed device time of the kernels the profiler saw (self time: no double counting of nested ops)."""
    total_us = 0.0
    for event in profile.key_averages():
        total_us += getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0))
    return total_us / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=4)
    add_options(parser, RESULTS_DIR / "gpu.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    if not torch.cuda.is_available():
        print("gpu: no CUDA device here; nothing to measure")
        sys.exit(0)
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=args.folds)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = strategy_file(folder, args.epochs)
        research.train_walk_forward(path, model_dir=folder / "warm", evaluation=evaluation, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.profiler.profile(activities=activities) as profile:
            started = time.perf_counter()
            start.record()
            research.train_walk_forward(path, model_dir=folder / "run", evaluation=evaluation, device="cuda")
            end.record()
            torch.cuda.synchronize()
            wall = time.perf_counter() - started
        # Unprofiled, for a wall time without the profiler's own overhead.
        started = time.perf_counter()
        research.train_walk_forward(path, model_dir=folder / "plain", evaluation=evaluation, device="cuda")
        torch.cuda.synchronize()
        plain = time.perf_counter() - started
    busy = kernel_seconds(profile)
    print(
        f"gpu ({torch.cuda.get_device_name()}, {args.folds} folds + final together, {args.epochs} epochs): "
        f"wall {plain:.2f} s (profiled {wall:.2f} s, CUDA events {start.elapsed_time(end) / 1000:.2f} s), "
        f"GPU busy {busy:.2f} s = {busy / wall:.0%} of the profiled wall, "
        f"peak device memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB"
    )
    record = {"device": torch.cuda.get_device_name(), "epochs": args.epochs, "wall_s": plain, "profiled_wall_s": wall}
    peak_mib = torch.cuda.max_memory_allocated() / 2**20
    record |= {"gpu_busy_s": busy, "gpu_busy_share": busy / wall, "peak_device_mib": peak_mib}
    note = "no research cycle: trains the example strategy's walk-forward models only"
    write(args.results, record, cycles=None, cycles_note=note, folds=args.folds, lockbox_fraction=LOCKBOX_FRACTION)


if __name__ == "__main__":
    main()
