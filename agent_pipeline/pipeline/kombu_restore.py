"""A replacement for kombu's `QoS.restore_unacked` (Redis transport), installed in worker programs only.

When a worker loses its Redis connection, Celery collects the broken connection (`Connection.collect`) and kombu
puts the channel's delivered but unacknowledged messages back in their queues. With kombu 5.7 that goes wrong
two ways, and this hook works around both (issue 11):

- A channel whose close fails during the collect (for one, it cannot delete its auto-delete fanout queue while
  Redis is down) restores only at its next close, after the collect dropped the transport's client: building
  a Redis pool then raises AttributeError ("'NoneType' object has no attribute 'hostname'"), which Celery
  treats as unrecoverable, and the worker exits. (celery/kombu#582, closed, is the same error on that path.)
- A restore attempted while Redis is still down fails, kombu marks it done anyway, and the messages wait in
  the unacked hash until `visibility_timeout` (hours).

The hook waits, with backoff, for Redis, then restores through a fresh pool built from the broker URL.
`tests/integration/test_kombu_restore.py` runs kombu's own method on both paths: when kombu fixes them, that
test fails, and this module and its call in `worker.py` can go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from agent_pipeline.pipeline.outages import BACKOFF_MAX_S, BACKOFF_START_S, broker_errors

logger = logging.getLogger(__name__)


def patch_redis_restore(broker_url: Callable[[], str]) -> None:
    """Replace `QoS.restore_unacked` with one that waits for Redis; a second call changes nothing.

    Args:
        broker_url: Returns the broker's URL when a restore needs a fresh connection pool.
    """
    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_ktrdr_patient", False):
        return

    def restore_unacked(self: Any, client: Any = None) -> Any:
        if client is not None:
            return original(self, client)
        channel = self.channel
        if getattr(channel.connection, "client", None) is not None:
            try:
                return original(self, None)
            except broker_errors():
                pass  # Redis is down: wait for it below
        url = broker_url()
        delay = BACKOFF_START_S
        while True:
            try:
                channel._pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2)
                return original(self, None)
            except broker_errors():
                logger.warning("Redis unreachable; %d unacked message(s) wait to be requeued", len(self._delivered))
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    restore_unacked._ktrdr_patient = True  # type: ignore[attr-defined]
    restore_unacked.__wrapped__ = original  # type: ignore[attr-defined]  # kombu's own: what the canary test runs
    kombu_redis.QoS.restore_unacked = restore_unacked  # type: ignore[method-assign]
