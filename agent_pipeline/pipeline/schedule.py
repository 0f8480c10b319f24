"""The unattended loop: `KTRDR_SCHEDULE` drives a Celery beat entry that starts cycles while there is room.

`ktrdr beat` runs Celery beat with one entry, `ktrdr.schedule.tick`, every interval (`15s`, `10m`, `1h`), or
every CONTINUOUS_TICK seconds for `continuous`. A tick starts one cycle when fewer than
`KTRDR_MAX_CONCURRENT_CYCLES` are active (`continuous`: as many as there is room for), and starts none once
the daily LLM budget is spent, logging why. Run one beat per deployment: two would tick twice as often
(cycle creation itself stays race-free under the concurrency limit either way).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_pipeline.config import Settings
    from agent_pipeline.store.operations import OperationsStore

logger = logging.getLogger(__name__)

CONTINUOUS = "continuous"
# Seconds between two ticks in `continuous` mode: how soon a freed slot is refilled.
CONTINUOUS_TICK = 5.0
# The shortest interval accepted: a tick reads the database and must not run back to back.
MIN_INTERVAL = 1.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
TICK_TASK = "ktrdr.schedule.tick"


def interval_seconds(schedule: str) -> float:
    """Seconds between ticks for a KTRDR_SCHEDULE value.

    Raises:
        ValueError: not `continuous` nor a number with a unit (s, m, h, d), or shorter than MIN_INTERVAL.
    """
    if schedule == CONTINUOUS:
        return CONTINUOUS_TICK
    match = INTERVAL.match(schedule.strip())
    if match is None:
        raise ValueError("must be an interval such as 15s, 10m, 1h, or 'continuous'")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds < MIN_INTERVAL:
        raise ValueError(f"must be at least {MIN_INTERVAL:g}s")
    return seconds


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Celery's `beat_schedule`: the tick entry when KTRDR_SCHEDULE is set, else nothing."""
    if not settings.schedule:
        return {}
    every = interval_seconds(settings.schedule)
    # A tick that waited longer than its interval is stale: the next one will look again.
    return {"ktrdr-schedule": {"task": TICK_TASK, "schedule": every, "options": {"expires": every}}}


def start_due_cycles(store: OperationsStore, settings: Settings) -> list[str]:
    """Start the cycles the schedule allows now; returns their ids (none when full or the budget is spent)."""
    from agent_pipeline.errors import BudgetExhaustedError, CapacityError
    from agent_pipeline.pipeline import cycle

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
