"""`/api/v1/paper`: paper accounts of a discovery's final model (issue 27), as `ktrdr paper` gives them.

Paper only: no route here reaches a live broker. The beat steps the accounts; these routes open, read and stop them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.api.routes.contract import responses
from agent_pipeline.insight.paper import account_view
from agent_pipeline.pipeline.paper import DEFAULT_CAPITAL, open_account
from agent_pipeline.store.paper import list_accounts, stop_account

router = APIRouter()

PaperStateName = Literal["open", "decayed", "stopped"]


class PaperAccountData(BaseModel):
    """A paper account (`ktrdr paper status --json`'s data); more fields than these are listed."""

    model_config = ConfigDict(extra="allow")

    id: str
    mode: Literal["paper"] = "paper"
    cycle_id: str
    symbol: str
    timeframe: str
    state: PaperStateName
    capital: float
    equity: float
    bars: int = Field(description="Forward bars booked")
    decay: dict[str, Any] = Field(description="The decay alarm: fired, bar, statistic, threshold")


class PaperAccountAnswer(BaseModel):
    success: Literal[True] = True
    data: PaperAccountData


class PaperAccountsAnswer(BaseModel):
    success: Literal[True] = True
    data: list[PaperAccountData]


class PaperStart(BaseModel):
    """Open a paper account for a completed cycle's final model; a cycle that is not a discovery needs `force`."""

    model_config = ConfigDict(extra="forbid")

    cycle_id: str = Field(min_length=1, max_length=80)
    capital: float = Field(default=DEFAULT_CAPITAL, gt=0, le=1e15)
    force: bool = False
    stop_on_decay: bool = False


@router.get("/api/v1/paper")
def paper_accounts(store: StoreDep, state: PaperStateName | None = None) -> PaperAccountsAnswer:
    """Every paper account, newest first; only those in `state` with it."""
    accounts = list_accounts(store, states=(state,) if state else None)
    return PaperAccountsAnswer(data=[PaperAccountData(**a.to_dict()) for a in accounts])


@router.post("/api/v1/paper", status_code=201, responses=responses(400, 404, 409))
def paper_start(store: StoreDep, body: PaperStart) -> PaperAccountAnswer:
    """Open a paper account (400: a body that is not JSON; 404: no such cycle; 409: refused, with the one-line
    reason)."""
    account = open_account(
        store, body.cycle_id, capital=body.capital, force=body.force, stop_on_decay=body.stop_on_decay
    )
    return PaperAccountAnswer(data=PaperAccountData(**account.to_dict()))


@router.get("/api/v1/paper/{account_id}")
def paper_account(store: StoreDep, account_id: str) -> PaperAccountAnswer:
    """One account with its positions, latest fills, and the backtest's expected equity now."""
    return PaperAccountAnswer(data=PaperAccountData(**account_view(store, account_id)))


@router.post("/api/v1/paper/{account_id}/stop")
def paper_stop(store: StoreDep, account_id: str) -> PaperAccountAnswer:
    """Stop an account: it books no bar after this; stopping it again changes nothing."""
    return PaperAccountAnswer(data=PaperAccountData(**stop_account(store, account_id).to_dict()))
