"""`/ui/login` and `/ui/logout`: the token form that sets the session cookie, only while the API has a token."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from agent_pipeline.api.ui import session
from agent_pipeline.api.ui.guard import ActionDep
from agent_pipeline.api.ui.render import render_bare, set_cookie

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/login")
def login_form(next: str = "/ui/") -> Response:  # noqa: A002 - the usual name
    """The token form; without a token there is nothing to log in to."""
    if not session.login_required():
        return RedirectResponse("/ui/", status_code=303)
    return _login_page(safe_next(next))


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/ui/")) -> Response:  # noqa: A002
    """The right token sets a session cookie and opens the page asked for; a wrong one is a 401."""
    if not session.login_required():
        return RedirectResponse("/ui/", status_code=303)
    if not session.token_matches(token):
        return _login_page(safe_next(next), error="wrong token", status_code=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, request, session.new_session())
    return response


@router.post("/logout")
def logout(_sid: ActionDep) -> Response:
    response = RedirectResponse("/ui/login" if session.login_required() else "/ui/", status_code=303)
    response.delete_cookie(session.COOKIE, path="/ui")
    return response


def _login_page(next_page: str, *, error: str | None = None, status_code: int = 200) -> Response:
    return render_bare("login.html", status_code=status_code, next=next_page, error=error, login=True)


def safe_next(target: str) -> str:
    """Only a path of the dashboard: never another site (`//evil`, `https://evil`)."""
    return target if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target else "/ui/"
