"""The Celery app: broker and results from settings, the `research` and `gpu` queues, their routes."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from kombu import Queue

from agent_pipeline.config import Settings, get_settings, interval_seconds

RESEARCH_QUEUE = "research"
GPU_QUEUE = "gpu"
# Task modules the worker imports; the GPU tasks' modules import torch only inside the task body.
TASK_MODULES = [
    "agent_pipeline.tasks.design",
    "agent_pipeline.tasks.training",
    "agent_pipeline.tasks.gates",
    "agent_pipeline.tasks.backtest",
    "agent_pipeline.tasks.assess",
    "agent_pipeline.tasks.cycle",
    "agent_pipeline.tasks.gpu",
    "agent_pipeline.tasks.paths",  # a candidate's purged combinatorial paths: `ktrdr.gpu.train_paths` (issue 25)
    "agent_pipeline.pipeline.schedule",
    "agent_pipeline.tasks.paper",  # the paper accounts' step: `ktrdr.paper.step` (issue 27)
]
# The schedule's tick task, defined in pipeline/schedule.py.
TICK_TASK = "ktrdr.schedule.tick"
# The paper accounts' step, defined in tasks/paper.py; on the research queue (the default).
PAPER_TASK = "ktrdr.paper.step"
# How long finished task results stay in the backend (the operations table keeps the history).
RESULT_EXPIRES_S = 7 * 24 * 3600

app = Celery("agent_pipeline", include=TASK_MODULES)
# Signatures rebuilt from messages (a chain's next steps) resolve their app through `current_app`, which is
# thread-local; without a default, a thread-pool worker would publish them to a fresh amqp:// app.
app.set_default()


def configure(app: Celery, settings: Settings) -> None:
    """Apply the settings long-running research tasks need; each line says why."""
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Ack after the task ends, and requeue if its worker dies: every task here is idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per process: a training must not sit behind another in a prefetch buffer.
        worker_prefetch_multiplier=1,
        broker_transport_options=_transport_options(settings),
        # STARTED tells "queued behind another training" from "running" to the supervisor.
        task_track_started=True,
        result_expires=RESULT_EXPIRES_S,
        result_extended=True,
        task_queues=(Queue(RESEARCH_QUEUE), Queue(GPU_QUEUE)),
        task_default_queue=RESEARCH_QUEUE,
        # ktrdr.gpu.*: the training (`train_model`) and a candidate's paths (`train_paths`); see tasks/gpu.py, paths.py
        task_routes={"ktrdr.gpu.*": {"queue": GPU_QUEUE}, "ktrdr.cycle.*": {"queue": RESEARCH_QUEUE}},
        # Events for Flower, on by default so `celery flower` shows tasks without extra flags.
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        # Fail fast when the broker is down instead of blocking a CLI trigger for minutes.
        broker_connection_timeout=5,
        broker_connection_max_retries=3,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),  # KTRDR_SCHEDULE's tick, for `ktrdr beat` (issue 10)
    )
    _forget_connections(app)


# Seconds an idle in-memory broker (the embedded run) sleeps between polls; kombu's default, 1 s, added 1-2 s to
# every hop of a cycle's chain there (about 8 s of a 10 s cycle on a daily series; issue 15).
MEMORY_POLLING_INTERVAL_S = 0.05


def _transport_options(settings: Settings) -> dict[str, float]:
    # Redis redelivers unacked messages after visibility_timeout; keep it above the longest training,
    # or a healthy training would be handed to a second worker (the GPU lock guards that case too).
    options: dict[str, float] = {"visibility_timeout": settings.training_time_limit + 3600}
    if settings.broker_url.startswith("memory://"):
        options["polling_interval"] = MEMORY_POLLING_INTERVAL_S
    return options


def _forget_connections(app: Celery) -> None:
    """Drop pools and the backend built from earlier settings (tests and the embedded runner reconfigure).

    Celery caches them on private attributes and offers no public reset; `_after_fork` clears the same ones.
    """
    # No force_close_all(): kombu keeps pools in a global registry keyed by URL and would hand the closed
    # pool back to the next app that asks for the same URL.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    app._backend_cache = None
    app._local = threading.local()


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Celery's `beat_schedule`: the tick entry when KTRDR_SCHEDULE is set, and the paper step (issue 27) always,
    every KTRDR_PAPER_INTERVAL seconds."""
    # A tick or step that waited longer than its interval is stale: the next one will look again.
    paper = settings.paper_interval
    entries = {"ktrdr-paper": {"task": PAPER_TASK, "schedule": paper, "options": {"expires": paper}}}
    if not settings.schedule:
        return entries
    every = interval_seconds(settings.schedule)
    return {"ktrdr-schedule": {"task": TICK_TASK, "schedule": every, "options": {"expires": every}}, **entries}


configure(app, get_settings())
