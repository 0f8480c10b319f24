"""The HTTP API (`ktrdr api`, port 8000): the same cycle and operations services as the CLI."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agent_pipeline.api.deps import SettingsDep, StoreDep, announce_open_api, app_store, require_token
from agent_pipeline.api.routes import calibration, evidence, history, lockbox, metrics, overview, paper, reports
from agent_pipeline.api.routes.contract import MAX_OFFSET, complete_contract, responses, status_of
from agent_pipeline.api.ui import dashboard
from agent_pipeline.config import get_settings
from agent_pipeline.errors import BudgetExhaustedError, CapacityError, KtrdrError
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.store.operations import MAX_LIST_LIMIT, OperationStatus, OperationType


class TriggerRequest(CycleOptions):
    """The trigger's body: the cycle options, with the designer spelled out for OpenAPI."""

    designer: Literal["auto", "anthropic", "offline", "random"] | None = None


class TriggerAccepted(BaseModel):
    """202: the cycle exists and its chain is sent."""

    triggered: Literal[True] = True
    operation_id: str
    status: str


class TriggerRefused(BaseModel):
    """409 (`active_cycle_exists`) or 429 (`budget_exhausted`): no cycle was created."""

    triggered: Literal[False] = False
    reason: str
    message: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class CancelAnswer(BaseModel):
    success: Literal[True] = True
    operation_id: str
    status: str


class Budget(BaseModel):
    """Today's LLM spend in USD."""

    spent_usd: float
    budget_usd: float
    remaining_usd: float


class OperationAnswer(BaseModel):
    success: Literal[True] = True
    data: dict[str, Any]


class OperationsPage(BaseModel):
    """One page, newest first; `total` only when asked (`total=true`)."""

    success: Literal[True] = True
    data: list[dict[str, Any]]
    limit: int
    offset: int
    total: int | None = None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> Any:
    app_store(app).upgrade()  # the API brings the schema up at start, like the workers
    cycle.chain_tasks()  # and imports the chain's tasks, so no trigger pays for them
    announce_open_api(get_settings())
    yield


app = FastAPI(title="ktrdr agent pipeline", version="0.1.0", lifespan=_lifespan)
api = Depends(require_token)
complete_contract(app)  # 401 / 422 / 503 on every route, Allow on 405


@app.exception_handler(KtrdrError)
async def _ktrdr_error(_request: Request, exc: KtrdrError) -> JSONResponse:
    return JSONResponse({"success": False, "error": str(exc)}, status_code=status_of(exc))


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
    return JSONResponse({"success": False, "error": f"invalid {where}: {first.get('msg')}"}, status_code=422)


@app.get("/api/v1/health")
def health(store: StoreDep) -> Health:
    store.ping()
    return Health()


@app.post(
    "/api/v1/agent/trigger",
    status_code=202,
    dependencies=[api],
    response_model=TriggerAccepted,
    responses=responses(400, 409, 429, _409=TriggerRefused, _429=TriggerRefused),
)
def trigger(store: StoreDep, body: TriggerRequest | None = None) -> JSONResponse:
    options = body or TriggerRequest()
    try:
        operation = cycle.trigger(options, store=store)
    except (CapacityError, BudgetExhaustedError) as exc:
        status = 409 if isinstance(exc, CapacityError) else 429
        return JSONResponse({"triggered": False, "reason": exc.reason, "message": str(exc)}, status_code=status)
    return JSONResponse(
        {"triggered": True, "operation_id": operation.operation_id, "status": operation.status.value},
        status_code=202,
    )


@app.get("/api/v1/agent/status", dependencies=[api])
def agent_status(store: StoreDep) -> cycle.ActiveStatus | cycle.IdleStatus:
    return cycle.status(store)  # a read only: the worker's timer and the trigger fail stale rows (issue 26)


@app.delete("/api/v1/agent/cancel", dependencies=[api], responses=responses(404, 409))
def agent_cancel(store: StoreDep) -> CancelAnswer:
    operation = cycle.cancel(store=store)
    return CancelAnswer(operation_id=operation.operation_id, status=operation.status.value)


@app.get("/api/v1/agent/budget", dependencies=[api])
def agent_budget(store: StoreDep, settings: SettingsDep) -> Budget:
    budget = settings.daily_budget_usd
    spent = cycle.spent_today(store)
    return Budget(spent_usd=round(spent, 6), budget_usd=budget, remaining_usd=round(max(0.0, budget - spent), 6))


@app.get("/api/v1/operations", dependencies=[api], response_model=OperationsPage, response_model_exclude_unset=True)
def list_operations(
    store: StoreDep,
    type: OperationType | None = None,  # noqa: A002 - the user's query parameter name
    status: OperationStatus | None = None,
    parent: str | None = None,
    limit: int = Query(default=20, ge=1, le=MAX_LIST_LIMIT),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    total: bool = False,
) -> dict[str, Any]:
    rows = store.list(operation_type=type, status=status, parent_operation_id=parent, limit=limit, offset=offset)
    body: dict[str, Any] = {
        "success": True,
        "data": [op.to_dict() for op in rows],
        "limit": limit,
        "offset": offset,
    }
    if total:  # an exact count is paid for only when asked
        body["total"] = store.count(operation_type=type, status=status, parent_operation_id=parent)
    return body


@app.get("/api/v1/operations/{operation_id}", dependencies=[api], responses=responses(404))
def get_operation(operation_id: str, store: StoreDep) -> OperationAnswer:
    return OperationAnswer(data=store.get(operation_id).to_dict())


@app.delete("/api/v1/operations/{operation_id}", dependencies=[api], responses=responses(404, 409))
def cancel_operation(operation_id: str, store: StoreDep) -> OperationAnswer:
    operation = cycle.cancel(operation_id, store=store)
    return OperationAnswer(data=operation.to_dict())


app.include_router(history.router, dependencies=[api])  # the leaderboard (issue 10)
app.include_router(evidence.router, dependencies=[api])  # evidence across trials (issue 8)
app.include_router(calibration.router, dependencies=[api])  # power and size of the loop (issue 14)
app.include_router(metrics.router, dependencies=[api])  # Prometheus /metrics (issue 10)
app.include_router(reports.router, dependencies=[api])  # cycle reports with plots (issue 10)
app.include_router(overview.router, dependencies=[api])  # the dashboard's overview as JSON (issue 18)
app.include_router(lockbox.router, dependencies=[api])  # the lockbox's read log (issue 25)
app.include_router(paper.router, dependencies=[api])  # paper accounts and their decay alarm (issue 27)
dashboard.install(app)  # the research dashboard under /ui: its own login cookie and CSRF tokens (issue 18)
