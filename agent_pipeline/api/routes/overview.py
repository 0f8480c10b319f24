"""`GET /api/v1/agent/overview`: what the dashboard's first page shows, as JSON (insight/overview.py)."""

from __future__ import annotations

from fastapi import APIRouter

from agent_pipeline.config import get_settings
from agent_pipeline.insight.overview import Overview, collect
from agent_pipeline.store.operations import get_store

router = APIRouter()


@router.get("/api/v1/agent/overview")
def agent_overview() -> Overview:
    """Running cycles with phase and progress, the last finished ones, today's LLM spend, the workers seen."""
    return collect(get_store(), get_settings())
