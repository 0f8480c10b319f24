"""`GET /api/v1/agent/history`: the leaderboard of finished cycles, one indexed page per call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.api.routes.contract import MAX_OFFSET
from agent_pipeline.store.history import MAX_HISTORY_LIMIT, SortKey, leaderboard

router = APIRouter()


@router.get("/api/v1/agent/history")
def agent_history(
    store: StoreDep,
    symbol: str | None = None,
    timeframe: str | None = None,
    sort: SortKey = SortKey.DSR,
    limit: int = Query(default=20, ge=1, le=MAX_HISTORY_LIMIT),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """Finished cycles, best first by `sort` (dsr, sharpe, return, created); `lockbox_return` is for people only."""
    results = leaderboard(store, symbol=symbol, timeframe=timeframe, sort=sort, limit=limit, offset=offset)
    return {"success": True, "data": [r.to_dict() for r in results], "limit": limit, "offset": offset}
