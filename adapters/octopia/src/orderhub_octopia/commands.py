"""Carrying the hub's commands out at Octopia.

No Octopia call takes an idempotency key, so a command sent again (its answer was lost,
``fence > 1``) or refused as already done first reads the order: an approval already
applied, a parcel number already on the lines, a cancellation already listed, a
customer's request already accepted count as done. Every successful call reads the order
back, so the hub shows Octopia's state without waiting for the next poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal

import structlog

from orderhub.channels.spi import (
    ChannelError,
    CommandKind,
    CommandOutcome,
    CommandView,
    InvoiceVerdict,
    PermanentChannelError,
)
from orderhub.domain.model import ChannelSnapshot, Line, Order
from orderhub.domain.values import Reason
from orderhub_octopia import wire
from orderhub_octopia.client import OctopiaClient, OctopiaRejected
from orderhub_octopia.mapping import OFFER_EXTRA, REASON_CODES, SALES_CHANNEL_EXTRA
from orderhub_octopia.settings import Settings

log = structlog.get_logger("orderhub.octopia")

Reader = Callable[[str], Awaitable[tuple[wire.Order, ChannelSnapshot | None]]]
CarrierLabel = Callable[[str], Awaitable[str]]
INVOICE_REFUSED: Final = frozenset({400, 413, 415, 422})


class Commands:
    def __init__(
        self, client: OctopiaClient, settings: Settings, read: Reader, label: CarrierLabel
    ) -> None:
        self.client = client
        self.settings = settings
        self._read = read
        self._label = label

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        match command.kind:
            case CommandKind.ACCEPT:
                return await self._approve(command, order, wire.APPROVE)
            case CommandKind.REJECT:
                return await self._approve(command, order, wire.REFUSE)
            case CommandKind.SHIP:
                return await self._ship(command, order)
            case CommandKind.CANCEL:
                return await self._cancel(command, order)
            case CommandKind.DECIDE_CANCELLATION:
                return await self._decide(command, order)
            case CommandKind.INVOICE:
                return await self._invoice(command, order)
            case _:
                raise PermanentChannelError(f"Octopia cannot {command.kind.value}")

    async def _reporting(self, order_id: str, data: dict[str, Any], **kw: Any) -> CommandOutcome:
        try:
            _, snapshot = await self._read(order_id)
        except (ChannelError, ValueError) as exc:  # the call itself succeeded
            log.warning("octopia.read_back_failed", order=order_id, error=str(exc))
            snapshot = None
        return CommandOutcome(data=data, snapshot=snapshot, **kw)

    # --- approval ---------------------------------------------------------------------

    async def _approve(
        self, command: CommandView, order: Order, decision: Literal["Accepted", "Refused"]
    ) -> CommandOutcome:
        oid = order.channel_order_id
        done = wire.ACCEPTED_STATES if decision == wire.APPROVE else frozenset({wire.REFUSED})
        if command.fence > 1:  # an earlier attempt may have gone through: ask first
            current, _ = await self._read(oid)
            if current.status in done:
                return await self._reporting(oid, {"approval": decision, "replayed": True})
        try:
            await self.client.approve(oid, decision)
        except OctopiaRejected:
            current, _ = await self._read(oid)  # an earlier attempt may have gone through
            if current.status not in done:
                raise
            return await self._reporting(oid, {"approval": decision, "replayed": True})
        return await self._reporting(oid, {"approval": decision})

    # --- shipments --------------------------------------------------------------------

    async def _ship(self, command: CommandView, order: Order) -> CommandOutcome:
        payload = command.payload
        oid = order.channel_order_id
        number = str(payload["tracking_number"])
        line_ids = [order.line(str(i["line_id"])).channel_line_id for i in payload["items"]]
        ids = {"shipment": number}
        if command.fence > 1 and await self._parcel_known(oid, number, line_ids):
            # before the carrier check: a parcel sent is sent, whatever the list says now
            return await self._reporting(oid, {"parcel": number, "replayed": True}, channel_ids=ids)
        label = await self._label(str(payload["carrier"]))
        try:
            await self.client.ship(
                oid,
                parcel_number=number,
                carrier_name=label,
                tracking_url=payload.get("tracking_url"),
                line_ids=line_ids,
                sales_channel=_sales_channel(order),
            )
        except OctopiaRejected:
            if not await self._parcel_known(oid, number, line_ids):
                raise
        data = {"parcel": number, "carrier": label, "lines": line_ids}
        return await self._reporting(oid, data, channel_ids=ids)

    async def _parcel_known(self, oid: str, number: str, line_ids: list[str]) -> bool:
        current, _ = await self._read(oid)
        carrying = {
            ln.order_line_id
            for ln in current.lines
            if any(p.parcel_number == number for p in ln.parcels)
        }
        return bool(carrying) and set(line_ids) <= carrying

    # --- cancellations ----------------------------------------------------------------

    def _refund(self, whole: bool) -> bool:
        mode = self.settings.shipping_cost_refund
        return mode == "always" or (mode == "whole_order" and whole)

    async def _cancel_lines(
        self, order: Order, lines: list[Line], code: str
    ) -> tuple[str | None, bool]:
        """Cancel ``lines`` (every live one: the whole order); Octopia's request id."""
        live = [ln for ln in order.leaf_lines if ln.live > 0 or ln in lines]
        whole = {ln.id for ln in live} <= {ln.id for ln in lines}
        pairs = (
            None if whole else [(ln.channel_line_id, ln.extras.get(OFFER_EXTRA)) for ln in lines]
        )
        request_id = await self.client.cancel(
            order.channel_order_id,
            reason=code,
            refund_shipping=self._refund(whole),
            lines=pairs,
            sales_channel=_sales_channel(order),
        )
        return request_id, whole

    async def _listed(self, oid: str, channel_line_ids: set[str]) -> str | None:
        """The seller's cancellation Octopia already lists for these lines (an earlier
        attempt's): the newest one, when these lines are all covered by the seller's
        requests together or cancelled (a whole-order cancellation after a line's covers
        only the lines left; the earlier one covers the rest)."""
        current, _ = await self._read(oid)
        covered = {ln.order_line_id for ln in current.lines if ln.status == wire.CANCELLED}
        newest: str | None = None
        for detail in current.cancellation_details:
            if detail.status in wire.REQUEST_REJECTED or detail.requested_by != wire.BY_SELLER:
                continue
            covers = {i.order_line_id for i in detail.lines} or {
                ln.order_line_id for ln in current.lines
            }
            if covers & channel_line_ids:
                covered |= covers
                newest = detail.cancellation_request_id
        return newest if newest is not None and channel_line_ids <= covered else None

    async def _cancel(self, command: CommandView, order: Order) -> CommandOutcome:
        payload = command.payload
        try:
            code = REASON_CODES[Reason(str(payload.get("reason")))]
        except (KeyError, ValueError):
            raise PermanentChannelError(
                f"Octopia has no reason code for {payload.get('reason')!r}"
            ) from None
        lines = [order.line(str(i["line_id"])) for i in payload.get("lines") or ()]
        if payload.get("whole_order") or not lines:
            lines = list(order.leaf_lines)
        oid = order.channel_order_id
        wanted = {ln.channel_line_id for ln in lines}
        if command.fence > 1 and (known := await self._listed(oid, wanted)):
            return await self._reporting(
                oid, {"reason_code": code, "replayed": True}, channel_ids={"cancellation": known}
            )
        try:
            request_id, whole = await self._cancel_lines(order, lines, code)
        except OctopiaRejected:
            # an earlier command's whole-order cancellation may have taken these lines
            # already (it went first and cancelled all that was left): done, as Octopia shows
            if not (known := await self._listed(oid, wanted)):
                raise
            return await self._reporting(
                oid, {"reason_code": code, "replayed": True}, channel_ids={"cancellation": known}
            )
        data = {"reason_code": code, "whole_order": whole, "request_id": request_id}
        ids = {"cancellation": request_id} if request_id else {}
        return await self._reporting(oid, data, channel_ids=ids)

    async def _decide(self, command: CommandView, order: Order) -> CommandOutcome:
        payload = command.payload
        if payload.get("decision") != "accept":
            if payload.get("refusal") == "ship":  # Cdiscount: the parcel carries it
                return CommandOutcome(data={"sent": False, "carried_by": "shipment"})
            raise PermanentChannelError(
                "Octopia takes no refusal of a customer's cancellation request on this "
                "sales channel: accept it"
            )
        request = next(
            (c for c in order.cancellations if c.id == payload.get("cancellation_id")), None
        )
        items = payload.get("lines") or (
            [{"line_id": i.line_id} for i in request.lines] if request else []
        )
        lines = [order.line(str(i["line_id"])) for i in items] or list(order.leaf_lines)
        code = self.settings.accept_request_reason
        oid = order.channel_order_id
        wanted = {ln.channel_line_id for ln in lines}
        channel_id = payload.get("channel_cancellation_id")
        if command.fence > 1 and await self._accepted(oid, channel_id, wanted):
            return await self._reporting(oid, {"reason_code": code, "replayed": True})
        try:
            request_id, whole = await self._cancel_lines(order, lines, code)
        except OctopiaRejected:
            if not await self._accepted(oid, channel_id, wanted):
                raise
            return await self._reporting(oid, {"reason_code": code, "replayed": True})
        data = {"reason_code": code, "whole_order": whole, "request_id": request_id}
        return await self._reporting(oid, data)

    async def _accepted(self, oid: str, channel_id: Any, channel_line_ids: set[str]) -> bool:
        """The customer's request is accepted at Octopia already (an earlier attempt's
        cancellation went through): the request shows accepted, or its lines cancelled."""
        current, _ = await self._read(oid)
        if channel_id and any(
            d.cancellation_request_id == channel_id and d.status in wire.REQUEST_ACCEPTED
            for d in current.cancellation_details
        ):
            return True
        status = {ln.order_line_id: ln.status for ln in current.lines}
        return bool(channel_line_ids) and all(
            status.get(lid) == wire.CANCELLED for lid in channel_line_ids
        )

    # --- invoices ---------------------------------------------------------------------

    async def _invoice(self, command: CommandView, order: Order) -> CommandOutcome:
        doc = command.document
        if doc is None:
            raise PermanentChannelError("the invoice command carries no document")
        oid = order.channel_order_id
        try:
            if self.settings.invoice_upload == "import":
                import_id = await self.client.import_invoices(
                    [(oid, doc.content, doc.content_type)]
                )
            else:
                import_id = await self.client.upload_invoice(
                    oid, filename=f"{oid}.pdf", content=doc.content, content_type=doc.content_type
                )
        except OctopiaRejected as exc:
            if exc.status not in INVOICE_REFUSED:
                raise
            return CommandOutcome(
                data={"refused": exc.message}, invoice=InvoiceVerdict.reject(exc.message)
            )
        if import_id is None:
            return CommandOutcome(invoice=InvoiceVerdict.accept())
        return CommandOutcome(
            data={"import_id": import_id}, invoice=InvoiceVerdict.processing(import_id)
        )

    def verdict(
        self, order: Order, import_id: str, report: wire.ImportReport
    ) -> InvoiceVerdict | None:
        """The import report's word on this order's invoice; None while it is processing."""
        mine = [r for r in report.reports if r.order_id in (None, order.channel_order_id)]
        failed = [r for r in mine if r.status in wire.IMPORT_FAILED]
        if report.status in wire.IMPORT_FAILED or failed:
            said = "; ".join(r.message for r in failed if r.message) or report.message
            return InvoiceVerdict.reject(said or f"import {report.status}", import_id)
        if report.status in wire.IMPORT_DONE:
            return InvoiceVerdict.accept(import_id)
        return None


def _sales_channel(order: Order) -> str | None:
    value: Mapping[str, Any] | Any = order.extras.get(SALES_CHANNEL_EXTRA)
    return value if isinstance(value, str) else None
