"""Cross-process flags kept in the result backend: cancellation requests and training run locks.

The GPU host has no database, but it always has the result backend (Redis in the full stack, the in-process
cache in the embedded run), so both live there.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery

from agent_pipeline.pipeline.celery_app import app

# How long a training lock lives without a refresh; the holder refreshes it far more often than this.
LOCK_TTL_S = 120
# How long a cancellation request is remembered.
CANCEL_TTL_S = 24 * 3600

logger = logging.getLogger(__name__)
_local_lock = threading.Lock()
_local: dict[str, tuple[str, float]] = {}


def _redis(app: Celery) -> Any | None:
    """The Redis client of the result backend; None for the embedded run's in-process cache.

    Settings only admit these two backends, so the process-local fallback is never used across processes.
    """
    from celery.backends.redis import RedisBackend

    backend = app.backend
    return backend.client if isinstance(backend, RedisBackend) else None


def _cancel_key(operation_id: str) -> str:
    return f"ktrdr:cancel:{operation_id}"


def _lock_key(operation_id: str) -> str:
    return f"ktrdr:lock:{operation_id}"


def request_cancel(app: Celery, operation_id: str) -> None:
    """Ask the work running `operation_id` to stop at its next check."""
    _set(app, _cancel_key(operation_id), "1", CANCEL_TTL_S, only_if_absent=False)


def is_cancel_requested(app: Celery, operation_id: str) -> bool:
    return _get(app, _cancel_key(operation_id)) is not None


def stop_training(operation_id: str, task_id: str | None) -> None:
    """Raise the cancel flag the GPU task checks every epoch, and revoke it in case it has not started.

    Best effort: the rows are already final; an unreachable broker is logged, not raised.
    """
    try:
        request_cancel(app, operation_id)
        if task_id:
            app.control.revoke(task_id)
    except Exception:  # kombu and redis raise many types for an unreachable broker
        logger.warning("could not signal training %s to stop", operation_id, exc_info=True)


def _done_key(operation_id: str) -> str:
    return f"ktrdr:done:{operation_id}"


def mark_done(app: Celery, operation_id: str, summary_json: str, ttl: int) -> None:
    """Remember a finished training's summary, so a redelivered message returns it instead of retraining."""
    _set(app, _done_key(operation_id), summary_json, ttl, only_if_absent=False)


def done_summary(app: Celery, operation_id: str) -> str | None:
    return _get(app, _done_key(operation_id))


def acquire_lock(app: Celery, operation_id: str, owner: str) -> bool:
    """Take the run lock of `operation_id`; False when another live owner holds it."""
    if _set(app, _lock_key(operation_id), owner, LOCK_TTL_S, only_if_absent=True):
        return True
    return _get(app, _lock_key(operation_id)) == owner


# Extends the run lock for its holder only: SET when the key is absent (expired, or lost with an emptied Redis) or
# holds ARGV[1]; 0 when another delivery holds it.
_REFRESH = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def refresh_lock(app: Celery, operation_id: str, owner: str) -> bool:
    """Extend `owner`'s run lock of `operation_id`; False when another delivery holds it now.

    A lock that vanished (it expired, or Redis restarted empty) is taken back. One that another delivery took
    meanwhile is not: that delivery trains, and this one must stop (a blind SET would let both train).
    """
    key = _lock_key(operation_id)
    client = _redis(app)
    if client is not None:
        return bool(client.eval(_REFRESH, 1, key, owner, LOCK_TTL_S))
    with _local_lock:
        current = _local.get(key)
        if current and current[1] > time.monotonic() and current[0] != owner:
            return False
        _local[key] = (owner, time.monotonic() + LOCK_TTL_S)
        return True


def release_lock(app: Celery, operation_id: str, owner: str) -> None:
    if _get(app, _lock_key(operation_id)) == owner:
        _delete(app, _lock_key(operation_id))


def _set(app: Celery, key: str, value: str, ttl: int, *, only_if_absent: bool) -> bool:
    client = _redis(app)
    if client is not None:
        return bool(client.set(key, value, ex=ttl, nx=only_if_absent))
    with _local_lock:
        current = _local.get(key)
        if only_if_absent and current and current[1] > time.monotonic():
            return False
        _local[key] = (value, time.monotonic() + ttl)
        return True


def _get(app: Celery, key: str) -> str | None:
    client = _redis(app)
    if client is not None:
        value = client.get(key)
        return value.decode() if isinstance(value, bytes) else value
    with _local_lock:
        current = _local.get(key)
        return current[0] if current and current[1] > time.monotonic() else None


def _delete(app: Celery, key: str) -> None:
    client = _redis(app)
    if client is not None:
        client.delete(key)
        return
    with _local_lock:
        _local.pop(key, None)
