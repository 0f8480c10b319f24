"""`GET /metrics`: Prometheus text, computed from the database at scrape time (insight/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.insight.metrics import render

router = APIRouter()


@router.get("/metrics", response_class=Response)
def metrics(store: StoreDep, settings: SettingsDep) -> Response:
    """Cycles by status and outcome, phase durations, trainings, LLM tokens and spend today, time since a cycle."""
    return Response(render(store, settings), media_type=CONTENT_TYPE_LATEST)
