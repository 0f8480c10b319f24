"""The Celery app the orchestration bench's workers run (`celery -A bench.orchestration_worker worker`).

The pipeline's own app, tasks and chain, with the *work* of each phase made trivial, so the bench measures
what orchestration costs (messages, polls, wakes, row writes), not what training costs:
design writes the example strategy, training returns a fixed summary at once (or, while the bench raises
`SLOW_TRAINING_KEY`, waits for a cancel, so there is a training to cancel), backtest, assessment and the lockbox
return fixed figures. Plus `bench.noop`, the task of the raw 7-task chain the cycle is compared with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# The app with the worker's bootsteps and signals registered (pool-child replacement, preloads, patient broker
# settings), as `celery -A agent_pipeline` loads it: the bare celery_app left a one-task child unreplaced for 5 s.
from agent_pipeline.pipeline.worker import app
from agent_pipeline.tasks import assess, backtest, cycle, design, gpu

# While this Redis key exists, trivial trainings wait (checking for a cancel) instead of returning at once.
SLOW_TRAINING_KEY = "bench:slow_training"
EXAMPLE_STRATEGY = Path(__file__).resolve().parents[1] / "examples" / "eurusd_rsi_atr.yaml"
TRAINING_SUMMARY = {"accuracy": 0.5, "final_loss": 0.5, "initial_loss": 1.0, "epochs_run": 1, "device": "none"}
BACKTEST_RESULT = {"total_return": 0.0, "sharpe_ratio": 0.0, "max_drawdown": 0.0, "win_rate": 0.5, "num_trades": 0}


@app.task(name="bench.noop")
def noop(value: Any = None) -> Any:
    return value


def _design(store: Any, context: Any) -> dict[str, Any]:
    meta = {"strategy_name": "eurusd_rsi_atr", "strategy_path": str(EXAMPLE_STRATEGY), "designer": "bench"}
    store.merge_metadata(context.cycle_id, meta)
    return meta


def _train(
    task: Any, training_op_id: str, _yaml: Any, _home: Any, _data: Any, _seed: Any, owner: str, *_: Any
) -> dict[str, Any]:
    # The run lock's refresh is a compare-and-set on the delivery's owner: a watch under a name of its own lost the
    # lock at its first beat (LockLost), and the supervisor failed the silent training 300 s later.
    watch = gpu._Watch(task, training_op_id, owner=owner)
    client = task.app.backend.client
    while client.exists(SLOW_TRAINING_KEY) and not watch.should_cancel():
        time.sleep(0.05)
    return {**TRAINING_SUMMARY, "model_path": str(EXAMPLE_STRATEGY)}


def _backtest(store: Any, context: Any, _backtest_op_id: str) -> dict[str, Any]:
    store.merge_metadata(context.cycle_id, {"backtest_result": BACKTEST_RESULT})
    return dict(BACKTEST_RESULT)


def _assess(store: Any, context: Any) -> dict[str, Any]:
    store.merge_metadata(context.cycle_id, {"assessment": {"verdict": "bench"}})
    return {"verdict": "bench"}


design._design = _design
gpu._train = _train  # type: ignore[assignment]
backtest._backtest = _backtest
assess._assess = _assess
cycle._trade_lockbox = lambda meta: {}  # type: ignore[assignment]
cycle.tell_cycle = lambda op: None  # type: ignore[assignment]
