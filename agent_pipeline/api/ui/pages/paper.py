"""`/ui/paper` and `/ui/paper/{id}`: paper accounts (issue 27), their forward equity against the backtest's expected
path and band, and the decay alarm. Paper only: no live broker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.api.ui.guard import SessionDep
from agent_pipeline.api.ui.render import HEADERS, render, render_or_error
from agent_pipeline.insight.paper import account_view, equity_chart
from agent_pipeline.store.paper import get_account, list_accounts
from agent_pipeline.store.paper_ledger import equity_curve

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/paper")
def paper_page(request: Request, sid: SessionDep, store: StoreDep) -> Response:
    return render(request, "paper_list.html", sid, accounts=[a.to_dict() for a in list_accounts(store)])


@router.get("/paper/{account_id}")
def paper_account_page(request: Request, account_id: str, sid: SessionDep, store: StoreDep) -> Response:
    return render_or_error(request, sid, "paper.html", lambda: {"account": account_view(store, account_id)})


@router.get("/paper/{account_id}/equity.svg")
def paper_chart(account_id: str, _sid: SessionDep, store: StoreDep) -> Response:
    """The account's forward equity against the backtest's expected path and band, drawn now."""
    account = get_account(store, account_id)
    headers = {**HEADERS, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
    return Response(equity_chart(account, equity_curve(store, account_id)), media_type="image/svg+xml", headers=headers)
