"""`POST /ui/trigger`: the overview's trigger form, answered as `POST /api/v1/agent/trigger` answers."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from agent_pipeline.api.deps import SettingsDep, StoreDep
from agent_pipeline.api.routes.contract import status_of
from agent_pipeline.api.ui.guard import ActionDep
from agent_pipeline.api.ui.render import render
from agent_pipeline.api.ui.views import overview_view, trigger_options
from agent_pipeline.errors import InvalidOptionError, KtrdrError
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.context import CycleOptions
from agent_pipeline.pipeline.user_strategy import MAX_STRATEGY_BYTES, decode_strategy

router = APIRouter(prefix="/ui", include_in_schema=False)
# A universe choice of the form: `universe NAME TIMEFRAME MODE`.
UNIVERSE_WORDS = 4


@router.post("/trigger")
def trigger_cycle(
    request: Request,
    sid: ActionDep,
    store: StoreDep,
    settings: SettingsDep,
    series: str = Form(""),
    designer: str = Form(""),
    bypass_gates: bool = Form(False),
    strategy_file: UploadFile | None = File(None),
) -> Response:
    """Trigger a cycle; an error shows on the overview with the API's status and message."""
    try:
        options = trigger_options_of(series, designer, bypass_gates, strategy_file)
        operation = cycle.trigger(options, store=store)
    except KtrdrError as exc:
        view = {**overview_view(store, settings), **trigger_options(settings)}
        return render(request, "overview.html", sid, status_code=status_of(exc), error=str(exc), triggered=None, **view)
    return RedirectResponse(f"/ui/?{urlencode({'triggered': operation.operation_id})}", status_code=303)


def trigger_options_of(series: str, designer: str, bypass_gates: bool, upload: UploadFile | None) -> CycleOptions:
    """The CycleOptions of the trigger form (a series `SYMBOL TIMEFRAME` or `universe NAME TIMEFRAME MODE`, a
    designer, an uploaded strategy)."""
    words = series.split()
    strategy = None
    if upload is not None and upload.filename:
        strategy = decode_strategy(upload.file.read(MAX_STRATEGY_BYTES + 1), name=upload.filename)
    chosen: dict[str, str | None] = {"symbol": words[0] if words else None, "timeframe": " ".join(words[1:]) or None}
    if words[:1] == ["universe"]:
        if len(words) != UNIVERSE_WORDS or words[3] not in ("timing", "rank"):
            raise InvalidOptionError(f"a universe choice is `universe NAME TIMEFRAME timing|rank`, not {series!r}")
        chosen = {"universe": words[1], "timeframe": words[2], "portfolio": words[3]}
    return CycleOptions.model_validate(
        {"bypass_gates": bypass_gates, "designer": designer or None, "strategy": strategy, **chosen}
    )
