"""ktrdr agent pipeline: an autonomous research loop for trading strategies."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `celery -A agent_pipeline` looks up `agent_pipeline.app`/`.celery`: the app with the worker's bootsteps
    # and signals registered (pipeline/worker.py). Lazy: start-up cost only, so that `ktrdr --help` and the API
    # never pay for importing Celery's app and task modules.
    if name in ("app", "celery"):
        from agent_pipeline.pipeline.worker import app  # lazy: start-up cost (celery, pandas, sqlalchemy)

        return app
    raise AttributeError(f"module 'agent_pipeline' has no attribute {name!r}")
