"""Octopia orders mapped to canonical snapshots (no I/O)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from orderhub.domain.values import FulfilledBy, Initiator, Reason, RequestState
from orderhub_octopia import wire
from orderhub_octopia.mapping import InvalidOctopiaOrder, minor_units, to_snapshot
from orderhub_octopia.settings import parse


def order(status: str, *lines: dict[str, Any], **extra: Any) -> wire.Order:
    raw = {
        "orderId": "O1",
        "status": status,
        "salesChannel": {"id": "CDISFR"},
        "updatedAt": "2026-03-19T09:57:29Z",
        "lines": list(lines) or [{"orderLineId": "L1", "status": status, "quantity": 2}],
        **extra,
    }
    return msgspec.convert(raw, type=wire.Order)


@pytest.mark.parametrize(
    ("status", "counters", "released"),
    [
        ("WaitingAcceptance", (0, 0, 0, 0), False),
        ("Accepted", (2, 0, 0, 0), False),
        ("InPreparation", (2, 0, 0, 0), True),
        ("Shipped", (2, 0, 2, 0), True),
        ("Delivered", (2, 0, 2, 2), True),
        ("Refused", (0, 2, 0, 0), False),
    ],
)
def test_each_state_gives_its_counters(
    status: str, counters: tuple[int, int, int, int], released: bool
) -> None:
    snap = to_snapshot(order(status))
    [line] = snap.lines
    assert (line.accepted, line.rejected, line.shipped, line.delivered) == counters
    assert snap.released is released
    assert snap.channel_status == status


def test_a_cancel_request_line_keeps_its_previous_state_and_opens_a_request() -> None:
    line = {"orderLineId": "L1", "status": "CancelRequest", "quantity": 1}
    snap = to_snapshot(order("InPreparation", line))
    assert snap.lines[0].accepted == 1
    assert snap.released
    [request] = snap.cancellations
    assert (request.initiator, request.state, request.lines) == (
        Initiator.CUSTOMER,
        RequestState.REQUESTED,
        (("L1", 1),),
    )


def test_requests_listed_on_the_order_carry_their_state() -> None:
    details = [
        {
            "cancellationRequestId": "C1",
            "status": "Rejected",
            "requestedBy": "Customer",
            "lines": [{"orderLineId": "L1"}],
        },
        {
            "cancellationRequestId": "C2",
            "status": "Accepted",
            "requestedBy": "Seller",
            "reason": "seller-refusal",
            "lines": [],
        },
    ]
    snap = to_snapshot(order("Cancelled", cancellationDetails=details))
    assert [(c.channel_cancellation_id, c.state, c.reason) for c in snap.cancellations] == [
        ("C1", RequestState.REFUSED, Reason.CUSTOMER_REQUEST),
        ("C2", RequestState.ACCEPTED, Reason.SELLER_REFUSAL),
    ]


def test_rejected_by_controls_is_a_channel_cancellation() -> None:
    [c] = to_snapshot(order("Rejected")).cancellations
    assert (c.initiator, c.reason, c.lines) == (Initiator.CHANNEL, Reason.CHANNEL_CANCELLED, ())


def test_supply_modes_prices_addresses_and_deadline() -> None:
    lines = [
        {
            "orderLineId": "L1",
            "status": "InPreparation",
            "offer": {"supplyMode": "Xdock"},
            "offerPrice": {
                "unitSalesPrice": 10.005,
                "shippingCost": 4.9,
                "commission": {"amountWithTax": 1.5, "amountWithoutTax": 1.25},
            },
        },
        {
            "orderLineId": "L2",
            "status": "InPreparation",
            "offer": {"supplyMode": "Seller", "sellerProductId": "SKU2"},
            "shippingAddress": {
                "firstName": "Ana",
                "lastName": "Lee",
                "city": "Lyon",
                "countryCode": "FR",
                "pickupName": "Relais 12",
            },
            "delivery": {"shippedAtMax": "2026-03-21T12:00:00Z"},
        },
    ]
    snap = to_snapshot(order("InPreparation", *lines))
    assert [(f.channel_fulfilment_id, f.fulfilled_by) for f in snap.fulfilments] == [
        ("Seller", FulfilledBy.SELLER),
        ("Xdock", FulfilledBy.CHANNEL),
    ]
    first = snap.lines[0]
    assert first.unit_price is not None
    assert first.unit_price.gross.amount == 1001  # half up
    assert first.extras["commission_with_vat"] == 150  # C6's key names read too
    assert snap.shipping_address is not None
    assert snap.shipping_address.city == "Lyon"  # the seller's line's address
    assert "Relais 12" in (snap.shipping_address.line2 or "")
    assert snap.ship_by is not None
    assert snap.ship_by.day == 21
    assert snap.extras["sales_channel"] == "CDISFR"


def test_bad_orders_are_named() -> None:
    with pytest.raises(InvalidOctopiaOrder, match="repeat"):
        to_snapshot(
            order(
                "Accepted",
                {"orderLineId": "L", "status": "Accepted"},
                {"orderLineId": "L", "status": "Accepted"},
            )
        )
    with pytest.raises(InvalidOctopiaOrder, match="supply mode"):
        to_snapshot(
            order(
                "Accepted",
                {"orderLineId": "L", "status": "Accepted", "offer": {"supplyMode": "Drone"}},
            )
        )


def test_minor_units() -> None:
    assert minor_units(None) is None
    assert minor_units(Decimal("0.015")) == 2


def test_settings_are_checked_when_the_account_opens() -> None:
    base = {"seller_id": 98979, "client_id": "c", "client_secret": "s"}
    assert parse("a", base).seller_id == "98979"
    with pytest.raises(ValueError, match="seller_id"):
        parse("a", {"client_id": "c", "client_secret": "s"})
    with pytest.raises(ValueError, match="unknown setting 'sellerid'"):
        parse("a", {**base, "sellerid": 1})
    with pytest.raises(ValueError, match="one_parcel"):
        parse("a", {**base, "sales_channels": {"CDISFR": {"one_parcel": True}}})
    with pytest.raises(ValueError, match="at most 100"):
        parse("a", {**base, "poll_page_size": 500})
    with pytest.raises(ValueError, match="wire"):
        parse("a", {**base, "wire": {"approval_key": 3}})
