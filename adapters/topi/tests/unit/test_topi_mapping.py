"""topi order -> ChannelSnapshot -> Order.receive/apply: every topi status lands on the
canonical status of the mapping table (canonical-model.md, topi), bundles, prices,
customer data, serial-number rules, shipment requests and the shipment retry check."""

from __future__ import annotations

from typing import Any

import pytest
from topi_orders import (
    ALL_SHIPPED,
    NOW,
    ORDER_ID,
    apply,
    asset,
    bundle_line,
    by_channel_id,
    cable_line,
    full_order,
    item,
    receive,
    refs,
    ship_command,
    snapshot,
)

from orderhub.domain.errors import (
    InvalidTransition,
    NotSupportedByChannel,
    SerialNumberRequired,
    UnknownLine,
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
from orderhub_topi import wire
from orderhub_topi.mapping import already_shipped, shipment_request, to_snapshot
from orderhub_topi.plugin import CAPABILITIES

# ---------------------------------------------------------------------------------------
# statuses
# ---------------------------------------------------------------------------------------

PARTIAL = {"a-lap-1": "SN-L1", "a-chg-1": "SN-C1"}


@pytest.mark.parametrize(
    ("topi_status", "shipped", "canonical"),
    [
        ("created", None, OrderStatus.AWAITING_ACCEPTANCE),
        ("acknowledged", None, OrderStatus.AWAITING_ACCEPTANCE),
        ("confirmed", None, OrderStatus.READY_TO_SHIP),
        ("accepted", None, OrderStatus.READY_TO_SHIP),  # OpenAPI-only synonym of confirmed
        ("partially_fulfilled", PARTIAL, OrderStatus.PARTIALLY_SHIPPED),
        ("completed", ALL_SHIPPED, OrderStatus.SHIPPED),
        ("rejected", None, OrderStatus.REJECTED),
        ("canceled", None, OrderStatus.CANCELLED),
    ],
)
def test_every_topi_status_maps_to_its_canonical_status(
    topi_status: str, shipped: dict[str, str] | None, canonical: OrderStatus
) -> None:
    order = receive(snapshot(topi_status, shipped=shipped))

    assert order.status is canonical
    assert order.channel_status == topi_status


def test_created_then_acknowledged_still_awaits_acceptance() -> None:
    order = receive(snapshot("created"))

    events = apply(order, snapshot("acknowledged"))

    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert not order.released
    assert order.channel_status == "acknowledged"
    assert events == ["order.updated"]


def test_confirmed_accepts_every_unit_and_releases_for_dispatch() -> None:
    order = receive(snapshot("acknowledged"))

    events = apply(order, snapshot("confirmed"))

    assert order.status is OrderStatus.READY_TO_SHIP
    assert order.released
    assert all(line.accepted == line.quantity for line in order.leaf_lines)
    assert events == ["order.ready_to_ship"]


def test_partially_fulfilled_counts_shipped_assets_per_line() -> None:
    order = receive(snapshot("confirmed"))

    events = apply(order, snapshot("partially_fulfilled", shipped=PARTIAL))

    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    shipped = {line.channel_line_id: line.shipped for line in order.leaf_lines}
    assert shipped == {"1.0": 1, "1.1": 1, "2": 0}
    laptop = by_channel_id(order, "1.0")
    assert [(u.channel_unit_id, u.shipped, u.serial_number) for u in laptop.units] == [
        ("a-lap-1", True, "SN-L1"),
        ("a-lap-2", False, None),
    ]
    assert events == ["order.updated"]  # partially_shipped has no event of its own


def test_completed_ships_everything_and_there_is_no_delivery_step() -> None:
    order = receive(snapshot("partially_fulfilled", shipped=PARTIAL))

    events = apply(order, snapshot("completed", shipped=ALL_SHIPPED))

    assert order.status is OrderStatus.SHIPPED  # never delivered: topi has no delivery step
    assert all(line.shipped == line.quantity for line in order.leaf_lines)
    assert all(line.delivered == 0 for line in order.leaf_lines)
    assert events == ["order.shipped"]


def test_completed_counts_every_unit_even_without_asset_details() -> None:
    # topi says "completed" = every asset shipped; trust the status over missing assets
    order = receive(snapshot("confirmed"))

    apply(order, snapshot("completed", assets=[]))

    assert order.status is OrderStatus.SHIPPED


def test_rejected_rejects_every_unit() -> None:
    order = receive(snapshot("acknowledged"))

    events = apply(order, snapshot("rejected"))

    assert order.status is OrderStatus.REJECTED
    assert all(line.rejected == line.quantity for line in order.leaf_lines)
    assert events == ["order.rejected"]


def test_canceled_before_shipment_cancels_the_order_by_the_customer() -> None:
    order = receive(snapshot("confirmed"))

    events = apply(order, snapshot("canceled"))

    assert order.status is OrderStatus.CANCELLED
    assert events == ["order.cancelled"]
    assert order.events[0].data["initiator"] == "customer"
    assert order.events[0].data["reason"] == "customer_request"
    (cancellation,) = order.cancellations
    assert cancellation.initiator is Initiator.CUSTOMER
    assert cancellation.reason is Reason.CUSTOMER_REQUEST
    assert cancellation.state is RequestState.ACCEPTED
    assert cancellation.channel_reason == "canceled"
    assert order.returns == []


def test_canceled_after_partial_shipment_cancels_only_what_did_not_ship() -> None:
    order = receive(snapshot("partially_fulfilled", shipped=PARTIAL))

    events = apply(order, snapshot("canceled", shipped=PARTIAL))

    # the cancellation also covered what had shipped: no return for it, a person looks
    assert events == ["order.attention_required", "order.lines_cancelled", "order.shipped"]
    assert [a.code.value for a in order.attention] == ["cancelled_after_shipment"]
    assert order.status is OrderStatus.SHIPPED  # what is left has shipped
    cancelled = {line.channel_line_id: line.cancelled for line in order.leaf_lines}
    assert cancelled == {"1.0": 1, "1.1": 1, "2": 1}


def test_canceled_after_completion_is_a_return_request_and_the_order_stays_shipped() -> None:
    order = receive(snapshot("completed", shipped=ALL_SHIPPED))

    events = apply(order, snapshot("canceled", shipped=ALL_SHIPPED))

    assert events == ["order.return_requested"]
    assert order.status is OrderStatus.SHIPPED
    assert order.cancellations == []
    (ret,) = order.returns
    assert ret.initiator is Initiator.CUSTOMER
    assert ret.channel_return_id == "topi:canceled"
    assert {(i.line_id, i.quantity) for i in ret.lines} == {
        (line.id, line.quantity) for line in order.leaf_lines
    }
    # the same webhook again changes nothing
    assert apply(order, snapshot("canceled", shipped=ALL_SHIPPED)) == []
    assert len(order.returns) == 1


def test_a_late_created_after_completed_is_not_applied() -> None:
    order = receive(snapshot("completed", shipped=ALL_SHIPPED))

    events = apply(order, snapshot("created"))

    assert events == []
    assert order.status is OrderStatus.SHIPPED
    assert order.channel_status == "completed"


# ---------------------------------------------------------------------------------------
# bundles
# ---------------------------------------------------------------------------------------


def test_lines_are_numbered_by_position_and_a_bundle_is_a_parent_with_its_product() -> None:
    snap = snapshot("created")

    assert [(ls.channel_line_id, ls.parent_channel_line_id, ls.sku) for ls in snap.lines] == [
        ("1", None, "LAP-1"),  # the bundle as topi sends it
        ("1.0", "1", "LAP-1"),  # the bundle's own product
        ("1.1", "1", "CHG-1"),  # its sub-line
        ("2", None, "CBL-1"),
    ]
    order = receive(snap)
    bundle = by_channel_id(order, "1")
    assert {line.channel_line_id for line in order.leaf_lines} == {"1.0", "1.1", "2"}
    assert {line.parent_line_id for line in order.lines if line.parent_line_id} == {bundle.id}
    with pytest.raises(UnknownLine) as caught:
        order.line(bundle.id)
    assert caught.value.rule == "bundle-line"


def test_assets_go_to_the_line_of_their_product_whatever_their_order() -> None:
    order = receive(snapshot("created"))

    units = {line.channel_line_id: [u.channel_unit_id for u in line.units] for line in order.lines}
    assert units == {
        "1": [],
        "1.0": ["a-lap-1", "a-lap-2"],
        "1.1": ["a-chg-1", "a-chg-2"],
        "2": ["a-cbl-1"],
    }
    assert order.extras["topi"]["unassigned_assets"] == []


def test_bundle_status_follows_its_leaves() -> None:
    order = receive(snapshot("confirmed"))

    # the whole bundle shipped (laptops and chargers), the cable not: partially shipped
    bundle_shipped = {k: v for k, v in ALL_SHIPPED.items() if k != "a-cbl-1"}
    apply(order, snapshot("partially_fulfilled", shipped=bundle_shipped))

    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert by_channel_id(order, "1").shipped == 0  # the parent is not counted


def test_sub_line_quantity_is_the_number_of_units_in_the_order() -> None:
    # "each subline maintains the same ... quantity as the parent": 3 laptops, 3 chargers
    lines = [bundle_line(quantity=3)]
    order = receive(snapshot("created", lines=lines, assets=[]))

    assert by_channel_id(order, "1.0").quantity == 3
    assert by_channel_id(order, "1.1").quantity == 3


def test_a_product_in_two_lines_gives_each_line_its_quantity_of_assets() -> None:
    bought = cable_line() | {"title": "Spare laptop", "product_id": None}
    bought["seller_product_references"] = refs("LAP-1")
    rented = bundle_line() | {"sublines": []}
    assets = [asset("a-lap-1"), asset("a-lap-2"), asset("a-lap-1") | {"id": "a-lap-3"}]
    order = receive(snapshot("created", lines=[rented, bought], assets=assets))

    assert [u.channel_unit_id for u in by_channel_id(order, "1").units] == ["a-lap-1", "a-lap-2"]
    assert [u.channel_unit_id for u in by_channel_id(order, "2").units] == ["a-lap-3"]
    # the bought unit of a rented product needs a serial number too (topi's rent option)
    assert by_channel_id(order, "2").requires_serial_number


# ---------------------------------------------------------------------------------------
# prices, customer, addresses, serial numbers
# ---------------------------------------------------------------------------------------


def test_prices_are_minor_units_with_net_gross_and_tax_rate() -> None:
    order = receive(snapshot("created"))

    assert by_channel_id(order, "1").unit_price == Price(
        gross=Money(amount=119000, currency="EUR"),
        net=Money(amount=100000, currency="EUR"),
        tax_rate="0.19",
    )
    # order payloads usually carry no tax rate: none is invented
    assert by_channel_id(order, "1.1").unit_price == Price(
        gross=Money(amount=2380, currency="EUR"), net=Money(amount=2000, currency="EUR")
    )
    # the bundle's price is on the bundle, not counted twice on its product line
    assert by_channel_id(order, "1.0").unit_price is None
    assert by_channel_id(order, "1").extras["monthly_price"] == {
        "currency": "EUR",
        "gross": 5950,
        "net": 5000,
    }
    assert order.currency == "EUR"


def test_customer_company_and_addresses() -> None:
    order = receive(snapshot("created"))

    assert order.customer == Customer(
        name="Alice Example",
        email="alice@example.com",
        phone="+49 89 1234567",
        company="Example GmbH",
        vat_number="DE123456789",
    )
    assert order.shipping_address == Address(
        name="Bob Receiver",
        line1="Leopoldstr. 1",
        postal_code="80802",
        city="Munich",
        region="Bavaria",
        country_code="DE",
    )
    assert order.billing_address == Address(
        company="Example GmbH",
        line1="Rechnungsweg 5",
        line2="3. OG",
        postal_code="10115",
        city="Berlin",
        country_code="DE",
    )
    assert order.order_number == ORDER_ID
    assert order.seller_reference == "SO-2026-0042"
    assert order.placed_at.isoformat() == "2026-02-03T10:00:00+00:00"
    assert order.extras["topi"]["offer_id"] == "offer-9"
    assert order.extras["topi"]["metadata"] == {"erp": "4711"}


def test_shipping_address_recipient_may_be_called_name_and_missing_company_is_none() -> None:
    address = {"line1": "A 1", "postal_code": "1", "city": "C", "country_code": "DE", "name": "N"}
    customer = {"full_name": "Solo", "email": "s@example.com"}
    order = receive(snapshot("created", shipping_address=address, customer_info=customer))

    assert order.shipping_address is not None
    assert order.shipping_address.name == "N"
    assert order.customer == Customer(name="Solo", email="s@example.com")
    assert order.billing_address is None


def test_rent_lines_require_serial_numbers_bought_lines_do_not() -> None:
    order = receive(snapshot("created"))

    assert by_channel_id(order, "1.0").requires_serial_number
    assert by_channel_id(order, "1.1").requires_serial_number
    assert not by_channel_id(order, "2").requires_serial_number


def test_the_sku_is_the_configured_reference_source() -> None:
    sap = to_snapshot(full_order("created"), reference_source="sap")
    default = to_snapshot(full_order("created", seller_info=None), reference_source=None)

    assert sap.lines[0].sku == "123ab-5343"
    assert default.lines[0].sku == "LAP-1"  # the first reference when nothing says otherwise


# ---------------------------------------------------------------------------------------
# capabilities through the domain
# ---------------------------------------------------------------------------------------


def test_seller_cancellation_is_refused_with_the_explanation() -> None:
    order = receive(snapshot("confirmed"))

    with pytest.raises(NotSupportedByChannel) as caught:
        order.cancel(
            CAPABILITIES, reason=Reason.OUT_OF_STOCK, cancellation_id="c1", now=NOW, lines=None
        )

    assert caught.value.rule == "seller-cancellation-not-supported"
    assert caught.value.detail == CAPABILITIES.refusals["cancel"]
    assert "reject the order" in caught.value.detail
    assert order.cancellations == []


def test_rejection_after_acceptance_is_refused_with_the_rule() -> None:
    order = receive(snapshot("acknowledged"))
    order.accept(CAPABILITIES, now=NOW)

    with pytest.raises(InvalidTransition) as caught:
        order.reject(CAPABILITIES, reason=Reason.OUT_OF_STOCK, now=NOW)

    assert caught.value.rule == "rejection-after-acceptance"
    assert caught.value.detail == CAPABILITIES.refusals["reject"]
    assert order.status is OrderStatus.READY_TO_SHIP


def test_rejection_of_an_order_topi_confirmed_is_refused_too() -> None:
    order = receive(snapshot("confirmed"))

    with pytest.raises(InvalidTransition) as caught:
        order.reject(CAPABILITIES, reason=Reason.OUT_OF_STOCK, now=NOW)

    assert caught.value.rule == "rejection-after-acceptance"


def test_rejection_before_acceptance_rejects_the_whole_order_only() -> None:
    order = receive(snapshot("acknowledged"))
    cable = by_channel_id(order, "2")

    with pytest.raises(NotSupportedByChannel) as caught:
        order.reject(
            CAPABILITIES,
            reason=Reason.OUT_OF_STOCK,
            now=NOW,
            lines=[LineQuantity(line_id=cable.id, quantity=1)],
        )
    assert caught.value.rule == "rejection-whole-order-only"

    order.reject(CAPABILITIES, reason=Reason.OUT_OF_STOCK, now=NOW)
    assert order.status is OrderStatus.REJECTED


def test_delivery_confirmation_is_refused() -> None:
    order = receive(snapshot("completed", shipped=ALL_SHIPPED))

    with pytest.raises(NotSupportedByChannel) as caught:
        order.confirm_delivery(CAPABILITIES, now=NOW)

    assert caught.value.rule == "delivery-confirmation-not-supported"
    assert caught.value.detail == CAPABILITIES.refusals["deliver"]


def test_a_rent_line_does_not_ship_without_serial_numbers() -> None:
    order = receive(snapshot("confirmed"))
    laptop = by_channel_id(order, "1.0")

    with pytest.raises(SerialNumberRequired):
        order.record_shipment(
            CAPABILITIES,
            shipment_id="s1",
            items=[LineQuantity(line_id=laptop.id, quantity=1)],
            now=NOW,
        )
    assert laptop.shipped == 0


def test_a_bought_line_ships_without_a_serial_number_and_partial_shipments_are_allowed() -> None:
    order = receive(snapshot("confirmed"))
    cable = by_channel_id(order, "2")

    order.record_shipment(
        CAPABILITIES, shipment_id="s1", items=[LineQuantity(line_id=cable.id, quantity=1)], now=NOW
    )

    assert order.status is OrderStatus.PARTIALLY_SHIPPED


# ---------------------------------------------------------------------------------------
# shipment requests
# ---------------------------------------------------------------------------------------


def test_shipment_request_has_one_entry_per_unit_by_seller_product_reference() -> None:
    order = receive(snapshot("confirmed"))
    payload: dict[str, Any] = {
        "shipment_id": "hub-s1",
        "carrier": "DHL",
        "tracking_number": "00340434",
        "tracking_url": "https://track.example/00340434",
        "items": [
            item(order, "1.0", 2, "SN-L1", "SN-L2"),
            item(order, "2", 1),
        ],
    }

    request = shipment_request(ship_command(order, payload), order, reference_source=None)

    assert request.order_id == ORDER_ID
    assert [
        (e.seller_product_reference.reference, e.serial_number) for e in request.serial_numbers
    ] == [
        ("LAP-1", "SN-L1"),
        ("LAP-1", "SN-L2"),
        ("CBL-1", ""),  # a unit without a serial number is sent with ""
    ]
    assert request.tracking_url == "https://track.example/00340434"
    assert request.metadata == {
        "hub_shipment_id": "hub-s1",
        "carrier": "DHL",
        "tracking_number": "00340434",
    }
    # the wire shape topi documents
    body = wire.encode(request)
    assert b'"seller_product_reference":{"source":"sku","reference":"LAP-1"}' in body


def test_shipment_request_uses_the_configured_reference_source() -> None:
    order = receive(snapshot("confirmed"))
    payload = {"shipment_id": "s", "items": [item(order, "1.0", 1, "SN-L1")]}

    request = shipment_request(ship_command(order, payload), order, reference_source="sap")

    ref = request.serial_numbers[0].seller_product_reference
    assert (ref.source, ref.reference) == ("sap", "123ab-5343")


def test_shipment_request_leaves_out_what_the_warehouse_did_not_give() -> None:
    order = receive(snapshot("confirmed"))
    payload = {"shipment_id": None, "tracking_url": "", "items": [item(order, "2", 1)]}

    request = shipment_request(ship_command(order, payload), order, reference_source=None)

    assert request.tracking_url is None
    assert request.metadata is None
    assert b"tracking_url" not in wire.encode(request)


def test_shipment_request_for_an_unknown_line_is_an_error() -> None:
    order = receive(snapshot("confirmed"))
    payload = {"items": [{"line_id": "nope", "quantity": 1, "serial_numbers": []}]}

    with pytest.raises(ValueError, match="no line nope"):
        shipment_request(ship_command(order, payload), order, reference_source=None)


def _shipped_in_hub(order: Any, *items: dict[str, Any]) -> dict[str, Any]:
    """Record the shipment in the hub (as the warehouse command does) and return its payload."""
    shipment = order.record_shipment(
        CAPABILITIES,
        shipment_id="hub-s1",
        items=[
            LineQuantity(
                line_id=i["line_id"],
                quantity=i["quantity"],
                serial_numbers=tuple(i["serial_numbers"]),
            )
            for i in items
        ],
        now=NOW,
    )
    return {
        "shipment_id": shipment.id,
        "items": [
            {"line_id": i.line_id, "quantity": i.quantity, "serial_numbers": list(i.serial_numbers)}
            for i in shipment.items
        ],
    }


@pytest.mark.parametrize(
    ("topi_shipped", "expected"),
    [
        ({"a-lap-1": "SN-L1", "a-lap-2": "SN-L2"}, True),
        ({"a-lap-1": "SN-L1"}, False),  # one of the two serial numbers is not at topi
        ({}, False),
        ({"a-lap-1": "OTHER-1", "a-lap-2": "OTHER-2"}, False),  # shipped, but not these
    ],
)
def test_already_shipped_with_serial_numbers(topi_shipped: dict[str, str], expected: bool) -> None:
    order = receive(snapshot("confirmed"))
    payload = _shipped_in_hub(order, item(order, "1.0", 2, "SN-L1", "SN-L2"))
    command = ship_command(order, payload, attempts=2)
    request = shipment_request(command, order, reference_source=None)
    status = "partially_fulfilled" if topi_shipped else "confirmed"

    topi_order = full_order(status, shipped=topi_shipped)

    assert already_shipped(topi_order, request, command, order) is expected


@pytest.mark.parametrize(
    ("topi_shipped", "expected"),
    [
        ({"a-cbl-1": ""}, True),
        ({"a-lap-1": "SN-L1"}, False),  # another product shipped: not this shipment
        ({}, False),
    ],
)
def test_already_shipped_without_serial_numbers_counts_assets(
    topi_shipped: dict[str, str], expected: bool
) -> None:
    order = receive(snapshot("confirmed"))
    payload = _shipped_in_hub(order, item(order, "2", 1))
    command = ship_command(order, payload, attempts=2)
    request = shipment_request(command, order, reference_source=None)
    status = "partially_fulfilled" if topi_shipped else "confirmed"

    topi_order = full_order(status, shipped=topi_shipped)

    assert already_shipped(topi_order, request, command, order) is expected
