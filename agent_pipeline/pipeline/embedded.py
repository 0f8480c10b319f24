"""The embedded default: a whole real cycle in one process, no servers.

Same chain, same tasks, different settings: a SQLite file, Celery's in-memory broker and result backend, and
a worker running in a thread that consumes both the `research` and `gpu` queues (not eager mode: messages,
retries and ETA polls all go through the broker).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent_pipeline.config import get_settings, reset_settings

# Settings the embedded run forces (the user's own DATABASE_URL etc. are for the full stack).
EMBEDDED_ENV = {
    "KTRDR_BROKER_URL": "memory://localhost/",
    "KTRDR_RESULT_BACKEND": "cache+memory://",
    "KTRDR_POLL_INTERVAL": "0.5",
}
# Threads of the in-process worker: one research task and one training at a time.
WORKER_THREADS = 2


def prepare_environment(home: Path) -> None:
    """Point settings at the embedded services under `home` (before the Celery app is configured)."""
    os.environ.update(EMBEDDED_ENV)
    os.environ["KTRDR_HOME"] = str(home)
    os.environ["DATABASE_URL"] = f"sqlite:///{(home / 'ktrdr.db').resolve()}"
    home.mkdir(parents=True, exist_ok=True)
    reset_settings()


@contextmanager
def embedded_worker() -> Iterator[Any]:
    """A Celery worker in a daemon thread consuming both queues of the in-memory broker."""
    # lazy: keeps Celery off `ktrdr agent run --help`'s start-up path; worker registers the bootsteps.
    from celery.worker import state

    from agent_pipeline.pipeline.celery_app import GPU_QUEUE, RESEARCH_QUEUE, configure  # lazy: start-up cost (celery)
    from agent_pipeline.pipeline.worker import app  # lazy: start-up cost (celery, pandas, sqlalchemy)

    configure(app, get_settings())
    app.finalize()
    app.set_current()
    worker = app.WorkController(
        concurrency=WORKER_THREADS,
        pool="threads",
        queues=[RESEARCH_QUEUE, GPU_QUEUE],
        hostname="embedded@localhost",
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="ktrdr-embedded-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        state.should_terminate = 0
        thread.join(30)
        state.should_terminate = None
