"""Why the loop misses planted edges: one figure per suspect (issue 14).

Run: .venv/bin/python bench/probe_power.py [--seed 1] [--strength 1.5] [--only trend] [--min-holds 1,5,10,20]
                                           [--results bench/results/probe_<name>.json] [--keep-gate-env]

For a trend and a reversal series of the given strength, a handful of hand-made strategies go through the real
engine (walk-forward training of 4 folds and the final model, stitched out-of-sample backtest with the default
costs), each changing one suspect: the feature's horizon, the labels' horizon and HOLD class, the costs, and on the
trend the confidence threshold (a hysteresis). It prints the training gate's figures, the walk-forward Sharpe,
trades and win rate, and the planted rule's Sharpe (gross) on the research period. Rows go to stdout as JSON
lines; `--results` also writes them, stamped with their provenance (bench/results_meta.py), to one JSON file.
Gate variables in the caller's environment are dropped unless `--keep-gate-env`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import yaml

from agent_pipeline.engine import research
from agent_pipeline.engine.features import PRIMARY
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.gates import check_training_gate
from agent_pipeline.llm.space import fuzzy_sets, research_bars, volatility

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_meta import reset_gate_env, stamp  # noqa: E402 - the bench folder, added above

# The probe's evaluation: the engine's defaults, fixed here so a row does not move with the caller's settings.
FOLDS, LOCKBOX_FRACTION = 4, 0.2


def document(
    symbol: str,
    bars: Any,
    indicator: dict[str, Any],
    k: float,
    lookahead: int,
    hold: bool,
    costs: bool = True,
    confidence: float = 0.34,
    min_hold: int = 1,
) -> dict[str, Any]:
    values = PRIMARY[indicator["type"]](SimpleNamespace(smooth=3, **indicator), bars).to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    feature = f"{indicator['type']}_{indicator['period']}"
    return {
        "name": f"probe_{feature}_k{int(k * 100)}_l{lookahead}_{'hold' if hold else 'nohold'}"
        + ("" if costs else "_free")
        + (f"_c{round(confidence * 100)}" if confidence != 0.34 else "")
        + (f"_h{min_hold}" if min_hold > 1 else ""),
        "description": "probe",
        "hypothesis": "probe",
        "symbol": symbol,
        "timeframe": "1d",
        "indicators": [indicator],
        "fuzzy_sets": {feature: fuzzy_sets(values, 2, 0.3)},
        "model": {"type": "mlp", "hidden_layers": [32], "activation": "relu", "dropout": 0.1},
        "labels": {
            "zigzag_threshold": round(max(1e-5, k * volatility(bars) * math.sqrt(lookahead)), 6),
            "lookahead": lookahead,
            "hold": hold,
        },
        "training": {"epochs": 30, "batch_size": 64, "early_stopping_patience": 6, "learning_rate": 0.003},
        "backtest": {
            "confidence_threshold": confidence,
            "min_hold": min_hold,
            **({} if costs else {"commission": 0.0, "slippage": 0.0}),
        },
    }


def probe(folder: Path, data_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=FOLDS)
    model_dir = folder / "models" / doc["name"]
    training = research.train_walk_forward(path, model_dir=model_dir, evaluation=evaluation, data_dir=data_dir)
    backtest = research.backtest_walk_forward(
        path,
        model_dir=Path(training["model_path"]).parent,
        evaluation=evaluation,
        out_dir=folder / "bt" / doc["name"],
        data_dir=data_dir,
    )
    passed, reason = check_training_gate(training)
    return {
        "strategy": doc["name"],
        "accuracy": round(training["accuracy"], 3),
        "balanced": round(training["balanced_accuracy"], 3),
        "final_loss": round(training["final_loss"], 3),
        "training_gate": reason,
        "wf_sharpe": round(backtest["sharpe_ratio"], 2),
        "trades": backtest["num_trades"],
        "win_rate": round(backtest["win_rate"], 3),
        "dsr_1_trial": round(backtest.get("deflated_sharpe") or 0.0, 3),
    }


def probe_holds(folder: Path, data_dir: Path, doc: dict[str, Any], holds: str) -> list[dict[str, Any]]:
    """One walk-forward training of `doc`, backtested at confidence 0.5 and 0.55 and each minimum hold."""
    evaluation = research.Evaluation(lockbox_fraction=LOCKBOX_FRACTION, folds=FOLDS)
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    training = research.train_walk_forward(
        path, model_dir=folder / "models" / doc["name"], evaluation=evaluation, data_dir=data_dir
    )
    rows = []
    for confidence in (0.5, 0.55):
        for hold in map(int, holds.split(",")):
            variant = {**doc, "backtest": {"confidence_threshold": confidence, "min_hold": hold}}
            path.write_text(yaml.safe_dump(variant))
            out = folder / "bt" / f"{doc['name']}_c{round(confidence * 100)}_h{hold}"
            backtest = research.backtest_walk_forward(
                path,
                model_dir=Path(training["model_path"]).parent,
                evaluation=evaluation,
                out_dir=out,
                data_dir=data_dir,
            )
            rows.append({
                "strategy": doc["name"], "confidence": confidence, "min_hold": hold,
                "balanced": round(training["balanced_accuracy"], 3),
                "wf_sharpe": round(backtest["sharpe_ratio"], 2), "trades": backtest["num_trades"],
                "win_rate": round(backtest["win_rate"], 3),
            })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strength", type=float, default=1.5)
    parser.add_argument("--only", default="")
    parser.add_argument("--min-holds", default="", help="With --only trend: only the hysteresis rows, at these holds.")
    parser.add_argument("--results", type=Path, help="Also write the rows, stamped, to this JSON file.")
    parser.add_argument("--keep-gate-env", action="store_true", help="Keep TRAINING_GATE_*/BACKTEST_GATE_* set.")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, data_dir = Path(tmp), Path(tmp) / "data"
        for kind, fast, slow in (("reversal", 2, 10), ("trend", 20, 5)):
            if args.only and kind != args.only:
                continue
            symbol = f"P{kind[:3].upper()}"
            _, info = write_synth(kind, args.strength, args.seed, symbol=symbol, timeframe="1d", data_dir=data_dir)
            bars = research_bars(symbol, "1d", data_dir, 0.2)
            horizon = 1 if kind == "reversal" else 20
            k = 0.05 if kind == "reversal" else 0.5
            docs = [
                # the edge's own horizon, two classes
                document(symbol, bars, {"type": "sma", "period": fast}, k, max(2, horizon), False),
                # the same with HOLD (three classes)
                document(symbol, bars, {"type": "sma", "period": fast}, 1.0, max(2, horizon), True),
                # the old grammar's nearest: a 5..40 oscillator, k >= 0.5, lookahead >= 5
                document(symbol, bars, {"type": "rsi", "period": 5 if kind == "reversal" else 20}, 0.8, 10, True),
                # the right feature, the wrong horizon
                document(symbol, bars, {"type": "sma", "period": slow}, 0.5, 20 if kind == "reversal" else 2, False),
                # no costs
                document(symbol, bars, {"type": "sma", "period": fast}, k, max(2, horizon), False, costs=False),
            ]
            if kind == "trend" and args.min_holds:  # a minimum holding period against whipsaws
                for indicator, period in (("sma", 20), ("roc", 10)):
                    for lookahead in (10, 20):
                        doc = document(symbol, bars, {"type": indicator, "period": period}, k, lookahead, False)
                        for row in probe_holds(folder, data_dir, doc, args.min_holds):
                            row = {"kind": kind, "rule_sharpe": round(info.research_sharpe, 2), **row}
                            print(json.dumps(row), flush=True)
                            results.append(row)
                continue
            if kind == "trend":  # the confidence threshold as a hysteresis: a bar under it keeps its position
                docs += [
                    document(symbol, bars, {"type": "sma", "period": period}, k, horizon, False, confidence=c)
                    for period in (20, 40)
                    for c in (0.5, 0.55, 0.6, 0.65)
                ]
            for doc in docs:
                row = {"kind": kind, "rule_sharpe": round(info.research_sharpe, 2), **probe(folder, data_dir, doc)}
                print(json.dumps(row), flush=True)
                results.append(row)
    if args.results:
        note = "a probe: hand-made strategies trained and backtested once each through the engine; no research cycle"
        record = stamp({"rows": results}, cycles=None, folds=FOLDS, lockbox_fraction=LOCKBOX_FRACTION,
                       cycles_note=note, seed=args.seed, strength=args.strength)  # fmt: skip
        args.results.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
