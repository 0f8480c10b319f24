"""The operations store against real Postgres and SQLite, through the same code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from agent_pipeline.errors import CapacityError, OperationNotFoundError
from agent_pipeline.store.operations import (
    OperationsStore,
    OperationStatus,
    OperationType,
    utcnow,
)

pytestmark = pytest.mark.integration

RACERS = 16
TRIGGERS = 20


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[OperationsStore]:
    url = request.getfixturevalue(f"{request.param}_url")
    store = OperationsStore(url)
    store.upgrade()
    yield store
    store.engine.dispose()


def race(workers: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` in `workers` threads released at the same instant; returns results or exceptions."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        except Exception as exc:  # collected and asserted on by the caller
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def running(store: OperationsStore, operation_type: OperationType = OperationType.TRAINING, **kw: Any) -> str:
    operation_id = store.create(operation_type=operation_type, **kw).operation_id
    assert store.start(operation_id)
    return operation_id


# -- create and read ---------------------------------------------------------------------------------


def test_created_operation_reads_back_with_every_field(store: OperationsStore) -> None:
    parent = store.create(operation_type=OperationType.AGENT_RESEARCH)
    created = store.create(
        operation_type=OperationType.TRAINING,
        parent_operation_id=parent.operation_id,
        metadata={"strategy_name": "s1", "nested": {"a": [1, 2]}},
    )

    fetched = store.get(created.operation_id)

    assert fetched == created
    assert fetched.parent_operation_id == parent.operation_id
    assert fetched.metadata == {"strategy_name": "s1", "nested": {"a": [1, 2]}}
    assert fetched.created_at.tzinfo is not None
    assert fetched.started_at is None and fetched.completed_at is None


def test_get_unknown_id_raises_not_found(store: OperationsStore) -> None:
    with pytest.raises(OperationNotFoundError, match="operation not found: op_nope"):
        store.get("op_nope")


def test_lifecycle_records_times_result_and_error(store: OperationsStore) -> None:
    done = running(store)
    assert store.update_progress(done, percentage=42.123, current_step="epoch 4/10", epoch=4)
    assert store.get(done).progress == {"percentage": 42.12, "current_step": "epoch 4/10", "epoch": 4}
    assert store.complete(done, result_summary={"accuracy": 0.61})
    failed = running(store)
    assert store.fail(failed, error_message="Training gate failed: loss_too_high (0.90 > 0.80)")

    completed, broken = store.get(done), store.get(failed)
    assert completed.result_summary == {"accuracy": 0.61}
    assert completed.progress["percentage"] == 100.0
    assert completed.started_at is not None and completed.completed_at is not None
    assert completed.completed_at >= completed.started_at
    assert broken.error_message == "Training gate failed: loss_too_high (0.90 > 0.80)"


def test_list_is_newest_first_with_limit_and_offset(store: OperationsStore) -> None:
    created = []
    for _ in range(5):
        created.append(store.create(operation_type=OperationType.TRAINING).operation_id)
        time.sleep(0.002)  # distinct created_at, so the order is by time and not by the id tie-break
    newest_first = created[::-1]

    assert [op.operation_id for op in store.list()] == newest_first
    assert [op.operation_id for op in store.list(limit=2)] == newest_first[:2]
    assert [op.operation_id for op in store.list(limit=2, offset=2)] == newest_first[2:4]
    assert store.list(offset=5) == []


def test_list_and_count_filter_by_type_status_and_parent(store: OperationsStore) -> None:
    cycle = running(store, OperationType.AGENT_RESEARCH)
    design = store.create(operation_type=OperationType.AGENT_DESIGN, parent_operation_id=cycle)
    training = running(store, OperationType.TRAINING, parent_operation_id=cycle)
    store.create(operation_type=OperationType.TRAINING)

    def ids(**filters: Any) -> set[str]:
        return {op.operation_id for op in store.list(**filters)}

    assert len(ids(operation_type=OperationType.TRAINING)) == 2
    assert ids(status=OperationStatus.RUNNING) == {cycle, training}
    assert ids(parent_operation_id=cycle) == {design.operation_id, training}
    assert ids(operation_type=OperationType.TRAINING, status=OperationStatus.RUNNING) == {training}
    assert store.count() == 4
    assert store.count(operation_type=OperationType.TRAINING) == 2
    assert store.count(status=OperationStatus.PENDING) == 2
    assert store.count(parent_operation_id=cycle) == 2
    assert store.count(operation_type=OperationType.BACKTESTING) == 0


# -- cancel ----------------------------------------------------------------------------------------------


def test_cancel_cascades_to_active_children_and_spares_finished_ones(store: OperationsStore) -> None:
    cycle = running(store, OperationType.AGENT_RESEARCH)
    design = store.create(operation_type=OperationType.AGENT_DESIGN, parent_operation_id=cycle)
    store.start(design.operation_id)
    store.complete(design.operation_id, result_summary={"strategy_name": "s"})
    training = running(store, OperationType.TRAINING, parent_operation_id=cycle)
    backtest = store.create(operation_type=OperationType.BACKTESTING, parent_operation_id=cycle)
    grandchild = store.create(operation_type=OperationType.TRAINING, parent_operation_id=training)

    assert store.cancel(cycle, reason="user asked")

    assert store.get(cycle).status == OperationStatus.CANCELLED
    assert store.get(cycle).error_message == "user asked"
    for child in (training, backtest.operation_id, grandchild.operation_id):
        assert store.get(child).status == OperationStatus.CANCELLED
    assert store.get(training).error_message == f"Parent {cycle} cancelled"
    spared = store.get(design.operation_id)
    assert spared.status == OperationStatus.COMPLETED and spared.error_message is None


def test_cancel_of_finished_operation_returns_false_and_keeps_status(store: OperationsStore) -> None:
    done = running(store)
    store.complete(done)
    assert store.cancel(done) is False
    assert store.get(done).status == OperationStatus.COMPLETED


# -- metadata ----------------------------------------------------------------------------------------------


def test_merge_metadata_adds_and_overwrites_keys(store: OperationsStore) -> None:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"phase": "designing", "a": 1})

    merged = store.merge_metadata(cycle.operation_id, {"phase": "training", "training_op_id": "op_x"})

    assert merged == {"phase": "training", "a": 1, "training_op_id": "op_x"}
    assert store.get(cycle.operation_id).metadata == merged
    with pytest.raises(OperationNotFoundError):
        store.merge_metadata("op_nope", {"a": 1})


def test_claim_metadata_succeeds_once_and_keeps_the_first_value(store: OperationsStore) -> None:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH).operation_id

    assert store.claim_metadata(cycle, "training_task_id", "first") is True
    assert store.claim_metadata(cycle, "training_task_id", "second") is False

    assert store.get(cycle).metadata["training_task_id"] == "first"


def test_claim_metadata_under_a_race_has_one_winner(store: OperationsStore) -> None:
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH).operation_id

    results = race(RACERS, lambda i: store.claim_metadata(cycle, "claimed_by", i))

    assert sorted(results, key=str) == [False] * (RACERS - 1) + [True]
    assert store.get(cycle).metadata["claimed_by"] == results.index(True)


# -- reconciler and spend -----------------------------------------------------------------------------------


def test_reconcile_stale_fails_only_active_rows_without_recent_heartbeat(store: OperationsStore) -> None:
    stale = running(store)
    alive = running(store)
    finished = running(store)
    store.complete(finished)
    time.sleep(0.3)
    store.heartbeat(alive)

    failed = store.reconcile_stale(stale_after=0.2)

    assert failed == [stale]
    lost = store.get(stale)
    assert lost.status == OperationStatus.FAILED
    assert lost.error_message is not None and lost.error_message.startswith("Lost: no heartbeat")
    assert store.get(alive).status == OperationStatus.RUNNING
    assert store.get(finished).status == OperationStatus.COMPLETED


def test_spend_since_sums_cycle_costs_created_after_the_moment(store: OperationsStore) -> None:
    before = utcnow() - timedelta(seconds=1)
    store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"cost_usd": 0.25})
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH).operation_id
    store.merge_metadata(cycle, {"cost_usd": 1.5})
    store.create(operation_type=OperationType.AGENT_DESIGN, metadata={"cost_usd": 9.0})  # not a cycle

    assert store.spend_since(before) == pytest.approx(1.75)
    assert store.spend_since(utcnow() + timedelta(seconds=1)) == 0.0


# -- schema --------------------------------------------------------------------------------------------------


def test_upgrade_is_idempotent_and_keeps_rows(store: OperationsStore) -> None:
    kept = store.create(operation_type=OperationType.TRAINING).operation_id

    store.upgrade()
    store.upgrade()

    assert store.get(kept).operation_id == kept
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [head_revision()]


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from agent_pipeline.store.migrations import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return str(ScriptDirectory.from_config(config).get_current_head())


def test_ping_answers_on_a_live_database(store: OperationsStore) -> None:
    store.ping()


# -- races --------------------------------------------------------------------------------------------------

FINISHERS: dict[OperationStatus, Callable[[OperationsStore, str], bool]] = {
    OperationStatus.COMPLETED: lambda s, op: s.complete(op, result_summary={"by": "complete"}),
    OperationStatus.FAILED: lambda s, op: s.fail(op, error_message="by fail"),
    OperationStatus.CANCELLED: lambda s, op: s.cancel(op, reason="by cancel"),
}


def test_concurrent_finishers_have_exactly_one_winner(store: OperationsStore) -> None:
    # Given one running row and 16 threads each completing, failing or cancelling it at the same instant
    operation_id = running(store)
    targets = [list(FINISHERS)[i % len(FINISHERS)] for i in range(RACERS)]

    results = race(RACERS, lambda i: FINISHERS[targets[i]](store, operation_id))

    # Then exactly one call changed it, and the row holds that call's status
    assert all(isinstance(result, bool) for result in results), results
    assert results.count(True) == 1
    winner = targets[results.index(True)]
    assert store.get(operation_id).status == winner


@pytest.mark.parametrize("max_active", [1, 3])
def test_concurrent_cycle_triggers_respect_max_active(store: OperationsStore, max_active: int) -> None:
    results = race(TRIGGERS, lambda _: store.create_cycle(max_active=max_active))

    created = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, CapacityError)]
    assert len(created) == max_active
    assert len(refused) == TRIGGERS - max_active, [r for r in results if isinstance(r, Exception)]
    assert store.count(operation_type=OperationType.AGENT_RESEARCH) == max_active


def test_finished_cycle_frees_its_slot(store: OperationsStore) -> None:
    first = store.create_cycle(max_active=1)
    with pytest.raises(CapacityError) as refused:
        store.create_cycle(max_active=1)
    assert refused.value.reason == "active_cycle_exists"

    store.cancel(first.operation_id)

    assert store.create_cycle(max_active=1).status == OperationStatus.PENDING
