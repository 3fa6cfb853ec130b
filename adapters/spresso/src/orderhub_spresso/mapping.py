"""Spresso <-> canonical: an Order object to a snapshot, the hub's commands to Spresso's
calls. Pure functions over :mod:`orderhub_spresso.wire`; no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from orderhub.channels.spi import CommandKind, FollowUp
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    Fulfilment,
    FulfilmentSnapshot,
    LineSnapshot,
    Order,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    Reason,
    RequestState,
)
from orderhub_spresso import wire

VARIANT_EXTRA: Final = "variant"


class MappingError(ValueError):
    """A message or command the adapter cannot translate (shown on the inbox or command)."""


def line_key(fulfillment_id: str, variant_id: str) -> str:
    """Lines are keyed ``F:V``: one variant may be split over two fulfilments."""
    return f"{fulfillment_id}:{variant_id}"


def country_code(country: str | None) -> str | None:
    if not country:
        return None
    code = country.strip().upper()
    if len(code) == 3 and code in wire.ALPHA3:
        return wire.ALPHA3[code]
    if len(code) == 2:
        return code
    raise MappingError(f"unknown country code {country!r} (alpha-2 or a known alpha-3)")


# --- intake -----------------------------------------------------------------------------------


def to_snapshot(webhook: wire.Webhook) -> ChannelSnapshot:
    order = webhook.order
    variants = {ov.variant.id: ov.variant for ov in order.order_variants if ov.variant}
    if not order.fulfillments:
        raise MappingError(f"order {order.id} has no fulfillments")
    settled = _settled(order)
    lines: list[LineSnapshot] = []
    seen: set[str] = set()
    for f in order.fulfillments:
        method = f.fulfillment_method or wire.CARRIER_DELIVERY
        if method != wire.CARRIER_DELIVERY:
            raise MappingError(
                f"order {order.id}: fulfillment {f.id} is {method!r}; only "
                f"{wire.CARRIER_DELIVERY} is handled (fulfil it in Spresso's console)"
            )
        for fv in f.fulfillment_variants:
            key = line_key(f.id, fv.variant)
            if key in seen:
                raise MappingError(f"order {order.id}: variant {fv.variant} twice in {f.id}")
            seen.add(key)
            lines.append(_line(f, fv, variants.get(fv.variant), order.id, settled))
    return ChannelSnapshot(
        channel_order_id=order.id,
        channel_status=order.status,
        lines=tuple(lines),
        order_number=str(order.order_no) if order.order_no is not None else None,
        customer=_customer(order),
        shipping_address=_address(order.shipping_address),
        placed_at=order.created_at,
        updated_at=order.updated_at,
        fulfilments=tuple(
            FulfilmentSnapshot(
                channel_fulfilment_id=f.id,
                fulfilled_by=FulfilledBy.SELLER,
                extras={"fulfiller_location": f.fulfiller_location, "status": f.status},
            )
            for f in order.fulfillments
        ),
        released=True,  # fulfillable: paid and past the grace period; nothing to accept
        cancellations=tuple(_cancellations(webhook)),
        extras={
            "order_no": order.order_no,
            "financial_status": order.financial_status,
            "event": webhook.event,
        },
    )


def _settled(order: wire.Order) -> dict[str, int]:
    """Variant -> units settled, from ``orderVariants[].fulfilledQuantity`` (the Data
    Model's only figure: a fulfilment's variants carry just their ``quantity``), for each
    variant that exactly one shipped fulfilment carries; with two, which got how many is
    not said."""
    shipped_in: dict[str, int] = {}
    for f in order.fulfillments:
        if f.status in wire.SHIPPED_STATUSES:
            for fv in f.fulfillment_variants:
                shipped_in[fv.variant] = shipped_in.get(fv.variant, 0) + 1
    return {
        ov.variant.id: ov.fulfilled_quantity
        for ov in order.order_variants
        if ov.variant is not None
        and ov.fulfilled_quantity is not None
        and shipped_in.get(ov.variant.id) == 1
    }


def _line(
    f: wire.Fulfillment,
    fv: wire.FulfillmentVariant,
    known: wire.Variant | None,
    order_id: str,
    settled: Mapping[str, int],
) -> LineSnapshot:
    if fv.quantity < 1:
        raise MappingError(f"order {order_id}: {f.id}/{fv.variant} has no units")
    shipped = 0
    if f.status in wire.SHIPPED_STATUSES:
        # the fulfilment's own figure, else the order's settled one, else every unit: a
        # short ship must not come back as shipped in full (units never sent)
        figure = fv.fulfilled_quantity
        if figure is None:
            figure = settled.get(fv.variant, fv.quantity)
        shipped = max(0, min(figure, fv.quantity))
    return LineSnapshot(
        channel_line_id=line_key(f.id, fv.variant),
        sku=known.sku if known else None,
        title=(known.name or known.sku or fv.variant) if known else fv.variant,
        quantity=fv.quantity,
        channel_fulfilment_id=f.id,
        extras={VARIANT_EXTRA: fv.variant, "upc": known.upc if known else None},
        shipped=shipped,
        delivered=shipped if f.status == wire.DELIVERED else 0,
    )


def _cancellations(webhook: wire.Webhook) -> list[CancellationSnapshot]:
    """Whole order when the order is cancelled; else each fulfilment Spresso shows
    cancelled (the doc shows no fulfilment-level cancellation event: [inferred])."""
    order = webhook.order
    if webhook.event == wire.ORDER_CANCELLED or order.status == wire.CANCELLED:
        return [
            CancellationSnapshot(
                channel_cancellation_id=f"{order.id}:{wire.CANCELLED}",
                initiator=Initiator.CHANNEL,
                reason=Reason.CHANNEL_CANCELLED,
                state=RequestState.ACCEPTED,
                channel_reason=wire.ORDER_CANCELLED,
            )
        ]
    return [
        CancellationSnapshot(
            channel_cancellation_id=f"{f.id}:{wire.CANCELLED}",
            initiator=Initiator.CHANNEL,
            reason=Reason.CHANNEL_CANCELLED,
            state=RequestState.ACCEPTED,
            channel_reason=wire.CANCELLED,
            lines=tuple((line_key(f.id, fv.variant), fv.quantity) for fv in f.fulfillment_variants),
        )
        for f in order.fulfillments
        if f.status == wire.CANCELLED
    ]


def _customer(order: wire.Order) -> Customer | None:
    address, user = order.shipping_address, order.user
    if user is None and address is None:
        return None
    return Customer(
        name=_name(address),
        email=user.email if user else None,
        phone=(user.telephone_number if user else None)
        or (address.telephone_number if address else None),
    )


def _name(address: wire.ShippingAddress | None) -> str | None:
    if address is None:
        return None
    return " ".join(p for p in (address.first_name, address.last_name) if p) or None


def _address(address: wire.ShippingAddress | None) -> Address | None:
    if address is None:
        return None
    return Address(
        name=_name(address),
        line1=address.address_line1,
        line2=address.address_line2,
        postal_code=address.postal_code,
        city=address.city,
        region=address.state,
        country_code=country_code(address.country),
        phone=address.telephone_number,
    )


# --- outbound ---------------------------------------------------------------------------------


def variant_of(order: Order, line_id: str) -> str:
    line = order.line(line_id)
    variant = line.extras.get(VARIANT_EXTRA)
    return str(variant) if variant else line.channel_line_id.rpartition(":")[2]


def carrier_code(carrier: str | None, table: Mapping[str, str]) -> str:
    """Spresso's code for a WMS carrier code: the account's table first, then Spresso's
    own codes (case-insensitive); :class:`MappingError` for anything else."""
    if not carrier:
        raise MappingError("Spresso needs a carrier for each shipment")
    lowered = {k.lower(): v for k, v in table.items()}
    code = lowered.get(carrier.lower()) or carrier.lower()
    if code not in wire.CARRIERS and code not in set(lowered.values()):
        known = ", ".join(sorted(set(wire.CARRIERS) | set(lowered)))
        raise MappingError(f"Spresso does not know carrier {carrier!r} (known: {known})")
    return code


def channel_fulfilment(order: Order, fulfilment_id: str | None, line_ids: Sequence[str]) -> str:
    """Spresso's fulfilment id of a command: named, else the fulfilment of its lines."""
    hub_id = fulfilment_id or next(
        (order.line(i).fulfilment_id for i in line_ids if order.line(i).fulfilment_id), None
    )
    if hub_id is None:
        raise MappingError("the command names no fulfilment and its lines have none")
    channel_id = order.fulfilment(hub_id).channel_fulfilment_id
    if channel_id is None:
        raise MappingError(f"fulfilment {hub_id} has no Spresso id")
    return channel_id


def shipment_request(
    payload: Mapping[str, Any], order: Order, carriers: Mapping[str, str]
) -> tuple[str, wire.ShipmentRequest]:
    items = list(payload.get("items") or ())
    tracking = payload.get("tracking_number")
    if not tracking:
        raise MappingError("Spresso needs a tracking number for each shipment")
    fulfillment_id = channel_fulfilment(
        order, payload.get("fulfilment_id"), [i["line_id"] for i in items]
    )
    request = wire.ShipmentRequest(
        carrier=carrier_code(payload.get("carrier"), carriers),
        carrier_reference_id=str(tracking),  # [doc] "can use trackingNumber"
        tracking_number=str(tracking),
        tracking_url=payload.get("tracking_url") or None,
        shipment_variants=[
            wire.ShipmentVariant(variant=variant_of(order, i["line_id"]), quantity=i["quantity"])
            for i in items
        ],
    )
    return fulfillment_id, request


@dataclass(frozen=True, kw_only=True, slots=True)
class InTransit:
    fulfillment_id: str
    update: wire.FulfillmentUpdate


def in_transit_request(payload: Mapping[str, Any]) -> InTransit:
    """The frozen ``close_fulfilment`` payload as Spresso's ``in_transit`` update; a
    fulfilment with nothing fulfilled is refused (cancel it in Spresso's console)."""
    variants = [
        wire.FulfilledVariant(variant=str(v["variant"]), fulfilled_quantity=int(v["fulfilled"]))
        for v in payload.get("variants") or ()
    ]
    if not variants or not any(v.fulfilled_quantity for v in variants):
        raise MappingError(
            f"fulfilment {payload.get('fulfillment')}: nothing was shipped; Spresso takes no "
            "cancellation by API: cancel it in Spresso's admin console (Foxtrot)"
        )
    update = wire.FulfillmentUpdate(status=wire.IN_TRANSIT, fulfillment_variants=variants)
    return InTransit(fulfillment_id=str(payload["fulfillment"]), update=update)


def close_follow_up(order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
    """A fulfilment our warehouse shipped (whole, or closed short) goes ``in_transit``,
    every variant with its fulfilled quantity frozen now."""
    if (
        fulfilment.status is not FulfilmentStatus.SHIPPED
        or fulfilment.fulfilled_by is not FulfilledBy.SELLER
        or fulfilment.channel_fulfilment_id is None
    ):
        return ()
    lines = [line for line in order.leaf_lines if line.fulfilment_id == fulfilment.id]
    variants = [
        {
            "line_id": line.id,
            "variant": variant_of(order, line.id),
            "quantity": line.quantity,
            "fulfilled": line.shipped,
        }
        for line in lines
    ]
    payload = {"fulfillment": fulfilment.channel_fulfilment_id, "variants": variants}
    return (FollowUp(kind=CommandKind.CLOSE_FULFILMENT, payload=payload),)


def delivered_fulfilments(payload: Mapping[str, Any], order: Order) -> list[str]:
    """Spresso's ids of the fulfilments a delivery command covers (one, or each of the
    delivered lines' fulfilments when the WMS named none)."""
    if payload.get("fulfilment_id"):
        return [channel_fulfilment(order, payload["fulfilment_id"], [])]
    found: list[str] = []
    for item in payload.get("lines") or ():
        channel_id = channel_fulfilment(order, None, [item["line_id"]])
        if channel_id not in found:
            found.append(channel_id)
    if not found:
        raise MappingError("the delivery names no fulfilment and no lines")
    return found
