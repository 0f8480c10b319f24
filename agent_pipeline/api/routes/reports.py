"""`GET /api/v1/agent/cycles/{id}/report`: a cycle's self-contained HTML report (plots inline)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.insight.report import html_page, require_cycle, stored_plots

router = APIRouter()


@router.get("/api/v1/agent/cycles/{cycle_id}/report", response_class=HTMLResponse)
def cycle_report(cycle_id: str, store: StoreDep) -> HTMLResponse:
    """The cycle's summary and its plots (drawn now if the cycle has none yet) as one HTML page."""
    require_cycle(store, cycle_id)
    plots = stored_plots(store, cycle_id)
    return HTMLResponse(html_page(store.get(cycle_id), plots))
