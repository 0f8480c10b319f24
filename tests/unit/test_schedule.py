"""KTRDR_SCHEDULE: intervals, `continuous`, and the beat entry it becomes."""

from __future__ import annotations

import pytest

from agent_pipeline.config import CONTINUOUS_TICK, Settings, interval_seconds
from agent_pipeline.pipeline.celery_app import TICK_TASK, beat_schedule


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("10m", 600), ("1h", 3600), ("1.5m", 90)])
def test_intervals_parse_to_seconds(text: str, seconds: float) -> None:
    assert interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5x", "0s", "0.5s", "-1m"])
def test_bad_schedules_are_refused_by_the_settings(text: str) -> None:
    with pytest.raises(ValueError):
        interval_seconds(text)
    if text:
        with pytest.raises(ValueError):
            Settings(schedule=text)


def test_beat_entry_only_when_a_schedule_is_set() -> None:
    assert "ktrdr-schedule" not in beat_schedule(Settings())
    entry = beat_schedule(Settings(schedule="10m"))["ktrdr-schedule"]
    assert entry == {"task": TICK_TASK, "schedule": 600.0, "options": {"expires": 600.0}}
    assert beat_schedule(Settings(schedule="continuous"))["ktrdr-schedule"]["schedule"] == CONTINUOUS_TICK


def test_the_beat_steps_paper_accounts_every_paper_interval_with_or_without_a_schedule() -> None:
    from agent_pipeline.pipeline.celery_app import PAPER_TASK

    paper = {"task": PAPER_TASK, "schedule": 60.0, "options": {"expires": 60.0}}
    assert beat_schedule(Settings()) == {"ktrdr-paper": paper}
    assert beat_schedule(Settings(schedule="10m"))["ktrdr-paper"] == paper
    assert beat_schedule(Settings(paper_interval=2))["ktrdr-paper"]["schedule"] == 2.0
    with pytest.raises(ValueError):
        Settings(paper_interval=0.5)
