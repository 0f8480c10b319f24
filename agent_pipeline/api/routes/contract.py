"""The API's shared contract: error bodies, the statuses each route declares, and a right `Allow` on 405.

A route declares the statuses only it answers with `responses=responses(404, 409)`; `complete_contract` adds
the ones every route shares when the OpenAPI document is first built (so routers included later are covered):
401 where the token dependency guards the route, 422 where it takes input, 503 everywhere (database or broker
down). Every error body is `{"success": false, "error": "..."}` unless a route gives its own model.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_pipeline.errors import (
    BrokerUnavailableError,
    BudgetExhaustedError,
    CalibrationNotFoundError,
    CapacityError,
    ConfigurationError,
    CsrfRefusedError,
    DatabaseUnavailableError,
    InvalidOptionError,
    InvalidTransitionError,
    KtrdrError,
    OperationNotFoundError,
    PaperAccountNotFoundError,
    PaperRefusedError,
    StoreError,
    StrategyValidationError,
)

# Expected errors -> HTTP status; anything else is a 500 with a logged traceback.
STATUS_OF: dict[type[KtrdrError], int] = {
    OperationNotFoundError: 404,
    CalibrationNotFoundError: 404,
    PaperAccountNotFoundError: 404,
    PaperRefusedError: 409,
    InvalidTransitionError: 409,
    CapacityError: 409,
    BudgetExhaustedError: 429,
    DatabaseUnavailableError: 503,
    BrokerUnavailableError: 503,
    StoreError: 503,
    InvalidOptionError: 400,
    StrategyValidationError: 422,
    CsrfRefusedError: 403,
    ConfigurationError: 500,
}


def status_of(exc: KtrdrError) -> int:
    """The HTTP status of an expected error (the JSON API and the dashboard answer the same)."""
    return next((code for kind, code in STATUS_OF.items() if isinstance(exc, kind)), 500)


# The largest `offset` a paged route accepts (Postgres OFFSET is a bigint; beyond it the query itself fails).
MAX_OFFSET = 2**62


class ApiError(Exception):
    """Raised by a route or a dependency for an answer of its own: `status` with the error body and `extra`."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


class ErrorBody(BaseModel):
    """Every error answer: `{"success": false, "error": "one line"}`."""

    success: Literal[False] = False
    error: str


# What each error status means in this API (the OpenAPI description).
DESCRIPTIONS: dict[int, str] = {
    400: "A designer or option that cannot run, or a body that is not JSON",
    401: "Missing or wrong API token (only when KTRDR_API_TOKEN is set)",
    404: "No such operation, paper account, or active cycle",
    405: "Method not allowed; `Allow` lists the path's methods",
    409: "Refused by the operation's state (already finished), by capacity, or a cycle no paper account takes",
    422: "Invalid input: a parameter or body that does not validate",
    429: "Today's LLM budget is spent",
    503: "The database or the task broker is unreachable",
}


def responses(*codes: int, **models: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with `ErrorBody`, or the model passed as `_<code>=Model`.

    Example: `responses(404, 409, _409=TriggerRefused)`.
    """
    declared: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = models.get(f"_{code}", ErrorBody)
        declared[code] = {"model": model, "description": DESCRIPTIONS.get(code, "Error")}
    return declared


def complete_contract(app: FastAPI) -> None:
    """Serve an OpenAPI document with the shared statuses declared on every operation, built once on demand.

    Built from FastAPI's own document, so routers included after this call are covered too. Also answers
    Starlette's own errors (unknown path, wrong method) in the API's error shape, with a right `Allow` on 405.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = _with_shared_statuses(document)
        return app.openapi_schema

    async def http_exception(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; the path may have several routes.
            headers["Allow"] = ", ".join(allowed_methods(app.openapi(), request.url.path))
        body = {"success": False, "error": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"success": False, "error": exc.message, **exc.extra}, status_code=exc.status)

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(HTTPException, http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]
    app.add_middleware(RejectNulBytes)


def _with_shared_statuses(document: dict[str, Any]) -> dict[str, Any]:
    """503 on every operation; 401 where the token header is read; 404 where the path names a resource;
    422 (as `ErrorBody`) where input is taken."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            parameters = [p["name"].lower() for p in operation.get("parameters", [])]
            shared = [503]
            if "authorization" in parameters:
                shared.append(401)
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                shared.append(404)  # an id in the path that names nothing
            if any(name != "authorization" for name in parameters) or "requestBody" in operation:
                shared.append(422)
            for code in shared:
                answers.setdefault(str(code), {"description": DESCRIPTIONS[code], "content": error})
            if "422" in answers and "HTTPValidationError" in str(answers["422"]):
                # Our validation handler answers `ErrorBody`, not FastAPI's default `HTTPValidationError`.
                answers["422"] = {"description": DESCRIPTIONS[422], "content": error}
    return document


def allowed_methods(document: dict[str, Any], path: str) -> list[str]:
    """The methods the OpenAPI document declares for the path template that `path` matches."""
    for template, operations in document.get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), path):
            return sorted(method.upper() for method in operations)
    return []


class RejectNulBytes:
    """A NUL character anywhere in the request (path, query, JSON body) is a 422 before any route runs.

    Postgres text and JSONB cannot hold U+0000, so such input would otherwise reach the database as a 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope.get("query_string", b"").lower()
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in body or b"\\u0000" in body:
            answer = JSONResponse({"success": False, "error": "invalid input: NUL character"}, status_code=422)
            await answer(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
