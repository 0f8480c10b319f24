"""The OpenAPI document is the API's contract: schemathesis fuzzes every route it lists, with every check.

It runs against the real app on a real Postgres database and a real Redis (the trigger sends real chains,
which no worker consumes). Every route the app serves is covered, including routers added later.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from agent_pipeline.api.app import app as api_app
from tests.services import POSTGRES_URL_PREFIX, create_database, drop_database

pytestmark = pytest.mark.e2e

# Operations whose schema-valid input the app may still refuse on meaning, each with its documented status: the
# trigger's `strategy` is YAML text checked against the strategy grammar (422), `designer: anthropic` needs an
# API key (400). Every other check still runs on them.
SEMANTIC_BODIES = {"POST /api/v1/agent/trigger"}
# Generated cases per operation: enough to reach every declared status, small enough to stay well under 60 s.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def contract_database() -> Iterator[str]:
    """One Postgres database for every generated case (a finished cycle in it, so cancelling it is a 409)."""
    name = create_database("ktrdr_contract")
    yield POSTGRES_URL_PREFIX + name
    drop_database(name)


@pytest.fixture(autouse=True)
def contract_stack(contract_database: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_pipeline.config import get_settings, reset_settings
    from agent_pipeline.pipeline.celery_app import app as celery_app
    from agent_pipeline.pipeline.celery_app import configure
    from agent_pipeline.store.operations import get_store

    for name, value in {
        "DATABASE_URL": contract_database,
        "KTRDR_BROKER_URL": redis_url,
        "KTRDR_RESULT_BACKEND": redis_url,
        "KTRDR_DESIGNER": "offline",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    configure(celery_app, get_settings())
    store = get_store()
    store.upgrade()
    if not store.list(limit=1):
        finished = store.create_cycle(max_active=1)
        store.start(finished.operation_id)
        store.complete(finished.operation_id, result_summary={})


# Loaded from the app itself (no server, no lifespan): every route it serves, including later routers.
schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
# Postgres cannot store U+0000: the API refuses it with a 422 before any route (see routes/contract.py), which
# schemathesis would count against the (plain string) schema; leave it out of generated strings. Deterministic
# generation keeps `make test` repeatable.
schema.config.generation.update(allow_x00=False, deterministic=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_keeps_its_openapi_contract(case: Any) -> None:
    excluded = [positive_data_acceptance] if case.operation.label in SEMANTIC_BODIES else []
    case.call_and_validate(excluded_checks=excluded)


def test_every_route_declares_the_statuses_every_route_shares() -> None:
    paths = api_app.openapi()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            assert "503" in declared, (method, path)
            if path != "/api/v1/health":
                assert "401" in declared, (method, path)
    trigger = paths["/api/v1/agent/trigger"]["post"]["responses"]
    assert {"202", "400", "401", "409", "422", "429", "503"} <= set(trigger)
    assert trigger["409"]["content"]["application/json"]["schema"]["$ref"].endswith("TriggerRefused")


def test_a_wrong_method_answers_405_with_every_method_of_the_path() -> None:
    from fastapi.testclient import TestClient

    with TestClient(api_app) as client:
        answer = client.put("/api/v1/operations/op_unknown")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET"
    assert answer.json() == {"success": False, "error": "Method Not Allowed"}


def test_a_nul_character_anywhere_in_a_request_is_a_422_not_a_500() -> None:
    from fastapi.testclient import TestClient

    with TestClient(api_app) as client:
        answers = [
            client.get("/api/v1/operations/op_%00"),
            client.get("/api/v1/operations", params={"parent": "a\x00b"}),
            client.post("/api/v1/agent/trigger", json={"symbol": "EUR\x00USD"}),
        ]
    for answer in answers:
        assert answer.status_code == 422
        assert answer.json() == {"success": False, "error": "invalid input: NUL character"}
