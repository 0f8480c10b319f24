"""The research dashboard (`/ui`): server-rendered pages over the views the JSON API and the CLI read.

Pages: the overview (its live part refreshed by `static/dashboard.js` from `/ui/live`), the leaderboard, a
cycle, the evidence. Actions (trigger, cancel) call `pipeline.cycle` as the API does and show its error
messages with its statuses (`routes.contract.status_of`). Jinja2 escapes every value (autoescape on for every
template), and a strict Content-Security-Policy allows only this origin's script and style files: a strategy
named `<script>` shows as text, and even a value that escaped escaping could not run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from agent_pipeline.api.routes.contract import status_of
from agent_pipeline.api.ui import session
from agent_pipeline.api.ui.views import cycle_view, duration, history_view, overview_view, trigger_options, when
from agent_pipeline.config import get_settings
from agent_pipeline.errors import CsrfRefusedError, KtrdrError, OperationNotFoundError
from agent_pipeline.insight import evidence
from agent_pipeline.insight.calibration import POWER_CURVE, load_run, plot_power_curve
from agent_pipeline.insight.report import PLOT_NAMES, html_page, plots_of, require_cycle
from agent_pipeline.insight.summary import num, pct
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.pipeline.user_strategy import MAX_STRATEGY_BYTES, decode_strategy
from agent_pipeline.store.history import SortKey
from agent_pipeline.store.operations import get_store

UI_DIR = Path(__file__).parent
# How often (ms) the overview refreshes its live part; the issue asks for at most 2 s.
LIVE_INTERVAL_MS = 1500
# Only this origin's files; no inline script or style, no framing, forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(UI_DIR / "templates"),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
)
templates.filters.update(pct=pct, num=num, when=when, duration=duration)


class LoginRequiredError(Exception):
    """Raised when a page is asked for without a valid session while KTRDR_API_TOKEN is set."""


def install(app: FastAPI) -> None:
    """Serve the dashboard on `app`: the pages, their static files, the redirect to the login form."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=UI_DIR / "static"), name="ui-static")
    app.add_exception_handler(LoginRequiredError, _to_login)
    app.add_exception_handler(CsrfRefusedError, _csrf_refused)


async def _csrf_refused(_request: Request, exc: Exception) -> Response:
    page = templates.get_template("error.html").render(error=str(exc), login=session.login_required(), csrf="")
    return HTMLResponse(page, status_code=status_of(exc) if isinstance(exc, KtrdrError) else 403, headers=HEADERS)


async def _to_login(request: Request, _exc: Exception) -> Response:
    if request.url.path == "/ui/live":  # the live part's fetch: the page itself sends the person to the form
        return Response(status_code=401)
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': asked})}", status_code=303)


def current_session(request: Request) -> str:
    """The request's session; without one, a new one (no token set) or the login form (token set)."""
    value = request.cookies.get(session.COOKIE)
    if value is not None and session.valid_session(value):
        return value
    if session.login_required():
        raise LoginRequiredError()
    request.state.new_session = session.new_session()
    return str(request.state.new_session)


def checked_session(request: Request, csrf: str = Form("")) -> str:
    """The session of an action, whose form must carry the session's CSRF token."""
    value = request.cookies.get(session.COOKIE)
    if value is None or not session.csrf_matches(value, csrf):
        raise CsrfRefusedError("this form expired or came from another site: reload the page and try again")
    return value


def render(request: Request, name: str, sid: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with the session's CSRF token; sets a new session's cookie."""
    page = templates.get_template(name).render(
        csrf=session.csrf_token(sid), login=session.login_required(), live_interval=LIVE_INTERVAL_MS, **context
    )
    response = HTMLResponse(page, status_code=status_code, headers=HEADERS)
    if getattr(request.state, "new_session", None) == sid:
        set_cookie(response, request, sid)
    return response


def set_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        session.COOKIE, value, max_age=session.SESSION_MAX_AGE, path="/ui", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


# -- login ---------------------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str = "/ui/") -> Response:  # noqa: A002 - the usual name
    if not session.login_required():
        return RedirectResponse("/ui/", status_code=303)
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/ui/")) -> Response:  # noqa: A002
    if not session.login_required():
        return RedirectResponse("/ui/", status_code=303)
    if not session.token_matches(token):
        return _login_page(request, safe_next(next), error="wrong token", status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, request, session.new_session())
    return response


def _login_page(request: Request, next_page: str, *, error: str | None = None, status_code: int = 200) -> Response:
    page = templates.get_template("login.html").render(next=next_page, error=error, login=True, csrf="")
    return HTMLResponse(page, status_code=status_code, headers=HEADERS)


def safe_next(target: str) -> str:
    """Only a path of the dashboard: never another site (`//evil`, `https://evil`)."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"


@router.post("/logout")
def logout(sid: str = Depends(checked_session)) -> Response:
    response = RedirectResponse("/ui/login" if session.login_required() else "/ui/", status_code=303)
    response.delete_cookie(session.COOKIE, path="/ui")
    return response


# -- pages ---------------------------------------------------------------------------------------------------


@router.get("/")
def overview_page(request: Request, sid: str = Depends(current_session), triggered: str | None = None) -> Response:
    return render(request, "overview.html", sid, **overview_view(), **trigger_options(), triggered=triggered)


@router.get("/live")
def live_part(request: Request, sid: str = Depends(current_session)) -> Response:
    """The overview's live part alone, which the page fetches every LIVE_INTERVAL_MS."""
    return render(request, "live.html", sid, **overview_view())


@router.get("/history")
def history_page(
    request: Request,
    sid: str = Depends(current_session),
    symbol: str = "",
    timeframe: str = "",
    sort: SortKey = SortKey.DSR,
    page: int = 1,
) -> Response:
    view = history_view(symbol=symbol or None, timeframe=timeframe or None, sort=sort, page=max(1, page))
    return render(request, "history.html", sid, **view, **trigger_options())


@router.get("/cycles/{cycle_id}")
def cycle_page(request: Request, cycle_id: str, sid: str = Depends(current_session)) -> Response:
    return _page_or_error(request, sid, "cycle.html", lambda: cycle_view(get_store(), cycle_id))


@router.get("/evidence")
def evidence_page(
    request: Request, sid: str = Depends(current_session), symbol: str = "", timeframe: str = ""
) -> Response:
    found = evidence.collect(get_store(), symbol=symbol or None, timeframe=timeframe or None)
    calibration = _calibration()
    return render(
        request, "evidence.html", sid, evidence=found, calibration=calibration, symbol=symbol, timeframe=timeframe
    )


def _calibration() -> dict[str, Any] | None:
    """The last calibration run with its power curve drawn (once), or None when there is none."""
    folder = _calibration_dir()
    try:
        record = load_run(folder)
    except KtrdrError:
        return None
    if not (folder / POWER_CURVE).is_file():
        plot_power_curve(record, folder / POWER_CURVE)
    return record


def _calibration_dir() -> Path:
    artifacts = get_settings().artifacts_dir
    assert artifacts is not None
    return artifacts / "calibration"


# -- artifacts -----------------------------------------------------------------------------------------------


@router.get("/cycles/{cycle_id}/plots/{name}")
def cycle_plot(cycle_id: str, name: str, _sid: str = Depends(current_session)) -> Response:
    # The report folder is a URL in the artifact store (issue 16): plots_of fetches it to this host.
    plots = plots_of(get_store(), cycle_id) if name in PLOT_NAMES else []
    path = next((plot for plot in plots if plot.name == name), None)
    if path is None:
        raise OperationNotFoundError(f"no plot {name} for {cycle_id}")
    return FileResponse(path, media_type="image/png")


@router.get("/cycles/{cycle_id}/report")
def cycle_report(cycle_id: str, _sid: str = Depends(current_session)) -> Response:
    """The cycle's self-contained HTML report (the API's `/api/v1/agent/cycles/{id}/report`), behind the login."""
    store = get_store()
    require_cycle(store, cycle_id)
    return HTMLResponse(html_page(store.get(cycle_id), plots_of(store, cycle_id)))


@router.get("/cycles/{cycle_id}/strategy.yaml")
def cycle_strategy(cycle_id: str, _sid: str = Depends(current_session)) -> Response:
    text = cycle_view(get_store(), cycle_id)["strategy_yaml"]
    if text is None:
        raise OperationNotFoundError(f"no readable strategy file for {cycle_id}")
    return Response(text, media_type="text/plain; charset=utf-8", headers={"X-Content-Type-Options": "nosniff"})


@router.get("/calibration/power_curve.png")
def power_curve(_sid: str = Depends(current_session)) -> Response:
    path = _calibration_dir() / POWER_CURVE
    if not path.is_file():
        raise OperationNotFoundError("no calibration run yet: run `ktrdr agent calibrate`")
    return FileResponse(path, media_type="image/png")


# -- actions -------------------------------------------------------------------------------------------------


@router.post("/trigger")
def trigger_cycle(
    request: Request,
    sid: str = Depends(checked_session),
    series: str = Form(""),
    designer: str = Form(""),
    bypass_gates: bool = Form(False),
    strategy_file: UploadFile | None = File(None),
) -> Response:
    """Trigger a cycle as `POST /api/v1/agent/trigger` does; an error shows on the overview with its status."""
    try:
        options = trigger_options_of(series, designer, bypass_gates, strategy_file)
        operation = cycle.trigger(options)
    except KtrdrError as exc:
        return render(
            request, "overview.html", sid, status_code=status_of(exc), error=str(exc), triggered=None,
            **overview_view(), **trigger_options(),
        )  # fmt: skip
    return RedirectResponse(f"/ui/?{urlencode({'triggered': operation.operation_id})}", status_code=303)


def trigger_options_of(series: str, designer: str, bypass_gates: bool, upload: UploadFile | None) -> CycleOptions:
    """The CycleOptions of the trigger form (a series `SYMBOL TIMEFRAME`, a designer, an uploaded strategy)."""
    symbol, _, timeframe = series.strip().partition(" ")
    strategy = None
    if upload is not None and upload.filename:
        strategy = decode_strategy(upload.file.read(MAX_STRATEGY_BYTES + 1), name=upload.filename)
    return CycleOptions(
        bypass_gates=bypass_gates, designer=designer or None, symbol=symbol or None, timeframe=timeframe or None,
        strategy=strategy,
    )  # fmt: skip


@router.post("/cycles/{cycle_id}/cancel")
def cancel_cycle(request: Request, cycle_id: str, sid: str = Depends(checked_session)) -> Response:
    """Cancel as `DELETE /api/v1/operations/{id}` does; an error (already finished) shows on the cycle's page."""
    try:
        cycle.cancel(cycle_id)
    except KtrdrError as exc:
        return _page_or_error(request, sid, "cycle.html", lambda: cycle_view(get_store(), cycle_id), error=exc)
    return RedirectResponse(f"/ui/cycles/{cycle_id}", status_code=303)


def _page_or_error(
    request: Request, sid: str, name: str, view: Callable[[], dict[str, Any]], *, error: KtrdrError | None = None
) -> Response:
    """The page, or the error page with the API's status and message when its view raises."""
    try:
        context = view()
    except KtrdrError as exc:
        return render(request, "error.html", sid, status_code=status_of(exc), error=str(exc))
    status = status_of(error) if error else 200
    return render(request, name, sid, status_code=status, error=str(error) if error else None, **context)
