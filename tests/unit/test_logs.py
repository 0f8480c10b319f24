"""Structured logs carry the operation id; secrets never reach a log line or a row."""

from __future__ import annotations

import json
import logging

from agent_pipeline.logs import JsonFormatter, operation_context, redact
from agent_pipeline.store.operations import OperationsStore

KEY = "sk-ant-api03-PLANTED_key-123"


def test_redact_masks_api_keys_and_url_passwords() -> None:
    text = f"boom at postgresql+psycopg://ktrdr:hunter2@db:5432/k with {KEY}"
    assert redact(text) == "boom at postgresql+psycopg://ktrdr:***@db:5432/k with sk-ant-***"
    assert redact("redis://localhost:6379/0 is fine") == "redis://localhost:6379/0 is fine"


def test_json_lines_carry_the_operation_id_and_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "agent_pipeline.x", "levelname": "INFO", "msg": f"calling {KEY}"})
    record.phase = "training"
    with operation_context("op_training_20261127_000000_deadbeef"):
        line = json.loads(JsonFormatter().format(record))
    assert line["operation_id"] == "op_training_20261127_000000_deadbeef"
    assert line["phase"] == "training"
    assert KEY not in json.dumps(line) and "sk-ant-***" in line["event"]


def test_a_failure_message_is_stored_without_secrets(sqlite_url) -> None:
    store = OperationsStore(sqlite_url)
    store.upgrade()
    cycle = store.create_cycle(max_active=1)
    store.fail(cycle.operation_id, error_message=f"Design failed: rejected {KEY} at postgresql://u:pw@h/d")
    stored = store.get(cycle.operation_id).error_message
    assert stored == "Design failed: rejected sk-ant-*** at postgresql://u:***@h/d"
