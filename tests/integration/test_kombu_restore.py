"""kombu's own `QoS.restore_unacked` on a lost Redis connection, and the worker's replacement (`kombu_restore`).

The first two tests are canaries: they run kombu's unpatched method against a private redis-server and assert
that the bug `pipeline/kombu_restore.py` works around still shows. When a kombu release fixes it, they fail
and say which part of the hook can go.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from agent_pipeline.pipeline.kombu_restore import patch_redis_restore
from tests.private_servers import PrivateRedis
from tests.services import service_missing

QUEUE = Queue("canary", routing_key="canary")
# An auto-delete fanout queue: a channel consuming one deletes it on close, which fails while Redis is down.
BROADCAST = Queue("canary.broadcast", Exchange("canary.fanout", type="fanout"), auto_delete=True)
# Seconds Redis stays down in the outage tests.
OUTAGE_S = 1.0
DROP_THE_HOOK = "pipeline/kombu_restore.py (and its call in worker.py) can be dropped once both canaries fail"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (with append-only persistence), which it stops and starts."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        service_missing("redis-server / redis-cli executables", "not on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop(keep_data=False)


@pytest.fixture
def kombu_restore(monkeypatch: pytest.MonkeyPatch) -> Any:
    """kombu's own `QoS.restore_unacked` is the one installed for the test (even if a worker patched it)."""
    method = kombu_redis.QoS.restore_unacked
    original = getattr(method, "__wrapped__", method)
    assert original.__module__ == "kombu.transport.redis"
    monkeypatch.setattr(kombu_redis.QoS, "restore_unacked", original)
    return original


def _consume_one(connection: Connection, *queues: Queue) -> Any:
    """Publish one message to QUEUE and receive it on a fresh channel without acking it; returns the channel."""
    channel = connection.channel()
    Producer(channel).publish({"n": 1}, routing_key="canary", declare=[QUEUE])
    received: list[Any] = []
    Consumer(channel, list(queues), callbacks=[lambda _body, message: received.append(message)]).consume()
    connection.drain_events(timeout=5)
    assert len(received) == 1 and len(channel.qos._delivered) == 1
    return channel


def _collect_during_an_outage(connection: Connection, server: PrivateRedis) -> None:
    """Stop Redis, collect the connection as Celery does on a connection loss; Redis is back OUTAGE_S later.

    A restore that waits for Redis (the worker's hook, or a fixed kombu) returns once it is back; kombu 5.7's
    returns at once.
    """
    server.stop()
    restart = threading.Timer(OUTAGE_S, server.start)
    restart.start()
    try:
        connection.collect(socket_timeout=5)
    finally:
        restart.join()


def _where_the_message_is(server: PrivateRedis) -> tuple[int, int]:
    """(messages back in QUEUE, messages still in kombu's unacked hash)."""
    client = redis.Redis.from_url(server.url)
    return int(client.llen("canary")), int(client.hlen("unacked"))


def test_kombu_still_crashes_restoring_after_a_collect_dropped_the_transport_client(
    private_redis: PrivateRedis, kombu_restore: Any
) -> None:
    # Given a channel holding one unacked message and consuming an auto-delete fanout queue
    connection = Connection(private_redis.url)
    channel = _consume_one(connection, QUEUE, BROADCAST)
    # When Redis goes away, Celery collects the broken connection (the channel's close fails deleting the fanout
    # queue, before its restore), Redis comes back, and the channel is closed again
    _collect_during_an_outage(connection, private_redis)
    try:
        channel.close()
    except AttributeError as exc:
        # Then kombu builds a Redis pool from the transport's client, which the collect dropped
        assert "hostname" in str(exc)
        assert _where_the_message_is(private_redis) == (0, 1)
    else:
        pytest.fail(
            f"kombu {kombu.__version__} now restores unacked messages after a collect without AttributeError "
            f"(requeued, unacked: {_where_the_message_is(private_redis)}): the fresh-pool half of the worker's "
            f"hook is no longer needed; {DROP_THE_HOOK}"
        )


def test_kombu_still_gives_up_a_restore_attempted_while_redis_is_down(
    private_redis: PrivateRedis, kombu_restore: Any
) -> None:
    # Given a channel holding one unacked message
    connection = Connection(private_redis.url)
    _consume_one(connection, QUEUE)
    # When the connection is collected while Redis is down, and Redis comes back a second later
    _collect_during_an_outage(connection, private_redis)
    # Then kombu tried once, counts the restore as done, and the message waits for visibility_timeout (hours)
    if _where_the_message_is(private_redis) != (0, 1):
        pytest.fail(
            f"kombu {kombu.__version__} now requeues unacked messages once Redis is back (requeued, unacked: "
            f"{_where_the_message_is(private_redis)}): the worker's hook need not wait for Redis; {DROP_THE_HOOK}"
        )


def test_the_worker_hook_requeues_the_message_on_both_paths(private_redis: PrivateRedis, kombu_restore: Any) -> None:
    patch_redis_restore(lambda: private_redis.url)
    # The collect-then-close path: the hook restores through a fresh pool instead of raising
    connection = Connection(private_redis.url)
    channel = _consume_one(connection, QUEUE, BROADCAST)
    _collect_during_an_outage(connection, private_redis)
    channel.close()
    assert _where_the_message_is(private_redis) == (1, 0)
    redis.Redis.from_url(private_redis.url).delete("canary")
    # The Redis-is-down path: the collect waits for Redis, then restores
    connection = Connection(private_redis.url)
    _consume_one(connection, QUEUE)
    _collect_during_an_outage(connection, private_redis)
    assert _where_the_message_is(private_redis) == (1, 0)
