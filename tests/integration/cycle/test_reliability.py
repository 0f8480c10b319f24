"""What the user counts on: concurrent supervision, no double training, lost workers, race-free triggers."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from tests.stack import OPEN_GATES, finished, start_stack, use_stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STRATEGY_YAML = """
name: reliability_probe
symbol: EURUSD
timeframe: 1h
indicators:
  - {type: rsi, period: 14}
  - {type: roc, period: 10}
fuzzy_sets:
  rsi_14:
    low: {type: triangular, parameters: [0, 0, 40]}
    high: {type: triangular, parameters: [60, 100, 100]}
  roc_10:
    down: {type: triangular, parameters: [-2, -1, 0]}
    up: {type: triangular, parameters: [0, 1, 2]}
labels: {zigzag_threshold: 0.003, lookahead: 12}
training: {epochs: 25, batch_size: 64, early_stopping_patience: 0}
"""


def test_one_research_worker_with_concurrency_1_supervises_three_trainings_at_once(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    # Given one research worker process (-c 1) and a GPU worker that runs three trainings side by side
    # (two walk-forward folds: three models per training, trained together; 40 epochs keep them long enough to
    # overlap)
    stack = make_stack(
        **OPEN_GATES, KTRDR_MAX_CONCURRENT_CYCLES="3", KTRDR_TRAINING_EPOCHS="40", KTRDR_WALK_FORWARD_FOLDS="2"
    )
    use_stack_env(stack, monkeypatch)
    store = get_store()
    store.upgrade()
    stack.start_worker("research", "research", "-c", "1", wait=False)
    stack.start_worker("gpu", "gpu", "-c", "3", "--max-tasks-per-child", "1", wait=False)
    stack.wait_ready("research", "gpu")
    # When three cycles are triggered
    cycles = [cycle.trigger().operation_id for _ in range(3)]

    def progress() -> list[float]:
        # The overall percentage: an epoch count starts again at each walk-forward fold, and a training that
        # has finished (or stopped early) has plainly moved on, so it counts as 100.
        out = []
        for cycle_id in cycles:
            child_id = store.get(cycle_id).metadata.get("training_op_id")
            child = store.get(child_id) if child_id else None
            if child is None or child.status == OperationStatus.PENDING:
                out.append(0.0)
            elif child.status == OperationStatus.RUNNING:
                out.append(float(child.progress.get("percentage", 0.0)))
            else:
                out.append(100.0)
        return out

    # Then at one moment all three trainings are running and their progress is being copied in
    first = wait_until(lambda: (p := progress()) and all(0 < n < 100 for n in p) and p, timeout=120)
    later = wait_until(
        lambda: (p := progress()) and all(n > m for n, m in zip(p, first, strict=True)) and p, timeout=60
    )
    assert all(n > m for n, m in zip(later, first, strict=True))
    # And all three cycles complete
    for cycle_id in cycles:
        assert wait_until(finished(cycle_id), timeout=240).status == OperationStatus.COMPLETED


def _send_training(app: Any, task_id: str, model_dir: str, strategy_yaml: str = STRATEGY_YAML) -> None:
    app.signature(
        "ktrdr.gpu.train_model",
        kwargs={
            "training_op_id": task_id,
            "strategy_yaml": strategy_yaml,
            "model_dir": model_dir,
            "data_dir": None,
            "seed": 7,
        },
    ).apply_async(task_id=task_id, queue="gpu")


def test_a_redelivered_training_never_runs_twice_at_once(make_stack, monkeypatch, tmp_path) -> None:
    from agent_pipeline.pipeline.celery_app import app

    stack = make_stack()
    use_stack_env(stack, monkeypatch)
    stack.start_worker("gpu", "gpu", "-c", "2")
    task_id = f"op_training_probe_{uuid.uuid4().hex[:8]}"
    # When the same training message arrives twice (as Redis does after visibility_timeout)
    _send_training(app, task_id, str(tmp_path / "models"))
    _send_training(app, task_id, str(tmp_path / "models"))
    # Then one delivery trains and the other steps aside
    result = app.AsyncResult(task_id)
    wait_until(lambda: result.state == "SUCCESS", timeout=120)
    log = stack.log("gpu")
    assert log.count("dropping duplicate delivery") + log.count("already finished by an earlier delivery") == 1
    assert result.result["epochs_run"] == 25
    # And a third, late redelivery returns the finished result without training again
    _send_training(app, task_id, str(tmp_path / "models"))
    wait_until(lambda: stack.log("gpu").count("already finished by an earlier delivery") >= 1, timeout=30)


def test_a_training_whose_run_lock_another_delivery_took_stops_and_leaves_it_the_training(
    make_stack, monkeypatch, tmp_path
) -> None:
    from agent_pipeline.pipeline import flags
    from agent_pipeline.pipeline.celery_app import app

    stack = make_stack()
    use_stack_env(stack, monkeypatch)
    stack.start_worker("gpu", "gpu", "-c", "1")
    task_id = f"op_training_probe_{uuid.uuid4().hex[:8]}"
    # Given a training under way
    _send_training(app, task_id, str(tmp_path / "models"), STRATEGY_YAML.replace("epochs: 25", "epochs: 1000"))
    result = app.AsyncResult(task_id)
    wait_until(lambda: result.state == "PROGRESS" and (result.info or {}).get("epoch", 0) >= 1, timeout=120)
    # When another delivery takes its run lock (as one sent again after a Redis that restarted empty would)
    app.backend.client.set(f"ktrdr:lock:{task_id}", "another-delivery", ex=flags.LOCK_TTL_S)
    # Then this delivery stops at its next beat, leaves the lock to the other, and records no result of its own
    wait_until(lambda: "another delivery owns this training now" in stack.log("gpu"), timeout=30)
    stopped_at = (result.info or {}).get("epoch")
    time.sleep(2)
    assert (result.info or {}).get("epoch") == stopped_at and result.state == "PROGRESS"
    assert app.backend.client.get(f"ktrdr:lock:{task_id}") == b"another-delivery"
    assert stack.workers["gpu"].poll() is None


def test_a_lost_gpu_worker_fails_the_cycle_with_a_clear_error(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    stack = start_stack(make_stack, monkeypatch, KTRDR_TRAINING_EPOCHS="1000", KTRDR_HEARTBEAT_STALE_AFTER="10")
    store = get_store()
    operation = cycle.trigger()

    def training_epoch() -> int:
        child_id = store.get(operation.operation_id).metadata.get("training_op_id")
        return int(store.get(child_id).progress.get("epoch", 0)) if child_id else 0

    wait_until(lambda: training_epoch() >= 1, timeout=120)
    stack.kill_worker("gpu")
    final = wait_until(finished(operation.operation_id), timeout=60)
    assert final.status == OperationStatus.FAILED
    assert final.error_message == "Training failed: no heartbeat from the GPU worker for 10 s (worker lost)"
    assert store.get(final.metadata["training_op_id"]).status == OperationStatus.FAILED


def test_a_lost_research_worker_never_leaves_the_cycle_running(make_stack, monkeypatch) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import ACTIVE, OperationStatus, get_store

    stack = start_stack(make_stack, monkeypatch, KTRDR_TRAINING_EPOCHS="1000", KTRDR_HEARTBEAT_STALE_AFTER="10")
    store = get_store()
    operation = cycle.trigger()
    wait_until(lambda: store.get(operation.operation_id).metadata.get("phase") == "training", timeout=120)
    stack.kill_worker("research")
    time.sleep(11)
    # When the next trigger comes (with no research worker left, no timer reconciles; a status only reads)
    assert cycle.status().status == "active"
    replacement = cycle.trigger()
    # Then the trigger's reconcile fails what lost its heartbeat, and its slot goes to the new cycle
    assert replacement.operation_id != operation.operation_id
    lost = store.get(operation.operation_id)
    assert lost.status == OperationStatus.FAILED
    assert lost.error_message.startswith("Lost: no heartbeat for 10 s")
    assert all(c.status not in ACTIVE for c in store.list(parent_operation_id=operation.operation_id))


@pytest.mark.parametrize("limit", [1, 3])
def test_twenty_simultaneous_triggers_start_exactly_the_limit(make_stack, monkeypatch, limit) -> None:
    from agent_pipeline.errors import CapacityError
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import get_store

    stack = make_stack(KTRDR_MAX_CONCURRENT_CYCLES=str(limit))
    use_stack_env(stack, monkeypatch)
    get_store().upgrade()
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def fire() -> None:
        barrier.wait()
        try:
            cycle.trigger()
            outcomes.append("started")
        except CapacityError as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("started") == limit
    assert outcomes.count("active_cycle_exists") == 20 - limit
