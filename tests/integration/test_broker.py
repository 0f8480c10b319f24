"""`broker.holds` on a real Redis: a message waiting in its queue, one delivered and not yet acked, none."""

from __future__ import annotations

import pytest
from celery import Celery
from kombu import Queue

from agent_pipeline.pipeline import broker

pytestmark = pytest.mark.integration


def _publish(app: Celery, task_id: str, *, priority: int | None = None) -> None:
    with app.connection_for_write() as connection:
        connection.Producer().publish(
            {"args": []}, routing_key="gpu", headers={"id": task_id}, priority=priority, declare=[Queue("gpu")]
        )


def test_a_queued_message_is_held_and_an_unknown_id_is_not(redis_url: str) -> None:
    app = Celery(broker=redis_url)
    _publish(app, "op_a-train")
    _publish(app, "op_b-train", priority=6)  # a priority step lives in its own list

    assert broker.holds(app, "gpu", "op_a-train") is True
    assert broker.holds(app, "gpu", "op_b-train") is True
    assert broker.holds(app, "gpu", "op_c-train") is False
    assert broker.holds(app, "research", "op_a-train") is False


def _held_while_delivered_then_not(app: Celery, task_id: str) -> None:
    """Take the message off the queue without acking it, check `holds` sees it, ack it, check it no longer does."""
    with app.connection_for_read() as connection:
        message = connection.SimpleQueue("gpu").get(timeout=5)  # delivered, not acked: in the unacked hash
        assert broker.holds(app, "gpu", task_id) is True
        message.ack()
    assert broker.holds(app, "gpu", task_id) is False


def test_a_delivered_message_is_held_until_acked(redis_url: str) -> None:
    app = Celery(broker=redis_url)
    _publish(app, "op_a-train")
    _held_while_delivered_then_not(app, "op_a-train")


def test_a_global_key_prefix_is_read_where_kombu_writes(redis_url: str) -> None:
    import redis

    app = Celery(broker=redis_url, broker_transport_options={"global_keyprefix": "ktrdr:"})
    _publish(app, "op_a-train")
    assert redis.Redis.from_url(redis_url).llen("ktrdr:gpu") == 1  # kombu wrote under the prefix
    assert broker.holds(app, "gpu", "op_a-train") is True
    _held_while_delivered_then_not(app, "op_a-train")  # in the prefixed unacked hash


def test_a_broker_other_than_redis_tells_nothing() -> None:
    assert broker.holds(Celery(broker="memory://"), "gpu", "op_a-train") is None
