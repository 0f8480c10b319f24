"""`GET /metrics`: Prometheus text read from the database at scrape time, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agent_pipeline.store.operations import OperationsStore, OperationType
from tests.cycles import finished_cycle


@pytest.fixture
def client(store: OperationsStore) -> Iterator[TestClient]:
    from agent_pipeline.api.app import app

    with TestClient(app) as test_client:
        yield test_client


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_cycles_trainings_durations_and_llm_use(store: OperationsStore, client: TestClient) -> None:
    # Given two passed cycles, a gate failure, a cancelled one, an error, and one cycle running a training
    for how in ("passed", "passed", "training_gate", "cancelled", "error"):
        finished_cycle(store, how, dsr=0.5)
    running = store.create_cycle(max_active=1000)
    store.start(running.operation_id)
    store.merge_metadata(running.operation_id, {"design_usage": {"input_tokens": 1200, "output_tokens": 300}})
    training = store.create(operation_type=OperationType.TRAINING, parent_operation_id=running.operation_id)
    store.start(training.operation_id)
    store.create(operation_type=OperationType.TRAINING, parent_operation_id=running.operation_id)
    design = store.create(operation_type=OperationType.AGENT_DESIGN, parent_operation_id=running.operation_id)
    store.start(design.operation_id)
    store.complete(design.operation_id)
    # When Prometheus scrapes
    samples = scrape(client)
    # Then every figure comes from the rows
    assert samples[("ktrdr_cycles_finished_total", (("outcome", "passed"),))] == 2
    for outcome in ("training_gate", "cancelled", "error"):
        assert samples[("ktrdr_cycles_finished_total", (("outcome", outcome),))] == 1
    assert samples[("ktrdr_cycles_finished_total", (("outcome", "backtest_gate"),))] == 0
    assert samples[("ktrdr_cycles", (("status", "failed"),))] == 2
    assert samples[("ktrdr_cycles", (("status", "running"),))] == 1
    assert samples[("ktrdr_trainings", (("state", "running"),))] == 1
    assert samples[("ktrdr_trainings", (("state", "queued"),))] == 1
    assert samples[("ktrdr_llm_tokens_today", (("kind", "input"),))] == 1200
    assert samples[("ktrdr_llm_spend_today_usd", ())] == pytest.approx(5 * 0.012)
    assert ("ktrdr_phase_duration_seconds", (("phase", "design"), ("quantile", "0.5"))) in samples
    assert 0 <= samples[("ktrdr_seconds_since_last_completed_cycle", ())] < 60


def test_metrics_on_an_empty_database_omit_the_time_since_a_cycle(client: TestClient) -> None:
    samples = scrape(client)
    assert samples[("ktrdr_cycles", (("status", "completed"),))] == 0
    assert not any(name == "ktrdr_seconds_since_last_completed_cycle" for name, _ in samples)
