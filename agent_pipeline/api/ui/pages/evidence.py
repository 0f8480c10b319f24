"""`/ui/evidence`: per series, the trials and the best strategies; the last calibration run and its power curve.

A read only: the power curve is drawn by `ktrdr agent calibrate` when it saves its run; this page shows the
drawn file, or says there is none yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.api.ui.guard import SessionDep
from agent_pipeline.api.ui.render import render
from agent_pipeline.config import Settings
from agent_pipeline.errors import KtrdrError, OperationNotFoundError
from agent_pipeline.insight import evidence
from agent_pipeline.insight.calibration import POWER_CURVE, load_run

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/evidence")
def evidence_page(
    request: Request, sid: SessionDep, store: StoreDep, settings: SettingsDep, symbol: str = "", timeframe: str = ""
) -> Response:
    found = evidence.collect(store, symbol=symbol or None, timeframe=timeframe or None)
    view = calibration_view(calibration_dir(settings))
    return render(request, "evidence.html", sid, evidence=found, symbol=symbol, timeframe=timeframe, **view)


@router.get("/calibration/power_curve.png")
def power_curve(_sid: SessionDep, settings: SettingsDep) -> Response:
    path = calibration_dir(settings) / POWER_CURVE
    if not path.is_file():
        raise OperationNotFoundError("no calibration run yet: run `ktrdr agent calibrate`")
    return FileResponse(path, media_type="image/png")


def calibration_view(folder: Path) -> dict[str, Any]:
    """The last calibration run (None when there is none) and whether its power curve is drawn."""
    try:
        record = load_run(folder)
    except KtrdrError:
        return {"calibration": None, "power_curve": False}
    return {"calibration": record, "power_curve": (folder / POWER_CURVE).is_file()}


def calibration_dir(settings: Settings) -> Path:
    """Where `ktrdr agent calibrate` saves its run and draws its power curve."""
    assert settings.artifacts_dir is not None  # filled in by Settings
    return settings.artifacts_dir / "calibration"
