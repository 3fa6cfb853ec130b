"""Async client for Spresso's Order Fulfillment API (and its assumed token endpoint).

Errors are classified for the hub's outbox, which does the retrying (bounded by its
``max_attempts``, with backoff): :class:`SpressoTransientError` (5xx, 429, 408,
timeouts, an unreachable host: retried, ``retry_after`` honoured),
:class:`SpressoRejectedError` (another 4xx: the command fails with Spresso's body kept),
:class:`SpressoAuthError` (401 after one token refresh, 403: an operator must act).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import httpx
import msgspec

from orderhub.channels.health import Report
from orderhub_spresso import wire

T = TypeVar("T")

TRANSIENT_4XX: Final = frozenset({408, 425, 429})
REFRESH_MARGIN_SECONDS: Final = 300.0  # [sibling] the SDKs refresh 5 minutes early
DEFAULT_TOKEN_TTL: Final = 3600.0
MIN_TOKEN_TTL: Final = 60.0
USER_AGENT: Final = "orderhub-spresso/0.1.0"


class SpressoError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.retry_after = retry_after


class SpressoTransientError(SpressoError):
    """Try again later."""


class SpressoRejectedError(SpressoError):
    """Spresso refused the call for good; ``message`` is its own text."""


class SpressoAuthError(SpressoRejectedError):
    """Credentials or permissions are wrong."""


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), capped at an hour; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 3600.0)


def classify(response: httpx.Response) -> SpressoError | None:
    code = response.status_code
    if code < 400:
        return None
    text = wire.decode_error(response.content) or response.reason_phrase
    raw = response.text[:2000]
    if code >= 500 or code in TRANSIENT_4XX:
        retry = parse_retry_after(response.headers.get("Retry-After"))
        return SpressoTransientError(
            f"HTTP {code}: {text}", status=code, body=raw, retry_after=retry
        )
    if code in (401, 403):
        return SpressoAuthError(text, status=code, body=raw)
    return SpressoRejectedError(text, status=code, body=raw)


# --- tokens ---------------------------------------------------------------------------------


class TokenProvider(Protocol):
    async def token(self, http: httpx.AsyncClient) -> str: ...

    async def invalidate(self, token: str) -> bool:
        """Forget a refused token; False when it cannot be renewed (a static one)."""
        ...


@dataclass
class StaticToken:
    value: str

    async def token(self, http: httpx.AsyncClient) -> str:
        return self.value

    async def invalidate(self, token: str) -> bool:
        return False


class ClientCredentials:
    """OAuth2 client credentials against the [sibling] identity service: a JSON body
    ``{client_id, client_secret, audience, grant_type}``; the token is cached and renewed
    ``refresh_margin`` seconds before it expires (half its life if that is shorter)."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        audience: str = wire.DEFAULT_AUDIENCE,
        scope: str | None = None,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self._request = wire.TokenRequest(
            client_id=client_id,
            client_secret=client_secret,
            audience=audience,
            grant_type="client_credentials",
            scope=scope,
        )
        self._margin = refresh_margin
        self._clock = clock
        self._value: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0
        self.report: Report | None = None  # how each fetch went (the account's health)

    def __repr__(self) -> str:  # never the secret
        return f"ClientCredentials(token_url={self.token_url!r})"

    async def token(self, http: httpx.AsyncClient) -> str:
        if self._value is not None and self._clock() < self._refresh_at:
            return self._value
        async with self._lock:
            if self._value is not None and self._clock() < self._refresh_at:
                return self._value
            started = self._clock()
            try:
                answer = await self._fetch(http)
            except SpressoError as exc:
                if self.report is not None:
                    await self.report(False, str(exc))
                raise
            if self.report is not None:
                await self.report(True, "")
            ttl = float(answer.expires_in) if answer.expires_in else DEFAULT_TOKEN_TTL
            if not math.isfinite(ttl) or ttl < MIN_TOKEN_TTL:  # else a token per call
                ttl = MIN_TOKEN_TTL  # (a 401 still replaces it early)
            self._value = answer.access_token
            self._refresh_at = started + ttl - min(self._margin, ttl / 2)
            self.fetched += 1
            return self._value

    async def invalidate(self, token: str) -> bool:
        async with self._lock:
            if self._value == token:
                self._value = None
        return True

    async def _fetch(self, http: httpx.AsyncClient) -> wire.TokenResponse:
        try:
            response = await http.post(
                self.token_url,
                content=wire.encode(self._request),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise SpressoTransientError("token endpoint timeout") from exc
        except httpx.TransportError as exc:
            raise SpressoTransientError(f"token endpoint unreachable: {exc!r}") from exc
        error = classify(response)
        if isinstance(error, SpressoRejectedError):  # any 4xx: the credentials are wrong
            raise SpressoAuthError(
                f"token endpoint refused the client: {error.message}",
                status=error.status,
                body=error.body,
            )
        if error is not None:
            raise error
        try:
            return msgspec.json.decode(response.content, type=wire.TokenResponse)
        except msgspec.MsgspecError as exc:
            raise SpressoTransientError(f"unreadable token answer: {exc}") from exc


# --- the client -----------------------------------------------------------------------------


class SpressoClient:
    """One Spresso account. ``transport`` for tests (``httpx.MockTransport``)."""

    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenProvider,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self._http = httpx.AsyncClient(
            transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def put_shipment(
        self, fulfillment_id: str, request: wire.ShipmentRequest, *, idempotency_key: str
    ) -> httpx.Response:
        """Create or update (same tracking number) one shipment of a fulfilment."""
        path = wire.SHIPMENTS_PATH.format(fulfillment_id=fulfillment_id)
        return await self.request("PUT", path, request, idempotency_key=idempotency_key)

    async def update_fulfillment(
        self, fulfillment_id: str, update: wire.FulfillmentUpdate, *, idempotency_key: str
    ) -> httpx.Response:
        path = wire.FULFILLMENT_PATH.format(fulfillment_id=fulfillment_id)
        return await self.request("PUT", path, update, idempotency_key=idempotency_key)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call; a 401 renews the token once. Raises a :class:`SpressoError`."""
        content = wire.encode(body) if body is not None else None
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers[wire.IDEMPOTENCY_HEADER] = idempotency_key
        token = await self.tokens.token(self._http)
        response = await self._send(method, path, token, headers, content, params)
        if response.status_code == 401 and await self.tokens.invalidate(token):
            token = await self.tokens.token(self._http)
            response = await self._send(method, path, token, headers, content, params)
        error = classify(response)
        if error is not None:
            raise error
        return response

    async def _send(
        self,
        method: str,
        path: str,
        token: str,
        headers: dict[str, str],
        content: bytes | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return await self._http.request(
                method,
                url,
                content=content,
                params=params,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
        except httpx.TimeoutException as exc:
            raise SpressoTransientError(f"{method} {path}: timeout") from exc
        except httpx.TransportError as exc:
            raise SpressoTransientError(f"{method} {path}: {exc.__class__.__name__}") from exc

    @staticmethod
    def decode(response: httpx.Response, type_: type[T]) -> T:
        try:
            return msgspec.json.decode(response.content, type=type_)
        except msgspec.MsgspecError as exc:
            raise SpressoTransientError(f"unreadable answer: {exc}") from exc
