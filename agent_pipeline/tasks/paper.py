"""The paper step on the `research` queue (issue 27): `ktrdr beat` sends it every KTRDR_PAPER_INTERVAL seconds.

Thin: the work is `pipeline.paper.step_accounts`, which books each bar once however often the step runs, so a
redelivered or overlapping step is harmless. Paper only: no order reaches a live broker.
"""

from __future__ import annotations

from agent_pipeline.pipeline.celery_app import PAPER_TASK, app
from agent_pipeline.pipeline.paper import step_accounts
from agent_pipeline.store.operations import get_store


@app.task(name=PAPER_TASK, ignore_result=True)
def step_paper_accounts() -> int:
    """Step every open paper account; returns the bars booked."""
    return sum(stepped.booked for stepped in step_accounts(get_store()))
