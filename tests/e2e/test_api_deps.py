"""The API's store comes from one provider (`api/deps.py`), and a read never writes (issue 26)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from agent_pipeline.store.operations import OperationStatus, get_store

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test Redis as broker and result backend, so a trigger sends a real chain (no worker consumes it)."""
    from agent_pipeline.config import get_settings, reset_settings
    from agent_pipeline.pipeline.celery_app import app as celery_app
    from agent_pipeline.pipeline.celery_app import configure

    for name in ("KTRDR_BROKER_URL", "KTRDR_RESULT_BACKEND"):
        monkeypatch.setenv(name, redis_url)
    monkeypatch.setenv("KTRDR_DESIGNER", "offline")
    reset_settings()
    configure(celery_app, get_settings())
    return redis_url


@pytest.fixture
def overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str, Path]]:
    """The app with its store overridden; yields the client, the override's URL and the default database file."""
    from agent_pipeline.api import deps
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    default_file = tmp_path / "default.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{default_file}")
    reset_settings()
    url = f"sqlite:///{tmp_path / 'override.db'}"
    app.dependency_overrides[deps.get_store] = lambda: get_store(url)
    try:
        with TestClient(app) as client:
            yield client, url, default_file
    finally:
        app.dependency_overrides.clear()


def test_every_route_and_page_reads_the_store_the_test_overrides(overridden) -> None:
    client, url, default_file = overridden
    # Given a cycle in the overriding store (brought up by the app's start, as the default one would be)
    store = get_store(url)
    cycle = store.create_cycle(max_active=5)
    store.start(cycle.operation_id)
    # When the API and the dashboard are asked about it
    listed = client.get("/api/v1/operations").json()["data"]
    status = client.get("/api/v1/agent/status").json()
    page = client.get(f"/ui/cycles/{cycle.operation_id}")
    overview = client.get("/api/v1/agent/overview").json()
    # Then they all read the override, and the default database was never even opened
    assert [op["operation_id"] for op in listed] == [cycle.operation_id]
    assert status["status"] == "active" and status["operation_id"] == cycle.operation_id
    assert page.status_code == 200 and cycle.operation_id in page.text
    assert [c["operation_id"] for c in overview["running"]] == [cycle.operation_id]
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    assert not default_file.exists()


def _stale_cycle(url: str) -> str:
    """A running cycle whose worker stopped heartbeating an hour ago."""
    store = get_store(url)
    cycle = store.create_cycle(max_active=1)
    store.start(cycle.operation_id)
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE operations SET heartbeat_at = now() - interval '1 hour' WHERE operation_id = :id"),
            {"id": cycle.operation_id},
        )
    return cycle.operation_id


def test_status_only_reads_a_stale_cycle_and_the_next_trigger_fails_it(postgres_url, broker, monkeypatch) -> None:
    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("KTRDR_HEARTBEAT_STALE_AFTER", "10")
    reset_settings()
    with TestClient(app) as client:
        # Given a cycle whose worker is gone (its heartbeat is an hour old)
        lost = _stale_cycle(postgres_url)
        # When the status is asked, twice: it reports the cycle and leaves its row as it is
        for _ in range(2):
            answer = client.get("/api/v1/agent/status").json()
            assert (answer["status"], answer["operation_id"]) == ("active", lost)
        assert get_store(postgres_url).get(lost).status == OperationStatus.RUNNING
        # Then the next trigger (a write) fails the lost cycle and takes its slot
        triggered = client.post("/api/v1/agent/trigger", json={"designer": "offline"})
    assert triggered.status_code == 202, triggered.text
    failed = get_store(postgres_url).get(lost)
    assert failed.status == OperationStatus.FAILED
    assert failed.error_message is not None and failed.error_message.startswith("Lost: no heartbeat for 10 s")


def test_the_evidence_page_shows_a_drawn_power_curve_and_never_draws_one(overridden, isolated_settings) -> None:
    from agent_pipeline.insight.calibration import POWER_CURVE, save_run

    client, _url, _default = overridden
    folder = isolated_settings / "artifacts" / "calibration"
    save_run({"power": [], "false_discovery_rate": 0.0}, folder)  # the fields the page reads
    # Given a saved run without its plot, the page says so and draws nothing (a GET never writes)
    page = client.get("/ui/evidence")
    assert page.status_code == 200 and 'id="no-plot"' in page.text and 'id="power-curve"' not in page.text
    assert not (folder / POWER_CURVE).exists()
    # Once the calibration has drawn it, the page shows it
    (folder / POWER_CURVE).write_bytes(b"\x89PNG\r\n\x1a\n")
    page = client.get("/ui/evidence")
    assert 'id="power-curve"' in page.text and 'id="no-plot"' not in page.text
