"""`/ui/`: the overview (running cycles, the last finished ones, spend, workers) and the trigger form."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.api.ui.guard import SessionDep
from agent_pipeline.api.ui.render import render
from agent_pipeline.api.ui.views import overview_view, trigger_options

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/")
def overview_page(
    request: Request, sid: SessionDep, store: StoreDep, settings: SettingsDep, triggered: str | None = None
) -> Response:
    """The overview; its live part refreshes itself from `/ui/live` (`static/dashboard.js`)."""
    view = {**overview_view(store, settings), **trigger_options(settings)}
    return render(request, "overview.html", sid, **view, triggered=triggered)
