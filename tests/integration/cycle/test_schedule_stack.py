"""The unattended loop on the real stack: `ktrdr beat` starts cycles by itself, and none past the budget."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.stack import start_stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KTRDR = Path(sys.executable).parent / "ktrdr"


def test_beat_starts_cycles_while_there_is_room_and_stops_at_the_budget(make_stack, monkeypatch) -> None:
    from agent_pipeline.errors import InvalidTransitionError
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationType, get_store

    # Given workers, room for two cycles, a one-second schedule and a budget of five cents
    settings = {"KTRDR_SCHEDULE": "1s", "KTRDR_MAX_CONCURRENT_CYCLES": "2", "KTRDR_DAILY_BUDGET_USD": "0.05"}
    stack = start_stack(make_stack, monkeypatch, KTRDR_TRAINING_EPOCHS="1", **settings)
    log = stack.home / "beat.log"
    stack.workers["beat"] = subprocess.Popen(
        [str(KTRDR), "beat"], env={**os.environ, **stack.env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    store = get_store()

    def cycles() -> list:
        return store.list(operation_type=OperationType.AGENT_RESEARCH, limit=50)

    # When nobody triggers anything, the beat fills the two slots by itself, one a tick
    started = wait_until(lambda: cycles() if len(cycles()) >= 2 else None, timeout=60)
    assert len(store.active_cycles()) <= 2
    # Then, once today's spend reaches the budget and the slots free up, no further cycle starts
    spent = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata={"cost_usd": 0.05})
    store.fail(spent.operation_id, error_message="spent the budget (test)")
    for op in started:
        # a cycle may finish on its own between the read above and this cancel
        with contextlib.suppress(InvalidTransitionError):
            cycle.cancel(op.operation_id, store=store)
    # A tick already past its budget check when the spend landed may still start one cycle (cycles stopped by the
    # training gate free their slot within a second): count once the ticks in flight are done, then four more.
    time.sleep(1.5)
    before = [op.operation_id for op in cycles()]
    time.sleep(4)  # four ticks
    assert [op.operation_id for op in cycles()] == before
    assert len(before) <= len(started) + 2, before
    assert "daily LLM budget exhausted" in stack.log("research"), stack.log("research")[-3000:]
