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

Ids come from ``uuid_utils`` (:func:`unique_ids`), the hub's id generator: the standard
library's ``uuid4`` reads the system's random source once per id, a system call that lets
go of the GIL and must take it back from the event loop, twice per message here
(dramatiq's message id and the Redis one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import uuid_utils
from dramatiq import Actor, Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from redis.asyncio import Redis as AsyncRedis

__all__ = ["enqueue_many", "enqueue_many_async", "message_for", "unique_ids"]


def unique_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, as ``str(uuid4())`` writes them, without a
    system call each (a forked process draws ids of its own)."""
    return [str(uuid_utils.uuid4()) for _ in range(count)]


def message_for(actor: Actor[..., object], arg: str, message_id: str) -> Message[object]:
    """What ``actor.message_with_options(args=(arg,))`` makes, with the given id."""
    return Message(
        queue_name=actor.queue_name,
        actor_name=actor.actor_name,
        args=(arg,),
        kwargs={},
        options={},
        message_id=message_id,
    )


def _prepare(message: Message[object], delay: int | None, redis_id: str) -> Message[object]:
    """What :meth:`RedisBroker.enqueue` makes of ``message`` before it sends it."""
    message = message.copy(options={"redis_message_id": redis_id})
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
    prepared = _prepare_all(broker, messages)
    for attempt in range(2):
        pipe = broker.client.pipeline(transaction=False)
        for message, _ in prepared:
            pipe.evalsha(broker.scripts["dispatch"].sha, 1, *_dispatch_args(broker, message))
        try:
            pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            broker.client.script_load(broker.scripts["dispatch"].script)
            continue
        break
    _after_all(broker, prepared)


async def enqueue_many_async(
    broker: RedisBroker,
    client: AsyncRedis,
    messages: Sequence[tuple[Message[object], int | None]],
) -> None:
    """:func:`enqueue_many` through an asyncio client (of the broker's server)."""
    if not messages:
        return
    prepared = _prepare_all(broker, messages)
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for message, _ in prepared:
            pipe.evalsha(broker.scripts["dispatch"].sha, 1, *_dispatch_args(broker, message))
        try:
            await pipe.execute()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            await client.script_load(broker.scripts["dispatch"].script)
            continue
        break
    _after_all(broker, prepared)


Prepared = list[tuple[Message[object], int | None]]


def _prepare_all(
    broker: RedisBroker, messages: Sequence[tuple[Message[object], int | None]]
) -> Prepared:
    prepared = [
        (_prepare(message, delay, redis_id), delay)
        for (message, delay), redis_id in zip(messages, unique_ids(len(messages)), strict=True)
    ]
    for message, delay in prepared:
        broker.emit_before("enqueue", message, delay)
    return prepared


def _dispatch_args(broker: RedisBroker, message: Message[object]) -> list[Any]:
    """The ``dispatch`` script's key and arguments for one message, as
    :meth:`RedisBroker.enqueue` passes them."""
    return [
        broker.namespace,
        "enqueue",
        current_millis(),
        message.queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        broker._should_do_maintenance("enqueue"),
        broker._max_unpack_size(),  # type: ignore[no-untyped-call]
        message.options["redis_message_id"],
        message.encode(),
    ]


def _after_all(broker: RedisBroker, prepared: Prepared) -> None:
    for message, delay in prepared:
        broker.emit_after("enqueue", message, delay)
