"""`GET /api/v1/agent/evidence`: per series, trials, best strategies by deflated Sharpe, SPA p-value."""

from __future__ import annotations

from fastapi import APIRouter

from agent_pipeline.insight.evidence import Evidence, collect
from agent_pipeline.store.operations import get_store

router = APIRouter()


@router.get("/api/v1/agent/evidence")
def agent_evidence(symbol: str | None = None, timeframe: str | None = None) -> Evidence:
    """Research-period figures only: the lockbox is never read here."""
    return collect(get_store(), symbol=symbol, timeframe=timeframe)
