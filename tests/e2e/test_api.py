"""The HTTP API through FastAPI's test client, on SQLite: auth, errors, listing, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from agent_pipeline.store.operations import OperationType, get_store

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(sqlite_url, monkeypatch) -> Iterator[TestClient]:
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    with TestClient(app) as test_client:
        yield test_client


def test_health_and_openapi_are_served(client) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/agent/trigger",
        "/api/v1/agent/status",
        "/api/v1/agent/cancel",
        "/api/v1/operations/{operation_id}",
    ):
        assert path in paths


def test_operations_list_filters_and_counts_only_when_asked(client, sqlite_url) -> None:
    store = get_store(sqlite_url)
    cycle = store.create_cycle(max_active=5)
    store.create(operation_type=OperationType.TRAINING, parent_operation_id=cycle.operation_id)
    body = client.get("/api/v1/operations", params={"type": "training"}).json()
    assert body["success"] is True and [op["operation_type"] for op in body["data"]] == ["training"]
    assert "total" not in body
    assert client.get("/api/v1/operations", params={"total": "true"}).json()["total"] == 2
    one = client.get(f"/api/v1/operations/{cycle.operation_id}").json()["data"]
    assert set(one) >= {
        "operation_id", "operation_type", "status", "parent_operation_id", "created_at", "started_at",
        "completed_at", "progress", "metadata", "result_summary", "error_message",
    }  # fmt: skip


def test_bad_input_is_a_one_line_4xx(client) -> None:
    for url in ("/api/v1/operations?status=sleeping", "/api/v1/operations?limit=0", "/api/v1/operations?limit=100000"):
        response = client.get(url)
        assert response.status_code == 422
        assert response.json()["success"] is False and "\n" not in response.json()["error"]
    response = client.post("/api/v1/agent/trigger", json={"bypass_gates": True, "rocket": 1})
    assert response.status_code == 422
    response = client.delete("/api/v1/operations/op_nope")
    assert (response.status_code, response.json()["error"]) == (404, "operation not found: op_nope")


def test_cancelling_a_finished_operation_is_a_409(client, sqlite_url) -> None:
    store = get_store(sqlite_url)
    cycle = store.create_cycle(max_active=5)
    store.fail(cycle.operation_id, error_message="Design failed: x")
    response = client.delete(f"/api/v1/operations/{cycle.operation_id}")
    assert response.status_code == 409
    assert "already failed" in response.json()["error"]


def test_api_token_guards_every_endpoint_but_health(sqlite_url, monkeypatch) -> None:
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("KTRDR_API_TOKEN", "s3cret-token")
    reset_settings()
    with TestClient(app) as client:
        assert client.get("/api/v1/health").status_code == 200
        refused = client.get("/api/v1/operations")
        assert refused.status_code == 401 and "s3cret" not in refused.text
        assert client.get("/api/v1/operations", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/api/v1/operations", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200


def test_an_unreachable_database_is_a_503_without_the_password(monkeypatch) -> None:
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://ktrdr:hunter2pw@127.0.0.1:1/ktrdr")
    reset_settings()
    client = TestClient(app)  # no lifespan: the schema upgrade at start would fail the same way
    response = client.get("/api/v1/operations")
    assert response.status_code == 503
    assert "hunter2pw" not in response.text
    assert response.json()["error"].startswith("cannot reach the database at postgresql+psycopg://ktrdr:***@")


def test_trigger_refuses_an_unknown_designer_with_422_and_claude_without_key_with_400(client, sqlite_url) -> None:
    unknown = client.post("/api/v1/agent/trigger", json={"designer": "gpt"})
    assert unknown.status_code == 422
    keyless = client.post("/api/v1/agent/trigger", json={"designer": "anthropic"})
    assert keyless.status_code == 400
    assert keyless.json() == {"success": False, "error": "the anthropic designer needs ANTHROPIC_API_KEY"}
    assert get_store(sqlite_url).count() == 0


def test_evidence_counts_every_trial_per_series_and_never_reads_the_lockbox(client, sqlite_url) -> None:
    store = get_store(sqlite_url)
    for dsr in (0.2, 0.97, None):
        cycle = store.create_cycle(max_active=5)
        metadata: dict[str, object] = {"symbol": "EURUSD", "timeframe": "1h", "strategy_name": f"s{dsr}"}
        if dsr is not None:  # the third was stopped before its backtest: still a trial
            metadata["backtest_result"] = {"deflated_sharpe": dsr, "sharpe_ratio": 1.0, "num_trades": 30}
            metadata.update(training_gate={"passed": True}, backtest_gate={"passed": True})  # a candidate passed both
        store.merge_metadata(cycle.operation_id, metadata)
        store.start(cycle.operation_id)
        store.complete(cycle.operation_id, result_summary={"lockbox": {"total_return": 555.5}})
    body = client.get("/api/v1/agent/evidence", params={"symbol": "EURUSD"}).json()
    (series,) = body["series"]
    assert (series["symbol"], series["timeframe"], series["trials"]) == ("EURUSD", "1h", 3)
    assert [t["deflated_sharpe"] for t in series["best"]] == [0.97, 0.2]
    # A candidate, not a discovery (issue 25): no returns on file give no PBO, and it has no paths; it waits
    assert [(t["strategy_name"], t["promotion"]) for t in series["candidates"]] == [("s0.97", "candidate")]
    assert series["discoveries"] == [] and series["pbo"] is None
    assert series["spa_pvalue"] is None  # no out-of-sample returns recorded: no test, never a made-up figure
    assert "555.5" not in str(body)
    assert client.get("/api/v1/agent/evidence", params={"timeframe": "1d"}).json() == {"series": []}
