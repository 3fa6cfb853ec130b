"""The seller's invoices: upload one (``multipart/form-data``), read its document back, and
(operators) ask the channel again about one it has not decided.

The upload's size limit comes from configuration (``[documents] max_bytes``), so its
handler is made by :func:`invoice_handlers` when the app is built."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath

from orderhub.application.services import invoices
from orderhub.entrypoints.web.auth import requires
from orderhub.entrypoints.web.presenters import receipt_out
from orderhub.entrypoints.web.problems import ProblemError, invalid_field, problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.routes.commands import IdempotencyKey, idempotency_of
from orderhub.entrypoints.web.schemas import CommandReceiptOut, InvoiceOut
from orderhub.entrypoints.web.settings import OPS, READ, WRITE

MULTIPART: Final = "multipart/form-data"
FORM_OVERHEAD: Final = 64 * 1024  # the form's other parts and boundaries, beyond the file
MAX_FILENAME: Final = 255
MAX_NUMBER: Final = 200  # an invoice number (docs/limits.md)
FIELDS: Final = frozenset({"file", "number", "filename"})


@dataclass
class UploadOperation(Operation):
    """The upload's request body in the document: the handler reads the form itself, so
    Litestar cannot see it (without it a client, or a fuzzer, would not know what to send)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                MULTIPART: OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["file", "number"],
                        properties={
                            "file": Schema(
                                type=OpenAPIType.STRING,
                                format=OpenAPIFormat.BINARY,
                                description="The invoice, a PDF",
                            ),
                            "number": Schema(
                                type=OpenAPIType.STRING,
                                min_length=1,
                                max_length=MAX_NUMBER,
                                description="The seller's invoice number",
                            ),
                            "filename": Schema(
                                type=OpenAPIType.STRING,
                                max_length=MAX_FILENAME,
                                description="The document's name (else the file part's)",
                            ),
                        },
                        additional_properties=False,
                    ),
                )
            },
        )


class InvoiceFingerprint(msgspec.Struct, kw_only=True, frozen=True):
    """What an upload asks for, as its ``Idempotency-Key`` fingerprint sees it."""

    number: str
    filename: str | None
    content_type: str
    sha256: str


def _text(form: Any, name: str, *, required: bool) -> str | None:
    values = form.getall(name, [])
    if len(values) > 1:
        raise invalid_field(name, "give it once")
    if not values:
        if required:
            raise invalid_field(name, "is required")
        return None
    value = values[0]
    if not isinstance(value, str):
        raise invalid_field(name, "must be a text field, not a file")
    return value


def _filename(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    name = value.replace("\\", "/").rsplit("/", 1)[-1]  # never a path
    if len(name) > MAX_FILENAME or not name.isprintable() or not name.strip():
        raise invalid_field("filename", f"a printable name of at most {MAX_FILENAME} characters")
    return name


async def _read_form(request: Request[Any, Any, Any]) -> tuple[UploadFile, str, str | None]:
    media_type, _ = request.content_type
    if media_type != MULTIPART:
        raise ProblemError(
            415,
            "multipart-required",
            f"send the invoice as {MULTIPART} with a part `file` (the PDF) and `number`",
        )
    try:
        form = await request.form()
    except RequestEntityTooLarge as exc:
        raise ProblemError(
            413, "invoice-too-large", "the upload is larger than invoices may be"
        ) from exc
    except ClientException as exc:
        detail = f"the form cannot be read: {exc.detail}"
        raise ProblemError(400, "malformed-multipart", detail) from exc
    except (UnicodeDecodeError, LookupError) as exc:
        # litestar decodes every text part with the part's charset: bytes that are not
        # in it, or a charset Python does not know, raise out of its parser
        detail = f"a text part cannot be decoded: {exc}"
        raise ProblemError(400, "malformed-multipart", detail) from exc
    unknown = sorted(set(form.keys()) - FIELDS)
    if unknown:
        raise invalid_field(unknown[0], "unknown field (file, number and filename are known)")
    files = form.getall("file", [])
    if len(files) != 1 or not isinstance(files[0], UploadFile):
        raise invalid_field("file", "one file part (the invoice's PDF) is required")
    number = _text(form, "number", required=True)
    assert number is not None
    if len(number) > MAX_NUMBER:
        raise invalid_field("number", f"at most {MAX_NUMBER} characters")
    filename = _filename(_text(form, "filename", required=False) or files[0].filename)
    return files[0], number, filename


def invoice_handlers(*, max_document_bytes: int) -> list[HTTPRouteHandler]:
    """The invoice routes, the upload limited to ``max_document_bytes`` (plus the form)."""

    @post(
        "/orders/{order_id:str}/invoices",
        status_code=202,
        opt=requires(WRITE),
        request_max_body_size=max_document_bytes + FORM_OVERHEAD,
        operation_class=UploadOperation,
        summary="Upload the seller's invoice for the order",
        description="`multipart/form-data` with `file` (the PDF: `application/pdf`, "
        f"starting with `%PDF-`, at most {max_document_bytes} bytes), `number` (the "
        "invoice number) and optionally `filename`. The document is stored and the "
        "channel call queued in one transaction; the receipt's details name the invoice "
        "(`invoice_id`). The same number with the same document again answers with the "
        "first receipt; with another document, 409 invoice-number-reused (unless the "
        "channel rejected the first). 413 invoice-too-large, 415 "
        "invoice-type-not-supported or multipart-required, 422 invoice-not-pdf, 409 "
        "invoices-not-supported where the channel takes no invoices.",
        responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    )
    async def upload_invoice(
        hub: HubDep,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        idempotency_key: IdempotencyKey = None,
    ) -> CommandReceiptOut:
        upload, number, filename = await _read_form(request)
        try:
            content = await upload.read()
        finally:
            await upload.close()
        content_type = upload.content_type or ""
        fingerprint = InvoiceFingerprint(
            number=number,
            filename=filename,
            content_type=content_type,
            sha256=hashlib.sha256(content).hexdigest(),
        )
        receipt = await invoices.record_invoice(
            hub,
            order_id=order_id,
            number=number,
            content=content,
            content_type=content_type,
            filename=filename,
            idempotency=idempotency_of(request, idempotency_key, fingerprint),
        )
        return receipt_out(receipt)

    return [upload_invoice, invoice_document, recheck_invoice]


@get(
    "/orders/{order_id:str}/invoices/{invoice_id:str}/document",
    opt=requires(READ),
    summary="The document of one invoice, as uploaded",
    responses=problem_responses(401, 403, 404, 422),
    media_type="application/pdf",
)
async def invoice_document(
    hub: HubDep, order_id: FromPath[str], invoice_id: FromPath[str]
) -> Response[bytes]:
    stored, content = await invoices.invoice_document(hub, order_id=order_id, invoice_id=invoice_id)
    name = stored.filename or f"invoice-{invoice_id}.pdf"
    return Response(
        content=content,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "ETag": f'"{stored.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@post(
    "/ops/orders/{order_id:str}/invoices/{invoice_id:str}/recheck",
    status_code=202,
    opt=requires(OPS),
    summary="Ask the channel again about an invoice it has not decided",
    description="For an invoice the channel took for processing (`sent`), typically one "
    "whose checks ran out (attention invoice_unconfirmed): the checks start again at "
    "the scheduler's next pass and the attention reason is cleared.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def recheck_invoice(
    hub: HubDep, order_id: FromPath[str], invoice_id: FromPath[str]
) -> InvoiceOut:
    invoice = await invoices.recheck_invoice(hub, order_id=order_id, invoice_id=invoice_id)
    return msgspec.convert(invoice, InvoiceOut, from_attributes=True)
