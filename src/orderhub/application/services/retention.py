"""Retention: what the hub keeps, and for how long.

Processed inbox bodies go first (the message row stays, so a late duplicate is still
recognised by its dedupe key); the rows later; finished commands, idempotency keys and
feed events after their own ages. Failed and pending rows are never pruned: they wait
for an operator or a worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orderhub.application.hub import Hub
from orderhub.application.ports import Pruned

DAY = 86_400.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionPolicy:
    inbox_body_days: float = 30
    inbox_days: float = 90  # the dedupe window: at least 7 days, longer than the bodies
    command_days: float = 90
    idempotency_days: float = 7
    feed_days: float = 90

    def __post_init__(self) -> None:
        if self.inbox_days < max(self.inbox_body_days, 7):
            raise ValueError(
                "inbox_days (the dedupe window) must be at least 7 days and at least "
                "inbox_body_days"
            )
        if min(self.command_days, self.idempotency_days, self.feed_days) <= 0:
            raise ValueError("retention ages must be positive")


async def prune(hub: Hub, policy: RetentionPolicy) -> Pruned:
    now = hub.clock.now()

    async with hub.uow() as uow:
        bodies, messages = await uow.inbox.prune(
            bodies_before=now - timedelta(seconds=policy.inbox_body_days * DAY),
            rows_before=now - timedelta(seconds=policy.inbox_days * DAY),
        )
        commands = await uow.commands.prune(
            finished_before=now - timedelta(seconds=policy.command_days * DAY)
        )
        keys = await uow.idempotency.prune(
            before=now - timedelta(seconds=policy.idempotency_days * DAY)
        )
        events = await uow.feed.prune(before=now - timedelta(seconds=policy.feed_days * DAY))
        await uow.commit()
    return Pruned(
        inbox_bodies=bodies,
        inbox_messages=messages,
        commands=commands,
        idempotency_keys=keys,
        feed_events=events,
    )
