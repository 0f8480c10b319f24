"""The operation lifecycle: legal transitions only, finished rows frozen, the id format."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_pipeline.errors import InvalidTransitionError, OperationNotFoundError
from agent_pipeline.store.operations import (
    ALLOWED_FROM,
    FINISHED,
    OperationsStore,
    OperationStatus,
    OperationType,
    new_operation_id,
)

ID_PATTERN = re.compile(
    r"^op_(agent_research|agent_design|training|backtesting|agent_assessment)_\d{8}_\d{6}_[0-9a-f]{8}$"
)
LEGAL = {
    (OperationStatus.PENDING, OperationStatus.RUNNING),
    (OperationStatus.PENDING, OperationStatus.FAILED),
    (OperationStatus.PENDING, OperationStatus.CANCELLED),
    (OperationStatus.RUNNING, OperationStatus.COMPLETED),
    (OperationStatus.RUNNING, OperationStatus.FAILED),
    (OperationStatus.RUNNING, OperationStatus.CANCELLED),
}
TARGETS = tuple(ALLOWED_FROM)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> OperationsStore:
    # One SQLite file for the module: each test works on rows of its own, and migrating once keeps it fast.
    path: Path = tmp_path_factory.mktemp("model") / "operations.db"
    store = OperationsStore(f"sqlite:///{path}")
    store.upgrade()
    return store


def move(store: OperationsStore, operation_id: str, target: OperationStatus) -> bool:
    """Ask the store for `target` through its public lifecycle function."""
    actions: dict[OperationStatus, Callable[[], bool]] = {
        OperationStatus.RUNNING: lambda: store.start(operation_id),
        OperationStatus.COMPLETED: lambda: store.complete(operation_id, result_summary={"ok": 1}),
        OperationStatus.FAILED: lambda: store.fail(operation_id, error_message="boom"),
        OperationStatus.CANCELLED: lambda: store.cancel(operation_id),
    }
    return actions[target]()


def operation_in(store: OperationsStore, status: OperationStatus) -> str:
    """A fresh training operation brought to `status` by legal steps."""
    operation_id = store.create(operation_type=OperationType.TRAINING).operation_id
    if status != OperationStatus.PENDING:
        assert store.start(operation_id)
    if status not in (OperationStatus.PENDING, OperationStatus.RUNNING):
        assert move(store, operation_id, status)
    assert store.get(operation_id).status == status
    return operation_id


@pytest.mark.parametrize("target", TARGETS, ids=lambda s: s.value)
@pytest.mark.parametrize("source", list(OperationStatus), ids=lambda s: s.value)
def test_transition_happens_only_when_legal(
    store: OperationsStore, source: OperationStatus, target: OperationStatus
) -> None:
    operation_id = operation_in(store, source)

    changed = move(store, operation_id, target)

    legal = (source, target) in LEGAL
    assert changed is legal
    assert store.get(operation_id).status == (target if legal else source)


@pytest.mark.parametrize("target", TARGETS, ids=lambda s: s.value)
@pytest.mark.parametrize("source", list(OperationStatus), ids=lambda s: s.value)
def test_require_transition_raises_exactly_for_illegal_pairs(
    store: OperationsStore, source: OperationStatus, target: OperationStatus
) -> None:
    operation_id = operation_in(store, source)
    if (source, target) in LEGAL:
        assert store.require_transition(operation_id, target).status == source
    else:
        with pytest.raises(InvalidTransitionError, match=source.value):
            store.require_transition(operation_id, target)


def test_transition_table_matches_the_lifecycle() -> None:
    table = {(source, target) for target, sources in ALLOWED_FROM.items() for source in sources}
    assert table == LEGAL
    assert OperationStatus.PENDING not in ALLOWED_FROM  # nothing ever goes back to pending


@pytest.mark.parametrize("finished", FINISHED, ids=lambda s: s.value)
def test_finished_row_never_changes_status_progress_or_error(store: OperationsStore, finished: OperationStatus) -> None:
    operation_id = operation_in(store, finished)
    before = store.get(operation_id)

    results = [move(store, operation_id, target) for target in TARGETS]
    results.append(store.update_progress(operation_id, percentage=50, current_step="late"))
    results.append(store.heartbeat(operation_id))

    assert results == [False] * len(results)
    after = store.get(operation_id)
    assert (after.status, after.progress, after.error_message, after.completed_at) == (
        before.status,
        before.progress,
        before.error_message,
        before.completed_at,
    )


def test_transition_of_unknown_id_raises_not_found(store: OperationsStore) -> None:
    with pytest.raises(OperationNotFoundError, match="operation not found: op_nope"):
        store.start("op_nope")


def test_is_finished_is_true_only_for_terminal_statuses() -> None:
    assert [s for s in OperationStatus if s.is_finished] == list(FINISHED)


@pytest.mark.parametrize("operation_type", list(OperationType), ids=lambda t: t.value)
def test_new_operation_id_has_the_documented_format(operation_type: OperationType) -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    operation_id = new_operation_id(operation_type, now)

    assert ID_PATTERN.match(operation_id)
    assert operation_id.startswith(f"op_{operation_type.value}_20250102_030405_")


def test_new_operation_ids_differ_within_one_second() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ids = {new_operation_id(OperationType.TRAINING, now) for _ in range(200)}
    assert len(ids) == 200


def test_created_operation_id_matches_format_and_starts_pending(store: OperationsStore) -> None:
    operation = store.create(operation_type=OperationType.AGENT_RESEARCH)
    assert ID_PATTERN.match(operation.operation_id)
    assert operation.status == OperationStatus.PENDING
    assert operation.progress == {"percentage": 0.0, "current_step": "queued"}


def test_to_dict_uses_plain_strings_and_iso_times(store: OperationsStore) -> None:
    data = store.create(operation_type=OperationType.BACKTESTING, metadata={"a": 1}).to_dict()
    assert data["operation_type"] == "backtesting"
    assert data["status"] == "pending"
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None
    assert data["metadata"] == {"a": 1}
    assert data["started_at"] is None
