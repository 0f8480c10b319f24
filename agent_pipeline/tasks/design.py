"""Design phase: the designer (Claude or offline) writes a strategy, saved under the strategies folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent_pipeline.engine.artifacts import publish_strategy
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.gates import stopping_verdict
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext, Phase
from agent_pipeline.pipeline.user_strategy import use_user_strategy
from agent_pipeline.store.operations import FINISHED, OperationsStore, OperationStatus, OperationType, get_store
from agent_pipeline.tasks.base import PhaseTask, absolute, child_operation, llm_settings, run_child, settings

# How many past cycles the designer's memory reads.
MEMORY_CYCLES = 50


@app.task(
    bind=True,
    base=PhaseTask,
    name="ktrdr.cycle.design",
    phase=Phase.DESIGNING,
    failure_prefix="Design failed",
)
def design(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    child = child_operation(
        store, context.cycle_id, key="design_op_id", operation_type=OperationType.AGENT_DESIGN, metadata={}
    )
    run_child(store, child, lambda: _design(store, context), prefix="Design failed")
    return ctx


def _design(store: OperationsStore, context: CycleContext) -> dict[str, Any]:
    if context.strategy is not None:  # the user's own strategy skips the designer (issue 10)
        return use_user_strategy(store, context)
    from agent_pipeline.llm.designer import save_design  # lazy: start-up cost (pandas)
    from agent_pipeline.llm.designers import get_designer  # lazy: start-up cost (pandas)

    config = settings()
    catalogue, symbol = design_catalogue(context), context.universe or context.symbol
    designer = get_designer(llm_settings(context), context.designer)
    outcome = designer.design(
        memory=research_memory(store, exclude=context.cycle_id, symbol=symbol, timeframe=context.timeframe),
        catalogue=catalogue,
        symbol=symbol,
        timeframe=context.timeframe,
        portfolio=context.portfolio,
    )
    path = absolute(save_design(outcome, Path(config.strategies_dir or ".")))
    url = publish_strategy(path)
    usage = outcome.usage.to_dict() if outcome.usage else None
    cost = float(usage["cost_usd"]) if usage else 0.0
    store.merge_metadata(
        context.cycle_id,
        {
            "strategy_name": outcome.strategy.name,
            "strategy_path": path,
            "strategy_url": url,
            "designer": outcome.designer,
            "symbol": outcome.strategy.symbol,
            "timeframe": outcome.strategy.timeframe,
            "study_trial": outcome.study_trial,
            "design_usage": usage,
            "cost_usd": round(cost, 6),
        },
    )
    return {
        "strategy_name": outcome.strategy.name,
        "strategy_path": path,
        "designer": outcome.designer,
        "attempts": outcome.attempts,
        "notes": outcome.notes,
        "study_trial": outcome.study_trial,
        "usage": usage,
    }


def design_catalogue(context: CycleContext) -> list[Any]:
    """The series a designer may choose from: every stored series, or only the universe a universe cycle names.

    Universes are offered only when asked for (`--universe`): a universe cycle trains on every symbol's rows, about
    ten times a series' cost, so a designer left to choose never picks one by chance.
    """
    from agent_pipeline.engine.data import list_datasets  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.universe import describe, get_universe  # lazy: start-up cost (pandas)
    from agent_pipeline.llm.designer import DataSeries  # lazy: start-up cost (pandas)

    data_dir = synced_data_dir()
    if context.universe is None:
        return [
            DataSeries(symbol=d.symbol, timeframe=d.timeframe, start=d.start, end=d.end, bars=d.bars)
            for d in list_datasets(data_dir)
        ]
    info = describe(get_universe(context.universe, data_dir), data_dir)
    return [
        DataSeries(
            symbol=info.name, timeframe=info.timeframe, start=info.common_start or "", end=info.common_end or "",
            bars=info.common_bars,
            symbols=tuple(info.symbols), close_only=info.close_only,
        )
    ]  # fmt: skip


def research_memory(
    store: OperationsStore, *, exclude: str | None = None, symbol: str | None = None, timeframe: str | None = None
) -> Any:
    """The designer's memory: the recent finished cycles, with their strategies, results and assessments.

    With a series named (`symbol` and `timeframe`, as every scheduled or calibration cycle has), only that series'
    cycles: what was tried on one series never steers another, just as each series has its own optimiser study
    and trial count. Without one, the designer picks the series itself and reads the recent cycles of all.
    A cycle that completed only because `--bypass-gates` let a failed gate through is remembered as that gate's
    stop, never as a completed cycle.
    """
    from agent_pipeline.llm.memory import PastCycle, ResearchMemory  # lazy: start-up cost (pandas)

    if symbol and timeframe:
        recent = store.series_cycles(symbol=symbol, timeframe=timeframe)[::-1][: MEMORY_CYCLES + 1]
    else:
        recent = store.list(operation_type=OperationType.AGENT_RESEARCH, limit=MEMORY_CYCLES + 1)
    cycles = []
    for op in reversed(recent):  # oldest first: the memory's order
        if op.operation_id == exclude or op.status not in FINISHED:
            continue
        meta = op.record
        status, error = op.status.value, op.error_message
        stop = stopping_verdict(meta)
        if stop is not None and stop.bypassed and op.status == OperationStatus.COMPLETED:
            status, error = "bypassed", f"{stop.error_message} (bypassed with --bypass-gates)"
        cycles.append(
            PastCycle(
                operation_id=op.operation_id,
                created_at=op.created_at or datetime.now(UTC),
                status=status,
                strategy_name=meta.strategy_name,
                strategy=_read_strategy(meta.strategy_path),
                error_message=error,
                gate_failure=stop.code if stop else None,
                gate_detail=stop.detail if stop else None,
                training_result=meta.training_result,
                backtest_result=meta.backtest_result,
                assessment=meta.assessment,
            )
        )
    return ResearchMemory(cycles=tuple(cycles))


def _read_strategy(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return document if isinstance(document, dict) else None
