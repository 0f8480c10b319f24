"""Finished cycles built by hand in a store, for the tests of what reads them (history, metrics, report, tracking)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_pipeline.gates import Verdict
from agent_pipeline.store.operations import OperationsStore, OperationType

# A training's per-epoch history, as the trainer records it.
HISTORY = [
    {"epoch": e, "train_loss": 1.1 - e / 20, "val_loss": 1.0 - e / 40, "val_accuracy": 0.3 + e / 50} for e in (1, 2, 3)
]


def finished_cycle(store: OperationsStore, how: str, *, dsr: float | None = None, symbol: str = "EURUSD") -> str:
    """A cycle that went through design, training and backtest, then ended `how`."""
    cycle = store.create_cycle(max_active=1000)
    store.start(cycle.operation_id)
    backtest = {"sharpe_ratio": 1.2, "num_trades": 14, "total_return": 0.05, "buy_and_hold_return": 0.02}
    if dsr is not None:
        backtest["deflated_sharpe"] = dsr
    meta: dict[str, Any] = {
        "strategy_name": f"s_{how}",
        "symbol": symbol.lower(),
        "timeframe": "1h",
        "designer": "offline",
        "training_result": {"balanced_accuracy": 0.41},
        "backtest_result": backtest,
        "cost_usd": 0.012,
    }
    store.merge_metadata(cycle.operation_id, meta)
    if how == "passed":
        store.complete(cycle.operation_id, result_summary={"discovery": False, "lockbox": {"total_return": -0.03}})
    elif how == "training_gate":
        verdict = Verdict("training", False, "no_skill", "no_skill (balanced accuracy 50.4% vs chance 50.0%, p = 0.41)")
        store.merge_metadata(cycle.operation_id, {"training_gate": verdict.to_record()})
        store.fail(cycle.operation_id, error_message=verdict.error_message)
    elif how == "cancelled":
        store.cancel(cycle.operation_id)
    else:
        store.fail(cycle.operation_id, error_message="Cycle failed: WorkerLostError: boom")
    return cycle.operation_id


def cycle_with_artifacts(store: OperationsStore, folder: Path, *, folds: bool = True, backtest: bool = True) -> str:
    """A finished cycle whose training op has fold histories and whose backtest dir has equity.csv."""
    cycle = store.create_cycle(max_active=100)
    summary = {"history": HISTORY, "accuracy": 0.4}
    if folds:
        summary["folds"] = [
            {"fold": k, "history": HISTORY, "accuracy": 0.4, "balanced_accuracy": 0.38, "baseline_accuracy": 0.45}
            | {"train_end": f"2017-0{k + 2}-01", "test_start": f"2017-0{k + 2}-02", "test_end": f"2017-0{k + 3}-01"}
            for k in (1, 2)
        ]
    training = store.create(operation_type=OperationType.TRAINING, parent_operation_id=cycle.operation_id)
    store.start(training.operation_id)
    store.complete(training.operation_id, result_summary=summary)
    meta = {"training_op_id": training.operation_id, "strategy_name": "s", "symbol": "EURUSD", "timeframe": "1h"}
    if backtest:
        folder.mkdir(parents=True)
        rows = ["timestamp,equity,position,fold,buy_and_hold"]
        for day in range(60):
            position = [0, 1, -1][day // 20]
            rows.append(f"2020-01-{1 + day % 28:02d},{1 + day / 100},{position},{1 + day // 30},{1 + day / 200}")
        rows = [rows[0]] + [r.replace("2020-01-", f"2020-{2 + i // 28:02d}-") for i, r in enumerate(rows[1:])]
        (folder / "equity.csv").write_text("\n".join(rows) + "\n")
        meta["backtest_dir"] = str(folder)
    store.merge_metadata(cycle.operation_id, meta)
    store.start(cycle.operation_id)
    store.complete(cycle.operation_id, result_summary={"lockbox": {"total_return": 0.01}})
    return cycle.operation_id
