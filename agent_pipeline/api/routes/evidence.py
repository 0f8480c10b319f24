"""`GET /api/v1/agent/evidence`: per series, trials, best strategies by deflated Sharpe, SPA p-value."""

from __future__ import annotations

from fastapi import APIRouter

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.insight.evidence import Evidence, collect

router = APIRouter()


@router.get("/api/v1/agent/evidence")
def agent_evidence(store: StoreDep, symbol: str | None = None, timeframe: str | None = None) -> Evidence:
    """Research-period figures only: the lockbox is never read here."""
    return collect(store, symbol=symbol, timeframe=timeframe)
