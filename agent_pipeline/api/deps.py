"""What the routes and the pages depend on (FastAPI's `Depends`): the store, the settings and the token rule.

Every route and page takes its store from `get_store`, so a test swaps it with `app.dependency_overrides`
(the FastAPI full-stack template's `api/deps.py`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import Depends, FastAPI, Header

from agent_pipeline.api.routes.contract import ApiError
from agent_pipeline.config import Settings, get_settings
from agent_pipeline.store import operations
from agent_pipeline.store.operations import OperationsStore

logger = logging.getLogger(__name__)


def get_store() -> OperationsStore:
    """The process's store (settings.database_url)."""
    return operations.get_store()


def app_store(app: FastAPI) -> OperationsStore:
    """The store `app` serves, overrides included: for start-up, where no request asks for it."""
    return app.dependency_overrides.get(get_store, get_store)()  # type: ignore[no-any-return]


StoreDep = Annotated[OperationsStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def api_token(settings: Settings) -> str | None:
    """The token a request must show, or None when the API is open.

    The one rule for the JSON API and the dashboard: an empty KTRDR_API_TOKEN (what compose passes when it is
    not set) means unset, so both faces are open, and nobody can log in with an empty token.
    """
    token = settings.api_token.get_secret_value().strip() if settings.api_token else ""
    return token or None


def token_matches(given: str | None, settings: Settings) -> bool:
    """Whether `given` is the API token (compared in constant time); always False while the API is open."""
    token = api_token(settings)
    return token is not None and secrets.compare_digest((given or "").strip().encode(), token.encode())


def require_token(settings: SettingsDep, authorization: str | None = Header(default=None)) -> None:
    """When the API has a token, every endpoint but /health wants `Authorization: Bearer <token>`.

    Raises:
        ApiError: 401, the header is missing or names another token.
    """
    if api_token(settings) is None:
        return
    if not token_matches((authorization or "").removeprefix("Bearer "), settings):
        raise ApiError(401, "missing or wrong API token")


def announce_open_api(settings: Settings) -> None:
    """One warning line at start when the API and the dashboard are open (no token)."""
    if api_token(settings) is None:
        logger.warning("KTRDR_API_TOKEN is not set: the API and the dashboard are open to anyone who can reach them")
