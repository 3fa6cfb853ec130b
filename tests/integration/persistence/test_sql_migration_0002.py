"""Migration 0002 on a database that already holds data written at revision 0001: orders
(version 1 documents), commands of several orders, inbox messages and feed events. The
upgrade keeps everything, numbers what it must in the order it was created, and the
pipeline carries on from there (PostgreSQL and SQLite, where the upgrade must not rebuild
``orders`` under ``channel_commands``' foreign key)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine, migrate
from orderhub.adapters.persistence.migrate import current_revision, head_revision
from orderhub.application.hub import Hub
from orderhub.application.ports import CommandState, InboxState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.testing.channel import plugin
from orderhub.testing.fakes import FixedClock, RecordingQueue, SequentialIds

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def v1_document(lines: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    """An order document as revision 0001's code wrote it."""
    return {
        "v": 1,
        "seller_reference": None,
        "acceptance_required": True,
        "released": False,
        "currency": "EUR",
        "customer": None,
        "shipping_address": None,
        "billing_address": None,
        "lines": [
            {
                "id": line_id,
                "channel_line_id": channel_line_id,
                "sku": f"SKU-{channel_line_id}",
                "title": channel_line_id,
                "quantity": quantity,
                "unit_price": None,
                "parent_line_id": None,
                "fulfilment_id": "F-1",
                "requires_serial_number": False,
                "units": [],
                "extras": {},
                "accepted": accepted,
                "rejected": 0,
                "shipped": 0,
                "delivered": 0,
                "cancelled": 0,
            }
            for line_id, channel_line_id, quantity, accepted in lines
        ],
        "fulfilments": [
            {
                "id": "F-1",
                "channel_fulfilment_id": None,
                "fulfilled_by": "seller",
                "status": "open",
                "extras": {},
            }
        ],
        "shipments": [],
        "cancellations": [],
        "returns": [],
        "extras": {},
    }


def order_row(order_id: str, channel_order_id: str, accepted: int) -> dict[str, Any]:
    return {
        "id": order_id,
        "channel": "testchannel",
        "account": "main",
        "channel_order_id": channel_order_id,
        "status": "ready_to_ship" if accepted else "awaiting_acceptance",
        "channel_status": "created",
        "cancellation_requested": False,
        "order_number": None,
        "placed_at": T0,
        "ship_by": None,
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
        "document": v1_document([(f"{order_id}-L1", "L1", 2, accepted)]),
    }


def command_row(command_id: str, order_id: str, minutes: int, state: str) -> dict[str, Any]:
    return {
        "id": command_id,
        "order_id": order_id,
        "channel": "testchannel",
        "account": "main",
        "kind": "accept" if command_id.endswith("a") else "ship",
        "payload": {"lines": [{"line_id": f"{order_id}-L1", "quantity": 2}]}
        if command_id.endswith("a")
        else {"items": [{"line_id": f"{order_id}-L1", "quantity": 1}], "shipment_id": "S"},
        "created_at": T0 + timedelta(minutes=minutes),
        "state": state,
        "attempts": 1 if state != "pending" else 0,
        "next_attempt_at": None,
        "last_error": None,
        "lease_until": None,
        "finished_at": None,
        "result": {},
    }


def message_row(message_id: str, minutes: int, state: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": message_id,
        "channel": "testchannel",
        "account": "main",
        "dedupe_key": f"testchannel:main:id:{message_id}",
        "body": json.dumps(body).encode(),
        "headers": {},
        "received_at": T0 + timedelta(minutes=minutes),
        "source": "webhook",
        "state": state,
        "attempts": 0,
        "last_error": None,
        "processed_at": None,
    }


async def seed_at_0001(url: str) -> None:
    await migrate(url, revision="0001")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            tables = sa.MetaData()
            await connection.run_sync(tables.reflect)
            t = tables.tables
            await connection.execute(
                t["orders"].insert(),
                [order_row("O-1", "CO-1", 2), order_row("O-2", "CO-2", 0)],
            )
            await connection.execute(
                t["channel_commands"].insert(),
                [  # created out of id order: numbered by creation time
                    command_row("C-9a", "O-1", 0, "succeeded"),
                    command_row("C-1s", "O-1", 5, "pending"),
                    command_row("C-5a", "O-2", 1, "pending"),
                ],
            )
            await connection.execute(
                t["inbox_messages"].insert(),
                [
                    message_row(
                        "M-2",
                        3,
                        "received",
                        {
                            "id": "CO-2",
                            "status": "acknowledged",
                            "lines": [{"id": "L1", "title": "L1", "quantity": 2}],
                        },
                    ),
                    message_row(
                        "M-1",
                        1,
                        "processed",
                        {
                            "id": "CO-2",
                            "status": "created",
                            "lines": [{"id": "L1", "title": "L1", "quantity": 2}],
                        },
                    ),
                ],
            )
            await connection.execute(
                t["feed_events"].insert(),
                [
                    {
                        "seq": n,
                        "type": "order.received",
                        "order_id": order_id,
                        "channel": "testchannel",
                        "occurred_at": T0,
                        "data": {},
                    }
                    for n, order_id in ((1, "O-1"), (2, "O-2"), (3, "O-1"))
                ],
            )
            await connection.execute(t["feed_counter"].update().values(last_seq=3))
    finally:
        await engine.dispose()


def hub_over(url: str) -> tuple[Hub, FixedClock]:
    registry = ChannelRegistry(
        {"testchannel": LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        [AccountConfig(channel="testchannel", name="main", settings={"profile": "topi"})],
    )
    clock = FixedClock(T0 + timedelta(hours=1))
    engine = create_engine(url)
    hub = Hub(
        uow=SqlUnitOfWorkFactory(engine, clock=clock),
        channels=registry,
        clock=clock,
        ids=SequentialIds("new"),
        queue=RecordingQueue(),
    )
    return hub, clock


async def test_an_upgrade_keeps_the_data_of_0001_and_the_pipeline_goes_on(
    empty_database_url: str,
) -> None:
    await seed_at_0001(empty_database_url)

    await migrate(empty_database_url)

    assert await current_revision(empty_database_url) == head_revision()
    hub, _ = hub_over(empty_database_url)
    async with hub.uow() as uow:
        first = await uow.orders.get("O-1")
        assert first is not None
        assert (first.last_seq, first.attention, first.version) == (3, [], 1)
        assert [(c.id, c.seq) for c in await uow.commands.for_order("O-1")] == [
            ("C-9a", 1),
            ("C-1s", 2),
        ]
        assert [(c.id, c.seq) for c in await uow.commands.for_order("O-2")] == [("C-5a", 1)]
        due = await uow.commands.due(
            now=T0 + timedelta(hours=1), queued_before=T0 + timedelta(hours=1), limit=9
        )
        assert sorted(due) == ["C-1s", "C-5a"]  # pending commands come back to the sweeper
        old, new = await uow.inbox.get("M-1"), await uow.inbox.get("M-2")
        assert old is not None
        assert new is not None
        assert (old.seq, new.seq) == (1, 2)  # numbered by arrival
        assert new.state is InboxState.RECEIVED
        feed_before = await uow.feed.read(after=0, limit=9)
    assert [e.seq for e in feed_before] == [1, 2, 3]

    # the pipeline carries on: the old pending command is claimed and sent, the old
    # message applied, and new rows number after the old ones
    assert await dispatch_command(hub, "C-1s") is Dispatched.SUCCEEDED
    assert await process_message(hub, "M-2") is Processed.PROCESSED
    async with hub.uow() as uow:
        sent = await uow.commands.get("C-1s")
        second = await uow.orders.get("O-2")
        assert await uow.commands.next_seq("O-1") == 3
    assert sent is not None
    assert sent.state is CommandState.SUCCEEDED
    assert sent.fence == 1
    assert second is not None
    assert second.channel_status == "acknowledged"
    assert second.last_seq > 3
