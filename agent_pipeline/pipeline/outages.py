"""Riding out a Redis or Postgres outage: what a task catches, and how it waits for the service to come back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from agent_pipeline.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

# Backoff bounds, in seconds, while waiting for the broker / result backend to come back.
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 5.0


def broker_errors() -> tuple[type[BaseException], ...]:
    """The exceptions an unreachable Redis (as broker or result backend) raises through redis-py and kombu."""
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)


def outage_errors() -> tuple[type[BaseException], ...]:
    """`broker_errors()` and an unreachable database: what a research task waits out instead of failing."""
    return (*broker_errors(), DatabaseUnavailableError)


def wait_for_broker(app: Celery, *, what: str) -> None:
    """Block, with backoff, until the broker and the result backend answer again. Logs the outage's length.

    Used inside tasks that hit a connection error: during an outage there is nothing else to do, and once it is
    over the task can publish its retry (a message sent while Redis is down would be lost).
    """
    _wait(lambda: _redis_answers(app), what=what, service="Redis")


def wait_for_services(app: Celery, *, what: str) -> None:
    """`wait_for_broker`, then the same for the operations database."""
    wait_for_broker(app, what=what)
    _wait(_database_answers, what=what, service="the database")


def _wait(answers: Callable[[], bool], *, what: str, service: str) -> None:
    if answers():
        return
    started, delay = time.monotonic(), BACKOFF_START_S
    logger.warning("%s unreachable during %s; waiting for it to come back", service, what)
    while not answers():
        time.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)
    logger.info("%s is back after %.1f s; %s goes on", service, time.monotonic() - started, what)


def _database_answers() -> bool:
    # Imported here: a GPU-only host has no database and never loads SQLAlchemy (start-up cost, not a cycle).
    from agent_pipeline.store.operations import get_store  # lazy: start-up cost (sqlalchemy)

    try:
        get_store().ping()
        return True
    except DatabaseUnavailableError:
        return False


def _redis_answers(app: Celery) -> bool:
    try:
        for url in {app.conf.broker_url, app.conf.result_backend}:
            if url.startswith(("redis://", "rediss://")):
                with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
                    client.ping()
        return True
    except broker_errors():
        return False
