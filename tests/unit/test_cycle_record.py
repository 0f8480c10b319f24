"""The typed cycle record: attributes over the JSON metadata, lenient with old and odd rows, never rewriting them."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.gates import Verdict
from agent_pipeline.store.models import Operation, OperationStatus, OperationType
from agent_pipeline.store.record import CycleRecord, TrainingRecord


def operation(metadata: dict) -> Operation:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    return Operation("op_x", OperationType.AGENT_RESEARCH, OperationStatus.COMPLETED, None, now, now, now, now,
                     metadata=metadata)  # fmt: skip


def test_a_cycle_reads_its_metadata_as_typed_attributes_and_keeps_what_it_does_not_know() -> None:
    gate = Verdict("training", False, "no_skill", "no_skill (balanced accuracy 50.4% vs chance 50.0%, p = 0.41)")
    meta = {"symbol": "SP500", "timeframe": "1d", "study_trial": 3, "cost_usd": 0.25, "future_key": [1, 2],
            "training_result": {"accuracy": 0.5}, "training_gate": gate.to_record()}  # fmt: skip
    record = operation(meta).record
    assert (record.symbol, record.series, record.study_trial, record.cost_usd) == ("SP500", ("SP500", "1d"), 3, 0.25)
    assert record.training == {"accuracy": 0.5} and record.backtest == {}
    assert record.verdict("training") == gate and record.verdict("backtest") is None
    assert record.model_extra == {"future_key": [1, 2]}
    # the JSON the API and --json print is the row's own metadata, untouched by reading it
    assert operation(meta).to_dict()["metadata"] == meta


def test_an_old_or_odd_row_reads_with_its_bad_fields_unset_and_never_raises() -> None:
    odd = {"symbol": "X", "cost_usd": "n/a", "study_trial": "three", "training_result": [1], "phase": "training"}
    record = CycleRecord.read(odd)
    assert (record.symbol, record.cost_usd, record.study_trial, record.training_result) == ("X", None, None, None)
    assert record.phase == "training"
    assert CycleRecord.read(None) == CycleRecord()
    assert TrainingRecord.read({"celery_task_id": "t-1", "resent": "x"}).resent == 0
