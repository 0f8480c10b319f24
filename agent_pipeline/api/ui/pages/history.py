"""`/ui/history`: the leaderboard, with `ktrdr agent history`'s filters and sorts, one page at a time."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.api.ui.guard import SessionDep
from agent_pipeline.api.ui.render import render
from agent_pipeline.api.ui.views import history_view, trigger_options
from agent_pipeline.store.history import SortKey

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/history")
def history_page(
    request: Request,
    sid: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    symbol: str = "",
    timeframe: str = "",
    sort: SortKey = SortKey.DSR,
    page: int = 1,
) -> Response:
    view = history_view(store, symbol=symbol or None, timeframe=timeframe or None, sort=sort, page=max(1, page))
    return render(request, "history.html", sid, **view, **trigger_options(settings))
