"""The seller's invoices on the Order aggregate: recorded, sent, decided by the channel,
asked about one check at a time."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from orderhub.domain.entities import AttentionCode, InvoiceState
from orderhub.domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    OrderIsTerminal,
)
from orderhub.domain.model import Order
from orderhub.domain.values import Reason

from .support import LATER, NOW, PROFILES, Doc, L, receive, take_events

OCTOPIA = PROFILES["octopia"]()
TOPI = PROFILES["topi"]()
SHA = "ab" * 32


def accepted_order() -> Order:
    order = receive(OCTOPIA, Doc(lines=(L(id="L1", quantity=2, accepted=2),)))
    take_events(order)
    return order


def record(order: Order, number: str = "INV-1", *, invoice_id: str = "i1", sha: str = SHA) -> None:
    order.add_invoice(
        OCTOPIA,
        invoice_id=invoice_id,
        number=number,
        document_id=f"d-{invoice_id}",
        content_type="application/pdf",
        size=10,
        sha256=sha,
        now=NOW,
        filename="inv.pdf",
    )


def test_an_invoice_is_recorded_pending_with_its_event() -> None:
    order = accepted_order()
    record(order)
    [invoice] = order.invoices
    assert invoice.state is InvoiceState.PENDING
    assert (invoice.number, invoice.document_id, invoice.filename) == ("INV-1", "d-i1", "inv.pdf")
    [event] = order.events
    assert event.type.value == "invoice.recorded"
    assert event.data["invoice_id"] == "i1"
    assert event.data["state"] == "pending"


def test_a_channel_without_invoices_refuses_with_the_rule() -> None:
    order = receive(TOPI, Doc(lines=(L(id="L1", quantity=1, accepted=1),), status="confirmed"))
    with pytest.raises(NotSupportedByChannel) as refused:
        order.add_invoice(
            TOPI,
            invoice_id="i1",
            number="INV-1",
            document_id="d1",
            content_type="application/pdf",
            size=10,
            sha256=SHA,
            now=NOW,
        )
    assert refused.value.rule == "invoices-not-supported"
    assert order.invoices == []


def test_no_invoice_before_acceptance_nor_on_a_terminal_order() -> None:
    waiting = receive(OCTOPIA)
    with pytest.raises(InvalidTransition) as early:
        record(waiting)
    assert early.value.rule == "invoice-before-acceptance"
    rejected = receive(OCTOPIA)
    rejected.reject(OCTOPIA, reason=Reason.OUT_OF_STOCK, now=NOW)
    with pytest.raises(OrderIsTerminal):
        record(rejected)


@pytest.mark.parametrize("number", ["", " INV", "INV ", "A" * 101, "IN\x00V", "IN\nV"])
def test_an_invoice_number_must_be_plain(number: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        record(accepted_order(), number)
    assert refused.value.rule == "invalid-invoice-number"


def test_a_number_names_one_document_unless_the_first_was_rejected() -> None:
    order = accepted_order()
    record(order)
    with pytest.raises(InvalidTransition) as same:
        record(order, invoice_id="i2")
    assert same.value.rule == "invoice-already-recorded"
    with pytest.raises(InvalidTransition) as other:
        record(order, invoice_id="i2", sha="cd" * 32)
    assert other.value.rule == "invoice-number-reused"

    order.invoice_answered("i1", state=InvoiceState.REJECTED, now=LATER, reason="blurry")
    record(order, invoice_id="i2", sha="cd" * 32)  # the corrected invoice
    assert [i.state for i in order.invoices] == [InvoiceState.REJECTED, InvoiceState.PENDING]
    assert order.attention == []  # the correction clears the rejection's reason


def test_an_answer_at_once_decides_the_invoice() -> None:
    order = accepted_order()
    record(order)
    take_events(order)
    order.invoice_answered("i1", state=InvoiceState.ACCEPTED, now=LATER, channel_invoice_id="CH-1")
    [invoice] = order.invoices
    assert (invoice.state, invoice.channel_invoice_id) == (InvoiceState.ACCEPTED, "CH-1")
    assert (invoice.sent_at, invoice.decided_at) == (LATER, LATER)
    assert take_events(order) == ["invoice.accepted"]


def test_a_rejection_keeps_the_reason_and_asks_for_attention() -> None:
    order = accepted_order()
    record(order)
    take_events(order)
    order.invoice_answered("i1", state=InvoiceState.REJECTED, now=LATER, reason="wrong VAT")
    [invoice] = order.invoices
    assert (invoice.state, invoice.channel_reason) == (InvoiceState.REJECTED, "wrong VAT")
    assert take_events(order) == ["invoice.rejected", "order.attention_required"]
    [reason] = order.attention
    assert (reason.code, reason.ref) == (AttentionCode.INVOICE_REJECTED, "i1")
    assert "wrong VAT" in reason.detail
    # the same verdict again changes nothing
    assert not order.invoice_verdict("i1", accepted=False, reason="wrong VAT", now=LATER)


def sent(order: Order) -> None:
    record(order)
    order.invoice_answered(
        "i1", state=InvoiceState.SENT, now=NOW, channel_invoice_id="IMP-1", check_at=LATER
    )
    take_events(order)


def test_a_sent_invoice_waits_for_its_check() -> None:
    order = accepted_order()
    sent(order)
    [invoice] = order.invoices
    assert invoice.state is InvoiceState.SENT
    assert order.next_invoice_check == LATER
    assert order.events == []  # nothing for the warehouse yet: it is on its way


def test_a_check_records_only_under_its_own_claim() -> None:
    order = accepted_order()
    sent(order)
    lease = LATER + timedelta(minutes=2)
    first = order.claim_invoice_check("i1", now=LATER, lease_until=lease, max_checks=5)
    assert order.next_invoice_check == lease  # nobody else checks it meanwhile
    second = order.claim_invoice_check(
        "i1", now=lease, lease_until=lease + timedelta(minutes=2), max_checks=5
    )
    # the first checker's answer comes late: it is dropped
    assert not order.invoice_checked(
        "i1", fence=first, now=lease, accepted=True, next_check_at=None
    )
    assert order.invoices[0].state is InvoiceState.SENT
    assert order.invoice_checked("i1", fence=second, now=lease, accepted=True, next_check_at=None)
    assert order.invoices[0].state is InvoiceState.ACCEPTED
    assert order.invoices[0].checks == 2  # both claims asked the channel
    assert order.next_invoice_check is None
    assert take_events(order) == ["invoice.accepted"]


def test_checks_run_out_into_attention_and_an_operator_starts_again() -> None:
    order = accepted_order()
    sent(order)
    fence = order.claim_invoice_check("i1", now=LATER, lease_until=LATER, max_checks=5)
    order.invoice_checked(
        "i1", fence=fence, now=LATER, accepted=None, next_check_at=None, detail="still pending"
    )
    [reason] = order.attention
    assert reason.code is AttentionCode.INVOICE_UNCONFIRMED
    assert "still pending" in reason.detail
    assert order.next_invoice_check is None

    order.recheck_invoice("i1", now=LATER)
    assert order.attention == []
    assert order.invoices[0].checks == 0
    assert order.next_invoice_check == LATER
    # a check claimed before the operator's recheck records nothing
    assert not order.invoice_checked(
        "i1", fence=fence, now=LATER, accepted=True, next_check_at=None
    )


def test_a_verdict_that_came_first_is_not_undone_by_the_upload_answer() -> None:
    order = accepted_order()
    record(order)
    order.invoice_verdict("i1", accepted=True, now=NOW)
    order.invoice_answered("i1", state=InvoiceState.SENT, now=LATER, channel_invoice_id="IMP-1")
    invoice = order.invoices[0]
    assert invoice.state is InvoiceState.ACCEPTED
    assert invoice.channel_invoice_id == "IMP-1"
    with pytest.raises(InvalidTransition):
        order.recheck_invoice("i1", now=LATER)


def test_invoices_survive_a_copy_of_the_order() -> None:
    order = accepted_order()
    sent(order)
    copied = dataclasses.replace(order)
    assert copied.invoices[0].channel_invoice_id == "IMP-1"
