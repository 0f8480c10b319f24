"""Gate tasks: they raise GateFailedError to break the chain; `--bypass-gates` records and goes on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agent_pipeline.engine.gates import check_backtest_gate, check_training_gate
from agent_pipeline.errors import GateFailedError
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.context import CycleContext
from agent_pipeline.pipeline.tasks.base import PhaseTask
from agent_pipeline.store.operations import get_store


def _apply_gate(
    ctx: dict[str, Any],
    *,
    name: str,
    label: str,
    metrics_key: str,
    check: Callable[[Mapping[str, Any]], tuple[bool, str]],
) -> dict[str, Any]:
    context = CycleContext.model_validate(ctx)
    store = get_store()
    metrics = store.get(context.cycle_id).metadata.get(metrics_key) or {}
    passed, reason = check(metrics)
    outcome = {"passed": passed, "reason": reason, "bypassed": bool(not passed and context.bypass_gates)}
    store.merge_metadata(context.cycle_id, {name: outcome})
    if not passed and not context.bypass_gates:
        raise GateFailedError(f"{label} gate failed: {reason}")
    return ctx


@app.task(bind=True, base=PhaseTask, name="ktrdr.cycle.training_gate", failure_prefix="Training gate failed")
def training_gate(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    return _apply_gate(
        ctx, name="training_gate", label="Training", metrics_key="training_result", check=check_training_gate
    )


@app.task(bind=True, base=PhaseTask, name="ktrdr.cycle.backtest_gate", failure_prefix="Backtest gate failed")
def backtest_gate(self: PhaseTask, ctx: dict[str, Any]) -> dict[str, Any]:
    return _apply_gate(
        ctx, name="backtest_gate", label="Backtest", metrics_key="backtest_result", check=check_backtest_gate
    )
