"""Backtest phase: the trained model trades the held-out test period."""

from __future__ import annotations

from typing import Any

from agent_pipeline.engine.artifacts import fetch, parent_of, publish_folder, work_folder
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.errors import PhaseError
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext, Phase
from agent_pipeline.store.operations import Operation, OperationsStore, OperationType, get_store
from agent_pipeline.tasks.base import PhaseTask, child_operation, run_child, strategy_file

# Metrics copied from the backtest summary into the cycle's `backtest_result`.
BACKTEST_RESULT_KEYS = (
    "total_return", "annualised_return", "sharpe_ratio", "sortino_ratio", "max_drawdown", "win_rate",
    "num_trades", "profit_factor", "buy_and_hold_return", "excess_return", "exposure", "start", "end",
    "psr", "deflated_sharpe", "trials", "sharpe_variance", "expected_max_sharpe", "skewness", "kurtosis", "n_bars",
    "folds", "portfolio_mode", "rank_ic", "icir", "ic_days",
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
    meta = store.get(context.cycle_id).record
    child = child_operation(
        store,
        context.cycle_id,
        key="backtest_op_id",
        operation_type=OperationType.BACKTESTING,
        metadata={"strategy_name": meta.strategy_name, "model_path": meta.model_path},
    )
    run_child(store, child, lambda: _backtest(store, context, child.operation_id), prefix="Backtest failed")
    return ctx


def _backtest(store: OperationsStore, context: CycleContext, backtest_op_id: str) -> dict[str, Any]:
    from agent_pipeline.engine.research import (  # lazy: start-up cost (pandas, scipy, torch)
        Evaluation,
        backtest_walk_forward,
    )

    cycle = store.get(context.cycle_id)
    meta = cycle.record
    if meta.model_path is None or meta.evaluation is None:
        raise PhaseError("Backtest failed: the cycle has no trained model or evaluation settings recorded")
    out_dir = work_folder("backtests", backtest_op_id)
    trials = earlier_trials(store, cycle)
    summary = backtest_walk_forward(
        strategy_file(meta),
        model_dir=fetch(parent_of(meta.model_path)),  # the training's folder: every fold's model
        evaluation=Evaluation(**meta.evaluation),
        out_dir=out_dir,
        trials=trials,
        data_dir=synced_data_dir(),
    )
    summary["trial_sharpes"] = list(trials.sharpes)  # the DSR's variance, so that a replay deflates alike (issue 25)
    url = publish_folder(out_dir, "backtests", backtest_op_id)
    summary["artifacts_dir"] = url
    brief = {k: summary[k] for k in BACKTEST_RESULT_KEYS if k in summary}
    store.merge_metadata(context.cycle_id, {"backtest_result": brief, "backtest_dir": url})
    return summary


def earlier_trials(store: OperationsStore, cycle: Operation) -> Any:
    """Every other strategy designed on the cycle's series, whatever became of it, with the OOS Sharpe
    ratios of those that reached a backtest: the DSR's N and V[SR]."""
    from agent_pipeline.engine.research import Trials  # lazy: start-up cost (pandas, scipy, torch)

    others = [
        op
        for op in store.series_cycles(symbol=cycle.metadata["symbol"], timeframe=cycle.metadata["timeframe"])
        if op.operation_id != cycle.operation_id
    ]
    sharpes = [(op.record.backtest_result or {}).get("sharpe_ratio") for op in others]
    return Trials(count=len(others), sharpes=tuple(float(s) for s in sharpes if isinstance(s, int | float)))
