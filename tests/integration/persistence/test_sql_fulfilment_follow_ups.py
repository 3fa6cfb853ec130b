"""A fulfilment the channel reports done issues the adapter's follow-up once, also when
one message carries the order twice (the SQL unit of work hands the second snapshot the
same order, its first snapshot's events still pending)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.test_sql_services import DOC, World, make_world

from orderhub.application.ports import CommandKind
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.channels.spi import FollowUp
from orderhub.domain.model import Fulfilment, Order
from orderhub.domain.values import FulfilmentStatus


async def deliver(world: World, body: Any, webhook_id: str) -> None:
    stored = await store_message(
        world.hub,
        channel="testchannel",
        account="main",
        body=json.dumps(body).encode(),
        headers={"webhook-id": webhook_id},
    )
    assert await process_message(world.hub, stored.message_id) is Processed.PROCESSED


async def test_one_message_with_the_order_twice_issues_one_follow_up(engine: AsyncEngine) -> None:
    world = make_world(engine)
    account = world.hub.channels.account("testchannel", "main")

    def done(order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
        if fulfilment.status is not FulfilmentStatus.SHIPPED:
            return ()
        return (FollowUp(kind=CommandKind.CLOSE_FULFILMENT, payload={"f": fulfilment.id}),)

    account.fulfilment_done = done  # type: ignore[method-assign]
    lines = [{**line, "fulfilment": "F1"} for line in DOC["lines"]]  # type: ignore[attr-defined]
    base = {**DOC, "lines": lines, "fulfilments": [{"id": "F1"}]}
    accepted = {
        **base,
        "status": "accepted",
        "counters": {"L1": {"accepted": 2}, "L2": {"accepted": 1}},
    }
    await deliver(world, accepted, "wh-1")
    shipped = {
        **base,
        "status": "shipped",
        "counters": {
            "L1": {"accepted": 2, "shipped": 2},
            "L2": {"accepted": 1, "shipped": 1},
        },
    }
    await deliver(world, [shipped, shipped], "wh-2")
    async with world.hub.uow() as uow:
        order = await uow.orders.get_by_channel_id("testchannel", "main", DOC["id"])
        assert order is not None
        commands = await uow.commands.for_order(order.id)
    closes = [c for c in commands if c.kind is CommandKind.CLOSE_FULFILMENT]
    assert [c.payload for c in closes] == [{"f": order.fulfilments[0].id}]
