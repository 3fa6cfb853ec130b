"""Async client for Octopia's Seller API v2 (orders, carriers, cancellations, invoices).

It raises the SPI's errors directly: :class:`TransientChannelError` (timeouts, 408,
409, 425, 429 with ``Retry-After``, 5xx, an unreadable success), :class:`PermanentChannelError`
(any other 4xx, with Octopia's whole problem message) and :class:`ChannelConfigurationError`
(a 401 that a fresh token does not cure, a 403 naming the permission the call needs).
It never retries a call itself: the hub's outbox does, with backoff.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from orderhub.channels.spi import (
    ChannelConfigurationError,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub_octopia import wire
from orderhub_octopia.auth import Credentials, TokenSource

T = TypeVar("T")
TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})
MAX_MESSAGE: Final = 2000


class OctopiaRejected(PermanentChannelError):
    """Octopia refused the call for good; ``problem`` is its body, decoded."""

    def __init__(self, message: str, *, status: int, problem: wire.Problem | None) -> None:
        super().__init__(message, status=status)
        self.problem = problem


def problem_message(resp: httpx.Response) -> str:
    """Everything useful in an error answer: title, detail, message, each field error."""
    problem = wire.decode_problem(resp.content)
    if problem is None:
        text = resp.text.strip()
        return text[:500] if text else (resp.reason_phrase or "no body")
    parts = [p for p in (problem.title, problem.detail, problem.message) if p]
    parts += [p for p in (problem.error, problem.error_description) if p]
    if isinstance(problem.errors, dict):
        for name, said in problem.errors.items():
            said_list = said if isinstance(said, list) else [said]
            parts.append(f"{name}: {', '.join(str(s) for s in said_list)}")
    elif isinstance(problem.errors, list):
        parts += [str(e) for e in problem.errors]
    if problem.trace_id:
        parts.append(f"trace {problem.trace_id}")
    text = "; ".join(dict.fromkeys(parts)) or resp.reason_phrase or "no detail"
    return text[:MAX_MESSAGE]


def parse_retry_after(raw: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, or None: absent, unreadable, or no finite number (``nan`` would
    make a sleep that never ends)."""
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _id(value: str) -> str:
    if not value or not value.strip():
        raise PermanentChannelError("an empty Octopia id")
    return quote(value, safe="")


class OctopiaClient:
    """One seller account: ``SellerId`` and a token source over one HTTP client."""

    def __init__(
        self,
        *,
        seller_id: str,
        credentials: Credentials,
        base_url: str = wire.PRODUCTION_BASE_URL,
        options: wire.WireOptions | None = None,
        timeout: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tokens_per_hour: int = wire.TOKENS_PER_HOUR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seller_id = seller_id
        self.options = options or wire.WireOptions()
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": "orderhub-octopia/0.1.0"},
        )
        self.tokens = TokenSource(credentials, self._http, per_hour=tokens_per_hour, clock=clock)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- orders ---------------------------------------------------------------------

    async def get_order(self, order_id: str) -> bytes:
        """``GET /orders/{orderId}``: the order's JSON as Octopia sent it."""
        resp = await self._request("get order", "GET", wire.ORDER.format(order_id=_id(order_id)))
        return resp.content

    async def list_orders(self, params: Mapping[str, str | list[str]]) -> wire.OrderPage:
        resp = await self._request("list orders", "GET", wire.ORDERS, params=params)
        return self._decode(resp, wire.OrderPage)

    async def count_orders(self, params: Mapping[str, str | list[str]]) -> int:
        resp = await self._request("count orders", "GET", wire.ORDERS_COUNT, params=params)
        return self._decode(resp, int)

    async def approve(self, order_id: str, decision: Literal["Accepted", "Refused"]) -> None:
        body = wire.approval_body(self.options, decision)
        path = wire.APPROVAL.format(order_id=_id(order_id))
        await self._request("approve order", "POST", path, content=body)

    async def ship(
        self,
        order_id: str,
        *,
        parcel_number: str,
        carrier_name: str,
        tracking_url: str | None,
        line_ids: list[str],
        sales_channel: str | None = None,
    ) -> None:
        body = wire.shipment_body(
            self.options,
            parcel_number=parcel_number,
            carrier_name=carrier_name,
            tracking_url=tracking_url,
            line_ids=line_ids,
        )
        path = wire.SHIPMENTS.format(order_id=_id(order_id))
        await self._request("ship order", "POST", path, content=body, sales_channel=sales_channel)

    async def carriers(self) -> list[wire.Carrier]:
        resp = await self._request("list carriers", "GET", wire.CARRIERS)
        return self._decode(resp, list[wire.Carrier])

    async def cancel(
        self,
        order_id: str,
        *,
        reason: str,
        refund_shipping: bool,
        lines: list[tuple[str, str | None]] | None,
        sales_channel: str | None = None,
    ) -> str | None:
        """Whole order (``lines`` None) or some lines; the request id Octopia gave."""
        body = wire.cancellation_body(
            self.options,
            order_id=order_id,
            reason=reason,
            refund_shipping=refund_shipping,
            lines=lines,
        )
        what, path = (
            ("cancel order", wire.FULL_CANCELLATION)
            if lines is None
            else ("cancel lines", wire.PARTIAL_CANCELLATION)
        )
        resp = await self._request(what, "POST", path, content=body, sales_channel=sales_channel)
        if not resp.content:
            return None
        answer = self._decode(resp, wire.CancellationAnswer)
        return answer.cancellation_request_id or answer.id

    # --- invoices -------------------------------------------------------------------

    async def upload_invoice(
        self, order_id: str, *, filename: str, content: bytes, content_type: str
    ) -> str | None:
        """``POST /orders/{orderId}/invoice-documents``; the import id of its report."""
        files = {self.options.invoice_file_field: (filename, content, content_type)}
        path = wire.INVOICE_DOCUMENTS.format(order_id=_id(order_id))
        resp = await self._request("upload invoice", "POST", path, files=files)
        return self._import_id(resp)

    async def import_invoices(self, documents: Sequence[tuple[str, bytes, str]]) -> str | None:
        """``POST /order-invoice-imports``: many invoices at once, each file named after
        its order id (``(order_id, content, content_type)``); the import id."""
        if not documents:
            raise ValueError("an invoice import needs at least one document")
        field = self.options.invoice_file_field
        files = [(field, (f"{oid}.pdf", data, ctype)) for oid, data, ctype in documents]
        resp = await self._request("import invoices", "POST", wire.INVOICE_IMPORTS, files=files)
        return self._import_id(resp)

    async def invoice_import(self, import_id: str) -> wire.ImportReport:
        path = wire.INVOICE_IMPORT.format(import_id=_id(import_id))
        resp = await self._request("read invoice import", "GET", path)
        return self._decode(resp, wire.ImportReport)

    def _import_id(self, resp: httpx.Response) -> str | None:
        if not resp.content:
            return None
        answer = self._decode(resp, wire.ImportAnswer)
        return answer.import_id or answer.id

    # --- plumbing -------------------------------------------------------------------

    async def _request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | list[str]] | None = None,
        content: bytes | None = None,
        files: Any = None,
        sales_channel: str | None = None,
    ) -> httpx.Response:
        token = await self.tokens.token()
        resp = await self._send(what, method, path, token, params, content, files, sales_channel)
        if resp.status_code == 401:
            await self.tokens.invalidate(token)
            token = await self.tokens.token()
            resp = await self._send(
                what, method, path, token, params, content, files, sales_channel
            )
            if resp.status_code == 401:
                await self.tokens.refused(token)
                raise ChannelConfigurationError(
                    f"Octopia refused a fresh token to {what} (HTTP 401): {problem_message(resp)}",
                    status=401,
                )
        if resp.status_code != 401:
            self.tokens.accepted()
        self._raise_for_status(what, resp)
        return resp

    async def _send(
        self,
        what: str,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, str | list[str]] | None,
        content: bytes | None,
        files: Any,
        sales_channel: str | None,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            wire.SELLER_ID_HEADER: self.seller_id,
            "Accept": "application/json, application/problem+json",
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        if sales_channel and self.options.sales_channel_header:
            headers[wire.SALES_CHANNEL_HEADER] = sales_channel
        try:
            return await self._http.request(
                method,
                f"{self._base}{path}",
                params=params,
                content=content,
                files=files,
                headers=headers,
            )
        except httpx.TimeoutException as exc:
            raise TransientChannelError(f"Octopia did not answer in time to {what}") from exc
        except httpx.TransportError as exc:
            raise TransientChannelError(
                f"Octopia unreachable to {what}: {type(exc).__name__}: {exc}"
            ) from exc

    def _raise_for_status(self, what: str, resp: httpx.Response) -> None:
        code = resp.status_code
        if code < 400:
            return
        said = problem_message(resp)
        if code >= 500 or code in TRANSIENT_4XX:
            raise TransientChannelError(
                f"Octopia could not {what} now (HTTP {code}): {said}",
                status=code,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if code == 403:
            permission = wire.PERMISSIONS.get(what, "the permission for this call")
            raise ChannelConfigurationError(
                f"Octopia refused to {what} (HTTP 403): the API client lacks the permission "
                f"{permission}, or SellerId {self.seller_id} is not linked to it: {said}",
                status=code,
            )
        raise OctopiaRejected(
            f"Octopia refused to {what} (HTTP {code}): {said}",
            status=code,
            problem=wire.decode_problem(resp.content),
        )

    @staticmethod
    def _decode(resp: httpx.Response, type_: type[T]) -> T:
        try:
            return msgspec.json.decode(resp.content, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise TransientChannelError(
                f"Octopia answered {resp.request.method} {resp.request.url.path} with a body "
                f"the adapter cannot read: {exc}",
                status=resp.status_code,
            ) from exc
