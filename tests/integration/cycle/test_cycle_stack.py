"""Research cycles on the real stack: Postgres, Redis, and research and gpu worker processes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stack import OPEN_GATES, QUICK, finished, start_stack, use_stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_passing_cycle_runs_every_phase_and_records_its_results(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, OperationType, get_store

    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK)
    operation = cycle.trigger()
    phases: set[str] = set()

    def done() -> Any:
        state = cycle.status()
        phases.add(str(state.phase))
        return finished(operation.operation_id)()

    final = wait_until(done, timeout=180)
    assert final.status == OperationStatus.COMPLETED, (final.error_message, stack.log("research")[-2000:])
    assert "training" in phases
    meta = final.metadata
    for key in (
        "design_op_id",
        "training_op_id",
        "backtest_op_id",
        "assessment_op_id",
        "strategy_path",
        "model_path",
    ):
        assert meta.get(key), key
    assert meta["designer"] == "offline"
    assert {"accuracy", "final_loss", "initial_loss"} <= set(meta["training_result"])
    assert {"total_return", "sharpe_ratio", "win_rate", "max_drawdown", "buy_and_hold_return"} <= set(
        meta["backtest_result"]
    )
    assert meta["assessment"]["verdict"] in ("promising", "mediocre", "poor")
    store = get_store()
    children = store.list(parent_operation_id=operation.operation_id)
    assert sorted(c.operation_type for c in children) == sorted(
        [
            OperationType.AGENT_DESIGN,
            OperationType.TRAINING,
            OperationType.BACKTESTING,
            OperationType.AGENT_ASSESSMENT,
        ]
    )
    assert all(c.status == OperationStatus.COMPLETED for c in children)
    training = store.get(meta["training_op_id"])
    assert {"accuracy", "final_loss", "initial_loss", "model_path"} <= set(training.result_summary or {})
    assert training.result_summary["epochs_run"] == 3
    assert final.result_summary and final.result_summary["strategy_name"] == meta["strategy_name"]


def test_training_gate_failure_fails_the_cycle_but_keeps_training_completed(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    start_stack(make_stack, monkeypatch, TRAINING_GATE_MIN_ACCURACY="0.99", **QUICK)
    operation = cycle.trigger()
    final = wait_until(finished(operation.operation_id), timeout=180)
    assert final.status == OperationStatus.FAILED
    assert re.fullmatch(r"Training gate failed: accuracy_below_threshold \(\d+(\.\d)?% < 99%\)", final.error_message)
    training = get_store().get(final.metadata["training_op_id"])
    assert training.status == OperationStatus.COMPLETED
    assert final.metadata["training_gate"]["passed"] is False
    assert "backtest_op_id" not in final.metadata
    state = cycle.status()
    assert state.status == "idle" and state.last_cycle is not None and state.last_cycle.status == "failed"


def test_bypass_gates_records_the_failure_and_goes_on(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus

    start_stack(make_stack, monkeypatch, TRAINING_GATE_MIN_ACCURACY="0.99", BACKTEST_GATE_MIN_SHARPE="1000", **QUICK)
    operation = cycle.trigger(cycle.CycleOptions(bypass_gates=True))
    final = wait_until(finished(operation.operation_id), timeout=180)
    assert final.status == OperationStatus.COMPLETED, final.error_message
    training = final.metadata["training_gate"]
    assert (training["gate"], training["passed"], training["code"], training["bypassed"]) == (
        "training", False, "accuracy_below_threshold", True,
    )  # fmt: skip
    assert training["reason"].startswith("accuracy_below_threshold (") and training["figures"]["min_accuracy"] == 0.99
    assert final.metadata["backtest_gate"]["bypassed"] is True
    # And it completed only because its gates were bypassed: its outcome says so, and it is no discovery
    assert final.result_summary["discovery"] is False
    from agent_pipeline.store.history import outcome_of

    assert outcome_of(final)[0].value == "bypassed"


def test_training_crash_fails_cycle_with_the_training_error(make_stack, monkeypatch, tmp_path) -> None:
    from agent_pipeline.config import get_settings
    from agent_pipeline.engine.data import import_csv
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    start_stack(make_stack, monkeypatch, **QUICK)
    # Given a user series far too short to train on
    csv = tmp_path / "tiny.csv"
    rows = ["date,open,high,low,close,volume"]
    rows += [f"2020-01-{d:02d},{100 + d},{101 + d},{99 + d},{100.5 + d},1000" for d in range(1, 29)]
    csv.write_text("\n".join(rows) + "\n")
    import_csv(csv, symbol="TINY", timeframe="1d", data_dir=get_settings().data_dir)
    # When a cycle is asked to use it
    operation = cycle.trigger(cycle.CycleOptions(symbol="TINY", timeframe="1d"))
    final = wait_until(finished(operation.operation_id), timeout=180)
    # Then training fails with the engine's reason, on both rows
    assert final.status == OperationStatus.FAILED
    assert final.error_message.startswith("Training failed: "), final.error_message
    training = get_store().get(final.metadata["training_op_id"])
    assert training.status == OperationStatus.FAILED
    assert training.error_message.startswith("Training failed: ")


def test_cancel_during_training_stops_it_within_an_epoch_and_frees_the_gpu(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.store.operations import OperationStatus, get_store

    start_stack(make_stack, monkeypatch, KTRDR_TRAINING_EPOCHS="1000", KTRDR_MAX_CONCURRENT_CYCLES="2")
    store = get_store()
    operation = cycle.trigger()

    def training_running() -> Any:
        op = store.get(operation.operation_id)
        child_id = op.metadata.get("training_op_id")
        child = store.get(child_id) if child_id else None
        return child if child and child.progress.get("epoch", 0) >= 1 else None

    training = wait_until(training_running, timeout=120)
    cycle.cancel(operation.operation_id)
    assert store.get(operation.operation_id).status == OperationStatus.CANCELLED
    assert store.get(training.operation_id).status == OperationStatus.CANCELLED
    # The GPU task ends (cancelled) within about an epoch, not after its 1000 epochs.
    result = app.AsyncResult(training.metadata["celery_task_id"])
    wait_until(lambda: result.state == "FAILURE", timeout=20)
    # And the GPU worker takes the next training.
    second = cycle.trigger()
    wait_until(lambda: epochs_done(store, second.operation_id) >= 1, timeout=120)
    cycle.cancel(second.operation_id)


def epochs_done(store: Any, cycle_id: str) -> int:
    child_id = store.get(cycle_id).metadata.get("training_op_id")
    return int(store.get(child_id).progress.get("epoch", 0)) if child_id else 0


def test_cancel_before_design_drops_the_whole_chain(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    # Given a cycle waiting for a research worker
    stack = make_stack(**QUICK)
    use_stack_env(stack, monkeypatch)
    store = get_store()
    store.upgrade()
    operation = cycle.trigger()
    # When it is cancelled and a worker then starts
    cycle.cancel()
    stack.start_worker("research", "research", "-c", "1")
    # Then the design task is dropped: no child is ever created
    wait_until(lambda: "dropping ktrdr.cycle.design" in stack.log("research"), timeout=30)
    cancelled = store.get(operation.operation_id)
    assert cancelled.status == OperationStatus.CANCELLED
    assert "design_op_id" not in cancelled.metadata
    assert store.list(parent_operation_id=operation.operation_id) == []


def test_cancel_while_training_is_queued_revokes_it_before_it_runs(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.store.operations import OperationStatus, get_store

    # Given a training queued while no GPU worker runs
    stack = make_stack(**QUICK)
    use_stack_env(stack, monkeypatch)
    store = get_store()
    store.upgrade()
    stack.start_worker("research", "research", "-c", "1")
    operation = cycle.trigger()
    training_id = wait_until(lambda: store.get(operation.operation_id).metadata.get("training_op_id"), timeout=60)
    task_id = wait_until(lambda: store.get(training_id).metadata.get("celery_task_id"), timeout=30)
    # When the cycle is cancelled, then a GPU worker starts
    cycle.cancel()
    stack.start_worker("gpu", "gpu", "-c", "1")
    # Then the training never runs and both rows stay cancelled
    wait_until(lambda: app.AsyncResult(task_id).state in ("REVOKED", "FAILURE"), timeout=30)
    assert store.get(training_id).status == OperationStatus.CANCELLED
    assert store.get(operation.operation_id).status == OperationStatus.CANCELLED
    assert "epoch" not in store.get(training_id).progress


def test_a_phase_task_for_a_cancelled_cycle_does_nothing(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline.celery_app import app
    from agent_pipeline.store.operations import get_store

    stack = make_stack()
    use_stack_env(stack, monkeypatch)
    store = get_store()
    store.upgrade()
    stack.start_worker("research", "research", "-c", "1")
    # One worker serves every phase: each task arrives for a cycle of its own, cancelled before it runs
    for task_name in ("ktrdr.cycle.backtest", "ktrdr.cycle.assess", "ktrdr.cycle.training_gate"):
        cycle_op = store.create_cycle(max_active=1)
        store.cancel(cycle_op.operation_id)
        app.signature(task_name, args=({"cycle_id": cycle_op.operation_id},)).apply_async()
        wait_until(lambda name=task_name: f"dropping {name}" in stack.log("research"), timeout=30)
        assert store.list(parent_operation_id=cycle_op.operation_id) == [], task_name
        assert store.get(cycle_op.operation_id).metadata == {}, task_name
