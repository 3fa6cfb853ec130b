"""The seller's invoices: record one (its document stored and its ``invoice`` command
queued in one transaction), show its document, take the channel's answer, and ask a
channel that decides later, one check at a time.

The document and the command row commit together: a crash after the commit leaves a
pending command that the sweeper queues again; a crash before it leaves nothing (the
WMS's retry with its ``Idempotency-Key`` records it then)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandKind, StoredDocument, UnitOfWork
from orderhub.application.services.common import (
    CommandReceipt,
    Idempotency,
    Replay,
    clip,
    load_order,
    run_order_command,
    with_conflict_retry,
)
from orderhub.application.services.operations import NotFound
from orderhub.channels.spi import (
    ChannelError,
    CommandDocument,
    CommandOutcome,
    CommandView,
    InvoiceVerdict,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import DomainError, InvalidInput, InvalidTransition
from orderhub.domain.model import Invoice, InvoiceState, Order

PDF: Final = "application/pdf"
PDF_MAGIC: Final = b"%PDF-"


class DocumentTooLarge(DomainError):
    """The document is over the configured size (413)."""

    rule = "invoice-too-large"


class UnsupportedDocumentType(DomainError):
    """Not a media type the hub takes for invoices (415)."""

    rule = "invoice-type-not-supported"


class InvoiceNumberReused(InvalidTransition):
    rule = "invoice-number-reused"


class DocumentUnreadable(Exception):
    """A stored document is gone or does not match its digest (the command cannot go)."""


def check_document(content: bytes, content_type: str, *, max_bytes: int) -> None:
    """Only PDFs, within the size limit; the bytes must say they are a PDF."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != PDF:
        raise UnsupportedDocumentType(
            f"an invoice is a PDF ({PDF}), not {media_type or 'a part without a type'}"
        )
    if len(content) > max_bytes:
        raise DocumentTooLarge(
            f"the document has {len(content)} bytes; invoices may have at most {max_bytes}"
        )
    if not content.startswith(PDF_MAGIC):
        raise InvalidInput(
            "the document does not start with %PDF-: it is not a PDF", rule="invoice-not-pdf"
        )


def _same_invoice(number: str, sha256: str) -> Replay:
    """Recognise an invoice recorded before (a WMS retry without its Idempotency-Key): the
    same number with the same document answers with the first receipt; with another
    document it is refused (a number names one document) unless the first was rejected."""

    def replay(order: Order, commands: Sequence[ChannelCommand]) -> CommandReceipt | None:
        earlier = order.invoice_numbered(number)
        if earlier is None or earlier.state is InvoiceState.REJECTED:
            return None
        if earlier.sha256 != sha256:
            raise InvoiceNumberReused(
                f"invoice number {number} was recorded with another document (invoice "
                f"{earlier.id}, {earlier.state.value}); a number names one document"
            )
        command = next(
            (c for c in commands if c.payload.get("invoice_id") == earlier.id),
            None,
        )
        if command is None:
            return None
        return CommandReceipt(
            command_id=command.id,
            order_id=order.id,
            kind=command.kind.value,
            state=command.state.value,
            order_status=order.status.value,
            details=_details(earlier, replayed=True),
        )

    return replay


def _details(invoice: Invoice, *, replayed: bool = False) -> dict[str, Any]:
    details: dict[str, Any] = {"invoice_id": invoice.id, "document_id": invoice.document_id}
    if replayed:
        details["replayed"] = True
    return details


async def record_invoice(
    hub: Hub,
    *,
    order_id: str,
    number: str,
    content: bytes,
    content_type: str,
    filename: str | None = None,
    idempotency: Idempotency | None = None,
) -> CommandReceipt:
    """Record the seller's invoice and queue its ``invoice`` command (202)."""
    check_document(content, content_type, max_bytes=hub.invoices.max_document_bytes)
    sha256 = hashlib.sha256(content).hexdigest()
    invoice_id = hub.ids()
    document_id = hub.ids()

    def change(
        order: Order, caps: Capabilities, now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        invoice = order.add_invoice(
            caps,
            invoice_id=invoice_id,
            number=number,
            document_id=document_id,
            content_type=PDF,
            size=len(content),
            sha256=sha256,
            now=now,
            filename=filename,
        )
        payload = {
            "invoice_id": invoice.id,
            "number": invoice.number,
            "document_id": document_id,
            "filename": filename,
            "content_type": PDF,
            "size": len(content),
            "sha256": sha256,
        }
        return payload, _details(invoice)

    async def store(uow: UnitOfWork, order: Order) -> None:
        await uow.documents.put(
            StoredDocument(
                id=document_id,
                order_id=order.id,
                content_type=PDF,
                size=len(content),
                sha256=sha256,
                created_at=hub.clock.now(),
                filename=filename,
            ),
            content,
        )

    return await run_order_command(
        hub,
        order_id=order_id,
        kind=CommandKind.INVOICE,
        change=change,
        idempotency=idempotency,
        replay=_same_invoice(number, sha256),
        also=store,
    )


async def invoice_document(
    hub: Hub, *, order_id: str, invoice_id: str
) -> tuple[StoredDocument, bytes]:
    """An invoice's document and its bytes (404 when either is unknown)."""
    async with hub.uow() as uow:
        order = await load_order(uow, order_id)
        invoice = order.invoice(invoice_id)
        stored = await uow.documents.get(invoice.document_id)
        content = await uow.documents.read(invoice.document_id)
    if stored is None or content is None:
        raise NotFound(f"the document of invoice {invoice_id} is not stored")
    return stored, content


async def with_document(hub: Hub, view: CommandView) -> CommandView:
    """The command as the adapter sees it, with the document its payload names."""
    document_id = str(view.payload.get("document_id") or "")
    async with hub.uow() as uow:
        stored = await uow.documents.get(document_id)
        content = await uow.documents.read(document_id)
    if stored is None or content is None:
        raise DocumentUnreadable(f"document {document_id} of the invoice is not stored")
    if hashlib.sha256(content).hexdigest() != stored.sha256:
        raise DocumentUnreadable(f"document {document_id} does not match its sha256")
    document = CommandDocument(
        id=stored.id,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
        content=content,
        filename=stored.filename,
    )
    return dataclasses.replace(view, document=document)


def take_outcome(
    hub: Hub, order: Order, command: ChannelCommand, outcome: CommandOutcome, now: datetime
) -> None:
    """The answer to an ``invoice`` command, on its invoice (no verdict: accepted)."""
    verdict = outcome.invoice or InvoiceVerdict.accept()
    order.invoice_answered(
        str(command.payload["invoice_id"]),
        state=verdict.state,
        now=now,
        reason=verdict.reason,
        channel_invoice_id=verdict.channel_invoice_id or outcome.channel_ids.get("invoice"),
        check_at=now + timedelta(seconds=hub.invoices.check_seconds),
    )


# --- asking a channel that decides later -----------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceChecks:
    """What one pass of :func:`check_invoices` did."""

    checked: int = 0
    decided: int = 0
    failed: int = 0  # the channel could not be asked (counted as a check without verdict)


async def check_invoices(hub: Hub) -> InvoiceChecks:
    """Ask the channels about the invoices whose check is due (at most
    ``check_limit`` orders per pass)."""
    now = hub.clock.now()
    async with hub.uow() as uow:
        order_ids = await uow.orders.invoice_checks_due(now=now, limit=hub.invoices.check_limit)
    checked = decided = failed = 0
    for order_id in order_ids:
        claimed = await with_conflict_retry(functools.partial(_claim, hub, order_id))
        if claimed is None:
            continue  # checked by someone else meanwhile
        order, claims = claimed
        for invoice_id, fence in claims:
            verdict: InvoiceVerdict | None = None
            detail = "no verdict yet"
            try:  # an account gone from the configuration is a failed check, not a stop
                account = hub.channels.account(order.channel, order.account)
                verdict = await account.invoice_status(
                    copy.deepcopy(order), copy.deepcopy(order.invoice(invoice_id))
                )
            except ChannelError as exc:
                detail, failed = clip(exc.message), failed + 1
            except Exception as exc:  # an adapter bug: counted as a check, its reason kept
                detail, failed = clip(f"{type(exc).__name__}: {exc}"), failed + 1
            checked += 1
            if await _record_check(hub, order_id, invoice_id, fence, verdict, detail):
                decided += verdict is not None and verdict.decided
    return InvoiceChecks(checked=checked, decided=decided, failed=failed)


async def _claim(hub: Hub, order_id: str) -> tuple[Order, list[tuple[str, int]]] | None:
    async with hub.uow() as uow:
        order = await uow.orders.get(order_id)
        if order is None:
            return None
        now = hub.clock.now()
        lease = now + timedelta(seconds=hub.invoices.check_lease_seconds)
        due = [
            invoice.id
            for invoice in order.invoices
            if invoice.state is InvoiceState.SENT
            and invoice.next_check_at is not None
            and invoice.next_check_at <= now
        ]
        if not due:
            return None
        claims: list[tuple[str, int]] = []
        for invoice_id in due:  # counted here: a check that never records still counts
            fence = order.claim_invoice_check(
                invoice_id, now=now, lease_until=lease, max_checks=hub.invoices.max_checks
            )
            if fence is not None:
                claims.append((invoice_id, fence))
        await uow.commit()  # also the invoices whose checks ran out
        return (copy.deepcopy(order), claims) if claims else None


async def _record_check(
    hub: Hub,
    order_id: str,
    invoice_id: str,
    fence: int,
    verdict: InvoiceVerdict | None,
    detail: str,
) -> bool:
    async def attempt() -> bool:
        async with hub.uow() as uow:
            order = await load_order(uow, order_id)
            now = hub.clock.now()
            invoice = order.invoice(invoice_id)
            last = invoice.checks >= hub.invoices.max_checks  # counted at the claim
            decided = verdict is not None and verdict.decided
            changed = order.invoice_checked(
                invoice_id,
                fence=fence,
                now=now,
                accepted=(verdict.state is InvoiceState.ACCEPTED) if decided and verdict else None,
                reason=verdict.reason if verdict else None,
                channel_invoice_id=verdict.channel_invoice_id if verdict else None,
                next_check_at=None if last else now + timedelta(seconds=hub.invoices.check_seconds),
                detail=detail,
            )
            if changed:
                await uow.commit()
            return changed

    return await with_conflict_retry(attempt)


async def recheck_invoice(hub: Hub, *, order_id: str, invoice_id: str) -> Invoice:
    """An operator: ask the channel again about an invoice it has not decided (an
    ``invoice_unconfirmed`` one), from check one, at the next pass."""

    async def attempt() -> Invoice:
        async with hub.uow() as uow:
            order = await load_order(uow, order_id)
            invoice = order.recheck_invoice(invoice_id, now=hub.clock.now())
            await uow.commit()
            return copy.deepcopy(invoice)

    return await with_conflict_retry(attempt)
