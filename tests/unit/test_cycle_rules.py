"""Cycle rules that need no broker: phase order, trigger options, cancel routing, settings of the stack."""

from __future__ import annotations

import pytest

from agent_pipeline.errors import ConfigurationError, InvalidOptionError
from agent_pipeline.pipeline.context import Phase
from agent_pipeline.store.operations import OperationStatus, OperationType
from agent_pipeline.tasks.base import _is_ahead


@pytest.mark.parametrize(
    ("phase", "current", "ahead"),
    [
        (Phase.DESIGNING, None, True),
        (Phase.TRAINING, "designing", True),
        (Phase.BACKTESTING, "training", True),
        (Phase.TRAINING, "backtesting", False),  # a late duplicate poll must not roll the phase back
        (Phase.TRAINING, "training", False),
        (Phase.DESIGNING, "assessing", False),
    ],
)
def test_phases_only_move_forward(phase: Phase, current: str | None, ahead: bool) -> None:
    assert _is_ahead(phase, current) is ahead


@pytest.mark.parametrize(
    ("designer", "message"),
    [("gpt", "unknown designer 'gpt'"), ("anthropic", "the anthropic designer needs ANTHROPIC_API_KEY")],
)
def test_a_designer_that_cannot_run_is_refused_before_any_row_exists(store, designer: str, message: str) -> None:
    from agent_pipeline.pipeline import cycle

    with pytest.raises(InvalidOptionError, match=message):
        cycle.trigger(cycle.CycleOptions(designer=designer), store=store)
    assert store.count() == 0


def test_cancelling_a_phase_cancels_its_whole_cycle(store) -> None:
    from agent_pipeline.pipeline import cycle

    parent = store.create_cycle(max_active=1)
    store.start(parent.operation_id)
    design = store.create(operation_type=OperationType.AGENT_DESIGN, parent_operation_id=parent.operation_id)
    store.start(design.operation_id)
    cycle.cancel(design.operation_id, store=store)
    assert store.get(parent.operation_id).status == OperationStatus.CANCELLED
    assert store.get(design.operation_id).status == OperationStatus.CANCELLED
    assert "agent_design" in (store.get(parent.operation_id).error_message or "")


@pytest.mark.parametrize(
    ("name", "value"),
    [("KTRDR_BROKER_URL", "amqp://guest@localhost//"), ("KTRDR_RESULT_BACKEND", "db+sqlite:///results.db")],
)
def test_the_stack_needs_redis_for_broker_and_results(monkeypatch, name: str, value: str) -> None:
    from agent_pipeline.config import get_settings, reset_settings

    monkeypatch.setenv(name, value)
    reset_settings()
    with pytest.raises(ConfigurationError, match="must be a redis:// URL"):
        get_settings()
