"""When the training supervisor sends a training again: only a waiting training whose message has been missing
from the broker for the whole heartbeat bound (tasks/training.py, `lost_message`)."""

from __future__ import annotations

import pytest

from agent_pipeline.tasks.gpu import REQUEUED
from agent_pipeline.tasks.training import lost_message

BOUND = 20.0


@pytest.mark.parametrize("state", ["PENDING", "RETRY", REQUEUED])
def test_a_waiting_training_missing_for_the_bound_is_sent_again(state: str) -> None:
    # first seen missing: remember when, send nothing yet
    assert lost_message(state, False, None, now=100.0, bound=BOUND) == (False, 100.0)
    # still missing, not yet for the bound
    assert lost_message(state, False, 100.0, now=119.9, bound=BOUND) == (False, 100.0)
    # missing for the whole bound: send it again
    assert lost_message(state, False, 100.0, now=120.0, bound=BOUND) == (True, 100.0)


@pytest.mark.parametrize("state", ["STARTED", "PROGRESS", "SUCCESS", "FAILURE", "REVOKED"])
def test_a_training_a_worker_reported_on_is_never_sent_again(state: str) -> None:
    # its message is gone because a worker took it: a running or finished training, whatever the broker holds
    assert lost_message(state, False, 100.0, now=1000.0, bound=BOUND) == (False, None)


def test_a_message_seen_again_clears_the_absence_and_an_unknown_answer_concludes_nothing() -> None:
    # held: a worker put it back, or it was between the queue and the unacked set
    assert lost_message("PENDING", True, 100.0, now=1000.0, bound=BOUND) == (False, None)
    # None: not Redis, or Redis refused the script
    assert lost_message("PENDING", None, 100.0, now=1000.0, bound=BOUND) == (False, None)
    # the absence counts from the last time it was seen, not from the first absence ever
    assert lost_message("PENDING", False, None, now=1000.0, bound=BOUND) == (False, 1000.0)
