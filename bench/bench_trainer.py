"""Trainer overhead: our `train` against a bare PyTorch loop on the same data, model, epochs and batches.

Run: .venv/bin/python bench/bench_trainer.py [--device cpu|cuda] [--epochs 10]
Prints e.g. `trainer: ours 2.1 s, bare loop 2.0 s, ratio 1.05 (goal <= 1.10)` (best of 3 each, interleaved).
Ours also evaluates validation every epoch, scores the test set and writes the model file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py
from torch import nn

from agent_pipeline.engine.dataset import Dataset
from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.engine.trainer import build_model, class_weights, pick_device, spec_from, train

ROWS, FEATURES = 20_000, 30  # synthetic training set size
GOAL = 1.10  # ours / bare loop


def make_dataset(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    n = int(ROWS / 0.7)
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    score = x[:, :3].sum(axis=1) + rng.normal(size=n)
    y = np.where(score < -1.5, 0, np.where(score > 1.5, 2, 1)).astype(np.int64)
    a, b = ROWS, ROWS + (n - ROWS) // 2
    bars = pd.DataFrame({"open": 1.0, "close": 1.0}, index=pd.RangeIndex(n - b))
    names = [f"f{i}" for i in range(FEATURES)]
    return Dataset(names, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], bars)


def make_strategy(epochs: int):
    return parse_strategy(
        {
            "name": "bench",
            "symbol": "EURUSD",
            "timeframe": "1h",
            "indicators": [{"type": "rsi"}],
            "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 30, 50]}}},
            "model": {"hidden_layers": [64, 32], "dropout": 0.2},
            "training": {"epochs": epochs, "batch_size": 64, "early_stopping_patience": 0},
        }
    )


def bare_loop(strategy, dataset: Dataset, device: str) -> None:
    """The plainest correct loop: same model, optimiser, weighted loss, shuffled index batches."""
    torch.manual_seed(7)
    model = build_model(spec_from(strategy, dataset)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=strategy.training.learning_rate)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights(dataset.y_train), device=device))
    x = torch.as_tensor(dataset.x_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    batch = strategy.training.batch_size
    for _ in range(strategy.training.epochs):
        model.train()
        order = torch.randperm(len(x), device=device)
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    add_options(parser, RESULTS_DIR / "trainer.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    device = pick_device(args.device)
    dataset, strategy = make_dataset(), make_strategy(args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.pt"
        bare_loop(strategy, dataset, device)  # warm-up (allocator, kernels)
        # Interleaved, best of --runs each: a shared machine's load then hits both sides alike.
        ours, bare = float("inf"), float("inf")
        for _ in range(args.runs):
            bare = min(bare, timed(lambda: bare_loop(strategy, dataset, device)))
            ours = min(ours, timed(lambda: train(strategy, dataset, model_path=model_path, device=device)))
    ratio = ours / bare
    print(f"trainer ({device}, {ROWS}x{FEATURES}, {args.epochs} epochs, batch 64):")
    print(f"trainer: ours {ours:.2f} s, bare loop {bare:.2f} s, ratio {ratio:.2f} (goal <= {GOAL:.2f})")
    record = {"device": device, "rows": ROWS, "features": FEATURES, "epochs": args.epochs, "runs": args.runs}
    record |= {"ours_s": ours, "bare_loop_s": bare, "ratio": ratio, "goal_ratio": GOAL}
    write(args.results, record, cycles=None, cycles_note="no research cycle: one training on a synthetic set")


if __name__ == "__main__":
    main()
