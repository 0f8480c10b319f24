"""`/ui/live`: the overview's live part alone, which the overview fetches every LIVE_INTERVAL_MS."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.api.ui.guard import SessionDep
from agent_pipeline.api.ui.render import render
from agent_pipeline.api.ui.views import overview_view

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/live")
def live_part(request: Request, sid: SessionDep, store: StoreDep, settings: SettingsDep) -> Response:
    return render(request, "live.html", sid, **overview_view(store, settings))
