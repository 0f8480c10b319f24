"""The training gate against chance (issue 23): does it stop no-skill models, and does it let planted edges through?

Run: make bench-skill-gate, or
     .venv/bin/python bench/bench_skill_gate.py [--walks 20] [--edge-seeds 101,102,103,104,105] [--keep-gate-env]

Every model is trained by the real engine (`research.train_walk_forward`: 4 expanding walk-forward folds and the
final model, the default 20% lockbox cut off first) and judged by the real gate (`gates.check_training_gate`) at its
default thresholds. Two groups:

- **Random walks** (`synth` kind `noise`, seeds 1..N): a two-class strategy (labels `hold: false`) on each, its
  indicator and look-ahead rotating through a small set. Nothing can be learned, so the gate should stop them
  all but about 5% (TRAINING_GATE_MAX_P = 0.05). Beside it, what the retired rule (balanced accuracy >= 40%)
  and the spec's three checks alone would have said of the same models.
- **Planted edges** (trend and reversal, strengths 1.5 and 2.0, the held-out seeds of the power table): a
  two-class strategy on the edge's own horizon (SMA(2) over 2 bars on a reversal, SMA(20) over 20 bars on a
  trend): the gate should let most through.

Writes bench/results/skill_gate.json (stamped: command, commit, date, settings) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_meta  # noqa: E402  (bench/ is not a package)

RESULTS = Path(__file__).resolve().parent / "results" / "skill_gate.json"
FOLDS, LOCKBOX = 4, 0.2
# (indicator, period, look-ahead) of the random-walk strategies, taken in turn.
WALK_DESIGNS = (("rsi", 14, 5), ("sma", 20, 10), ("roc", 10, 5), ("sma", 5, 2), ("ema", 50, 20))
# The edge's own horizon: (indicator period, look-ahead, zigzag k) per kind.
EDGE_DESIGNS = {"reversal": (2, 2, 0.05), "trend": (20, 20, 0.5)}
# The retired threshold, for the comparison only.
RETIRED_MIN_BALANCED_ACCURACY = 0.40


def strategy(symbol: str, bars: Any, indicator: str, period: int, lookahead: int, k: float) -> dict[str, Any]:
    """A two-class strategy document of one indicator (its fuzzy sets from the research period's values)."""
    from agent_pipeline.engine.features import PRIMARY
    from agent_pipeline.llm.space import fuzzy_sets, volatility

    values = PRIMARY[indicator](SimpleNamespace(period=period, smooth=3), bars).to_numpy(dtype=float)
    feature = f"{indicator}_{period}"
    return {
        "name": f"{symbol.lower()}_{feature}_l{lookahead}",
        "description": "skill gate bench",
        "hypothesis": "skill gate bench",
        "symbol": symbol,
        "timeframe": "1d",
        "indicators": [{"type": indicator, "period": period}],
        "fuzzy_sets": {feature: fuzzy_sets(values[np.isfinite(values)], 2, 0.3)},
        "model": {"type": "mlp", "hidden_layers": [32], "activation": "relu", "dropout": 0.1},
        "labels": {
            "zigzag_threshold": round(max(1e-5, k * volatility(bars) * math.sqrt(lookahead)), 6),
            "lookahead": lookahead,
            "hold": False,
        },
        "training": {"epochs": 30, "batch_size": 64, "early_stopping_patience": 6, "learning_rate": 0.003},
    }


def judge(folder: Path, data_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Train the strategy walk-forward and ask the training gate; the spec's and the retired rule's verdicts too."""
    from agent_pipeline.engine import research
    from agent_pipeline.gates import TrainingThresholds, check_training_gate

    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX, folds=FOLDS)
    training = research.train_walk_forward(path, model_dir=folder / "models", evaluation=evaluation, data_dir=data_dir)
    passed, reason = check_training_gate(training)
    spec_only = {k: training[k] for k in ("accuracy", "final_loss", "initial_loss")}
    spec_passed, _ = check_training_gate(spec_only, TrainingThresholds())
    return {
        "strategy": doc["name"],
        "n_classes": training["n_classes"],
        "accuracy": round(training["accuracy"], 4),
        "majority": round(training["baseline_accuracy"], 4),
        "balanced_accuracy": round(training["balanced_accuracy"], 4),
        "chance": round(training["chance"], 4),
        "skill_pvalue": round(training["skill_pvalue"], 4),
        "log_loss": round(training["log_loss"], 4),
        "prior_log_loss": round(training["prior_log_loss"], 4),
        "gate_passed": passed,
        "gate_reason": reason,
        "spec_checks_passed": spec_passed,
        "retired_rule_passed": spec_passed and training["balanced_accuracy"] >= RETIRED_MIN_BALANCED_ACCURACY,
    }


def random_walks(folder: Path, data_dir: Path, count: int) -> list[dict[str, Any]]:
    from agent_pipeline.engine.synth import write_synth
    from agent_pipeline.llm.space import research_bars

    rows = []
    for seed in range(1, count + 1):
        symbol = f"RW{seed:02d}"
        write_synth("noise", 0.0, seed, symbol=symbol, timeframe="1d", data_dir=data_dir)
        bars = research_bars(symbol, "1d", data_dir, LOCKBOX)
        indicator, period, lookahead = WALK_DESIGNS[(seed - 1) % len(WALK_DESIGNS)]
        row = {"seed": seed, **judge(folder, data_dir, strategy(symbol, bars, indicator, period, lookahead, 0.5))}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def planted(folder: Path, data_dir: Path, seeds: list[int], strengths: list[float]) -> list[dict[str, Any]]:
    from agent_pipeline.engine.synth import write_synth
    from agent_pipeline.llm.space import research_bars

    rows = []
    for kind, (period, lookahead, k) in EDGE_DESIGNS.items():
        for strength in strengths:
            for seed in seeds:
                symbol = f"E{kind[0].upper()}{round(strength * 10)}S{seed}"
                _, info = write_synth(kind, strength, seed, symbol=symbol, timeframe="1d", data_dir=data_dir)
                bars = research_bars(symbol, "1d", data_dir, LOCKBOX)
                doc = strategy(symbol, bars, "sma", period, lookahead, k)
                row = {"kind": kind, "strength": strength, "seed": seed,
                       "rule_sharpe": round(info.research_sharpe, 2), **judge(folder, data_dir, doc)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def count(rows: list[dict[str, Any]], key: str) -> int:
    return sum(1 for row in rows if row[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walks", type=int, default=20, help="random walks (seeds 1..N)")
    parser.add_argument("--edge-seeds", default="101,102,103,104,105", help="seeds of the planted edges")
    parser.add_argument("--strengths", default="1.5,2.0", help="strengths of the planted edges")
    results_meta.add_options(parser, RESULTS)
    args = parser.parse_args()
    results_meta.reset_gate_env(keep=args.keep_gate_env)
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder, data_dir = Path(tmp), Path(tmp) / "data"
        walks = random_walks(folder, data_dir, args.walks)
        seeds = [int(s) for s in args.edge_seeds.split(",") if s]
        edges = planted(folder, data_dir, seeds, [float(s) for s in args.strengths.split(",") if s])
    summary = {
        "random_walks": {
            "models": len(walks),
            "stopped_by_the_gate": len(walks) - count(walks, "gate_passed"),
            "passed_the_gate": count(walks, "gate_passed"),
            "would_pass_the_spec_checks_alone": count(walks, "spec_checks_passed"),
            "would_pass_the_retired_rule": count(walks, "retired_rule_passed"),
        },
        "planted_edges": {
            f"{kind} {strength}": f"{sum(r['gate_passed'] for r in group)}/{len(group)}"
            for kind in EDGE_DESIGNS
            for strength in sorted({r["strength"] for r in edges})
            if (group := [r for r in edges if r["kind"] == kind and r["strength"] == strength])
        },
    }
    print(json.dumps(summary, indent=2))
    results_meta.write(
        args.results,
        {
            "summary": summary,
            "seconds": round(time.perf_counter() - started),
            "random_walks": walks,
            "planted_edges": edges,
        },  # fmt: skip
        cycles=None,
        cycles_note="no research cycles: each row is one walk-forward training judged by the training gate",
        folds=FOLDS,
        lockbox_fraction=LOCKBOX,
        seeds={"random_walks": list(range(1, args.walks + 1)), "planted_edges": seeds},
    )


if __name__ == "__main__":
    main()
