"""Gate tasks: they raise GateFailedError to break the chain; `--bypass-gates` records and goes on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from agent_pipeline.errors import GateFailedError
from agent_pipeline.gates import Verdict, backtest_verdict, training_verdict
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext
from agent_pipeline.store.operations import get_store
from agent_pipeline.tasks.base import PhaseTask


def _apply_gate(
    ctx: dict[str, Any], *, name: str, metrics_key: str, judge: Callable[[Mapping[str, Any]], Verdict]
) -> dict[str, Any]:
    """Judge the cycle's figures and record the verdict as data; a failure breaks the chain unless bypassed."""
    context = CycleContext.model_validate(ctx)
    store = get_store()
    verdict = judge(getattr(store.get(context.cycle_id).record, metrics_key) or {})
    verdict = dataclasses.replace(verdict, bypassed=not verdict.passed and context.bypass_gates)
    store.merge_metadata(context.cycle_id, {name: verdict.to_record()})
    if not verdict.passed and not context.bypass_gates:
        raise GateFailedError(verdict.error_message, verdict)
    return ctx


@app.task(bind=True, base=PhaseTask, name="ktrdr.cycle.training_gate", failure_prefix="Training gate failed")
def training_gate(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    return _apply_gate(ctx, name="training_gate", metrics_key="training_result", judge=training_verdict)


@app.task(bind=True, base=PhaseTask, name="ktrdr.cycle.backtest_gate", failure_prefix="Backtest gate failed")
def backtest_gate(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    return _apply_gate(ctx, name="backtest_gate", metrics_key="backtest_result", judge=backtest_verdict)
