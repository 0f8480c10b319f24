"""`GET /api/v1/agent/calibration`: the last calibration run (`ktrdr agent calibrate`): its power table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agent_pipeline.api.deps import SettingsDep
from agent_pipeline.api.routes.contract import responses
from agent_pipeline.insight.calibration import load_run

router = APIRouter()


@router.get("/api/v1/agent/calibration", responses=responses(404))
def agent_calibration(settings: SettingsDep) -> dict[str, Any]:
    """The plan, the power table per kind, strength and designer (found: a discovery stands at the end of the
    budget; the cycle of the first lasting discovery; withdrawn flags), the false-discovery rate, the withdrawn
    flags in all, and every series under its neutral symbol with its kind and strength."""
    folder = settings.artifacts_dir
    assert folder is not None
    return {"success": True, "data": load_run(folder / "calibration")}
