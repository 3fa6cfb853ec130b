"""The topi simulator as a Litestar app: seller API, OAuth2 token endpoint, control API."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import fnmatch
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

import msgspec
import structlog
from litestar import Litestar, Request, Response, delete, get, patch, post
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from orderhub_topi.simulator.fixtures import sandbox_orders
from orderhub_topi.simulator.state import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    ListQuery,
    OrderBook,
    OrderSpec,
    SimError,
    TokenStore,
    Transition,
    bad_request,
)
from orderhub_topi.simulator.webhooks import WebhookDispatcher, WebhookRecord, WebhookTarget
from orderhub_topi.wire import (
    WEBHOOK_ORDER_STATUSES,
    SetMetadataRequest,
    Shipment,
    ShipmentRequest,
    TopiErrorBody,
    encode,
)

log = structlog.get_logger("topi_simulator")

JSON: Final = "application/json"
GOA_ERROR: Final = "application/vnd.goa.error"
_ID_PATTERN: Final = re.compile(r"^[0-9A-Za-z\-]+$")
_HTTP_NAMES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    422: "invalid_status",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass(kw_only=True)
class SimulatorConfig:
    """Everything configurable; the CLI maps its flags onto this."""

    webhook_url: str | None = None
    #: Sent as ``Authorization: Bearer <token>`` on every webhook.
    webhook_token: str | None = None
    #: ``whsec_<base64>``: adds Standard Webhooks ``webhook-id``/``-timestamp``/``-signature``.
    webhook_secret: str | None = None
    #: Statuses that trigger a webhook (topi's documented set by default).
    webhook_statuses: frozenset[str] = WEBHOOK_ORDER_STATUSES
    webhook_retry_delays: Sequence[float] = (0.2, 1.0, 3.0)
    webhook_timeout: float = 5.0
    #: OAuth2 clients: client_id -> client_secret.
    clients: Mapping[str, str] = field(default_factory=lambda: {"orderhub": "orderhub-secret"})
    #: Bearer tokens always accepted (for clients in static token mode).
    static_tokens: frozenset[str] = frozenset()
    token_ttl: int = 3600
    fixtures: bool = True
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    monotonic: Callable[[], float] = time.monotonic


# --------------------------------------------------------------------------
# Faults and call records
# --------------------------------------------------------------------------


class FaultSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_sim/faults``: the next ``count`` calls whose path matches ``path``
    (exact or glob, e.g. ``/v1/orders/*/accept``) and ``method`` (any when unset) wait
    ``delay`` seconds, then answer ``status`` (or go through when ``status`` is unset)."""

    path: str
    method: str | None = None
    status: int | None = None
    count: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    body: Any = None


class Fault(msgspec.Struct, kw_only=True):
    id: int
    spec: FaultSpec
    remaining: int


class CallRecord(msgspec.Struct, kw_only=True):
    """One call to the seller API or token endpoint (``GET /_sim/calls``)."""

    seq: int
    method: str
    path: str
    query: str
    body: str
    at: dt.datetime
    status_code: int | None = None
    fault: bool = False


class DropSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    count: int = 1


class ResetSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fixtures: bool = True


def _redact_form(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    return re.sub(r"(client_secret=)[^&]*", r"\1***", text)


class Simulator:
    """The simulator's whole state; one per app."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.book = OrderBook(clock=config.clock)
        self.tokens = TokenStore(
            clients=dict(config.clients),
            ttl_seconds=config.token_ttl,
            clock=config.monotonic,
            static_tokens=config.static_tokens,
        )
        self.webhooks = WebhookDispatcher(
            target=WebhookTarget(
                url=config.webhook_url, token=config.webhook_token, secret=config.webhook_secret
            ),
            retry_delays=config.webhook_retry_delays,
            timeout=config.webhook_timeout,
        )
        self.faults: list[Fault] = []
        self.calls: list[CallRecord] = []
        self._fault_seq = 0
        self.reset(fixtures=config.fixtures)

    def reset(self, *, fixtures: bool) -> None:
        self.book.orders.clear()
        self.tokens.revoke_all()
        self.webhooks.reset()
        self.faults.clear()
        self.calls.clear()
        if fixtures:
            for order in sandbox_orders():
                self.book.add(order)

    def emit(self, transition: Transition) -> None:
        """Send the order webhook if the status changed to one that topi notifies."""
        order = transition.order
        if not transition.changed:
            return
        log.info(
            "order.status_changed",
            order_id=order.id,
            previous=transition.previous_status or None,
            status=order.status,
        )
        if order.status in self.config.webhook_statuses:
            self.webhooks.enqueue(order.webhook())

    def add_fault(self, spec: FaultSpec) -> Fault:
        self._fault_seq += 1
        fault = Fault(id=self._fault_seq, spec=spec, remaining=spec.count)
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> FaultSpec | None:
        for fault in self.faults:
            spec = fault.spec
            if fault.remaining <= 0:
                continue
            if spec.method is not None and spec.method.upper() != method:
                continue
            if path != spec.path and not fnmatch.fnmatchcase(path, spec.path):
                continue
            fault.remaining -= 1
            return spec
        return None


# --------------------------------------------------------------------------
# Middleware: record calls, inject faults, check bearer tokens
# --------------------------------------------------------------------------


class SimulatorMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith("/_sim"):
            await next_app(scope, receive, send)
            return
        sim = self.sim
        path: str = scope["path"]
        method: str = scope["method"]
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        record = CallRecord(
            seq=len(sim.calls) + 1,
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            body=_redact_form(body) if path.startswith("/oauth") else body.decode(errors="replace"),
            at=sim.book.now(),
        )
        sim.calls.append(record)

        fault = sim.take_fault(method, path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                record.fault = True
                record.status_code = fault.status
                log.info("fault.injected", method=method, path=path, status=fault.status)
                await _send_fault(send, fault)
                return

        if path.startswith("/v1/") and not self._authorized(scope):
            record.status_code = 401
            await _send_raw(send, 401, JSON, msgspec.json.encode("invalid or expired access token"))
            return

        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status_code = message["status"]
            await send(message)

        await next_app(scope, replay, capture)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and self.sim.tokens.valid(token.strip())
        return False


async def _send_raw(
    send: Send, status: int, media_type: str, body: bytes, extra: Mapping[str, str] | None = None
) -> None:
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    for key, value in (extra or {}).items():
        headers.append((key.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_fault(send: Send, fault: FaultSpec) -> None:
    status = fault.status or 500
    extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    if fault.body is not None:
        await _send_raw(send, status, JSON, msgspec.json.encode(fault.body), extra)
        return
    error = TopiErrorBody(
        name=_HTTP_NAMES.get(status, "error"),
        id=f"fault-{status}",
        message=f"injected fault: HTTP {status}",
        temporary=status in (408, 429) or status >= 500,
        timeout=status in (408, 504),
        fault=status >= 500,
    )
    await _send_raw(send, status, GOA_ERROR, encode(error), extra)


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


def _json(value: Any, status_code: int = 200) -> Response[bytes]:
    return Response(content=encode(value), status_code=status_code, media_type=JSON)


def _goa_error(status_code: int, name: str, message: str) -> Response[bytes]:
    body = TopiErrorBody(
        name=name,
        id=base64.b32encode(time.time_ns().to_bytes(8, "big")).decode().rstrip("=")[-8:],
        message=message,
        temporary=status_code >= 500,
        fault=status_code >= 500,
    )
    return Response(content=encode(body), status_code=status_code, media_type=GOA_ERROR)


def _sim_error_handler(_: Request[Any, Any, Any], exc: SimError) -> Response[bytes]:
    return _goa_error(exc.status_code, exc.name, exc.message)


def _http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = exc.status_code
    return _goa_error(code, _HTTP_NAMES.get(code, "error"), str(exc.detail))


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("simulator.internal_error", path=request.url.path)
    return _goa_error(500, "internal_error", f"{exc.__class__.__name__}: {exc}")


def _decode_body(body: bytes, type_: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body, type=type_)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise bad_request(f"invalid request body: {exc}") from exc


def _check_id(order_id: str) -> str:
    if not _ID_PATTERN.match(order_id):
        raise bad_request(f"id must match ^[0-9A-Za-z\\-]+$, got {order_id!r}")
    return order_id


def _path_id(request: Request[Any, Any, Any]) -> str:
    return _check_id(str(request.path_params["order_id"]))


def _parse_time(name: str, value: str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f"{name} must be an RFC 3339 date-time, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise bad_request(f"{name} must carry a time zone")
    return parsed


def _query_one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def _parse_int(params: Mapping[str, list[str]], name: str, default: int) -> int:
    raw = _query_one(params, name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from exc


def _list_query(query_string: str) -> ListQuery:
    params = parse_qs(query_string, keep_blank_values=True)
    limit = _parse_int(params, "limit", DEFAULT_PAGE_SIZE)
    page = _parse_int(params, "page", 1)
    if limit < 1 or page < 1:
        raise bad_request("limit and page must be positive")
    sort_by = _query_one(params, "sort_by") or "created_at"
    if sort_by != "created_at":
        raise bad_request('sort_by must be "created_at"')
    sort_order = _query_one(params, "sort_order") or "asc"
    if sort_order not in ("asc", "desc"):
        raise bad_request('sort_order must be "asc" or "desc"')
    return ListQuery(
        limit=min(limit, MAX_PAGE_SIZE),
        page=page,
        sort_desc=sort_order == "desc",
        created_at_gt=_parse_time("created_at_gt", _query_one(params, "created_at_gt")),
        created_at_gte=_parse_time("created_at_gte", _query_one(params, "created_at_gte")),
        created_at_lt=_parse_time("created_at_lt", _query_one(params, "created_at_lt")),
        created_at_lte=_parse_time("created_at_lte", _query_one(params, "created_at_lte")),
        id_gt=_query_one(params, "id_gt") or None,
        id_gte=_query_one(params, "id_gte") or None,
        id_lt=_query_one(params, "id_lt") or None,
        id_lte=_query_one(params, "id_lte") or None,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


# --------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------


def create_app(config: SimulatorConfig | None = None, **overrides: Any) -> Litestar:
    """Build a simulator app. ``overrides`` are :class:`SimulatorConfig` fields."""
    if config is None:
        config = SimulatorConfig(**overrides)
    elif overrides:
        raise TypeError("give a config or keyword overrides, not both")
    sim = Simulator(config)

    # ---- OAuth2 ------------------------------------------------------------

    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        form = parse_qs((await request.body()).decode(errors="replace"))
        grant = _query_one(form, "grant_type")
        if grant != "client_credentials":
            return Response(
                content=encode(
                    {"error": "unsupported_grant_type", "error_description": f"grant {grant!r}"}
                ),
                status_code=400,
                media_type=JSON,
            )
        creds = _basic_credentials(request.headers.get("authorization"))
        if creds is None:
            creds = (_query_one(form, "client_id") or "", _query_one(form, "client_secret") or "")
        issued = sim.tokens.issue(*creds)
        if issued is None:
            log.info("oauth.refused", client_id=creds[0])
            return Response(
                content=encode(
                    {"error": "invalid_client", "error_description": "client authentication failed"}
                ),
                status_code=401,
                media_type=JSON,
                headers={"WWW-Authenticate": 'Basic realm="topi"'},
            )
        return _json(
            {
                "access_token": issued,
                "expires_in": sim.tokens.ttl_seconds,
                "token_type": "bearer",
                "scope": _query_one(form, "scope")
                or "seller-order:read seller-order:edit seller-shipment:edit",
            }
        )

    oauth_token = post("/oauth/token", status_code=200, name="oauth_token")(token)
    oauth2_token = post("/oauth2/token", status_code=200, name="oauth2_token")(token)

    # ---- seller API ----------------------------------------------------------

    @get("/v1/orders/paginated")
    async def list_orders(request: Request[Any, Any, Any]) -> Response[bytes]:
        query = _list_query(request.scope.get("query_string", b"").decode("latin-1"))
        orders, meta = sim.book.list(query)
        return _json({"orders": orders, "pagination": meta})

    @get("/v1/orders/{order_id:str}")
    async def get_order(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _json(sim.book.get(_path_id(request)).full())

    @patch("/v1/orders/{order_id:str}", status_code=200)
    async def set_metadata(request: Request[Any, Any, Any]) -> Response[bytes]:
        body: SetMetadataRequest = _decode_body(await request.body(), SetMetadataRequest)
        return _json(sim.book.set_metadata(_path_id(request), body.metadata).result())

    @post("/v1/orders/{order_id:str}/acknowledge", status_code=200)
    async def acknowledge(request: Request[Any, Any, Any]) -> Response[bytes]:
        transition = sim.book.acknowledge(_path_id(request))
        sim.emit(transition)
        return _json(transition.order.result())

    @post("/v1/orders/{order_id:str}/accept", status_code=200)
    async def accept(request: Request[Any, Any, Any]) -> Response[bytes]:
        transition = sim.book.accept(_path_id(request))
        sim.emit(transition)
        return _json(transition.order.result())

    @post("/v1/orders/{order_id:str}/reject", status_code=200)
    async def reject(request: Request[Any, Any, Any]) -> Response[bytes]:
        transition = sim.book.reject(_path_id(request))
        sim.emit(transition)
        return _json(transition.order.result())

    @post("/v1/shipment", status_code=200)
    async def create_shipment(request: Request[Any, Any, Any]) -> Response[bytes]:
        body: ShipmentRequest = _decode_body(await request.body(), ShipmentRequest)
        _check_id(body.order_id)
        transition = sim.book.ship(body)
        sim.emit(transition)
        return _json(
            Shipment(
                serial_numbers=body.serial_numbers,
                tracking_url=body.tracking_url,
                metadata=body.metadata,
            )
        )

    # ---- control API -------------------------------------------------------------

    @post("/_sim/orders", status_code=201)
    async def sim_create_order(request: Request[Any, Any, Any]) -> Response[bytes]:
        spec: OrderSpec = _decode_body(await request.body(), OrderSpec)
        transition = sim.book.create(spec)
        sim.emit(transition)
        return _json(transition.order.full(), 201)

    @post("/_sim/orders/{order_id:str}/cancel", status_code=200)
    async def sim_cancel_order(request: Request[Any, Any, Any]) -> Response[bytes]:
        transition = sim.book.cancel(_path_id(request))
        sim.emit(transition)
        return _json(transition.order.full())

    @post("/_sim/faults", status_code=201)
    async def sim_add_fault(request: Request[Any, Any, Any]) -> Response[bytes]:
        spec: FaultSpec = _decode_body(await request.body(), FaultSpec)
        if spec.count < 1:
            raise bad_request("count must be at least 1")
        if spec.status is None and spec.delay <= 0:
            raise bad_request("a fault needs a status, a delay, or both")
        return _json(sim.add_fault(spec), 201)

    @get("/_sim/faults")
    async def sim_list_faults() -> Response[bytes]:
        return _json(sim.faults)

    @delete("/_sim/faults", status_code=204)
    async def sim_clear_faults() -> None:
        sim.faults.clear()

    @post("/_sim/webhooks/drop", status_code=200)
    async def sim_drop_webhooks(request: Request[Any, Any, Any]) -> Response[bytes]:
        spec: DropSpec = _decode_body(await request.body() or b"{}", DropSpec)
        sim.webhooks.drop_next += spec.count
        return _json({"drop_next": sim.webhooks.drop_next})

    @get("/_sim/webhooks")
    async def sim_list_webhooks(request: Request[Any, Any, Any]) -> Response[bytes]:
        order_id = request.query_params.get("order_id")
        records: list[WebhookRecord] = [
            r for r in sim.webhooks.records if order_id is None or r.order_id == order_id
        ]
        return _json(records)

    @get("/_sim/calls")
    async def sim_list_calls(request: Request[Any, Any, Any]) -> Response[bytes]:
        method = request.query_params.get("method")
        path = request.query_params.get("path")
        calls = [
            c
            for c in sim.calls
            if (method is None or c.method == method.upper())
            and (path is None or c.path == path or fnmatch.fnmatchcase(c.path, path))
        ]
        return _json(calls)

    @post("/_sim/tokens/revoke", status_code=200)
    async def sim_revoke_tokens() -> Response[bytes]:
        return _json({"revoked": sim.tokens.revoke_all()})

    @post("/_sim/reset", status_code=200)
    async def sim_reset(request: Request[Any, Any, Any]) -> Response[bytes]:
        spec: ResetSpec = _decode_body(await request.body() or b"{}", ResetSpec)
        sim.reset(fixtures=spec.fixtures)
        log.info("simulator.reset", fixtures=spec.fixtures)
        return _json({"orders": len(sim.book.orders)})

    app = Litestar(
        route_handlers=[
            oauth_token,
            oauth2_token,
            list_orders,
            get_order,
            set_metadata,
            acknowledge,
            accept,
            reject,
            create_shipment,
            sim_create_order,
            sim_cancel_order,
            sim_add_fault,
            sim_list_faults,
            sim_clear_faults,
            sim_drop_webhooks,
            sim_list_webhooks,
            sim_list_calls,
            sim_revoke_tokens,
            sim_reset,
        ],
        middleware=[SimulatorMiddleware(sim)],
        exception_handlers={
            SimError: _sim_error_handler,
            HTTPException: _http_error_handler,
            Exception: _internal_error_handler,
        },
        on_startup=[sim.webhooks.start],
        on_shutdown=[sim.webhooks.stop],
        openapi_config=None,
    )
    app.state.simulator = sim
    return app
