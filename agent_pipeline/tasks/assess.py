"""Assess phase: the assessor judges the result; the next design reads it from the cycle's row."""

from __future__ import annotations

from typing import Any

from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.gates import GATES
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext, Phase
from agent_pipeline.store.operations import OperationsStore, OperationType, get_store
from agent_pipeline.tasks.base import (
    PhaseTask,
    absolute,
    child_operation,
    llm_settings,
    run_child,
    strategy_file,
)


@app.task(
    bind=True,
    base=PhaseTask,
    name="ktrdr.cycle.assess",
    phase=Phase.ASSESSING,
    failure_prefix="Assessment failed",
)
def assess(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    child = child_operation(
        store,
        context.cycle_id,
        key="assessment_op_id",
        operation_type=OperationType.AGENT_ASSESSMENT,
        metadata={},
    )
    run_child(store, child, lambda: _assess(store, context), prefix="Assessment failed")
    return ctx


def _assess(store: OperationsStore, context: CycleContext) -> dict[str, Any]:
    from agent_pipeline.llm.assessor import save_assessment  # lazy: start-up cost (pandas)
    from agent_pipeline.llm.assessors import get_assessor  # lazy: start-up cost (pandas)

    meta = store.get(context.cycle_id).record
    strategy_path = strategy_file(meta)
    assessor = get_assessor(llm_settings(context), context.designer)
    outcome = assessor.assess(
        strategy=load_strategy(strategy_path),
        training_result=meta.training_result or {},
        backtest_result=meta.backtest_result or {},
        gates={key: meta.get(key) for key, _ in GATES},
    )
    path = strategy_path.with_name(f"{strategy_path.stem}.assessment.json")
    save_assessment(outcome, path)
    assessment = outcome.to_dict()
    usage = assessment.get("usage") or {}
    cost = float(meta.cost_usd or 0.0) + float(usage.get("cost_usd") or 0.0)
    store.merge_metadata(
        context.cycle_id,
        {
            "assessment": {
                k: assessment[k] for k in ("verdict", "strengths", "weaknesses", "suggestions") if k in assessment
            },
            "assessment_path": absolute(path),
            "cost_usd": round(cost, 6),
        },
    )
    return {**assessment, "path": absolute(path)}
