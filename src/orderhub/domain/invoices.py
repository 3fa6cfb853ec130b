"""The seller's invoices: recorded with their document, sent to the channel by an
``invoice`` command, then accepted or rejected by the channel, at once or later (Octopia
answers an upload with an import id and a report that comes asynchronously).

The rules (each refusal names its rule):

* the channel must take invoices for this order (``Capabilities.invoices``), else
  ``invoices-not-supported`` (409);
* an invoice bills a sale: not before the order is accepted
  (``invoice-before-acceptance``), never on a rejected or cancelled order
  (``order-terminal``);
* an invoice number names one document: the same number with another document is
  ``invoice-number-reused`` (409), unless the earlier one was rejected (a corrected
  invoice replaces it); with the same document it is ``invoice-already-recorded`` (the
  service answers such a retry with the first receipt instead).

The channel's verdict (:meth:`Invoices.invoice_verdict`) emits ``invoice.accepted`` or
``invoice.rejected``; a rejection opens an ``invoice_rejected`` attention reason, which a
later acceptance (or a corrected invoice) clears.

A channel that decides later (``sent``) is asked again, one check at a time: a check is
claimed (:meth:`Invoices.claim_invoice_check`: ``check_fence`` goes up, the next check is
put off by a lease) and its answer is recorded only under the claim it was made with, so
two checkers never both count, nor a late answer overwrite a newer one. After the
configured number of checks without a verdict the hub stops asking and opens
``invoice_unconfirmed``; an operator's :meth:`Invoices.recheck_invoice` starts again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from orderhub.domain.base import OrderBase
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.entities import AttentionCode, Invoice, InvoiceState
from orderhub.domain.errors import InvalidInput, InvalidTransition, NotSupportedByChannel
from orderhub.domain.events import EventType
from orderhub.domain.values import OrderStatus

MAX_INVOICE_NUMBER: Final = 100


class UnknownInvoice(InvalidInput):
    rule = "unknown-invoice"


class Invoices(OrderBase):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def invoice(self, invoice_id: str) -> Invoice:
        for invoice in self.invoices:
            if invoice.id == invoice_id:
                return invoice
        raise UnknownInvoice(f"order {self.id} has no invoice {invoice_id}")

    def has_invoice(self, invoice_id: str) -> bool:
        return any(invoice.id == invoice_id for invoice in self.invoices)

    def invoice_numbered(self, number: str) -> Invoice | None:
        """The newest invoice with this number, if any."""
        return next((i for i in reversed(self.invoices) if i.number == number), None)

    @property
    def next_invoice_check(self) -> datetime | None:
        """When the hub should next ask the channel about an invoice it has not decided."""
        due = [
            i.next_check_at
            for i in self.invoices
            if i.state is InvoiceState.SENT and i.next_check_at is not None
        ]
        return min(due, default=None)

    def add_invoice(
        self,
        caps: Capabilities,
        *,
        invoice_id: str,
        number: str,
        document_id: str,
        content_type: str,
        size: int,
        sha256: str,
        now: datetime,
        filename: str | None = None,
    ) -> Invoice:
        """The seller invoiced the order; the document is stored under ``document_id``."""
        if not caps.invoices:
            raise NotSupportedByChannel(
                caps.explain("invoice", f"{self.channel} does not take the seller's invoices"),
                rule="invoices-not-supported",
            )
        check_invoice_number(number)
        self._ensure_open()
        if self.status is OrderStatus.AWAITING_ACCEPTANCE:
            raise InvalidTransition(
                f"order {self.id} is awaiting acceptance: accept it before invoicing it",
                rule="invoice-before-acceptance",
            )
        if size <= 0:
            raise InvalidInput("an invoice document cannot be empty", rule="empty-document")
        earlier = self.invoice_numbered(number)
        if earlier is not None and earlier.state is not InvoiceState.REJECTED:
            if earlier.sha256 == sha256:
                raise InvalidTransition(
                    f"invoice {number} is already recorded (invoice {earlier.id})",
                    rule="invoice-already-recorded",
                )
            raise InvalidTransition(
                f"invoice number {number} was recorded with another document "
                f"(invoice {earlier.id}, {earlier.state.value}); a number names one document",
                rule="invoice-number-reused",
            )
        invoice = Invoice(
            id=invoice_id,
            number=number,
            document_id=document_id,
            content_type=content_type,
            size=size,
            sha256=sha256,
            state=InvoiceState.PENDING,
            recorded_at=now,
            filename=filename,
        )
        self.invoices.append(invoice)
        self.updated_at = now
        self._emit(EventType.INVOICE_RECORDED, **invoice_data(invoice))
        if earlier is not None:  # a corrected invoice replaces the rejected one
            self.clear_attention(now=now, code=AttentionCode.INVOICE_REJECTED, ref=earlier.id)
        return invoice

    def invoice_answered(
        self,
        invoice_id: str,
        *,
        state: InvoiceState,
        now: datetime,
        reason: str | None = None,
        channel_invoice_id: str | None = None,
        check_at: datetime | None = None,
    ) -> None:
        """The channel answered the invoice's command (it succeeded): ``accepted`` or
        ``rejected`` (its verdict at once, ``reason`` saying why), or ``sent``: it decides
        later, and the hub asks it from ``check_at`` on."""
        if state is InvoiceState.PENDING:
            raise ValueError("a channel's answer is accepted, rejected or sent")
        invoice = self.invoice(invoice_id)
        if channel_invoice_id:
            invoice.channel_invoice_id = channel_invoice_id
        invoice.sent_at = now
        self.updated_at = now
        if state.is_final:
            self.invoice_verdict(
                invoice_id, accepted=state is InvoiceState.ACCEPTED, reason=reason, now=now
            )
            return
        if invoice.state.is_final:
            return  # the verdict came first (a report read before the answer was written)
        invoice.state = InvoiceState.SENT
        invoice.channel_reason = None
        invoice.decided_at = None
        invoice.checks = 0
        invoice.next_check_at = check_at or now

    def invoice_verdict(
        self,
        invoice_id: str,
        *,
        accepted: bool,
        now: datetime,
        reason: str | None = None,
        channel_invoice_id: str | None = None,
    ) -> bool:
        """The channel's final word on an invoice; a rejection opens an
        ``invoice_rejected`` reason with the channel's reason. True when the invoice
        changed (the same verdict twice changes nothing)."""
        invoice = self.invoice(invoice_id)
        if channel_invoice_id and not invoice.channel_invoice_id:
            invoice.channel_invoice_id = channel_invoice_id
        wanted = InvoiceState.ACCEPTED if accepted else InvoiceState.REJECTED
        if invoice.state is wanted and invoice.channel_reason == reason:
            return False
        self._decide_invoice(invoice, accepted=accepted, reason=reason, now=now)
        return True

    def claim_invoice_check(
        self, invoice_id: str, *, now: datetime, lease_until: datetime, max_checks: int
    ) -> int | None:
        """Take the next check of a ``sent`` invoice: its fence goes up, the check is
        counted, and nobody else checks it before ``lease_until`` (a checker that dies is
        replaced then). Returns the fence the check must record under, or None when
        ``max_checks`` checks were taken already (recorded or not: a checker that dies
        every time still runs out): the hub stops asking and a person must look."""
        invoice = self.invoice(invoice_id)
        if invoice.state is not InvoiceState.SENT:
            raise InvalidTransition(
                f"invoice {invoice.number} is {invoice.state.value}: nothing to check",
                rule="invoice-not-awaiting-verdict",
            )
        invoice.check_fence += 1
        self.updated_at = now
        if invoice.checks >= max_checks:
            invoice.next_check_at = None
            self.raise_attention(
                AttentionCode.INVOICE_UNCONFIRMED,
                f"{self.channel} gave no verdict on invoice {invoice.number} after "
                f"{invoice.checks} checks (the last was never recorded: its checker "
                "stopped or hung); the hub stopped asking",
                now=now,
                ref=invoice.id,
            )
            return None
        invoice.checks += 1
        invoice.next_check_at = lease_until
        return invoice.check_fence

    def invoice_checked(
        self,
        invoice_id: str,
        *,
        fence: int,
        now: datetime,
        accepted: bool | None,
        reason: str | None = None,
        channel_invoice_id: str | None = None,
        next_check_at: datetime | None,
        detail: str = "no verdict yet",
    ) -> bool:
        """Record the check claimed with ``fence``: the channel's verdict (``accepted``
        True or False) or none yet (None: asked again at ``next_check_at``; None there too:
        the hub stops asking and a person must look). False (and nothing changes) when the
        claim is not the newest any more, or the invoice was decided meanwhile."""
        invoice = self.invoice(invoice_id)
        if invoice.check_fence != fence or invoice.state is not InvoiceState.SENT:
            return False  # (the check was counted when it was claimed)
        if accepted is not None:
            self.invoice_verdict(
                invoice_id,
                accepted=accepted,
                now=now,
                reason=reason,
                channel_invoice_id=channel_invoice_id,
            )
            return True
        invoice.next_check_at = next_check_at
        self.updated_at = now
        if next_check_at is None:
            self.raise_attention(
                AttentionCode.INVOICE_UNCONFIRMED,
                f"{self.channel} gave no verdict on invoice {invoice.number} after "
                f"{invoice.checks} checks ({detail}); the hub stopped asking",
                now=now,
                ref=invoice.id,
            )
        return True

    def recheck_invoice(self, invoice_id: str, *, now: datetime) -> Invoice:
        """An operator asks the hub to ask the channel again (from check one, now)."""
        invoice = self.invoice(invoice_id)
        if invoice.state is not InvoiceState.SENT:
            raise InvalidTransition(
                f"invoice {invoice.number} is {invoice.state.value}: only an invoice awaiting "
                "the channel's verdict is checked again",
                rule="invoice-not-awaiting-verdict",
            )
        invoice.checks = 0
        invoice.check_fence += 1  # a check still on its way records nothing
        invoice.next_check_at = now
        self.updated_at = now
        self.clear_attention(now=now, code=AttentionCode.INVOICE_UNCONFIRMED, ref=invoice.id)
        return invoice

    def _decide_invoice(
        self, invoice: Invoice, *, accepted: bool, reason: str | None, now: datetime
    ) -> None:
        invoice.state = InvoiceState.ACCEPTED if accepted else InvoiceState.REJECTED
        invoice.channel_reason = reason
        invoice.decided_at = now
        invoice.next_check_at = None
        self.updated_at = now
        if accepted:
            self._emit(EventType.INVOICE_ACCEPTED, **invoice_data(invoice))
            for code in (AttentionCode.INVOICE_REJECTED, AttentionCode.INVOICE_UNCONFIRMED):
                self.clear_attention(now=now, code=code, ref=invoice.id)
            return
        self._emit(EventType.INVOICE_REJECTED, **invoice_data(invoice))
        self.clear_attention(now=now, code=AttentionCode.INVOICE_UNCONFIRMED, ref=invoice.id)
        self.raise_attention(
            AttentionCode.INVOICE_REJECTED,
            f"{self.channel} rejected invoice {invoice.number}: {reason or 'no reason given'}",
            now=now,
            ref=invoice.id,
        )


def check_invoice_number(number: str) -> None:
    if not number or number != number.strip():
        raise InvalidInput(
            "an invoice number is required, without leading or trailing spaces",
            rule="invalid-invoice-number",
        )
    if len(number) > MAX_INVOICE_NUMBER:
        raise InvalidInput(
            f"an invoice number has at most {MAX_INVOICE_NUMBER} characters",
            rule="invalid-invoice-number",
        )
    if any(not ch.isprintable() for ch in number):
        raise InvalidInput(
            "an invoice number has no control characters", rule="invalid-invoice-number"
        )


def invoice_data(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "document_id": invoice.document_id,
        "content_type": invoice.content_type,
        "size": invoice.size,
        "sha256": invoice.sha256,
        "state": invoice.state.value,
        "channel_invoice_id": invoice.channel_invoice_id,
        "channel_reason": invoice.channel_reason,
    }
