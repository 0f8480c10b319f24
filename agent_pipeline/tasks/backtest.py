"""Backtest phase: the trained model trades the held-out test period."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_pipeline.celery_app import app
from agent_pipeline.context import CycleContext, Phase
from agent_pipeline.operations import OperationsStore, OperationType, get_store
from agent_pipeline.tasks.base import PhaseTask, absolute, child_operation, run_child, settings

# Metrics copied from the backtest summary into the cycle's `backtest_result`.
BACKTEST_RESULT_KEYS = (
    "total_return", "annualised_return", "sharpe_ratio", "sortino_ratio", "max_drawdown", "win_rate",
    "num_trades", "profit_factor", "buy_and_hold_return", "excess_return", "exposure",
)  # fmt: skip


@app.task(
    bind=True,
    base=PhaseTask,
    name="ktrdr.cycle.backtest",
    phase=Phase.BACKTESTING,
    failure_prefix="Backtest failed",
)
def backtest(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    meta = store.get(context.cycle_id).metadata
    child = child_operation(
        store,
        context.cycle_id,
        key="backtest_op_id",
        operation_type=OperationType.BACKTESTING,
        metadata={"strategy_name": meta.get("strategy_name"), "model_path": meta.get("model_path")},
    )
    run_child(store, child, lambda: _backtest(store, context, child.operation_id), prefix="Backtest failed")
    return ctx


def _backtest(store: OperationsStore, context: CycleContext, backtest_op_id: str) -> dict[str, Any]:
    from agent_pipeline.engine.research import backtest_strategy

    config = settings()
    meta = store.get(context.cycle_id).metadata
    out_dir = Path(config.artifacts_dir or ".") / "backtests" / backtest_op_id
    result = backtest_strategy(
        Path(meta["strategy_path"]),
        model_path=Path(meta["model_path"]),
        data_dir=config.data_dir,
        out_dir=out_dir,
    )
    summary = dict(result.to_summary())
    summary["artifacts_dir"] = absolute(out_dir)
    brief = {k: summary[k] for k in BACKTEST_RESULT_KEYS if k in summary}
    store.merge_metadata(context.cycle_id, {"backtest_result": brief, "backtest_dir": absolute(out_dir)})
    return summary
