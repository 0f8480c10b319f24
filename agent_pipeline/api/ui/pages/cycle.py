"""`/ui/cycles/{id}`: one cycle's page, its plots, report and strategy file, and its cancel action."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.api.ui.guard import ActionDep, SessionDep
from agent_pipeline.api.ui.render import render_or_error
from agent_pipeline.api.ui.views import cycle_view
from agent_pipeline.errors import KtrdrError, OperationNotFoundError
from agent_pipeline.insight.report import PLOT_NAMES, html_page, require_cycle, stored_plots
from agent_pipeline.pipeline import cycle

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/cycles/{cycle_id}")
def cycle_page(request: Request, cycle_id: str, sid: SessionDep, store: StoreDep) -> Response:
    return render_or_error(request, sid, "cycle.html", lambda: cycle_view(store, cycle_id))


@router.post("/cycles/{cycle_id}/cancel")
def cancel_cycle(request: Request, cycle_id: str, sid: ActionDep, store: StoreDep) -> Response:
    """Cancel as `DELETE /api/v1/operations/{id}` does; an error (already finished) shows on the cycle's page."""
    try:
        cycle.cancel(cycle_id, store=store)
    except KtrdrError as exc:
        return render_or_error(request, sid, "cycle.html", lambda: cycle_view(store, cycle_id), error=exc)
    return RedirectResponse(f"/ui/cycles/{cycle_id}", status_code=303)


@router.get("/cycles/{cycle_id}/plots/{name}")
def cycle_plot(cycle_id: str, name: str, _sid: SessionDep, store: StoreDep) -> Response:
    # The report folder is a URL in the artifact store (issue 16): stored_plots fetches it to this host.
    plots = stored_plots(store, cycle_id) if name in PLOT_NAMES else []
    path = next((plot for plot in plots if plot.name == name), None)
    if path is None:
        raise OperationNotFoundError(f"no plot {name} for {cycle_id}")
    return FileResponse(path, media_type="image/png")


@router.get("/cycles/{cycle_id}/report")
def cycle_report(cycle_id: str, _sid: SessionDep, store: StoreDep) -> Response:
    """The cycle's self-contained HTML report (the API's `/api/v1/agent/cycles/{id}/report`), behind the login."""
    require_cycle(store, cycle_id)
    return HTMLResponse(html_page(store.get(cycle_id), stored_plots(store, cycle_id)))


@router.get("/cycles/{cycle_id}/strategy.yaml")
def cycle_strategy(cycle_id: str, _sid: SessionDep, store: StoreDep) -> Response:
    text = cycle_view(store, cycle_id)["strategy_yaml"]
    if text is None:
        raise OperationNotFoundError(f"no readable strategy file for {cycle_id}")
    return Response(text, media_type="text/plain; charset=utf-8", headers={"X-Content-Type-Options": "nosniff"})
