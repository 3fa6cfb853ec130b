"""The warehouse's decisions: accept, reject, ship, deliver, cancel, decide a request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandKind
from orderhub.application.services.common import (
    CommandReceipt,
    Idempotency,
    Replay,
    run_order_command,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import InvalidTransition
from orderhub.domain.model import Order, Return, ShipmentItem
from orderhub.domain.values import Decision, LineQuantity, OrderStatus, Reason


def _lines(items: Sequence[LineQuantity | ShipmentItem]) -> list[dict[str, Any]]:
    return [
        {"line_id": i.line_id, "quantity": i.quantity, "serial_numbers": list(i.serial_numbers)}
        for i in items
    ]


async def accept_order(
    hub: Hub,
    *,
    order_id: str,
    lines: Sequence[LineQuantity] | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        accepted = order.accept(caps, now=now, lines=lines)
        everything = not any(line.pending_acceptance for line in order.leaf_lines)
        return {"lines": _lines(accepted), "whole_order": everything}, {}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.ACCEPT, change=change, idempotency=idempotency
    )


async def reject_order(
    hub: Hub,
    *,
    order_id: str,
    reason: Reason,
    lines: Sequence[LineQuantity] | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        rejected = order.reject(caps, reason=reason, now=now, lines=lines)
        return {"reason": reason.value, "lines": _lines(rejected), "whole_order": not lines}, {}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.REJECT, change=change, idempotency=idempotency
    )


class TrackingNumberReused(InvalidTransition):
    """A shipment names a parcel (carrier and tracking number) already recorded with other
    items: the same parcel cannot carry two contents."""

    rule = "tracking-number-reused"


def _same_parcel(
    carrier: str | None, tracking_number: str | None, items: Sequence[LineQuantity]
) -> Replay:
    """Recognise a shipment recorded before (a WMS retry without its Idempotency-Key)."""
    wanted = sorted((i.line_id, i.quantity, tuple(i.serial_numbers)) for i in items)

    def replay(order: Order, commands: Sequence[ChannelCommand]) -> CommandReceipt | None:
        for shipment in order.shipments:
            if (shipment.carrier, shipment.tracking_number) != (carrier, tracking_number):
                continue
            recorded = sorted((i.line_id, i.quantity, i.serial_numbers) for i in shipment.items)
            if recorded != wanted:
                raise TrackingNumberReused(
                    f"parcel {carrier} {tracking_number} was recorded with other items "
                    f"(shipment {shipment.id})"
                )
            command = next(
                (c for c in commands if c.payload.get("shipment_id") == shipment.id), None
            )
            if command is None:
                return None  # a shipment the channel reported: not ours to answer for
            return CommandReceipt(
                command_id=command.id,
                order_id=order.id,
                kind=command.kind.value,
                state=command.state.value,
                order_status=order.status.value,
                details={"shipment_id": shipment.id, "replayed": True},
            )
        return None

    return replay


async def record_shipment(
    hub: Hub,
    *,
    order_id: str,
    items: Sequence[LineQuantity],
    fulfilment_id: str | None = None,
    carrier: str | None = None,
    tracking_number: str | None = None,
    tracking_url: str | None = None,
    final: bool = False,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    shipment_id = hub.ids()

    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        shipment = order.record_shipment(
            caps,
            shipment_id=shipment_id,
            items=items,
            now=now,
            fulfilment_id=fulfilment_id,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=tracking_url,
            final=final,
        )
        refused = order.refuse_by_shipment(caps, items, now=now, new_id=hub.ids)
        payload = {
            "shipment_id": shipment.id,
            "fulfilment_id": shipment.fulfilment_id,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "tracking_url": tracking_url,
            "final": final,
            "items": _lines(shipment.items),
            # the customer's cancellation requests this parcel refuses (refusal_ships)
            "refuses_cancellations": [
                {"cancellation_id": c.id, "channel_cancellation_id": c.channel_cancellation_id}
                for c in refused
            ],
        }
        return payload, {"shipment_id": shipment.id}

    return await run_order_command(
        hub,
        order_id=order_id,
        kind=CommandKind.SHIP,
        change=change,
        idempotency=idempotency,
        replay=_same_parcel(carrier, tracking_number, items) if tracking_number else None,
    )


async def confirm_delivery(
    hub: Hub,
    *,
    order_id: str,
    fulfilment_id: str | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        delivered = order.confirm_delivery(caps, now=now, fulfilment_id=fulfilment_id)
        return {"fulfilment_id": fulfilment_id, "lines": _lines(delivered)}, {}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.DELIVER, change=change, idempotency=idempotency
    )


async def cancel_order(
    hub: Hub,
    *,
    order_id: str,
    reason: Reason,
    lines: Sequence[LineQuantity] | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    cancellation_id = hub.ids()

    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        outcome = order.cancel(
            caps, reason=reason, cancellation_id=cancellation_id, now=now, lines=lines
        )
        after_shipment = isinstance(outcome, Return)
        scope = outcome.lines if isinstance(outcome, Return) else outcome.units
        payload = {
            "cancellation_id": outcome.id,
            "reason": reason.value,
            # the units this cancels (or, after shipment, refunds), always explicit
            "lines": _lines(scope),
            # everything, and nothing had shipped: the channel may cancel the whole order
            "whole_order": not after_shipment
            and not any(line.shipped for line in order.leaf_lines)
            and order.status is OrderStatus.CANCELLED,
            "after_shipment": after_shipment,
        }
        return payload, {"cancellation_id": outcome.id}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.CANCEL, change=change, idempotency=idempotency
    )


async def decide_cancellation(
    hub: Hub,
    *,
    order_id: str,
    decision: Decision,
    cancellation_id: str | None = None,
    lines: Sequence[LineQuantity] | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    """Accept or refuse an open cancellation request, whole or for ``lines`` of it (where
    the channel decides line by line: the rest stays open for a later decision)."""
    part_id = hub.ids()

    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        request = order.decide_cancellation(
            caps,
            decision=decision,
            now=now,
            cancellation_id=cancellation_id,
            lines=lines,
            part_id=part_id,
        )
        refused = decision is Decision.REFUSE
        payload = {
            "cancellation_id": request.id,
            "channel_cancellation_id": request.channel_cancellation_id,
            "decision": decision.value,
            # the lines decided (empty: the whole request, as the channel sent it)
            "lines": _lines(request.lines),
            # how the channel takes a refusal: "ship" (the line's shipment carries it:
            # Cdiscount) or "call" (a refusal call of its own)
            "refusal": ("ship" if caps.refusal_ships else "call") if refused else None,
        }
        return payload, {"cancellation_id": request.id}

    return await run_order_command(
        hub,
        order_id=order_id,
        kind=CommandKind.DECIDE_CANCELLATION,
        change=change,
        idempotency=idempotency,
    )


async def close_fulfilment(
    hub: Hub,
    *,
    order_id: str,
    fulfilment_id: str,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    """The warehouse closes a fulfilment short: the unshipped rest is cancelled as
    ``out_of_stock`` at the channel (a seller cancellation of those units, marked
    ``closes_fulfilment``; an adapter that closes fulfilments with their own call, asked
    for by ``fulfilment_done``, has nothing more to send for it)."""

    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        closed = order.close_fulfilment(caps, fulfilment_id=fulfilment_id, now=now)
        payload = {
            "cancellation_id": closed.id,
            "reason": closed.reason.value,
            "lines": _lines(closed.units),
            "whole_order": False,
            "after_shipment": False,
            "closes_fulfilment": fulfilment_id,
        }
        return payload, {"cancellation_id": closed.id, "fulfilment_id": fulfilment_id}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.CANCEL, change=change, idempotency=idempotency
    )
