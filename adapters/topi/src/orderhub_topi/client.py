"""Async client for topi's Seller API (orders and shipments).

Errors are classified for the hub's outbox: :class:`TopiTransientError` (retry with
backoff, honour ``retry_after``), :class:`TopiRejectedError` (fail the command, keep
topi's message), :class:`TopiAuthError` (configuration problem), and
:class:`TopiProtocolError` (topi answered 2xx with a body we cannot decode).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import httpx
import msgspec

from orderhub.channels.health import Report
from orderhub_topi.wire import (
    ORDER_ACCEPTED,
    ORDER_ACKNOWLEDGED,
    ORDER_CANCELED,
    ORDER_COMPLETED,
    ORDER_CONFIRMED,
    ORDER_PARTIALLY_FULFILLED,
    ORDER_REJECTED,
    FullOrderResult,
    OrderResult,
    OrdersSummaryPaginated,
    OrderSummary,
    SetMetadataRequest,
    Shipment,
    ShipmentRequest,
    TokenResponse,
    TopiErrorBody,
    decode_error_body,
    encode,
)

__all__ = [
    "DEFAULT_TOKEN_URL",
    "PRODUCTION_BASE_URL",
    "SANDBOX_BASE_URL",
    "ClientCredentials",
    "TopiAuthError",
    "TopiClient",
    "TopiError",
    "TopiProtocolError",
    "TopiRejectedError",
    "TopiTransientError",
    "parse_retry_after",
]

PRODUCTION_BASE_URL: Final = "https://seller-api.topi.eu"
SANDBOX_BASE_URL: Final = "https://seller-api-sandbox.topi-sandbox.eu"
#: ``components.securitySchemes.OAuth2Seller_header_Authorization`` tokenUrl.
DEFAULT_TOKEN_URL: Final = "https://identity.topi.eu/oauth2/token"

#: Lifetime assumed when the token endpoint omits ``expires_in``.
DEFAULT_TOKEN_TTL: Final = 300.0
#: 4xx statuses that are worth retrying (interfaces.md: "a 4xx other than 408/409/429
#: fails the command at once"); 425 Too Early is retryable by definition.
TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})

_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z\-]+$")
_T = TypeVar("_T")

# Statuses at or past the target of each command: a repeated command that topi refuses
# with 422 because the order is already there counts as done (see docs/channels/topi.md).
# An acknowledgement is also moot once the order was rejected or canceled: the hub's own
# acknowledge can lose the race against a fast WMS reject or a customer cancel.
_ACKNOWLEDGED_OR_LATER: Final = frozenset(
    {
        ORDER_ACKNOWLEDGED,
        ORDER_CONFIRMED,
        ORDER_ACCEPTED,
        ORDER_PARTIALLY_FULFILLED,
        ORDER_COMPLETED,
        ORDER_REJECTED,
        ORDER_CANCELED,
    }
)
_ACCEPTED_OR_LATER: Final = frozenset(
    {ORDER_CONFIRMED, ORDER_ACCEPTED, ORDER_PARTIALLY_FULFILLED, ORDER_COMPLETED}
)
_REJECTED: Final = frozenset({ORDER_REJECTED})


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class TopiError(Exception):
    """Base of every error raised by :class:`TopiClient`."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: TopiErrorBody | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        #: topi's Error body when it sent one.
        self.error = error
        self.method = method
        self.url = url

    @property
    def name(self) -> str | None:
        """topi's error class name (``not_found``, ``invalid_status``...), if any."""
        return self.error.name if self.error and self.error.name else None

    def __str__(self) -> str:
        where = f"{self.method} {self.url}: " if self.method and self.url else ""
        code = f"HTTP {self.status_code}: " if self.status_code is not None else ""
        return f"{where}{code}{self.message}"


class TopiTransientError(TopiError):
    """Worth retrying: timeouts, connection errors, 408, 409, 425, 429 and 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        #: Seconds to wait, from ``Retry-After`` (429/503), else None.
        self.retry_after = retry_after


class TopiRejectedError(TopiError):
    """topi refused the request (a 4xx that retrying will not fix)."""


class TopiAuthError(TopiError):
    """Credentials are wrong or lack a scope: 401 after one token refresh, 403, or a
    token endpoint that refuses the client."""


class TopiProtocolError(TopiError):
    """topi answered 2xx with a body that does not match its documented schema."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _rfc3339(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("timestamps sent to topi must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _check_id(order_id: str) -> str:
    if not _ID_PATTERN.match(order_id):
        raise ValueError(f"not a topi id: {order_id!r}")
    return order_id


def _as_order_result(order: FullOrderResult) -> OrderResult:
    return OrderResult(
        id=order.id,
        status=order.status,
        assets=order.assets,
        offer_id=order.offer_id,
        seller_offer_reference=order.seller_offer_reference,
        metadata=order.metadata,
    )


@dataclass(frozen=True, kw_only=True)
class ClientCredentials:
    """OAuth2 client-credentials grant settings."""

    client_id: str
    client_secret: str
    token_url: str = DEFAULT_TOKEN_URL
    scope: str | None = None
    audience: str | None = None
    #: ``basic``: HTTP Basic (RFC 6749 client_secret_basic); ``post``: in the form body.
    auth_method: Literal["basic", "post"] = "basic"

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, token_url={self.token_url!r})"


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------


class TopiClient:
    """One topi seller account.

    Give either ``credentials`` (OAuth2 client credentials; the token is cached on this
    instance and refreshed ``refresh_margin`` seconds before it expires) or
    ``access_token`` (a static bearer token, never refreshed). Inject ``http_client``
    (not closed by this class) or ``transport`` for tests.
    """

    def __init__(
        self,
        *,
        base_url: str = PRODUCTION_BASE_URL,
        credentials: ClientCredentials | None = None,
        access_token: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (credentials is None) == (access_token is None):
            raise ValueError("give exactly one of credentials or access_token")
        if http_client is not None and transport is not None:
            raise ValueError("give http_client or transport, not both")
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._static_token = access_token
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            transport=transport, timeout=timeout, headers={"User-Agent": "orderhub-topi/0.1.0"}
        )
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self.token_report: Report | None = None  # how each token fetch went (the account's health)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # ---- orders ------------------------------------------------------------

    async def get_order(self, order_id: str) -> FullOrderResult:
        """``GET /v1/orders/{id}``: the whole order (lines, sub-lines, customer, prices)."""
        resp = await self._request("GET", f"/v1/orders/{_check_id(order_id)}")
        return self._decode(resp, FullOrderResult)

    async def list_orders_paginated(
        self,
        *,
        created_at_gt: dt.datetime | str | None = None,
        created_at_gte: dt.datetime | str | None = None,
        id_gt: str | None = None,
        limit: int = 100,
        page: int | None = None,
        sort_order: Literal["asc", "desc"] | None = None,
    ) -> OrdersSummaryPaginated:
        """``GET /v1/orders/paginated`` with topi's range filters (sorted by created_at)."""
        params: dict[str, str] = {"limit": str(limit)}
        if page is not None:
            params["page"] = str(page)
        if created_at_gt is not None:
            params["created_at_gt"] = _rfc3339(created_at_gt)
        if created_at_gte is not None:
            params["created_at_gte"] = _rfc3339(created_at_gte)
        if id_gt is not None:
            params["id_gt"] = id_gt
        if sort_order is not None:
            params["sort_order"] = sort_order
        resp = await self._request("GET", "/v1/orders/paginated", params=params)
        return self._decode(resp, OrdersSummaryPaginated)

    async def iter_orders(
        self,
        *,
        created_at_gt: dt.datetime | str | None = None,
        created_at_gte: dt.datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[OrderSummary]:
        """Every order created after the given time, oldest first.

        Walks pages 1, 2, ... of one fixed ascending ``created_at`` filter: orders created
        meanwhile sort after the ones already read, so no order is skipped, and no
        assumption is made about how topi's ids sort.
        """
        page = 1
        while True:
            result = await self.list_orders_paginated(
                created_at_gt=created_at_gt,
                created_at_gte=created_at_gte,
                limit=page_size,
                page=page,
                sort_order="asc",
            )
            for order in result.orders:
                yield order
            total_pages = result.pagination.total_pages
            if len(result.orders) < page_size or (total_pages is not None and page >= total_pages):
                return
            page += 1

    async def acknowledge(self, order_id: str, *, already_applied_ok: bool = True) -> OrderResult:
        """``POST /v1/orders/{id}/acknowledge`` (only from ``created``)."""
        return await self._order_command(
            order_id, "acknowledge", _ACKNOWLEDGED_OR_LATER if already_applied_ok else None
        )

    async def accept(self, order_id: str, *, already_applied_ok: bool = True) -> OrderResult:
        """``POST /v1/orders/{id}/accept`` (from ``created`` or ``acknowledged``)."""
        return await self._order_command(
            order_id, "accept", _ACCEPTED_OR_LATER if already_applied_ok else None
        )

    async def reject(
        self, order_id: str, reason: str | None = None, *, already_applied_ok: bool = True
    ) -> OrderResult:
        """``POST /v1/orders/{id}/reject`` (from ``created`` or ``acknowledged``).

        topi's endpoint takes no body: ``reason`` is not transmitted (use
        :meth:`set_metadata` first to leave it on the order).
        """
        del reason
        return await self._order_command(
            order_id, "reject", _REJECTED if already_applied_ok else None
        )

    async def set_metadata(self, order_id: str, metadata: Mapping[str, str]) -> OrderResult:
        """``PATCH /v1/orders/{id}``: attach string metadata to the order."""
        body = encode(SetMetadataRequest(metadata=dict(metadata)))
        resp = await self._request("PATCH", f"/v1/orders/{_check_id(order_id)}", content=body)
        return self._decode(resp, OrderResult)

    async def create_shipment(self, shipment: ShipmentRequest) -> Shipment:
        """``POST /v1/shipment``: one entry per shipped unit, partial shipments allowed."""
        _check_id(shipment.order_id)
        resp = await self._request("POST", "/v1/shipment", content=encode(shipment))
        return self._decode(resp, Shipment)

    async def _order_command(
        self, order_id: str, action: str, done_statuses: frozenset[str] | None
    ) -> OrderResult:
        path = f"/v1/orders/{_check_id(order_id)}/{action}"
        try:
            resp = await self._request("POST", path)
        except TopiRejectedError as exc:
            # A retried command whose first attempt went through gets 422 InvalidStatus.
            # If the order already is where the command would take it, that is success.
            if done_statuses is None or exc.status_code != 422:
                raise
            order = await self.get_order(order_id)
            if order.status not in done_statuses:
                raise
            return _as_order_result(order)
        return self._decode(resp, OrderResult)

    # ---- HTTP plumbing -------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        token = await self._access_token()
        resp = await self._send(method, path, token, params, content)
        if resp.status_code == 401:
            if self._credentials is None:
                raise self._error(TopiAuthError, resp, "static access token refused")
            await self._invalidate(token)
            token = await self._access_token()
            resp = await self._send(method, path, token, params, content)
            if resp.status_code == 401:
                raise self._error(TopiAuthError, resp, "token refused after a refresh")
        self._raise_for_status(resp)
        return resp

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self._base_url}{path}"
        try:
            return await self._http.request(
                method, url, params=params, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise TopiTransientError(
                f"timeout: {exc.__class__.__name__}", method=method, url=url
            ) from exc
        except httpx.TransportError as exc:
            raise TopiTransientError(
                f"transport error: {exc.__class__.__name__}: {exc}", method=method, url=url
            ) from exc

    @staticmethod
    def _error(cls: type[TopiError], resp: httpx.Response, fallback: str) -> TopiError:
        body = decode_error_body(resp.content)
        message = body.message if body and body.message else None
        if message is None:
            text = resp.text.strip()
            message = text[:500] if text else fallback
        kwargs: dict[str, Any] = {
            "status_code": resp.status_code,
            "error": body,
            "method": resp.request.method,
            "url": str(resp.request.url),
        }
        if cls is TopiTransientError:
            kwargs["retry_after"] = parse_retry_after(resp.headers.get("Retry-After"))
        return cls(message, **kwargs)

    def _raise_for_status(self, resp: httpx.Response) -> None:
        code = resp.status_code
        if code < 400:
            return
        if code >= 500 or code in TRANSIENT_4XX:
            raise self._error(TopiTransientError, resp, resp.reason_phrase)
        if code == 403:
            raise self._error(TopiAuthError, resp, "missing scope")
        raise self._error(TopiRejectedError, resp, resp.reason_phrase)

    @staticmethod
    def _decode(resp: httpx.Response, type_: type[_T]) -> _T:
        try:
            return msgspec.json.decode(resp.content, type=type_)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise TopiProtocolError(
                f"unexpected {type_.__name__} body: {exc}",
                status_code=resp.status_code,
                method=resp.request.method,
                url=str(resp.request.url),
            ) from exc

    # ---- tokens --------------------------------------------------------------

    async def _access_token(self) -> str:
        if self._static_token is not None:
            return self._static_token
        cached = self._token
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        async with self._token_lock:
            cached = self._token
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            try:
                self._token = await self._fetch_token()
            except TopiError as exc:
                if self.token_report is not None:
                    await self.token_report(False, str(exc))
                raise
            if self.token_report is not None:
                await self.token_report(True, "")
            return self._token.value

    async def _invalidate(self, token: str) -> None:
        async with self._token_lock:
            # Another task may already have replaced the refused token.
            if self._token is not None and self._token.value == token:
                self._token = None

    async def _fetch_token(self) -> _Token:
        creds = self._credentials
        assert creds is not None
        form = {"grant_type": "client_credentials"}
        if creds.scope:
            form["scope"] = creds.scope
        if creds.audience:
            form["audience"] = creds.audience
        headers = {"Accept": "application/json"}
        if creds.auth_method == "basic":
            pair = f"{creds.client_id}:{creds.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form["client_id"] = creds.client_id
            form["client_secret"] = creds.client_secret
        started = self._clock()
        try:
            resp = await self._http.post(creds.token_url, data=form, headers=headers)
        except httpx.TimeoutException as exc:
            raise TopiTransientError(
                "token endpoint timeout", method="POST", url=creds.token_url
            ) from exc
        except httpx.TransportError as exc:
            raise TopiTransientError(
                f"token endpoint unreachable: {exc}", method="POST", url=creds.token_url
            ) from exc
        code = resp.status_code
        if code >= 500 or code in TRANSIENT_4XX:
            raise self._error(TopiTransientError, resp, "token endpoint unavailable")
        if code >= 400:
            raise self._error(TopiAuthError, resp, "token endpoint refused the client")
        try:
            token = msgspec.json.decode(resp.content, type=TokenResponse)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise TopiProtocolError(
                f"unexpected token response: {exc}",
                status_code=code,
                method="POST",
                url=creds.token_url,
            ) from exc
        ttl = float(token.expires_in) if token.expires_in is not None else DEFAULT_TOKEN_TTL
        margin = min(self._refresh_margin, ttl / 2)
        return _Token(value=token.access_token, refresh_at=started + ttl - margin)
