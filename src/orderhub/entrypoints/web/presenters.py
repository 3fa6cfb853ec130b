"""Domain objects -> response schemas. The only place that knows both shapes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from orderhub.application.ports import ChannelCommand, CommandState, FeedEntry, InboxMessage
from orderhub.application.services.common import CommandReceipt
from orderhub.channels.registry import ChannelRegistry
from orderhub.domain.model import Cancellation, Line, Order, Return, Shipment
from orderhub.domain.values import Address, Customer, LineQuantity, Money, Price
from orderhub.entrypoints.web.schemas import (
    AccountOut,
    AddressOut,
    CancellationOut,
    ChannelCommandOut,
    ChannelList,
    ChannelOut,
    CommandReceiptOut,
    CustomerOut,
    FeedEventOut,
    FulfilmentOut,
    InboxMessageOut,
    LineOut,
    LineQuantityOut,
    MoneyOut,
    OpsCommandOut,
    OrderDetailOut,
    OrderOut,
    PriceOut,
    ReturnOut,
    ShipmentItemOut,
    ShipmentOut,
    UnitOut,
)


def receipt_out(receipt: CommandReceipt) -> CommandReceiptOut:
    return CommandReceiptOut(
        command_id=receipt.command_id,
        order_id=receipt.order_id,
        kind=receipt.kind,
        state=receipt.state,
        order_status=receipt.order_status,
        details=dict(receipt.details),
    )


def _money(money: Money | None) -> MoneyOut | None:
    return MoneyOut(amount=money.amount, currency=money.currency) if money else None


def _price(price: Price | None) -> PriceOut | None:
    if price is None:
        return None
    return PriceOut(
        gross=MoneyOut(amount=price.gross.amount, currency=price.gross.currency),
        net=_money(price.net),
        tax_rate=price.tax_rate,
    )


def _address(address: Address | None) -> AddressOut | None:
    if address is None:
        return None
    return AddressOut(
        name=address.name,
        company=address.company,
        line1=address.line1,
        line2=address.line2,
        postal_code=address.postal_code,
        city=address.city,
        region=address.region,
        country_code=address.country_code,
        phone=address.phone,
    )


def _customer(customer: Customer | None) -> CustomerOut | None:
    if customer is None:
        return None
    return CustomerOut(
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        company=customer.company,
        vat_number=customer.vat_number,
    )


def _quantities(items: Iterable[LineQuantity]) -> list[LineQuantityOut]:
    return [LineQuantityOut(line_id=i.line_id, quantity=i.quantity) for i in items]


def _line(line: Line) -> LineOut:
    return LineOut(
        id=line.id,
        channel_line_id=line.channel_line_id,
        sku=line.sku,
        title=line.title,
        quantity=line.quantity,
        accepted=line.accepted,
        rejected=line.rejected,
        shipped=line.shipped,
        delivered=line.delivered,
        cancelled=line.cancelled,
        unit_price=_price(line.unit_price),
        parent_line_id=line.parent_line_id,
        fulfilment_id=line.fulfilment_id,
        requires_serial_number=line.requires_serial_number,
        units=[
            UnitOut(
                channel_unit_id=unit.channel_unit_id,
                serial_number=unit.serial_number,
                shipped=unit.shipped,
            )
            for unit in line.units
        ],
        extras=dict(line.extras),
    )


def _shipment(shipment: Shipment) -> ShipmentOut:
    return ShipmentOut(
        id=shipment.id,
        fulfilment_id=shipment.fulfilment_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        items=[
            ShipmentItemOut(
                line_id=item.line_id,
                quantity=item.quantity,
                serial_numbers=list(item.serial_numbers),
            )
            for item in shipment.items
        ],
        shipped_at=shipment.shipped_at,
        channel_shipment_id=shipment.channel_shipment_id,
    )


def _cancellation(cancellation: Cancellation) -> CancellationOut:
    return CancellationOut(
        id=cancellation.id,
        initiator=cancellation.initiator.value,
        reason=cancellation.reason.value,
        state=cancellation.state.value,
        requested_at=cancellation.requested_at,
        decided_at=cancellation.decided_at,
        lines=_quantities(cancellation.lines),
        channel_reason=cancellation.channel_reason,
        channel_cancellation_id=cancellation.channel_cancellation_id,
    )


def _return(ret: Return) -> ReturnOut:
    return ReturnOut(
        id=ret.id,
        initiator=ret.initiator.value,
        reason=ret.reason.value,
        state=ret.state.value,
        requested_at=ret.requested_at,
        lines=_quantities(ret.lines),
        channel_reason=ret.channel_reason,
        channel_return_id=ret.channel_return_id,
    )


def _order_fields(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "channel": order.channel,
        "account": order.account,
        "channel_order_id": order.channel_order_id,
        "order_number": order.order_number,
        "seller_reference": order.seller_reference,
        "status": order.status.value,
        "channel_status": order.channel_status,
        "cancellation_requested": order.cancellation_requested,
        "customer": _customer(order.customer),
        "shipping_address": _address(order.shipping_address),
        "billing_address": _address(order.billing_address),
        "currency": order.currency,
        "placed_at": order.placed_at,
        "ship_by": order.ship_by,
        "lines": [_line(line) for line in order.lines],
        "fulfilments": [
            FulfilmentOut(
                id=f.id,
                channel_fulfilment_id=f.channel_fulfilment_id,
                fulfilled_by=f.fulfilled_by.value,
                status=f.status.value,
            )
            for f in order.fulfilments
        ],
        "shipments": [_shipment(s) for s in order.shipments],
        "cancellations": [_cancellation(c) for c in order.cancellations],
        "returns": [_return(r) for r in order.returns],
        "extras": dict(order.extras),
        "version": order.version,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def order_out(order: Order) -> OrderOut:
    return OrderOut(**_order_fields(order))


def order_detail_out(order: Order, commands: Sequence[ChannelCommand]) -> OrderDetailOut:
    return OrderDetailOut(
        **_order_fields(order),
        pending_commands=[_command(c) for c in commands if c.state is CommandState.PENDING],
        failed_commands=[_command(c) for c in commands if c.state is CommandState.FAILED],
    )


def _command(command: ChannelCommand) -> ChannelCommandOut:
    return ChannelCommandOut(
        id=command.id,
        kind=command.kind.value,
        state=command.state.value,
        attempts=command.attempts,
        last_error=command.last_error,
        next_attempt_at=command.next_attempt_at,
        created_at=command.created_at,
        finished_at=command.finished_at,
    )


def ops_command_out(command: ChannelCommand) -> OpsCommandOut:
    return OpsCommandOut(
        id=command.id,
        order_id=command.order_id,
        channel=command.channel,
        account=command.account,
        kind=command.kind.value,
        state=command.state.value,
        attempts=command.attempts,
        last_error=command.last_error,
        next_attempt_at=command.next_attempt_at,
        created_at=command.created_at,
        finished_at=command.finished_at,
        payload=dict(command.payload),
        result=dict(command.result),
    )


def inbox_message_out(message: InboxMessage) -> InboxMessageOut:
    return InboxMessageOut(
        id=message.id,
        channel=message.channel,
        account=message.account,
        source=message.source,
        state=message.state.value,
        attempts=message.attempts,
        last_error=message.last_error,
        received_at=message.received_at,
        processed_at=message.processed_at,
        dedupe_key=message.dedupe_key,
        headers=dict(message.headers),
        body=message.body.decode("utf-8", errors="replace"),
    )


def feed_event_out(entry: FeedEntry) -> FeedEventOut:
    return FeedEventOut(
        seq=entry.seq,
        type=entry.type,
        order_id=entry.order_id,
        channel=entry.channel,
        occurred_at=entry.occurred_at,
        data=dict(entry.data),
    )


def channel_list(registry: ChannelRegistry) -> ChannelList:
    accounts: dict[str, list[AccountOut]] = {}
    for account in registry.accounts():
        accounts.setdefault(account.channel, []).append(
            AccountOut(name=account.name, capabilities=account.capabilities.as_dict())
        )
    return ChannelList(
        channels=[
            ChannelOut(
                name=name,
                distribution=loaded.distribution,
                version=loaded.version,
                accounts=sorted(accounts.get(name, []), key=lambda a: a.name),
            )
            for name, loaded in sorted(registry.plugins.items())
        ]
    )
