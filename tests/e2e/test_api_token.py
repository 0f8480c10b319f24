"""One token rule for both faces (issue 26): the JSON API and the dashboard are guarded by a non-empty
KTRDR_API_TOKEN, and open when it is unset or empty (compose passes `KTRDR_API_TOKEN=""` when it is not set)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token"
OPEN_LINE = "KTRDR_API_TOKEN is not set"
# The env values that leave the API open: unset (None), empty, blank.
OPEN = [None, "", "  "]


@pytest.fixture
def start(sqlite_url, redis_url, monkeypatch, caplog) -> Iterator[object]:
    """Starts the app with KTRDR_API_TOKEN as given (None: unset) on the test Redis; yields a starter."""
    from agent_pipeline.api.app import app
    from agent_pipeline.config import get_settings, reset_settings
    from agent_pipeline.pipeline.celery_app import app as celery_app
    from agent_pipeline.pipeline.celery_app import configure

    clients: list[TestClient] = []

    def starter(token: str | None) -> TestClient:
        for name, value in {
            "DATABASE_URL": sqlite_url, "KTRDR_BROKER_URL": redis_url, "KTRDR_RESULT_BACKEND": redis_url,
            "KTRDR_DESIGNER": "offline", "KTRDR_API_TOKEN": token,
        }.items():  # fmt: skip
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_settings()
        configure(celery_app, get_settings())  # a trigger that gets through sends a real chain (no worker runs it)
        caplog.set_level(logging.WARNING, logger="agent_pipeline.api")
        client = TestClient(app, follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield starter
    for client in clients:
        client.__exit__(None, None, None)


def open_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if OPEN_LINE in r.getMessage()]


# -- the JSON API ----------------------------------------------------------------------------------------------


def test_with_a_token_the_api_wants_it_on_a_trigger_and_says_nothing_at_start(start, caplog) -> None:
    client = start(TOKEN)
    assert client.post("/api/v1/agent/trigger", json={}).status_code == 401
    assert client.post("/api/v1/agent/trigger", json={}, headers={"Authorization": "Bearer "}).status_code == 401
    accepted = client.post("/api/v1/agent/trigger", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 202, accepted.text
    assert open_lines(caplog) == []


@pytest.mark.parametrize("token", OPEN, ids=["unset", "empty", "blank"])
def test_without_a_token_the_api_accepts_a_trigger_with_no_header_and_says_it_is_open(start, caplog, token) -> None:
    client = start(token)
    accepted = client.post("/api/v1/agent/trigger", json={})
    assert accepted.status_code == 202, accepted.text
    assert len(open_lines(caplog)) == 1


# -- the dashboard ---------------------------------------------------------------------------------------------


def test_with_a_token_pages_send_to_the_login_form_which_refuses_an_empty_token(start) -> None:
    client = start(TOKEN)
    # A page sends the visitor to the login form, which is shown
    page = client.get("/ui/history")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=%2Fui%2Fhistory"
    assert client.get("/ui/login").status_code == 200
    # An empty token is refused; the right one sets the session and opens the page
    assert client.post("/ui/login", data={"token": "", "next": "/ui/history"}).status_code == 401
    logged_in = client.post("/ui/login", data={"token": TOKEN, "next": "/ui/history"})
    assert logged_in.status_code == 303 and logged_in.headers["location"] == "/ui/history"
    assert "ktrdr_session=" in logged_in.headers["set-cookie"]
    assert client.get("/ui/history").status_code == 200


@pytest.mark.parametrize("token", OPEN, ids=["unset", "empty", "blank"])
def test_without_a_token_pages_open_and_the_login_form_sends_back_to_them(start, token) -> None:
    client = start(token)
    # A first visit opens the page with a fresh session: no login form on the way
    page = client.get("/ui/history")
    assert page.status_code == 200 and "ktrdr_session=" in page.headers["set-cookie"]
    assert "Log out" not in page.text
    # The login form, and an empty token posted to it, send back to the dashboard: there is nothing to log in to
    for answer in (client.get("/ui/login"), client.post("/ui/login", data={"token": ""})):
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
