"""Who may see a page and send an action: the session a page needs, the CSRF token an action needs.

Pages want a valid session only when the API has a token (`deps.api_token`); without one, a first visit gets
a fresh session. Every action (a POST) wants its session's CSRF token in the form.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from agent_pipeline.api.routes.contract import status_of
from agent_pipeline.api.ui import session
from agent_pipeline.api.ui.render import render_bare
from agent_pipeline.errors import CsrfRefusedError, KtrdrError


class LoginRequiredError(Exception):
    """Raised when a page is asked for without a valid session while the API has a token."""


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
    """The session of an action, whose form must carry the session's CSRF token.

    Raises:
        CsrfRefusedError: no session cookie, or a form without its CSRF token.
    """
    value = request.cookies.get(session.COOKIE)
    if value is None or not session.csrf_matches(value, csrf):
        raise CsrfRefusedError("this form expired or came from another site: reload the page and try again")
    return value


# A page's session (`sid`) and an action's checked session.
SessionDep = Annotated[str, Depends(current_session)]
ActionDep = Annotated[str, Depends(checked_session)]


def install_guards(app: FastAPI) -> None:
    """Answer a missing login with the login form and a refused action with the error page."""
    app.add_exception_handler(LoginRequiredError, _to_login)
    app.add_exception_handler(CsrfRefusedError, _csrf_refused)


async def _csrf_refused(_request: Request, exc: Exception) -> Response:
    status = status_of(exc) if isinstance(exc, KtrdrError) else 403
    return render_bare("error.html", status_code=status, error=str(exc), login=session.login_required())


async def _to_login(request: Request, _exc: Exception) -> Response:
    if request.url.path == "/ui/live":  # the live part's fetch: the page itself sends the person to the form
        return Response(status_code=401)
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': asked})}", status_code=303)
