"""Invoices through the service layer on fakes: recorded with their document and command
in one commit, dispatched with the bytes, decided at once or after checks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import timedelta
from typing import Any

import pytest

from orderhub.application.hub import InvoicePolicy
from orderhub.application.ports import CommandKind, CommandState
from orderhub.application.services.common import Idempotency
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.invoices import (
    DocumentTooLarge,
    InvoiceNumberReused,
    UnsupportedDocumentType,
    check_invoices,
    invoice_document,
    recheck_invoice,
    record_invoice,
)
from orderhub.application.services.operations import sweep
from orderhub.channels.spi import (
    CommandOutcome,
    CommandView,
    InvoiceVerdict,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.entities import AttentionCode, InvoiceState
from orderhub.domain.errors import InvalidInput, InvalidTransition, NotSupportedByChannel
from orderhub.domain.model import Order
from orderhub.testing.channel.invoices import reason_for

from .support import World, make_world, order_doc

PDF = b"%PDF-1.7\n" + b"x" * 100 + b"\n%%EOF\n"
POLICY = InvoicePolicy(max_document_bytes=1024, check_seconds=60.0, max_checks=3)


def accepted_doc() -> dict[str, Any]:
    return order_doc(
        status="Accepted",
        counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
    )


async def octopia_world(**settings: Any) -> tuple[World, Order]:
    world = make_world("octopia", **settings)
    world.hub.invoices = POLICY
    order = await world.receive(accepted_doc())
    return world, order


async def upload(
    world: World, order: Order, number: str = "INV-1", content: bytes = PDF, **extra: Any
) -> Any:
    return await record_invoice(
        world.hub,
        order_id=order.id,
        number=number,
        content=content,
        content_type=extra.pop("content_type", "application/pdf"),
        filename=extra.pop("filename", "inv-1.pdf"),
        **extra,
    )


async def test_the_document_the_invoice_and_its_command_commit_together() -> None:
    world, order = await octopia_world()
    commits = world.db.commits
    receipt = await upload(world, order)

    assert world.db.commits == commits + 1
    [command] = world.commands()
    assert command.kind is CommandKind.INVOICE
    invoice_id = receipt.details["invoice_id"]
    document_id = receipt.details["document_id"]
    assert command.payload["invoice_id"] == invoice_id
    assert command.payload["document_id"] == document_id
    assert command.payload["sha256"] == hashlib.sha256(PDF).hexdigest()
    stored, content = world.db.documents[document_id]
    assert content == PDF
    assert (stored.order_id, stored.size, stored.filename) == (order.id, len(PDF), "inv-1.pdf")
    [invoice] = world.order().invoices
    assert (invoice.id, invoice.state) == (invoice_id, InvoiceState.PENDING)
    assert "invoice.recorded" in world.feed_types()
    assert world.queue.commands == [(command.id, 0)]


async def test_the_adapter_gets_the_bytes_and_the_hub_asks_until_the_verdict() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)

    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.SUCCEEDED
    invoice = world.order().invoices[0]
    assert invoice.state is InvoiceState.SENT
    assert invoice.channel_invoice_id == f"IMP-{receipt.command_id}"
    assert invoice.next_check_at == world.clock.now() + timedelta(seconds=60)

    assert (await check_invoices(world.hub)).checked == 0  # not due yet
    world.clock.advance(60)
    done = await check_invoices(world.hub)
    assert (done.checked, done.decided) == (1, 1)
    invoice = world.order().invoices[0]
    assert (invoice.state, invoice.checks) == (InvoiceState.ACCEPTED, 1)
    assert world.feed_types()[-1] == "invoice.accepted"
    assert world.order().attention == []


async def test_a_rejected_number_keeps_the_channels_reason_and_asks_for_attention() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order, number="REJ-7")
    await dispatch_command(world.hub, receipt.command_id)
    world.clock.advance(60)
    await check_invoices(world.hub)

    invoice = world.order().invoices[0]
    assert invoice.state is InvoiceState.REJECTED
    assert invoice.channel_reason == reason_for("REJ-7")
    [reason] = world.order().attention
    assert (reason.code, reason.ref) == (AttentionCode.INVOICE_REJECTED, invoice.id)
    assert world.feed_types()[-2:] == ["invoice.rejected", "order.attention_required"]
    # a corrected invoice may take the number again
    corrected = await upload(world, order, number="REJ-7", content=PDF + b"fixed")
    assert corrected.details["invoice_id"] != invoice.id


async def test_without_a_verdict_the_checks_run_out_and_an_operator_starts_them_again() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order, number="LATE-1")
    await dispatch_command(world.hub, receipt.command_id)
    for _ in range(POLICY.max_checks):
        world.clock.advance(60)
        assert (await check_invoices(world.hub)).checked == 1
    world.clock.advance(3600)
    assert (await check_invoices(world.hub)).checked == 0  # it stopped asking
    invoice = world.order().invoices[0]
    assert (invoice.state, invoice.checks, invoice.next_check_at) == (InvoiceState.SENT, 3, None)
    [reason] = world.order().attention
    assert reason.code is AttentionCode.INVOICE_UNCONFIRMED

    await recheck_invoice(world.hub, order_id=order.id, invoice_id=invoice.id)
    assert world.order().attention == []
    assert (await check_invoices(world.hub)).checked == 1


async def test_a_channel_that_cannot_be_asked_counts_as_a_check_without_verdict() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)
    await dispatch_command(world.hub, receipt.command_id)
    account = world.account()

    async def down(order: Order, invoice: Any) -> InvoiceVerdict | None:
        raise TransientChannelError("imports report unavailable")

    account.invoice_status = down  # type: ignore[method-assign]
    world.clock.advance(60)
    done = await check_invoices(world.hub)
    assert (done.checked, done.failed, done.decided) == (1, 1, 0)
    invoice = world.order().invoices[0]
    assert (invoice.state, invoice.checks) == (InvoiceState.SENT, 1)
    assert invoice.next_check_at == world.clock.now() + timedelta(seconds=60)


async def test_an_answer_at_once_decides_without_checks() -> None:
    world, order = await octopia_world(invoice_checks=0)
    receipt = await upload(world, order, number="REJ-1")
    await dispatch_command(world.hub, receipt.command_id)
    invoice = world.order().invoices[0]
    assert invoice.state is InvoiceState.REJECTED
    assert invoice.next_check_at is None


async def test_a_channel_without_invoices_refuses_before_anything_is_stored() -> None:
    world = make_world("topi")
    order = await world.receive(order_doc(status="confirmed"))
    commits = world.db.commits
    with pytest.raises(NotSupportedByChannel) as refused:
        await upload(world, order)
    assert refused.value.rule == "invoices-not-supported"
    assert world.db.commits == commits
    assert world.db.documents == {}


@pytest.mark.parametrize(
    ("content", "content_type", "error", "rule"),
    [
        (PDF, "image/png", UnsupportedDocumentType, "invoice-type-not-supported"),
        (b"%PDF-" + b"x" * 2000, "application/pdf", DocumentTooLarge, "invoice-too-large"),
        (b"<html>not a pdf</html>", "application/pdf", InvalidInput, "invoice-not-pdf"),
    ],
)
async def test_only_pdfs_within_the_limit(
    content: bytes, content_type: str, error: type[Exception], rule: str
) -> None:
    world, order = await octopia_world()
    with pytest.raises(error) as refused:
        await upload(world, order, content=content, content_type=content_type)
    assert getattr(refused.value, "rule", None) == rule
    assert world.db.documents == {}


async def test_the_same_invoice_again_answers_with_the_first_receipt() -> None:
    world, order = await octopia_world()
    first = await upload(world, order)
    again = await upload(world, order)
    assert again.command_id == first.command_id
    assert again.details == {**first.details, "replayed": True}
    assert len(world.commands()) == 1
    with pytest.raises(InvoiceNumberReused):
        await upload(world, order, content=PDF + b"other")


async def test_an_idempotency_key_replays_the_first_answer() -> None:
    world, order = await octopia_world()
    key = Idempotency(key="wms:k1", fingerprint="f1")
    first = await upload(world, order, idempotency=key)
    again = await upload(world, order, idempotency=key)
    assert again == first
    assert len(world.db.documents) == 1


async def test_the_document_reads_back() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)
    stored, content = await invoice_document(
        world.hub, order_id=order.id, invoice_id=receipt.details["invoice_id"]
    )
    assert content == PDF
    assert stored.sha256 == hashlib.sha256(PDF).hexdigest()
    with pytest.raises(InvalidInput):
        await invoice_document(world.hub, order_id=order.id, invoice_id="nope")


async def test_a_lost_enqueue_is_swept_and_the_invoice_goes() -> None:
    """A crash between the commit and the enqueue: the command row committed with the
    document, so the sweeper queues it again and the adapter still gets the bytes."""
    world, order = await octopia_world()
    receipt = await upload(world, order)
    world.queue.commands.clear()  # the enqueue was lost with the process

    world.clock.advance(300)
    result = await sweep(world.hub, requeue_after_seconds=120)
    assert result.commands == 1
    assert world.queue.commands == [(receipt.command_id, 0)]
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.SUCCEEDED
    [call] = [c for c in world.account().calls if c.kind == "invoice"]
    assert call.payload["number"] == "INV-1"


async def test_a_document_gone_fails_the_command_without_calling_the_channel() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)
    world.db.documents.clear()
    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.FAILED
    assert world.db.commands[receipt.command_id].state is CommandState.FAILED
    assert world.account().calls == []


async def test_the_view_the_adapter_gets_carries_the_document() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)
    seen: list[CommandView] = []
    account = world.account()

    async def execute(command: CommandView, order: Order) -> CommandOutcome:
        seen.append(command)
        return CommandOutcome(invoice=InvoiceVerdict.accept("CH-9"))

    account.execute = execute  # type: ignore[method-assign]
    await dispatch_command(world.hub, receipt.command_id)
    [view] = seen
    assert view.document is not None
    assert view.document.content == PDF
    assert view.document.filename == "inv-1.pdf"
    assert "PDF" not in repr(view.document)  # never the bytes in a log line
    invoice = world.order().invoices[0]
    assert (invoice.state, invoice.channel_invoice_id) == (InvoiceState.ACCEPTED, "CH-9")


async def test_a_recheck_of_an_unknown_invoice_is_refused() -> None:
    world, order = await octopia_world()
    with pytest.raises(InvalidInput):
        await recheck_invoice(world.hub, order_id=order.id, invoice_id="nope")
    receipt = await upload(world, order)
    with pytest.raises(InvalidTransition) as pending:  # not sent yet: nothing to ask
        await recheck_invoice(
            world.hub, order_id=order.id, invoice_id=receipt.details["invoice_id"]
        )
    assert pending.value.rule == "invoice-not-awaiting-verdict"


async def test_checks_that_never_come_back_still_run_out_into_attention() -> None:
    """A check whose checker dies (killed, cancelled with the scheduler's leadership, hung
    past its lease) records nothing; its claims still count, so the hub stops asking
    after ``max_checks`` and a person looks, instead of claiming it forever."""
    world, order = await octopia_world()
    receipt = await upload(world, order, number="LATE-1")
    await dispatch_command(world.hub, receipt.command_id)
    account = world.account()
    calls = 0

    async def dies(order: Order, invoice: Any) -> InvoiceVerdict | None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError  # the checker stops between its claim and its record

    account.invoice_status = dies  # type: ignore[method-assign]
    for _ in range(POLICY.max_checks * 3):
        world.clock.advance(POLICY.check_lease_seconds + 60)
        with contextlib.suppress(asyncio.CancelledError):
            await check_invoices(world.hub)
    assert calls == POLICY.max_checks
    invoice = world.order().invoices[0]
    assert (invoice.state, invoice.next_check_at) == (InvoiceState.SENT, None)
    [reason] = world.order().attention
    assert (reason.code, reason.ref) == (AttentionCode.INVOICE_UNCONFIRMED, invoice.id)

    await recheck_invoice(world.hub, order_id=order.id, invoice_id=invoice.id)
    assert world.order().attention == []
    assert world.order().invoices[0].checks == 0


async def test_an_account_no_longer_configured_counts_as_a_failed_check() -> None:
    world, order = await octopia_world()
    receipt = await upload(world, order)
    await dispatch_command(world.hub, receipt.command_id)
    second = accepted_doc()
    second["id"] = "CO-2"
    other = await world.receive(second)
    receipt = await upload(world, other)
    await dispatch_command(world.hub, receipt.command_id)
    lookup = world.hub.channels.account

    def gone(channel: str, account: str) -> Any:
        raise RuntimeError(f"no account {channel}/{account}")

    world.hub.channels.account = gone  # type: ignore[method-assign]
    world.clock.advance(60)
    done = await check_invoices(world.hub)  # one order's failure does not stop the pass
    assert (done.checked, done.failed) == (2, 2)
    world.hub.channels.account = lookup  # type: ignore[method-assign]
    checks = [i.checks for o in ("CO-1", "CO-2") for i in world.order(o).invoices]
    assert checks == [1, 1]


async def test_an_upload_the_channel_refuses_rejects_the_invoice_with_its_message() -> None:
    """A 4xx on the upload is the channel's refusal of the invoice: rejected with the
    channel's message (its number free for a corrected one), not left pending for good."""
    world, order = await octopia_world()
    receipt = await upload(world, order)
    world.account().fail_next(PermanentChannelError("422: the invoice total is not the order's"))

    assert await dispatch_command(world.hub, receipt.command_id) is Dispatched.FAILED

    [invoice] = world.order().invoices
    assert invoice.state is InvoiceState.REJECTED
    assert invoice.channel_reason is not None
    assert "the invoice total is not the order's" in invoice.channel_reason
    codes = {a.code for a in world.order().attention}
    assert codes == {AttentionCode.COMMAND_FAILED, AttentionCode.INVOICE_REJECTED}
    assert "invoice.rejected" in world.feed_types()
    corrected = await upload(world, order, content=PDF + b"fixed")
    assert corrected.details["invoice_id"] != invoice.id


async def test_an_upload_that_gave_up_leaves_the_invoice_pending() -> None:
    """Transient failures until the cap say nothing of the channel's view: pending, with
    the failed command listed (an operator retries it)."""
    world, order = await octopia_world()
    receipt = await upload(world, order)
    world.account().fail_next(TransientChannelError("503"), times=20)
    outcome = None
    for _ in range(world.hub.retry.max_attempts):
        outcome = await dispatch_command(world.hub, receipt.command_id)
        world.clock.advance(world.hub.retry.max_seconds + 1)
    assert outcome is Dispatched.FAILED
    assert world.order().invoices[0].state is InvoiceState.PENDING
