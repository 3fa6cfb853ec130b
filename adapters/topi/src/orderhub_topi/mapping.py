"""topi <-> canonical: a full topi order becomes a ChannelSnapshot, a shipment command a
ShipmentRequest. Wire shapes come from :mod:`orderhub_topi.wire`; this module only maps.
docs/channels/topi.md ("Mapping in the hub") explains every choice below.

| topi status | what the snapshot says |
|---|---|
| created, acknowledged | nothing accepted yet (``awaiting_acceptance``) |
| confirmed (and ``accepted``) | every unit accepted, released for dispatch (``ready_to_ship``) |
| partially_fulfilled | accepted, released; shipped = assets shipped per line |
| completed | accepted, released; every unit shipped (``shipped``; topi has no delivery step) |
| rejected | every unit rejected |
| canceled | a cancellation by the customer, already decided; the core turns it into a return
  request when everything had shipped |

Lines are numbered by position ("1", "1.2"); a bundle "1" is a grouping line whose own
product is the leaf "1.0" and whose sub-lines are "1.1", "1.2"...; assets go to the leaf
lines by product.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from orderhub.channels.spi import CommandView
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    Line,
    LineSnapshot,
    Order,
    Unit,
)
from orderhub.domain.values import Address, Customer, Initiator, Money, Price, Reason, RequestState
from orderhub_topi import wire

CANCELLATION_ID: Final = "topi:canceled"
_ACCEPTED_STATUSES: Final = frozenset(
    {
        wire.ORDER_CONFIRMED,
        wire.ORDER_ACCEPTED,
        wire.ORDER_PARTIALLY_FULFILLED,
        wire.ORDER_COMPLETED,
    }
)
_SHIPPED_ASSET_STATUSES: Final = frozenset(
    {wire.ASSET_SHIPPED, wire.ASSET_COMPLETED, wire.ASSET_RETURNED}
)


def _price(amount: wire.MoneyAmount | None) -> Price | None:
    if amount is None:
        return None
    tax = str(Decimal(amount.tax_rate) / 10000) if amount.tax_rate is not None else None
    return Price(
        gross=Money(amount=amount.gross, currency=amount.currency),
        net=Money(amount=amount.net, currency=amount.currency),
        tax_rate=tax,
    )


def _keys(refs: Iterable[wire.SellerProductReference], product_id: str | None) -> set[str]:
    keys = {f"ref:{r.source}:{r.reference}" for r in refs}
    if product_id:
        keys.add(f"product:{product_id}")
    return keys


def _sku(refs: Sequence[wire.SellerProductReference], source: str | None) -> str | None:
    if not refs:
        return None
    chosen = next((r for r in refs if r.source == source), refs[0]) if source else refs[0]
    return chosen.reference


@dataclass(frozen=True, slots=True)
class _Numbered:
    channel_line_id: str
    line: wire.OrderLine
    parent: str | None
    takes_assets: bool
    main: bool = False


def _numbered_lines(order: wire.FullOrderResult) -> list[_Numbered]:
    """Every hub line of a topi order, parents first.

    topi order lines carry no id: the hub numbers them by position ("1", "1.2" for the
    second sub-line of the first line); topi returns lines in a stable order. A bundle (a
    line with ``sublines``) is a product of its own with sub-lines: topi creates assets for
    the bundle's product too (the laptop of a laptop-and-charger bundle). The hub's line
    "1" is the bundle as topi sends it (a parent, never shipped by name); its product
    becomes the component line "1.0", shipped like every sub-line."""
    lines: list[_Numbered] = []
    for i, line in enumerate(order.order_lines, start=1):
        if not line.sublines:
            lines.append(_Numbered(str(i), line, parent=None, takes_assets=True))
            continue
        lines.append(_Numbered(str(i), line, parent=None, takes_assets=False))
        lines.append(_Numbered(f"{i}.0", line, parent=str(i), takes_assets=True, main=True))
        for j, sub in enumerate(line.sublines, start=1):
            lines.append(_Numbered(f"{i}.{j}", sub, parent=str(i), takes_assets=True))
    return lines


def reference_source_of(order: wire.FullOrderResult, configured: str | None) -> str | None:
    """The seller product reference source used as SKU: the account setting, else the one
    topi names in ``seller_info.product_reference_source``, else None (the first one)."""
    if configured:
        return configured
    return order.seller_info.product_reference_source if order.seller_info else None


def to_snapshot(
    order: wire.FullOrderResult,
    *,
    reference_source: str | None,
    read_at: dt.datetime | None = None,
) -> ChannelSnapshot:
    """``read_at``: when topi was asked. topi's order carries no update stamp, and two of
    its states map to the same counters (created, acknowledged): the read time is the
    stamp, so a read stored late never sets the channel status back."""
    source = reference_source_of(order, reference_source)
    unassigned = list(order.assets)
    line_snapshots = []
    for numbered in _numbered_lines(order):
        line = numbered.line
        assets: list[wire.Asset] = []
        if numbered.takes_assets:
            # Assets carry no line reference: give each line (in line order) the first
            # unassigned assets of its product, up to its quantity.
            keys = _keys(line.seller_product_references, line.product_id)
            for asset in list(unassigned):
                if len(assets) == line.quantity:
                    break
                if keys & _keys(asset.seller_product_references, asset.product_id):
                    assets.append(asset)
                    unassigned.remove(asset)
        line_snapshots.append(_line_snapshot(order, numbered, assets, source))
    return ChannelSnapshot(
        channel_order_id=order.id,
        channel_status=order.status,
        lines=tuple(line_snapshots),
        order_number=order.id,
        seller_reference=order.seller_offer_reference,
        customer=_customer(order.customer_info),
        shipping_address=_shipping_address(order.shipping_address),
        billing_address=_billing_address(order.customer_info),
        currency=_currency(order),
        placed_at=order.created_at,
        released=order.status in _ACCEPTED_STATUSES or _shipped_before_cancel(order),
        cancellations=_cancellations(order),
        updated_at=read_at,
        extras={
            "topi": {
                "offer_id": order.offer_id,
                "metadata": order.metadata or {},
                "tracking_urls": order.tracking_urls,
                "canceled_at": order.canceled_at.isoformat() if order.canceled_at else None,
                "unassigned_assets": [a.id for a in unassigned],
            }
        },
    )


def _line_snapshot(
    order: wire.FullOrderResult,
    numbered: _Numbered,
    assets: list[wire.Asset],
    reference_source: str | None,
) -> LineSnapshot:
    line = numbered.line
    quantity = line.quantity
    status = order.status
    if status == wire.ORDER_COMPLETED:
        shipped = quantity
    else:
        shipped = sum(1 for a in assets if a.status in _SHIPPED_ASSET_STATUSES)
    extras: dict[str, Any] = {
        "product_id": line.product_id,
        "contract_type": line.contract_type,
        "duration": line.duration,
        "seller_product_references": [
            {"source": r.source, "reference": r.reference} for r in line.seller_product_references
        ],
        "monthly_price": _money_dict(line.monthly_price),
    }
    if numbered.main:
        extras["bundle_product"] = True
    return LineSnapshot(
        channel_line_id=numbered.channel_line_id,
        sku=_sku(line.seller_product_references, reference_source),
        title=line.title,
        quantity=quantity,
        # the bundle's price stays on the bundle line (as topi sends it), not twice
        unit_price=None if numbered.main else _price(line.unit_price),
        parent_channel_line_id=numbered.parent,
        requires_serial_number=line.contract_type == wire.CONTRACT_RENT
        or any(wire.asset_requires_serial_number(a, order.order_lines) for a in assets),
        units=tuple(
            Unit(
                channel_unit_id=a.id,
                serial_number=a.serial_number or None,
                shipped=a.status in _SHIPPED_ASSET_STATUSES,
            )
            for a in assets
        ),
        extras=extras,
        # a canceled order that had shipped had been confirmed, every unit accepted
        accepted=quantity if status in _ACCEPTED_STATUSES or _shipped_before_cancel(order) else 0,
        rejected=quantity if status == wire.ORDER_REJECTED else 0,
        shipped=shipped,
    )


def _shipped_before_cancel(order: wire.FullOrderResult) -> bool:
    """topi confirms whole orders only: a canceled order with a shipped asset had been
    confirmed (accepted and released), and its snapshot must keep saying so."""
    return order.status == wire.ORDER_CANCELED and any(
        a.status in _SHIPPED_ASSET_STATUSES for a in order.assets
    )


def _money_dict(amount: wire.MoneyAmount | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"currency": amount.currency, "gross": amount.gross, "net": amount.net}


def _currency(order: wire.FullOrderResult) -> str | None:
    for line in order.order_lines:
        if line.unit_price is not None:
            return line.unit_price.currency
    return None


def _customer(info: wire.CustomerInfo | None) -> Customer | None:
    if info is None:
        return None
    company = info.company
    return Customer(
        name=info.full_name,
        email=info.email,
        phone=info.phone_number,
        company=company.name if company else None,
        vat_number=company.vat_number if company else None,
    )


def _shipping_address(address: wire.ShippingAddress | None) -> Address | None:
    if address is None:
        return None
    return Address(
        name=address.recipient,
        line1=address.line1,
        line2=address.line2,
        postal_code=address.postal_code,
        city=address.city,
        region=address.region,
        country_code=address.country_code,
    )


def _billing_address(info: wire.CustomerInfo | None) -> Address | None:
    company = info.company if info else None
    billing = company.billing_address if company else None
    if billing is None or company is None:
        return None
    return Address(
        company=company.name,
        line1=billing.line1,
        line2=billing.line2,
        postal_code=billing.postal_code,
        city=billing.city,
        region=billing.region,
        country_code=billing.country_code,
    )


def _cancellations(order: wire.FullOrderResult) -> tuple[CancellationSnapshot, ...]:
    if order.status != wire.ORDER_CANCELED:
        return ()
    # topi: "The customer has canceled the order" (initiator customer, via topi support).
    return (
        CancellationSnapshot(
            channel_cancellation_id=CANCELLATION_ID,
            initiator=Initiator.CUSTOMER,
            reason=Reason.CUSTOMER_REQUEST,
            state=RequestState.ACCEPTED,
            channel_reason=wire.ORDER_CANCELED,
        ),
    )


def _order_line(order: Order, line_id: str) -> Line:
    for line in order.lines:
        if line.id == line_id:
            return line
    raise ValueError(f"order {order.id} has no line {line_id}")


def _line_reference(line: Line, reference_source: str | None) -> wire.SellerProductReference:
    """The reference to ship ``line`` by: the configured source, else the one its SKU came
    from, else the first."""
    refs = [
        wire.SellerProductReference(source=r["source"], reference=r["reference"])
        for r in line.extras.get("seller_product_references", [])
    ]
    if not refs:
        raise ValueError(f"line {line.id} has no seller product reference to ship by")
    return (
        next((r for r in refs if reference_source and r.source == reference_source), None)
        or next((r for r in refs if r.reference == line.sku), None)
        or refs[0]
    )


def _line_keys(line: Line) -> set[str]:
    keys = {
        f"ref:{r['source']}:{r['reference']}"
        for r in line.extras.get("seller_product_references", [])
    }
    if line.extras.get("product_id"):
        keys.add(f"product:{line.extras['product_id']}")
    return keys


def shipment_request(
    command: CommandView, order: Order, *, reference_source: str | None
) -> wire.ShipmentRequest:
    """One ``serial_numbers`` entry per shipped unit, by seller product reference; ``""``
    for a unit without a serial number. Raises ValueError when a line cannot be shipped by
    reference (the command cannot succeed)."""
    entries: list[wire.SerialNumberByAsset] = []
    for item in command.payload["items"]:
        line = _order_line(order, item["line_id"])
        ref = _line_reference(line, reference_source)
        serials: list[str] = [s for s in item.get("serial_numbers") or [] if s]
        serials += [wire.NO_SERIAL_NUMBER] * (int(item["quantity"]) - len(serials))
        entries.extend(
            wire.SerialNumberByAsset(seller_product_reference=ref, serial_number=serial)
            for serial in serials
        )
    payload = command.payload
    metadata = {
        key: str(payload[name])
        for key, name in (
            ("hub_shipment_id", "shipment_id"),
            ("carrier", "carrier"),
            ("tracking_number", "tracking_number"),
        )
        if payload.get(name)
    }
    return wire.ShipmentRequest(
        order_id=order.channel_order_id,
        serial_numbers=entries,
        tracking_url=payload.get("tracking_url") or None,
        metadata=metadata or None,
    )


def already_shipped(
    topi_order: wire.FullOrderResult,
    request: wire.ShipmentRequest,
    command: CommandView,
    order: Order,
) -> bool:
    """Whether topi already holds this shipment (a retry after a lost answer).

    topi applies a shipment all or nothing. With serial numbers: every one of them is on a
    shipped asset (serial numbers are unique per order). Without: for every line of the
    shipment, topi counts at least as many shipped assets of the line's product as the hub
    has shipped units of that line (the hub's count includes this shipment and any later
    one). The count errs towards sending again: when a later shipment of the same line is
    recorded but not yet sent, topi ships it under this one's tracking URL and refuses the
    later one (no asset left), so the command fails visibly rather than shipping twice."""
    serials = [e.serial_number for e in request.serial_numbers if e.serial_number]
    shipped_assets = [a for a in topi_order.assets if a.status in _SHIPPED_ASSET_STATUSES]
    if serials:
        shipped_serials = {a.serial_number for a in shipped_assets if a.serial_number}
        return all(s in shipped_serials for s in serials)
    for item in command.payload["items"]:
        line = _order_line(order, item["line_id"])
        keys = _line_keys(line)
        count = sum(
            1 for a in shipped_assets if keys & _keys(a.seller_product_references, a.product_id)
        )
        if count < line.shipped:
            return False
    return True
