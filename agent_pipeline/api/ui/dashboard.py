"""The research dashboard (`/ui`): server-rendered pages over the views the JSON API and the CLI read.

Pages (one module each under `pages/`): the overview (its live part refreshed by `static/dashboard.js` from
`/ui/live`), the leaderboard, a cycle, the evidence, the login form. Actions (trigger, cancel) call
`pipeline.cycle` as the API does and show its error messages with its statuses.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agent_pipeline.api.ui.guard import install_guards
from agent_pipeline.api.ui.pages import cycle, evidence, history, live, login, overview, paper, trigger
from agent_pipeline.api.ui.render import UI_DIR

PAGES = (login, overview, live, history, cycle, evidence, trigger, paper)


def install(app: FastAPI) -> None:
    """Serve the dashboard on `app`: the pages, their static files, the login form and the CSRF refusal."""
    for page in PAGES:
        app.include_router(page.router)
    app.mount("/ui/static", StaticFiles(directory=UI_DIR / "static"), name="ui-static")
    install_guards(app)
