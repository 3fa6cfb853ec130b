"""The warehouse's decisions: accept, reject, ship, deliver, cancel, decide a request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orderhub.application.hub import Hub
from orderhub.application.ports import CommandKind
from orderhub.application.services.common import (
    CommandReceipt,
    Idempotency,
    run_order_command,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import Order, ShipmentItem
from orderhub.domain.values import Decision, LineQuantity, Reason


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
        payload = {
            "shipment_id": shipment.id,
            "fulfilment_id": shipment.fulfilment_id,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "tracking_url": tracking_url,
            "final": final,
            "items": _lines(shipment.items),
        }
        return payload, {"shipment_id": shipment.id}

    return await run_order_command(
        hub, order_id=order_id, kind=CommandKind.SHIP, change=change, idempotency=idempotency
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
        payload = {
            "cancellation_id": outcome.id,
            "reason": reason.value,
            "lines": _lines(outcome.lines),
            "whole_order": not lines,
            "after_shipment": outcome in order.returns,
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
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        request = order.decide_cancellation(
            caps, decision=decision, now=now, cancellation_id=cancellation_id
        )
        payload = {
            "cancellation_id": request.id,
            "channel_cancellation_id": request.channel_cancellation_id,
            "decision": decision.value,
        }
        return payload, {"cancellation_id": request.id}

    return await run_order_command(
        hub,
        order_id=order_id,
        kind=CommandKind.DECIDE_CANCELLATION,
        change=change,
        idempotency=idempotency,
    )
