"""The training run lock (pipeline/flags.py) on both backends: the result backend's Redis and the embedded run's
in-process cache."""

from __future__ import annotations

import uuid

import pytest
from celery import Celery

from agent_pipeline.pipeline import flags

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "embedded"])
def app(request: pytest.FixtureRequest, redis_url: str) -> Celery:
    if request.param == "redis":
        return Celery(broker=redis_url, backend=redis_url)
    return Celery(broker="memory://", backend="cache+memory://")


def test_a_run_lock_is_refreshed_by_its_holder_taken_back_when_it_vanished_and_never_taken_from_another(
    app: Celery,
) -> None:
    training = f"op_training_{uuid.uuid4().hex[:8]}"
    assert flags.acquire_lock(app, training, "first")
    assert not flags.acquire_lock(app, training, "second")
    # its holder extends it; another delivery cannot, and learns it must stop
    assert flags.refresh_lock(app, training, "first")
    assert not flags.refresh_lock(app, training, "second")
    # a lock that vanished (expired, or lost with an emptied Redis) is taken by whoever refreshes first...
    flags.release_lock(app, training, "first")
    assert flags.refresh_lock(app, training, "second")
    # ...and the other one then finds it taken
    assert not flags.refresh_lock(app, training, "first")
