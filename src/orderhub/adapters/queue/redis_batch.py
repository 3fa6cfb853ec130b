"""Many dramatiq messages to Redis in one round trip (a pipeline of dramatiq's own script).

:meth:`dramatiq.brokers.redis.RedisBroker.enqueue` sends one message per round trip: it
runs the broker's ``dispatch`` Lua script with the ``enqueue`` command. :func:`enqueue_many`
does exactly what ``enqueue`` does for each message (a Redis message id of its own, the
delay queue and ``eta`` for a delayed one, the ``enqueue`` middleware hooks) and sends the
script calls in one non-transactional pipeline: each message is stored by the same script
as dramatiq would store it, so dramatiq's consumers cannot tell the difference
(``tests/integration/broker`` consume what this sends). A script Redis has forgotten (a
restart, ``SCRIPT FLUSH``) is loaded again and the batch sent once more: with the script
missing, none of the batch ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name

__all__ = ["enqueue_many"]


def _prepare(message: Message[object], delay: int | None) -> Message[object]:
    """What :meth:`RedisBroker.enqueue` makes of ``message`` before it sends it."""
    message = message.copy(options={"redis_message_id": str(uuid4())})
    if delay is not None:
        message = message.copy(
            queue_name=dq_name(message.queue_name),
            options={"eta": current_millis() + delay},
        )
    return message


def enqueue_many(
    broker: RedisBroker, messages: Sequence[tuple[Message[object], int | None]]
) -> None:
    """Enqueue ``(message, delay in ms or None)`` pairs in one pipeline; raises if Redis
    refused or failed any of them (then some may have been stored: the caller's sweeper
    makes a message sent twice harmless)."""
    if not messages:
        return
    prepared = [(_prepare(message, delay), delay) for message, delay in messages]
    for message, delay in prepared:
        broker.emit_before("enqueue", message, delay)
    script = broker.scripts["dispatch"]
    max_unpack = broker._max_unpack_size()  # type: ignore[no-untyped-call]
    for attempt in range(2):
        pipe = broker.client.pipeline(transaction=False)
        for message, _ in prepared:
            pipe.evalsha(
                script.sha,
                1,
                broker.namespace,
                "enqueue",
                current_millis(),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                broker._should_do_maintenance("enqueue"),
                max_unpack,
                message.options["redis_message_id"],
                message.encode(),
            )
        try:
            pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            broker.client.script_load(script.script)
            continue
        break
    for message, delay in prepared:
        broker.emit_after("enqueue", message, delay)
