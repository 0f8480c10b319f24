"""`GET /api/v1/agent/lockbox-log`: every read of a series' lockbox, oldest first (issue 25; store/lockbox.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from agent_pipeline.api.deps import StoreDep
from agent_pipeline.store.lockbox import list_reads

router = APIRouter()


class LockboxReadEntry(BaseModel):
    """One read: which cycle's strategy document and final model traded the series' lockbox, and when."""

    symbol: str
    timeframe: str
    cycle_id: str
    strategy_checksum: str | None = Field(description="sha256 of the strategy document; null before the log")
    model_sha256: str | None = Field(description="sha256 of the final model file; null before the log")
    at: str = Field(description="ISO 8601, UTC")


class LockboxLog(BaseModel):
    success: Literal[True] = True
    data: list[LockboxReadEntry]


@router.get("/api/v1/agent/lockbox-log")
def agent_lockbox_log(store: StoreDep, symbol: str | None = None) -> LockboxLog:
    """The reads, only `symbol`'s with one; a refused repeat (same strategy and model) logs none."""
    return LockboxLog(data=[LockboxReadEntry(**read.to_dict()) for read in list_reads(store, symbol=symbol)])
