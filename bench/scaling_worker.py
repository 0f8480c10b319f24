"""The Celery app the scaling bench's workers run (`celery -A bench.scaling_worker worker`).

`bench.orchestration_worker`'s trivial phases, but every training takes a fixed `KTRDR_BENCH_TRAINING_S` seconds
(sleeping, with the real heartbeats and cancel checks), so the throughput with N GPU workers is the system's
alone: what the supervisors, Redis and Postgres add around N trainings that cost the same whatever the host.
"""

from __future__ import annotations

import os
import time
from typing import Any

from agent_pipeline.tasks import gpu
from bench import orchestration_worker
from bench.orchestration_worker import EXAMPLE_STRATEGY, TRAINING_SUMMARY

app = orchestration_worker.app
# Seconds one training takes (sleeping): long against the orchestration's own cost, short for a bench.
TRAINING_S = float(os.environ.get("KTRDR_BENCH_TRAINING_S", "4"))


def _train(
    task: Any, training_op_id: str, _yaml: Any, _home: Any, _data: Any, _seed: Any, owner: str, *_: Any
) -> dict[str, Any]:
    # The run lock's refresh is a compare-and-set on the delivery's owner: a watch under a name of its own lost the
    # lock at its first beat (LockLost), and the supervisor failed the silent training 300 s later.
    watch = gpu._Watch(task, training_op_id, owner=owner)
    deadline = time.monotonic() + TRAINING_S
    while time.monotonic() < deadline and not watch.should_cancel():
        time.sleep(0.05)
    return {**TRAINING_SUMMARY, "model_path": str(EXAMPLE_STRATEGY)}


gpu._train = _train  # type: ignore[assignment]
