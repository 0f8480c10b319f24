"""What walk-forward costs: K fold models + a final model against the single train/test split it replaced.

Run: .venv/bin/python bench/bench_walkforward.py [--epochs 30] [--folds 4]
Same strategy (the bundled example on EURUSD 1h), same epochs, same process; best of 3 each, interleaved.
Measured here (2 cores, 30 epochs): `walk-forward (4 folds + final): 2.47 s, single split: 0.78 s, ratio 3.17`.
The ratio is below K + 1 because the fold models train on expanding prefixes (on average about half the data).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from agent_pipeline.engine import research

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "eurusd_rsi_atr.yaml"


def strategy_file(folder: Path, epochs: int) -> Path:
    """The example with a fixed number of epochs and early stopping off, so both arms do the same epochs."""
    text = EXAMPLE.read_text().replace("epochs: 30", f"epochs: {epochs}")
    text = text.replace("early_stopping_patience: 8", "early_stopping_patience: 0")
    path = folder / "strategy.yaml"
    path.write_text(text)
    return path


def timed(run) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)  # comparable figures on a busy 2-core machine
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=args.folds)
    walk, single = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = strategy_file(folder, args.epochs)
        for round_ in range(3):
            walk.append(
                timed(
                    lambda r=round_: research.train_walk_forward(
                        path, model_dir=folder / f"wf{r}", evaluation=evaluation
                    )
                )
            )
            single.append(timed(lambda r=round_: research.train_strategy(path, model_dir=folder / f"one{r}")))
    best_walk, best_single = min(walk), min(single)
    print(
        f"walk-forward ({args.folds} folds + final, {args.epochs} epochs each): {best_walk:.2f} s, "
        f"single split: {best_single:.2f} s, ratio {best_walk / best_single:.2f}"
    )


if __name__ == "__main__":
    main()
