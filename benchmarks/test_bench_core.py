"""Hot paths of the hub: mapping a channel order, merging a duplicate, shipping, storing.

Run with ``make bench``; compare runs with pytest-benchmark's ``--benchmark-compare``."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

import pytest

from orderhub.adapters.persistence.mapping import order_from_row, order_to_row
from orderhub.application.hub import Hub
from orderhub.application.services.intake import process_message, store_message
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.domain.model import ChannelSnapshot, LineSnapshot, Order, Unit
from orderhub.domain.values import LineQuantity
from orderhub.testing.channel import plugin, topi_like
from orderhub.testing.fakes import (
    FakeUnitOfWorkFactory,
    FixedClock,
    RecordingQueue,
    SequentialIds,
)

CAPS = topi_like()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LINES = 50


def snapshot(*, accepted: int = 0, shipped: int = 0) -> ChannelSnapshot:
    return ChannelSnapshot(
        channel_order_id="B-1",
        channel_status="created",
        lines=tuple(
            LineSnapshot(
                channel_line_id=f"L{i}",
                sku=f"SKU-{i}",
                title=f"item {i}",
                quantity=4,
                units=tuple(Unit(channel_unit_id=f"U{i}-{u}") for u in range(4)),
                accepted=accepted,
                shipped=shipped,
            )
            for i in range(LINES)
        ),
    )


def received() -> Order:
    return Order.receive(
        snapshot(),
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=CAPS,
        now=NOW,
        new_id=SequentialIds(),
    )


@pytest.mark.benchmark(group="domain")
def test_receive_an_order_of_50_lines(benchmark: pytest.FixtureRequest) -> None:
    order = benchmark(received)
    assert len(order.lines) == LINES


@pytest.mark.benchmark(group="domain")
def test_merge_a_duplicate_snapshot(benchmark: pytest.FixtureRequest) -> None:
    order = received()
    same = snapshot()

    def merge() -> None:
        order.apply(same, caps=CAPS, now=NOW, new_id=SequentialIds())

    benchmark(merge)
    assert order.events[-1].type.value == "order.received"  # a duplicate adds nothing


@pytest.mark.benchmark(group="domain")
def test_accept_and_ship_every_line(benchmark: pytest.FixtureRequest) -> None:
    def accept_and_ship() -> Order:
        order = received()
        order.accept(CAPS, now=NOW)
        counter = itertools.count()
        for line in order.lines:
            order.record_shipment(
                CAPS,
                shipment_id=f"S{next(counter)}",
                items=[LineQuantity(line_id=line.id, quantity=4)],
                now=NOW,
            )
        return order

    order = benchmark(accept_and_ship)
    assert order.status.value == "shipped"


@pytest.mark.benchmark(group="persistence")
def test_order_row_round_trip(benchmark: pytest.FixtureRequest) -> None:
    order = received()

    def round_trip() -> Order:
        return order_from_row(order_to_row(order))

    again = benchmark(round_trip)
    assert again.id == order.id


def fake_hub() -> Hub:
    registry = ChannelRegistry(
        {"testchannel": LoadedPlugin(plugin=plugin, distribution="orderhub", version="bench")},
        [AccountConfig(channel="testchannel", name="main", settings={"profile": "topi"})],
    )
    return Hub(
        uow=FakeUnitOfWorkFactory(),
        channels=registry,
        clock=FixedClock(),
        ids=SequentialIds(),
        queue=RecordingQueue(),
    )


@pytest.mark.benchmark(group="service")
def test_store_and_apply_a_webhook_on_fakes(benchmark: pytest.FixtureRequest) -> None:
    hub = fake_hub()
    loop = asyncio.new_event_loop()
    counter = itertools.count()

    def intake() -> None:
        n = next(counter)
        doc = {
            "id": f"CO-{n}",
            "status": "created",
            "lines": [
                {"id": f"L{i}", "title": "item", "quantity": 2, "sku": f"S{i}"} for i in range(10)
            ],
        }

        async def run() -> None:
            stored = await store_message(
                hub,
                channel="testchannel",
                account="main",
                body=json.dumps(doc).encode(),
                headers={"webhook-id": f"b-{n}"},
            )
            await process_message(hub, stored.message_id)

        loop.run_until_complete(run())

    benchmark(intake)
    loop.close()
    assert isinstance(hub.uow, FakeUnitOfWorkFactory)
    assert len(hub.uow.db.orders) == next(counter)
