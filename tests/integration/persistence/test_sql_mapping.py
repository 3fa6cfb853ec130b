"""Row <-> Order mapping: every part of the aggregate comes back equal and of the same type."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.mapping import order_from_row, order_to_row
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import (
    Cancellation,
    CancellationSnapshot,
    ChannelSnapshot,
    Fulfilment,
    Line,
    Order,
    Return,
    Shipment,
    ShipmentItem,
    Unit,
)
from orderhub.domain.values import (
    Address,
    Customer,
    Initiator,
    LineQuantity,
    Money,
    OrderStatus,
    Price,
    Reason,
    RequestState,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MakeOrder = Callable[..., Order]
CEST = timezone(timedelta(hours=2))


def assert_identical(restored: Any, original: Any, path: str = "order") -> None:
    """Equal, and of exactly the same types all the way down (a StrEnum equals its str)."""
    assert type(restored) is type(original), f"{path}: {type(restored)} != {type(original)}"
    if dataclasses.is_dataclass(original):
        for f in dataclasses.fields(original):
            assert_identical(
                getattr(restored, f.name), getattr(original, f.name), f"{path}.{f.name}"
            )
    elif isinstance(original, list | tuple):
        assert len(restored) == len(original), path
        for i, (r, o) in enumerate(zip(restored, original, strict=True)):
            assert_identical(r, o, f"{path}[{i}]")
    elif isinstance(original, dict):
        assert restored.keys() == original.keys(), path
        for key in original:
            assert_identical(restored[key], original[key], f"{path}[{key!r}]")
    elif isinstance(original, datetime):
        assert restored == original, path
        assert restored.utcoffset() == timedelta(0), f"{path}: not UTC"
    else:
        assert restored == original, path


def busy_order(make_order: MakeOrder, caps: Capabilities) -> Order:
    """An order with something in every part: partly shipped with serial numbers, one
    cancellation decided by the seller, one requested by the customer."""
    order = make_order("CO-BUSY", ship_by=datetime(2026, 3, 3, 18, 0, tzinfo=CEST))
    laptop, charger = order.lines
    order.accept(caps, now=T0 + timedelta(minutes=1))
    order.record_shipment(
        caps,
        shipment_id="S1",
        items=[LineQuantity(line_id=laptop.id, quantity=1, serial_numbers=("SN-1",))],
        now=T0 + timedelta(minutes=2),
        carrier="DHL",
        tracking_number="0034",
        tracking_url="https://track.example/0034",
    )
    order.cancel(
        caps,
        reason=Reason.OUT_OF_STOCK,
        cancellation_id="X1",
        now=T0 + timedelta(minutes=3),
        lines=[LineQuantity(line_id=laptop.id, quantity=1)],
    )
    order.apply(
        dataclasses.replace(
            _snapshot_of(order),
            cancellations=(
                CancellationSnapshot(
                    channel_cancellation_id="C-9",
                    initiator=Initiator.CUSTOMER,
                    reason=Reason.CUSTOMER_REQUEST,
                    state=RequestState.REQUESTED,
                    channel_reason="changed my mind",
                    lines=(("L2", 1),),
                ),
            ),
        ),
        caps=caps,
        now=T0 + timedelta(minutes=4),
        new_id=lambda: "generated-id",
    )
    assert charger.cancelled == 0
    assert order.cancellation_requested
    assert len(order.cancellations) == 2
    assert order.shipments[0].items[0].serial_numbers == ("SN-1",)
    return order


def returned_order(make_order: MakeOrder, caps: Capabilities) -> Order:
    """Shipped completely, then cancelled by the channel: a return."""
    order = make_order("CO-RET")
    laptop, charger = order.lines
    order.accept(caps, now=T0)
    order.record_shipment(
        caps,
        shipment_id="S2",
        items=[
            LineQuantity(line_id=laptop.id, quantity=2, serial_numbers=("SN-A", "SN-B")),
            LineQuantity(line_id=charger.id, quantity=1),
        ],
        now=T0 + timedelta(minutes=1),
    )
    order.apply(
        dataclasses.replace(
            _snapshot_of(order),
            channel_status="canceled",
            cancellations=(
                CancellationSnapshot(
                    channel_cancellation_id="C-R",
                    initiator=Initiator.CHANNEL,
                    reason=Reason.CHANNEL_CANCELLED,
                    state=RequestState.REQUESTED,
                ),
            ),
        ),
        caps=caps,
        now=T0 + timedelta(minutes=2),
        new_id=lambda: "R-1",
    )
    assert order.status is OrderStatus.SHIPPED
    assert len(order.returns) == 1
    return order


def _snapshot_of(order: Order) -> ChannelSnapshot:
    """What the channel says about an order, lines unchanged."""
    return ChannelSnapshot(
        channel_order_id=order.channel_order_id, channel_status=order.channel_status, lines=()
    )


@pytest.fixture(params=["busy", "returned", "fresh"])
def order(request: pytest.FixtureRequest, make_order: MakeOrder, caps: Capabilities) -> Order:
    if request.param == "busy":
        return busy_order(make_order, caps)
    if request.param == "returned":
        return returned_order(make_order, caps)
    return make_order("CO-FRESH")


def without_events(order: Order) -> Order:
    return dataclasses.replace(order, events=[])


def test_row_round_trip_restores_every_value_and_type(order: Order) -> None:
    row = order_to_row(order)
    row["document"] = json.loads(json.dumps(row["document"]))  # what a JSON column gives back
    restored = order_from_row(row)
    assert_identical(restored, without_events(order))


def test_row_keeps_filter_columns_out_of_the_document(order: Order) -> None:
    row = order_to_row(order)
    assert row["status"] == order.status.value
    assert row["cancellation_requested"] is order.cancellation_requested
    assert row["ship_by"] is None or row["ship_by"].tzinfo is UTC
    assert not {"status", "channel", "updated_at", "version", "id"} & row["document"].keys()


def names_of(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_field_of_the_aggregate_is_stored(make_order: MakeOrder, caps: Capabilities) -> None:
    """A field added to the domain later must be added to the mapping too."""
    row = order_to_row(busy_order(make_order, caps))
    document = row["document"]
    # last_seq is a column the unit of work keeps (the feed sequence of the newest event)
    assert names_of(Order) - {"events", "last_seq"} <= row.keys() | document.keys()
    line = document["lines"][0]
    assert names_of(Line) == line.keys()
    assert names_of(Unit) == line["units"][0].keys()
    assert names_of(Price) == line["unit_price"].keys()
    assert names_of(Money) == line["unit_price"]["gross"].keys()
    assert names_of(Fulfilment) == document["fulfilments"][0].keys()
    assert names_of(Shipment) == document["shipments"][0].keys()
    assert names_of(ShipmentItem) == document["shipments"][0]["items"][0].keys()
    assert names_of(Cancellation) == document["cancellations"][0].keys()
    assert names_of(LineQuantity) == document["cancellations"][0]["lines"][0].keys()
    assert names_of(Customer) == document["customer"].keys()
    assert names_of(Address) == document["shipping_address"].keys()
    returned = order_to_row(returned_order(make_order, caps))["document"]["returns"][0]
    assert names_of(Return) == returned.keys()


def test_naive_datetimes_are_refused(make_order: MakeOrder) -> None:
    order = make_order("CO-NAIVE")
    order.updated_at = datetime(2026, 3, 1, 9, 30)
    with pytest.raises(ValueError, match="naive datetime"):
        order_to_row(order)


def test_a_document_of_another_version_is_not_misread(make_order: MakeOrder) -> None:
    row = order_to_row(make_order("CO-V"))
    row["document"]["v"] = 99
    with pytest.raises(ValueError, match="document version 99"):
        order_from_row(row)


async def test_database_round_trip(uow_factory: SqlUnitOfWorkFactory, order: Order) -> None:
    expected = without_events(order)
    async with uow_factory() as uow:
        uow.orders.add(order)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.orders.get(order.id)
        feed = await uow.feed.read(after=0, limit=1000)
    assert stored is not None
    expected.version = 1
    # the feed number of the order's newest event, set by the feed when it is numbered
    expected.last_seq = max(entry.seq for entry in feed if entry.order_id == order.id)
    assert_identical(stored, expected)
