"""The beat's tick: start the cycles the schedule allows now (see agent_pipeline/pipeline/schedule.py)."""

from __future__ import annotations

from agent_pipeline.config import get_settings
from agent_pipeline.pipeline.celery_app import app
from agent_pipeline.pipeline.schedule import TICK_TASK, start_due_cycles
from agent_pipeline.store.operations import get_store


@app.task(name=TICK_TASK, ignore_result=True)
def tick() -> list[str]:
    return start_due_cycles(get_store(), get_settings())
