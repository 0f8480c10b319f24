"""How every dashboard page is answered: Jinja2 templates, the security headers, the session cookie.

Jinja2 escapes every value (autoescape on for every template), and a strict Content-Security-Policy allows only
this origin's script and style files: a strategy named `<script>` shows as text, and even a value that escaped
escaping could not run. Errors show with the JSON API's statuses (`routes.contract.status_of`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from agent_pipeline.api.routes.contract import status_of
from agent_pipeline.api.ui import session
from agent_pipeline.api.ui.views import duration, when
from agent_pipeline.errors import KtrdrError
from agent_pipeline.insight.summary import num, pct

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

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(UI_DIR / "templates"),
    autoescape=True,  # every template, whatever its file name
    undefined=jinja2.StrictUndefined,
)
templates.filters.update(pct=pct, num=num, when=when, duration=duration)


def render(request: Request, name: str, sid: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with the session's CSRF token; sets a new session's cookie."""
    page = templates.get_template(name).render(
        csrf=session.csrf_token(sid), login=session.login_required(), live_interval=LIVE_INTERVAL_MS, **context
    )
    response = HTMLResponse(page, status_code=status_code, headers=HEADERS)
    if getattr(request.state, "new_session", None) == sid:
        set_cookie(response, request, sid)
    return response


def render_bare(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page outside any session (the login form, a refused action): no CSRF token, no cookie."""
    page = templates.get_template(name).render(csrf="", **context)
    return HTMLResponse(page, status_code=status_code, headers=HEADERS)


def render_or_error(
    request: Request, sid: str, name: str, view: Callable[[], dict[str, Any]], *, error: KtrdrError | None = None
) -> HTMLResponse:
    """The page, or the error page with the API's status and message when its view raises."""
    try:
        context = view()
    except KtrdrError as exc:
        return render(request, "error.html", sid, status_code=status_of(exc), error=str(exc))
    status = status_of(error) if error else 200
    return render(request, name, sid, status_code=status, error=str(error) if error else None, **context)


def set_cookie(response: Response, request: Request, value: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, only under /ui, Secure over https."""
    response.set_cookie(
        session.COOKIE, value, max_age=session.SESSION_MAX_AGE, path="/ui", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
