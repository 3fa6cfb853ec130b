"""The warehouse's commands. Each is checked at once, applied with its channel call queued
in the same transaction, and answered 202 with the command's receipt.

``Idempotency-Key``: the fingerprint is SHA-256 over the method, the path and the
canonical JSON (sorted keys, defaults filled in) of the decoded body, so the same key
with the same request gets the first answer and with another request a 422."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from orderhub.application.services import seller_commands
from orderhub.application.services.common import Idempotency
from orderhub.domain.values import LineQuantity
from orderhub.entrypoints.web.auth import caller, requires
from orderhub.entrypoints.web.presenters import receipt_out
from orderhub.entrypoints.web.problems import ProblemError, invalid_field, problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import (
    AcceptRequest,
    CancellationRequest,
    CloseFulfilmentRequest,
    CommandReceiptOut,
    DeliveryRequest,
    LineQuantityIn,
    RejectRequest,
    ShipmentRequest,
)
from orderhub.entrypoints.web.settings import WRITE

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=True,
        min_length=1,
        max_length=255,
        description="Required. Repeat a command safely: the same key with the same body "
        "returns the first answer; with another body, 422. Keys are scoped to the API key "
        "that sends them. Without it: 400 idempotency-key-required.",
    ),
]

RESPONSES: Final = problem_responses(400, 401, 403, 404, 409, 422)


def fingerprint(method: str, path: str, body: msgspec.Struct) -> str:
    canonical = msgspec.json.encode(msgspec.to_builtins(body), order="sorted")
    return hashlib.sha256(f"{method.upper()} {path}\n".encode() + canonical).hexdigest()


def _idempotency(
    request: Request[Any, Any, Any], key: str | None, body: msgspec.Struct
) -> Idempotency:
    """The request's idempotency, its key scoped to the API key that sent it: two clients
    cannot collide, nor read each other's answers."""
    if key is None:
        raise ProblemError(
            400,
            "idempotency-key-required",
            "every command needs an Idempotency-Key header: a retry with the same key gets "
            "the first answer instead of doing the command twice",
        )
    return Idempotency(
        key=f"{caller(request)}:{key}",
        fingerprint=fingerprint(request.method, request.scope["path"], body),
    )


idempotency_of: Final = _idempotency
"""For the other command routes (invoices): the same key scoping and fingerprint."""


def _lines(items: Sequence[LineQuantityIn] | None) -> list[LineQuantity] | None:
    if items is None:
        return None
    return [LineQuantity(line_id=i.line_id, quantity=i.quantity) for i in items]


@post(
    "/orders/{order_id:str}/accept",
    status_code=202,
    opt=requires(WRITE),
    summary="Accept the order, or some units of some lines",
    responses=RESPONSES,
)
async def accept(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    idempotency_key: IdempotencyKey = None,
    data: JSONBody[AcceptRequest | None] = None,
) -> CommandReceiptOut:
    body = data or AcceptRequest()
    receipt = await seller_commands.accept_order(
        hub,
        order_id=order_id,
        lines=_lines(body.lines),
        idempotency=_idempotency(request, idempotency_key, body),
    )
    return receipt_out(receipt)


@post(
    "/orders/{order_id:str}/reject",
    status_code=202,
    opt=requires(WRITE),
    summary="Reject the order, or some units of some lines",
    responses=RESPONSES,
)
async def reject(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    data: JSONBody[RejectRequest],
    idempotency_key: IdempotencyKey = None,
) -> CommandReceiptOut:
    receipt = await seller_commands.reject_order(
        hub,
        order_id=order_id,
        reason=data.reason,
        lines=_lines(data.lines),
        idempotency=_idempotency(request, idempotency_key, data),
    )
    return receipt_out(receipt)


@post(
    "/orders/{order_id:str}/shipments",
    status_code=202,
    opt=requires(WRITE),
    summary="Record a parcel that left the warehouse",
    description="`final: true` ships short: the rest of the fulfilment is cancelled "
    "(reason out_of_stock) where the channel allows it.",
    responses=RESPONSES,
)
async def ship(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    data: JSONBody[ShipmentRequest],
    idempotency_key: IdempotencyKey = None,
) -> CommandReceiptOut:
    receipt = await seller_commands.record_shipment(
        hub,
        order_id=order_id,
        items=[
            LineQuantity(
                line_id=item.line_id,
                quantity=item.quantity,
                serial_numbers=tuple(item.serial_numbers),
            )
            for item in data.items
        ],
        fulfilment_id=data.fulfilment_id,
        carrier=data.carrier,
        tracking_number=data.tracking_number,
        tracking_url=data.tracking_url,
        final=data.final,
        idempotency=_idempotency(request, idempotency_key, data),
    )
    return receipt_out(receipt)


@post(
    "/orders/{order_id:str}/deliveries",
    status_code=202,
    opt=requires(WRITE),
    summary="Report that what was shipped arrived",
    responses=RESPONSES,
)
async def deliver(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    idempotency_key: IdempotencyKey = None,
    data: JSONBody[DeliveryRequest | None] = None,
) -> CommandReceiptOut:
    body = data or DeliveryRequest()
    receipt = await seller_commands.confirm_delivery(
        hub,
        order_id=order_id,
        fulfilment_id=body.fulfilment_id,
        idempotency=_idempotency(request, idempotency_key, body),
    )
    return receipt_out(receipt)


@post(
    "/orders/{order_id:str}/cancellations",
    status_code=202,
    opt=requires(WRITE),
    summary="Cancel, or decide an open cancellation request",
    description="With `reason` (and optional `lines`) the seller cancels. With `decision` "
    "(`accept` or `refuse`, and `cancellation_id` when several are open) the seller "
    "decides a cancellation request from the customer or the channel; where the channel "
    "decides line by line (`capabilities.cancellation_decision` `line`), `lines` names "
    "the lines (and units) of the request this decision is for, the rest stays open.",
    responses=RESPONSES,
)
async def cancel(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    data: JSONBody[CancellationRequest],
    idempotency_key: IdempotencyKey = None,
) -> CommandReceiptOut:
    idempotency = _idempotency(request, idempotency_key, data)
    if data.decision is not None:
        if data.reason is not None:
            raise invalid_field("decision", "a decision takes no reason")
        if data.lines is not None and not data.lines:
            raise invalid_field("lines", "name at least one line, or leave lines out")
        receipt = await seller_commands.decide_cancellation(
            hub,
            order_id=order_id,
            decision=data.decision,
            cancellation_id=data.cancellation_id,
            lines=_lines(data.lines),
            idempotency=idempotency,
        )
    else:
        if data.reason is None:
            raise invalid_field("reason", "a reason (to cancel) or a decision is required")
        if data.cancellation_id is not None:
            raise invalid_field("cancellation_id", "only a decision names a cancellation")
        receipt = await seller_commands.cancel_order(
            hub,
            order_id=order_id,
            reason=data.reason,
            lines=_lines(data.lines),
            idempotency=idempotency,
        )
    return receipt_out(receipt)


@post(
    "/orders/{order_id:str}/fulfilments/{fulfilment_id:str}/close",
    status_code=202,
    opt=requires(WRITE),
    summary="Close a fulfilment short: ship no more of it",
    description="The units of the fulfilment not shipped yet are cancelled as "
    "`out_of_stock` and the fulfilment is done (where the channel allows short shipping: "
    "`capabilities.short_ship`). Something of it must have shipped; else cancel instead.",
    responses=RESPONSES,
)
async def close_fulfilment(
    hub: HubDep,
    request: Request[Any, Any, Any],
    order_id: FromPath[str],
    fulfilment_id: FromPath[str],
    idempotency_key: IdempotencyKey = None,
    data: JSONBody[CloseFulfilmentRequest | None] = None,
) -> CommandReceiptOut:
    body = data or CloseFulfilmentRequest()
    receipt = await seller_commands.close_fulfilment(
        hub,
        order_id=order_id,
        fulfilment_id=fulfilment_id,
        idempotency=_idempotency(request, idempotency_key, body),
    )
    return receipt_out(receipt)


COMMAND_HANDLERS: Final = (accept, reject, ship, deliver, cancel, close_fulfilment)
