"""Octopia orders in canonical terms: one :class:`ChannelSnapshot` per order read.

Counters come from each line's state and the states it went through (``statusEvents``):
a line is accepted once it was ``Accepted`` or later, shipped once ``Shipped``, delivered
once ``Delivered``, rejected when ``Refused``. A line in ``CancelRequest`` keeps what its
previous state gave (its events, else the order's state). Supply modes ``Fulfillment`` and
``Xdock`` put a line in a fulfilment the channel ships. Cancellations are the order's
requests (``cancellationDetails``), plus, for what they do not cover, the lines Octopia
shows ``Cancelled`` and an order ``Rejected`` by its controls.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any, Final

from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
)
from orderhub.domain.snapshots import ShipmentSnapshot
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    Money,
    Price,
    Reason,
    RequestState,
)
from orderhub_octopia import wire

SALES_CHANNEL_EXTRA: Final = "sales_channel"
SUPPLY_MODE_EXTRA: Final = "supply_mode"
LINE_STATUS_EXTRA: Final = "octopia_status"
OFFER_EXTRA: Final = "offer_id"

#: seed 003 / canonical-model.md: reason code <-> canonical reason (one to one)
CODE_REASONS: Final[Mapping[str, Reason]] = MappingProxyType(
    {
        "seller-refusal": Reason.SELLER_REFUSAL,
        "customer-cancellation": Reason.CUSTOMER_REQUEST,
        "customer-claim": Reason.CUSTOMER_CLAIM,
        "refund-from-seller": Reason.SELLER_REFUND,
        "customer-withdrawal": Reason.CUSTOMER_WITHDRAWAL,
        "no-customer-withdrawal-in-store": Reason.NOT_COLLECTED_IN_STORE,
        "reference-mistake": Reason.WRONG_REFERENCE,
        "damaged": Reason.DAMAGED,
        "multiple-shipping": Reason.DUPLICATE_SHIPMENT,
        "missing-product": Reason.MISSING_ITEM,
        "breakdown-during-unpacking": Reason.DEFECTIVE_ON_ARRIVAL,
        "delivery-impossible": Reason.DELIVERY_IMPOSSIBLE,
        "customer-refusal": Reason.REFUSED_BY_CUSTOMER,
        "transport-damage": Reason.TRANSPORT_DAMAGE,
        "not-collected-at-the-collection-point": Reason.NOT_COLLECTED_AT_PICKUP_POINT,
    }
)
REASON_CODES: Final[Mapping[Reason, str]] = MappingProxyType(
    {reason: code for code, reason in CODE_REASONS.items()}
)
SUPPLY_FULFILLED_BY: Final[Mapping[str, FulfilledBy]] = MappingProxyType(
    {
        wire.SUPPLY_SELLER: FulfilledBy.SELLER,
        wire.SUPPLY_FULFILLMENT: FulfilledBy.CHANNEL,
        wire.SUPPLY_XDOCK: FulfilledBy.CHANNEL,
    }
)
_INITIATORS: Final = {
    wire.BY_CUSTOMER: Initiator.CUSTOMER,
    wire.BY_SELLER: Initiator.SELLER,
    wire.BY_SALES_CHANNEL: Initiator.CHANNEL,
}


MAX_AMOUNT: Final = Decimal(10) ** 12


class InvalidOctopiaOrder(ValueError):
    """An order the hub cannot take as it is (the inbox message fails, named)."""


def minor_units(amount: Decimal | None) -> int | None:
    """Euros (or any two-decimal currency) to integer cents, half up; a figure that is no
    amount (NaN, infinite, beyond any price) fails the order, named."""
    if amount is None:
        return None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        raise InvalidOctopiaOrder(f"Octopia sent {amount} as an amount")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def evidence(line: wire.Line, order_status: str) -> frozenset[str]:
    """The states the line is known to have been in."""
    seen = {line.status, *(e.status for e in line.status_events)}
    if line.status == wire.CANCEL_REQUEST and order_status != wire.CANCEL_REQUEST:
        seen.add(order_status)  # a request leaves the order in its previous state
    return frozenset(seen)


def to_snapshot(order: wire.Order) -> ChannelSnapshot:
    ids = [line.order_line_id for line in order.lines]
    if not ids:
        raise InvalidOctopiaOrder(f"Octopia order {order.order_id} has no lines")
    if len(set(ids)) != len(ids):
        raise InvalidOctopiaOrder(f"Octopia order {order.order_id}: line ids repeat")
    for line in order.lines:
        if line.quantity < 1:
            raise InvalidOctopiaOrder(
                f"Octopia order {order.order_id}: line {line.order_line_id} has quantity "
                f"{line.quantity}"
            )
        if line.offer.supply_mode not in SUPPLY_FULFILLED_BY:
            raise InvalidOctopiaOrder(
                f"Octopia order {order.order_id}: line {line.order_line_id} has supply mode "
                f"{line.offer.supply_mode!r} (known: {', '.join(wire.SUPPLY_MODES)})"
            )
    currency = order.currency_code or "EUR"
    lines = tuple(_line(order, line, currency) for line in order.lines)
    seen = [evidence(line, order.status) for line in order.lines]
    released = order.status in wire.RELEASED_STATES or any(s & wire.RELEASED_STATES for s in seen)
    seller_lines = [ln for ln in order.lines if ln.offer.supply_mode == wire.SUPPLY_SELLER]
    ship_to = next(
        (ln.shipping_address for ln in seller_lines + order.lines if ln.shipping_address), None
    )
    extras: dict[str, Any] = {
        "business_order": order.business_order,
        "octopia_reference": order.reference,
    }
    if order.sales_channel is not None:
        extras[SALES_CHANNEL_EXTRA] = order.sales_channel.id
        extras["sales_channel_name"] = order.sales_channel.name
    if order.customer is not None and order.customer.reference:
        extras["customer_reference"] = order.customer.reference
    return ChannelSnapshot(
        channel_order_id=order.order_id,
        channel_status=order.status,
        lines=lines,
        order_number=order.reference or order.order_id,
        customer=_customer(order.billing_address or ship_to),
        shipping_address=_address(ship_to),
        billing_address=_address(order.billing_address),
        currency=currency,
        placed_at=order.purchased_at or order.created_at,
        ship_by=_ship_by(order),
        fulfilments=_fulfilments(order),
        released=released,
        cancellations=_cancellations(order),
        shipments=_shipments(order),
        extras=extras,
        updated_at=order.updated_at,
    )


def _line(order: wire.Order, line: wire.Line, currency: str) -> LineSnapshot:
    seen = evidence(line, order.status)
    qty = line.quantity
    refused = line.status == wire.REFUSED or order.status == wire.REFUSED
    accepted = qty if (seen & wire.ACCEPTED_STATES and not refused) else 0
    shipped = qty if (seen & wire.SHIPPED_STATES or line.parcels) and not refused else 0
    offer = line.offer
    customer_price = line.selling_price or line.offer_price
    unit = minor_units(customer_price.unit_sales_price if customer_price else None)
    extras: dict[str, Any] = {
        SUPPLY_MODE_EXTRA: offer.supply_mode,
        LINE_STATUS_EXTRA: line.status,
        OFFER_EXTRA: offer.id,
        "product_id": offer.product_id,
        "gtin": offer.product_gtin,
        "condition": offer.condition,
    }
    extras.update(_prices(line))
    if line.delivery is not None:
        extras["delivery_mode"] = line.delivery.mode
        if line.delivery.shipped_at_max:
            extras["shipped_at_max"] = line.delivery.shipped_at_max.isoformat()
    return LineSnapshot(
        channel_line_id=line.order_line_id,
        sku=offer.seller_product_id,
        title=offer.product_title or offer.seller_product_id or line.order_line_id,
        quantity=qty,
        unit_price=Price(gross=Money(amount=unit, currency=currency)) if unit is not None else None,
        channel_fulfilment_id=offer.supply_mode,
        extras=extras,
        accepted=max(accepted, shipped),
        rejected=qty if refused else 0,
        shipped=shipped,
        delivered=qty if wire.DELIVERED in seen and not refused else 0,
    )


def _prices(line: wire.Line) -> dict[str, Any]:
    """The seller's side (``offerPrice``) in minor units: unit price, shipping, commission,
    taxes; the customer's (``sellingPrice``) unit and shipping."""
    found: dict[str, Any] = {}
    if (op := line.offer_price) is not None:
        found["offer_unit_price"] = minor_units(op.unit_sales_price)
        found["shipping_cost"] = minor_units(op.shipping_cost)
        if (c := op.commission) is not None:
            found["commission_with_vat"] = minor_units(
                c.amount_with_vat if c.amount_with_vat is not None else c.amount_with_tax
            )
            found["commission_without_vat"] = minor_units(
                c.amount_without_vat if c.amount_without_vat is not None else c.amount_without_tax
            )
            found["commission_rate"] = str(c.rate) if c.rate is not None else None
        found["taxes"] = [
            {
                "code": t.code,
                "target": t.target,
                "amount": minor_units(t.amount),
                "rate": str(t.rate) if t.rate is not None else None,
            }
            for t in op.taxes
        ]
    if (sp := line.selling_price) is not None:
        found["selling_shipping_cost"] = minor_units(sp.shipping_cost)
    return found


def _ship_by(order: wire.Order) -> Any:
    if order.shipped_at_max is not None:
        return order.shipped_at_max
    deadlines = [
        ln.delivery.shipped_at_max
        for ln in order.lines
        if ln.delivery is not None and ln.delivery.shipped_at_max is not None
    ]
    return min(deadlines) if deadlines else None


def _fulfilments(order: wire.Order) -> tuple[FulfilmentSnapshot, ...]:
    modes = {line.offer.supply_mode for line in order.lines}
    return tuple(
        FulfilmentSnapshot(
            channel_fulfilment_id=mode,
            fulfilled_by=SUPPLY_FULFILLED_BY[mode],
            extras={SUPPLY_MODE_EXTRA: mode},
        )
        for mode in wire.SUPPLY_MODES  # the seller's first: it stays the order's default
        if mode in modes
    )


def _shipments(order: wire.Order) -> tuple[ShipmentSnapshot, ...]:
    parcels: dict[str, list[tuple[wire.Parcel, wire.Line]]] = {}
    for line in order.lines:
        for parcel in line.parcels:
            parcels.setdefault(parcel.parcel_number, []).append((parcel, line))
    return tuple(
        ShipmentSnapshot(
            channel_shipment_id=number,
            lines=tuple((line.order_line_id, line.quantity) for _, line in found),
            carrier=found[0][0].carrier_name,
            tracking_number=number,
            tracking_url=found[0][0].tracking_url,
        )
        for number, found in parcels.items()
    )


def request_state(status: str) -> RequestState:
    if status in wire.REQUEST_ACCEPTED:
        return RequestState.ACCEPTED
    if status in wire.REQUEST_REJECTED:
        return RequestState.REFUSED
    return RequestState.REQUESTED


def _reason(detail: wire.CancellationDetail, initiator: Initiator) -> Reason:
    if detail.reason is not None and detail.reason in CODE_REASONS:
        return CODE_REASONS[detail.reason]
    if initiator is Initiator.CUSTOMER:
        return Reason.CUSTOMER_REQUEST
    return Reason.CHANNEL_CANCELLED if initiator is Initiator.CHANNEL else Reason.OTHER


def _cancellations(order: wire.Order) -> tuple[CancellationSnapshot, ...]:
    by_id = {line.order_line_id: line for line in order.lines}
    found: list[CancellationSnapshot] = []
    covered: set[str] = set()  # lines an accepted or open request covers
    for detail in order.cancellation_details:
        initiator = _INITIATORS.get(detail.requested_by, Initiator.CHANNEL)
        state = request_state(detail.status)
        lines = tuple(
            (item.order_line_id, item.quantity or by_id[item.order_line_id].quantity)
            for item in detail.lines
            if item.order_line_id in by_id
        )
        if detail.lines and not lines:
            continue  # none of this order's lines: nothing to say
        if state is not RequestState.REFUSED:
            covered |= {cid for cid, _ in lines} if lines else set(by_id)
        found.append(
            CancellationSnapshot(
                channel_cancellation_id=detail.cancellation_request_id,
                initiator=initiator,
                reason=_reason(detail, initiator),
                state=state,
                channel_reason=detail.reason,
                lines=lines,
            )
        )
    if order.status in (wire.REJECTED, wire.CANCELLED) and not covered:
        found.append(_by_channel(f"{order.status.lower()}:{order.order_id}", ()))
        covered = set(by_id)
    for line in order.lines:
        lid = line.order_line_id
        if lid in covered:
            continue
        if line.status == wire.CANCELLED:
            found.append(_by_channel(f"cancelled:{lid}", ((lid, line.quantity),)))
        elif line.status == wire.CANCEL_REQUEST:  # no request listed: the customer's
            found.append(
                CancellationSnapshot(
                    channel_cancellation_id=f"request:{lid}",
                    initiator=Initiator.CUSTOMER,
                    reason=Reason.CUSTOMER_REQUEST,
                    state=RequestState.REQUESTED,
                    lines=((lid, line.quantity),),
                )
            )
    return tuple(found)


def _by_channel(key: str, lines: tuple[tuple[str, int], ...]) -> CancellationSnapshot:
    return CancellationSnapshot(
        channel_cancellation_id=key,
        initiator=Initiator.CHANNEL,
        reason=Reason.CHANNEL_CANCELLED,
        state=RequestState.ACCEPTED,
        lines=lines,
    )


def _name(address: wire.Address) -> str | None:
    name = " ".join(p for p in (address.first_name, address.last_name) if p)
    return name or None


def _address(address: wire.Address | None) -> Address | None:
    if address is None:
        return None
    line2 = ", ".join(p for p in (address.address_line2, address.address_line3) if p) or None
    if address.pickup_name:
        line2 = ", ".join(p for p in (line2, f"pickup {address.pickup_name}") if p)
    return Address(
        name=_name(address),
        company=address.company_name,
        line1=address.address_line1,
        line2=line2,
        postal_code=address.postal_code,
        city=address.city,
        region=address.state_or_region,
        country_code=address.country_code,
        phone=address.phone,
    )


def _customer(address: wire.Address | None) -> Customer | None:
    if address is None:
        return None
    return Customer(
        name=_name(address),
        email=address.email,
        phone=address.phone,
        company=address.company_name,
        vat_number=address.company_vat_number,
    )
