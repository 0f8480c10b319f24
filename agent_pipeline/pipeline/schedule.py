"""The unattended loop: `KTRDR_SCHEDULE` drives a Celery beat entry that starts cycles while there is room.

`ktrdr beat` runs Celery beat with one entry, `ktrdr.schedule.tick`, every interval (`15s`, `10m`, `1h`), or
every CONTINUOUS_TICK seconds for `continuous`. A tick starts one cycle when fewer than
`KTRDR_MAX_CONCURRENT_CYCLES` are active (`continuous`: as many as there is room for), and starts none once
the daily LLM budget is spent, logging why. Run one beat per deployment: two would tick twice as often
(cycle creation itself stays race-free under the concurrency limit either way).
"""

from __future__ import annotations

import logging

from agent_pipeline.config import CONTINUOUS, Settings, get_settings
from agent_pipeline.errors import BudgetExhaustedError, CapacityError
from agent_pipeline.pipeline import cycle
from agent_pipeline.pipeline.celery_app import TICK_TASK, app
from agent_pipeline.store.operations import OperationsStore, get_store

logger = logging.getLogger(__name__)


@app.task(name=TICK_TASK, ignore_result=True)
def tick() -> list[str]:
    """The beat's tick: start the cycles the schedule allows now."""
    return start_due_cycles(get_store(), get_settings())


def start_due_cycles(store: OperationsStore, settings: Settings) -> list[str]:
    """Start the cycles the schedule allows now; returns their ids (none when full or the budget is spent)."""
    room = settings.max_concurrent_cycles - len(store.active_cycles())
    wanted = room if settings.schedule == CONTINUOUS else min(room, 1)
    started: list[str] = []
    for _ in range(max(0, wanted)):
        try:
            started.append(cycle.trigger(store=store, settings=settings).operation_id)
        except BudgetExhaustedError as exc:
            logger.warning("schedule: not starting a cycle: %s", exc, extra={"reason": "budget_exhausted"})
            break
        except CapacityError:
            break  # another trigger took the slot meanwhile
    if started:
        logger.info("schedule: started %d cycle(s)", len(started), extra={"cycles": started})
    elif room <= 0:
        logger.info("schedule: %d cycle(s) active, none started", settings.max_concurrent_cycles)
    return started
