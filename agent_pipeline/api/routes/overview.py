"""`GET /api/v1/agent/overview`: what the dashboard's first page shows, as JSON (insight/overview.py)."""

from __future__ import annotations

from fastapi import APIRouter

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.insight.overview import Overview, collect

router = APIRouter()


@router.get("/api/v1/agent/overview")
def agent_overview(store: StoreDep, settings: SettingsDep) -> Overview:
    """Running cycles with phase and progress, the last finished ones, today's LLM spend, the workers seen."""
    return collect(store, settings)
