"""What the broker holds: whether a task's message still exists anywhere a worker could receive it from.

A Redis that restarts empty loses queued messages, but a worker can put back the ones it held unacked (kombu
restores them when its channel closes). So after such a restart one message of a cycle may survive, the
training supervisor's poll, while the one it waits for, the training on the `gpu` queue, is gone: the
supervisor would poll a `PENDING` training forever. `holds` lets it see that and send the training again.
"""

from __future__ import annotations

import logging

import redis
from celery import Celery

from agent_pipeline.pipeline import outages

logger = logging.getLogger(__name__)

# Searches the queue's lists (KEYS[1..n-1]) and the unacked hash (KEYS[n]) inside Redis for ARGV[1], as a plain
# substring: nothing crosses the network but the answer, and the read is atomic.
_SEARCH = """
local needle = ARGV[1]
for i = 1, #KEYS - 1 do
  for _, raw in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
    if string.find(raw, needle, 1, true) then return 1 end
  end
end
for _, raw in ipairs(redis.call('HVALS', KEYS[#KEYS])) do
  if string.find(raw, needle, 1, true) then return 1 end
end
return 0
"""


def holds(app: Celery, queue: str, task_id: str) -> bool | None:
    """Whether the broker holds a message of `task_id`, waiting in `queue` or delivered and not yet acked.

    Reads kombu's Redis layout: a list per queue and priority step, and the `unacked` hash where a delivered
    message stays until its worker acks it (acks_late), all under the transport's `global_keyprefix`. The id is
    matched in the raw message, whose headers carry it in plain JSON. A message a worker holds in memory after
    a restart is invisible here until the worker restores it; callers act only on an absence that lasts.

    Returns:
        None when it cannot tell: a broker that is not Redis, or a Redis that refuses the script (an ACL, a
        managed service without EVAL). Nothing is concluded then; a caller never fails a training on it.

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: Redis is unreachable (an outage, which callers wait out).
    """
    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        if not hasattr(channel, "unacked_key") or not hasattr(channel, "priority_steps"):
            return None
        # kombu prefixes only the commands it sends itself; these keys are read by a script, so prefix them here
        prefix = getattr(channel, "global_keyprefix", "") or ""
        lists = [queue, *(f"{queue}{channel.sep}{step}" for step in channel.priority_steps if step)]
        keys = [prefix + key for key in dict.fromkeys(lists)] + [prefix + channel.unacked_key]
        try:
            return bool(channel.client.eval(_SEARCH, len(keys), *keys, task_id))
        except outages.broker_errors():
            raise
        except redis.exceptions.RedisError as exc:
            logger.warning("cannot read what the broker holds (%s); lost messages are not detected", exc)
            return None
