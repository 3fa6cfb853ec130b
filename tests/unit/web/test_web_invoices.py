"""The invoice routes: a multipart upload answered 202 with the receipt, the problems it
can get (413, 415, 422, 409), the order showing its invoices, the document read back."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from orderhub.application.hub import InvoicePolicy
from orderhub.application.ports import CommandKind
from orderhub.application.services.dispatch import dispatch_command
from orderhub.channels.spi import CommandOutcome, InvoiceVerdict
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.entrypoints.web import WebSettings

from .support import API_KEYS, FULL, Harness, StubAccount, assert_problem, auth, commanding

PDF = b"%PDF-1.4\n" + b"0" * 200 + b"\n%%EOF\n"
LIMIT = 2048


@pytest.fixture
def capabilities() -> Capabilities:
    # orders arrive ready to ship; the channel takes invoices
    return dataclasses.replace(FULL, acceptance=Scope.NONE, rejection=Scope.NONE, invoices=True)


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=API_KEYS, max_body_bytes=64 * 1024, max_document_bytes=LIMIT)


@pytest.fixture(autouse=True)
def small_documents(harness: Harness) -> None:
    harness.hub.invoices = InvoicePolicy(max_document_bytes=LIMIT)


def form(
    number: str | None = "INV-1",
    content: bytes = PDF,
    content_type: str = "application/pdf",
    filename: str = "invoice.pdf",
    form_filename: str | None = None,
) -> dict[str, Any]:
    data = {} if number is None else {"number": number}
    if form_filename is not None:
        data["filename"] = form_filename
    return {"files": {"file": (filename, content, content_type)}, "data": data}


async def upload(
    harness: Harness, order_id: str, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> Any:
    return await harness.client.post(
        f"/api/v1/orders/{order_id}/invoices", headers=headers or commanding(), **form(**kwargs)
    )


async def test_an_upload_is_answered_with_the_receipt_and_the_invoice_id(harness: Harness) -> None:
    order = await harness.seed()
    response = await upload(harness, order.id)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["kind"] == "invoice"
    invoice_id = body["details"]["invoice_id"]
    command = harness.db.commands[body["command_id"]]
    assert command.kind is CommandKind.INVOICE
    assert command.payload["filename"] == "invoice.pdf"
    assert harness.queue.commands == [(body["command_id"], 0)]

    shown = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    [invoice] = shown["invoices"]
    assert invoice["id"] == invoice_id
    assert invoice["number"] == "INV-1"
    assert invoice["state"] == "pending"
    assert invoice["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert shown["pending_commands"][0]["kind"] == "invoice"

    document = await harness.client.get(
        f"/api/v1/orders/{order.id}/invoices/{invoice_id}/document", headers=auth("reader")
    )
    assert document.status_code == 200
    assert document.content == PDF
    assert document.headers["content-type"] == "application/pdf"
    assert "invoice.pdf" in document.headers["content-disposition"]


async def test_the_channels_verdict_shows_on_the_order(harness: Harness) -> None:
    order = await harness.seed()
    account = harness.hub.channels.account("stub", "main")
    assert isinstance(account, StubAccount)

    async def reject(command: Any, order: Any) -> CommandOutcome:
        assert command.document.content == PDF
        return CommandOutcome(invoice=InvoiceVerdict.reject("VAT number missing", "CH-1"))

    account.execute = reject  # type: ignore[method-assign]
    body = (await upload(harness, order.id)).json()
    await dispatch_command(harness.hub, body["command_id"])
    shown = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    [invoice] = shown["invoices"]
    assert (invoice["state"], invoice["channel_reason"]) == ("rejected", "VAT number missing")
    assert invoice["channel_invoice_id"] == "CH-1"
    assert [a["code"] for a in shown["attention"]] == ["invoice_rejected"]


async def test_an_idempotent_replay_and_a_reused_number(harness: Harness) -> None:
    order = await harness.seed()
    headers = commanding()
    first = await upload(harness, order.id, headers=headers)
    again = await upload(harness, order.id, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    other_document = await upload(harness, order.id, headers=headers, content=PDF + b"2")
    assert_problem(other_document, 422, "idempotency-key-reused")
    reused = await upload(harness, order.id, content=PDF + b"2")
    assert_problem(reused, 409, "invoice-number-reused")
    assert len(harness.db.commands) == 1
    assert len(harness.db.documents) == 1


@pytest.mark.parametrize(
    ("kwargs", "status", "rule"),
    [
        ({"content_type": "image/png"}, 415, "invoice-type-not-supported"),
        ({"content": b"GIF89a" + b"0" * 100}, 422, "invoice-not-pdf"),
        ({"content": b"%PDF-" + b"0" * LIMIT}, 413, "invoice-too-large"),
        ({"content": b"%PDF-" + b"0" * (LIMIT + 128 * 1024)}, 413, "invoice-too-large"),
        ({"number": None}, 422, "validation-error"),
        ({"number": " padded "}, 422, "invalid-invoice-number"),
        ({"form_filename": "a\x01b.pdf"}, 422, "validation-error"),
    ],
)
async def test_bad_uploads_are_problems_and_change_nothing(
    harness: Harness, kwargs: dict[str, Any], status: int, rule: str
) -> None:
    order = await harness.seed()
    before = harness.state()
    assert_problem(await upload(harness, order.id, **kwargs), status, rule)
    assert harness.state() == before


async def test_not_multipart_is_415(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/invoices", json={"number": "INV-1"}, headers=commanding()
    )
    assert_problem(response, 415, "multipart-required")


async def test_a_channel_without_invoices_is_409(harness: Harness) -> None:
    order = await harness.seed(account="plain")
    before = harness.state()
    assert_problem(await upload(harness, order.id), 409, "invoices-not-supported")
    assert harness.state() == before


async def test_scopes_and_the_idempotency_key(harness: Harness) -> None:
    order = await harness.seed()
    path = f"/api/v1/orders/{order.id}/invoices"
    reader = {**auth("reader"), "Idempotency-Key": "k"}
    assert_problem(await harness.client.post(path, headers=reader, **form()), 403, "forbidden")
    no_key = await harness.client.post(path, headers=auth("writer"), **form())
    assert_problem(no_key, 400, "idempotency-key-required")
    missing = await upload(harness, "no-such-order")
    assert_problem(missing, 404, "order-not-found")
    document = await harness.client.get(
        f"/api/v1/orders/{order.id}/invoices/nope/document", headers=auth("reader")
    )
    assert_problem(document, 422, "unknown-invoice")


async def test_an_operator_rechecks_an_invoice_awaiting_a_verdict(harness: Harness) -> None:
    order = await harness.seed()
    account = harness.hub.channels.account("stub", "main")

    async def later(command: Any, order: Any) -> CommandOutcome:
        return CommandOutcome(invoice=InvoiceVerdict.processing("IMP-1"))

    account.execute = later  # type: ignore[method-assign]
    body = (await upload(harness, order.id)).json()
    await dispatch_command(harness.hub, body["command_id"])
    invoice_id = body["details"]["invoice_id"]
    path = f"/ops/orders/{order.id}/invoices/{invoice_id}/recheck"
    assert_problem(
        await harness.client.post(f"/api/v1{path}", headers=auth("writer")), 403, "forbidden"
    )
    response = await harness.client.post(f"/api/v1{path}", headers=auth("operator"))
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "sent"
    assert response.json()["next_check_at"] is not None


BOUNDARY = "b0undary"


def _part(name: str, value: bytes, *, headers: bytes = b"", filename: str | None = None) -> bytes:
    disposition = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return disposition.encode() + b"\r\n" + headers + b"\r\n" + value + b"\r\n"


@pytest.mark.parametrize(
    "number_part",
    [
        _part("number", b"INV-\xff\xfe"),  # not UTF-8
        _part("number", b"INV-1", headers=b"Content-Type: text/plain; charset=no-such\r\n"),
    ],
    ids=["invalid-utf8", "unknown-charset"],
)
async def test_a_text_part_that_cannot_be_decoded_is_400_not_500(
    harness: Harness, number_part: bytes
) -> None:
    order = await harness.seed()
    before = harness.state()
    body = (
        number_part
        + _part("file", PDF, headers=b"Content-Type: application/pdf\r\n", filename="i.pdf")
        + f"--{BOUNDARY}--\r\n".encode()
    )
    headers = {**commanding(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/invoices", headers=headers, content=body
    )
    assert_problem(response, 400, "malformed-multipart")
    assert harness.state() == before
