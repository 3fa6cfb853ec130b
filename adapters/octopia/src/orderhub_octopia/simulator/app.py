"""The simulated Octopia Seller API v2 and its control API (``/_sim``), a litestar app.

Seller API (under the base URL; the token endpoint at Keycloak's path): token
(form-encoded client credentials, 2 h tokens), ``/orders`` (filters, index pages of at
most 100, ``Link`` header to the next page), ``/orders/count``, ``/orders/{id}``,
approval, shipments, full and partial cancellations, ``/carriers``, invoice documents
and imports with an asynchronous report. Every call needs ``Authorization: Bearer`` and
``SellerId``. Control API: create and move orders as the marketplace and the customer
do, inject faults (a status, ``Retry-After``, a delay past the client's timeout; on any
path, the token endpoint included), read the call log, revoke tokens, shift the clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlencode

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from orderhub_octopia import wire
from orderhub_octopia.simulator import seller
from orderhub_octopia.simulator.state import Market, Refused, Rules, parse_time

TOKEN_PATH: Final = "/auth/realms/maas/protocol/openid-connect/token"
PROBLEM: Final = "application/problem+json"


@dataclass
class SimulatorConfig:
    clients: dict[str, str] = field(default_factory=lambda: {"orderhub": "orderhub-secret"})
    seller_id: str = "98979"
    token_ttl: int = 7200
    sales_channels: dict[str, Rules] | None = None
    invoice_checks: int = 1
    approval_key: str = "approval_status"
    cancel_order_key: str = "orderSellerId"


@dataclass
class Fault:
    path: str
    method: str | None = None
    status: int | None = 503
    """None: the call goes through after ``delay`` (an answer that comes too late)."""
    times: int = 1
    body: Any = None
    retry_after: str | None = None
    delay: float = 0.0
    query: str | None = None  # a part of the query string the call must hold


@dataclass
class Simulator:
    config: SimulatorConfig
    market: Market = field(default_factory=Market)
    imports: seller.Imports = field(default_factory=seller.Imports)
    tokens: dict[str, float] = field(default_factory=dict)
    issued: int = 0
    faults: list[Fault] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.market = Market()
        if self.config.sales_channels is not None:
            self.market.sales_channels = dict(self.config.sales_channels)
        self.imports = seller.Imports(checks=self.config.invoice_checks)
        self.tokens.clear()
        self.faults.clear()
        self.calls.clear()
        self.issued = 0

    def fault_for(self, method: str, path: str, query: str = "") -> Fault | None:
        for fault in self.faults:
            if (
                fnmatch.fnmatchcase(path, fault.path)
                and fault.method in (None, method)
                and (fault.query is None or fault.query in query)
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None


class Recorder:
    """ASGI wrapper: logs every Seller API call with its answer, plays injected faults."""

    def __init__(self, app: Any, sim: Simulator) -> None:
        self.app, self.sim = app, sim

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        call = {
            "seq": len(self.sim.calls) + 1,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode(),
            "seller_id": headers.get("sellerid"),
            "body": _redacted(scope["path"], body[:4000].decode(errors="replace")),
            "status_code": None,
            "at": time.time(),
        }
        self.sim.calls.append(call)
        fault = self.sim.fault_for(scope["method"], scope["path"], call["query"])
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            call["status_code"] = fault.status
            call["fault"] = True
            extra = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
            payload = (
                fault.body
                if fault.body is not None
                else {
                    "title": "Injected fault",
                    "status": fault.status,
                    "detail": "simulator fault",
                }
            )
            raw = payload.encode() if isinstance(payload, str) else msgspec.json.encode(payload)
            await send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [(b"content-type", PROBLEM.encode()), *extra],
                }
            )
            await send({"type": "http.response.body", "body": raw})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return cast(dict[str, Any], await receive())
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                call["status_code"] = message["status"]
            await send(message)

        await self.app(scope, replay, capture)


def _redacted(path: str, body: str) -> str:
    if path != TOKEN_PATH:
        return body
    form = {k: v for k, v in parse_qs(body).items() if k != "client_secret"}
    return urlencode(form, doseq=True)


def _problem(exc: Refused) -> Response[Any]:
    return Response(exc.body(), status_code=exc.status, media_type=PROBLEM)


def _unauthorized(detail: str, status: int = 401) -> Refused:
    return Refused(status, "Unauthorized" if status == 401 else "Forbidden", detail)


def create_app(config: SimulatorConfig | None = None) -> Litestar:
    sim = Simulator(config or SimulatorConfig())
    sim.reset()

    def authorize(request: Request[Any, Any, Any]) -> None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        expires = sim.tokens.get(token)
        if expires is None or expires < time.monotonic():
            raise _unauthorized("missing, unknown or expired access token")
        if request.headers.get(wire.SELLER_ID_HEADER) != sim.config.seller_id:
            raise _unauthorized(
                f"SellerId {request.headers.get(wire.SELLER_ID_HEADER)!r} is not linked to "
                "this client",
                403,
            )

    async def seller_call(
        request: Request[Any, Any, Any], run: Any, status: int = 200
    ) -> Response[Any]:
        try:
            authorize(request)
            result = run()
            if asyncio.iscoroutine(result):
                result = await result
        except Refused as exc:
            return _problem(exc)
        if result is None:
            return Response(None, status_code=204)
        if isinstance(result, Response):
            return result
        return Response(result, status_code=status)

    async def json_body(request: Request[Any, Any, Any]) -> Any:
        try:
            return msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            raise Refused(400, "Bad Request", "the body is not JSON") from None

    @post(TOKEN_PATH, status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        form = parse_qs((await request.body()).decode())
        client = (form.get("client_id") or [""])[0]
        secret = (form.get("client_secret") or [""])[0]
        if (form.get("grant_type") or [""])[0] != "client_credentials":
            return Response({"error": "unsupported_grant_type"}, status_code=400)
        if sim.config.clients.get(client) != secret or not secret:
            return Response(
                {"error": "invalid_client", "error_description": "Invalid client credentials"},
                status_code=401,
            )
        value = secrets.token_urlsafe(24)
        sim.tokens[value] = time.monotonic() + sim.config.token_ttl
        sim.issued += 1
        return Response(
            {
                "access_token": value,
                "expires_in": sim.config.token_ttl,
                "token_type": "Bearer",
                "refresh_expires_in": 0,
            }
        )

    def select(query: dict[str, list[str]]) -> list[dict[str, Any]]:
        found = sorted(sim.market.orders.values(), key=lambda o: (o["updatedAt"], o["orderId"]))

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        statuses = set(query.get("status") or [])
        for key, op in (
            ("updatedAtMin", "ge"),
            ("updatedAtMax", "le"),
            ("createdAtMin", "ge"),
            ("createdAtMax", "le"),
        ):
            raw = one(key)
            if raw is None:
                continue
            try:
                bound = parse_time(raw)
            except ValueError:
                raise Refused(
                    400, "Validation Failed", f"{key} is not a date", {key: ["invalid date"]}
                ) from None
            field_ = "updatedAt" if key.startswith("updated") else "createdAt"
            found = [
                o
                for o in found
                if (parse_time(o[field_]) >= bound) == (op == "ge")
                or parse_time(o[field_]) == bound
            ]
        if statuses:
            found = [o for o in found if o["status"] in statuses]
        if (sc := one("salesChannelId")) is not None:
            found = [o for o in found if o["salesChannel"]["id"] == sc]
        return found

    @get("/orders")
    async def list_orders(request: Request[Any, Any, Any]) -> Response[Any]:
        query = parse_qs(request.scope.get("query_string", b"").decode())

        def run() -> Response[Any]:
            try:
                index = int((query.get("pageIndex") or ["1"])[0])
                size = int((query.get("pageSize") or ["50"])[0])
            except ValueError:
                raise Refused(
                    400, "Validation Failed", "pageIndex and pageSize are numbers"
                ) from None
            if index < 1 or not 1 <= size <= wire.MAX_PAGE_SIZE:
                raise Refused(
                    400,
                    "Validation Failed",
                    "pageIndex >= 1, pageSize 1..100",
                    {"pageSize": ["must be between 1 and 100"]},
                )
            found = select(query)
            page = found[(index - 1) * size : index * size]
            headers = {}
            if index * size < len(found):
                nxt = {k: v for k, v in query.items() if k != "pageIndex"} | {
                    "pageIndex": [str(index + 1)]
                }
                headers["Link"] = f'</orders?{urlencode(nxt, doseq=True)}>; rel="next"'
            return Response({"itemsPerPage": size, "items": page}, headers=headers)

        return await seller_call(request, run)

    @get("/orders/count")
    async def count_orders(request: Request[Any, Any, Any]) -> Response[Any]:
        query = parse_qs(request.scope.get("query_string", b"").decode())
        return await seller_call(request, lambda: Response(len(select(query))))

    @get("/orders/{order_id:str}")
    async def get_order(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
        return await seller_call(request, lambda: sim.market.order(order_id))

    @post("/orders/{order_id:str}/approval-status")
    async def approval(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
        async def run() -> None:
            seller.approve(sim.market, order_id, await json_body(request), sim.config.approval_key)

        return await seller_call(request, run)

    @post("/orders/{order_id:str}/shipments")
    async def shipments(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
        async def run() -> dict[str, Any]:
            seller.ship(sim.market, order_id, await json_body(request))
            return {"orderId": order_id}

        return await seller_call(request, run, 201)

    @get("/carriers")
    async def carriers(request: Request[Any, Any, Any]) -> Response[Any]:
        return await seller_call(request, lambda: sim.market.carriers)

    async def _cancel(request: Request[Any, Any, Any], partial: bool) -> Response[Any]:
        async def run() -> dict[str, Any]:
            request_id = seller.cancel(
                sim.market,
                await json_body(request),
                partial=partial,
                order_key=sim.config.cancel_order_key,
            )
            return {"cancellationRequestId": request_id}

        return await seller_call(request, run, 201)

    @post("/order-cancellation-requests")
    async def cancel_order(request: Request[Any, Any, Any]) -> Response[Any]:
        return await _cancel(request, False)

    @post("/order-partial-cancellation-requests")
    async def cancel_lines(request: Request[Any, Any, Any]) -> Response[Any]:
        return await _cancel(request, True)

    async def _files(request: Request[Any, Any, Any], name: str | None) -> list[tuple[str, bytes]]:
        form = await request.form()
        files = []
        for value in form.getall("file") if "file" in form else []:
            if hasattr(value, "read"):
                files.append((name or value.filename or "", await value.read()))
        if not files:
            raise Refused(
                400, "Validation Failed", "no file part named 'file'", {"file": ["required"]}
            )
        return files

    @post("/orders/{order_id:str}/invoice-documents")
    async def invoice_document(
        request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> Response[Any]:
        async def run() -> dict[str, Any]:
            files = await _files(request, f"{order_id}.pdf")
            return {"importId": sim.imports.take(sim.market, files[:1])}

        return await seller_call(request, run, 201)

    @post("/order-invoice-imports")
    async def invoice_imports(request: Request[Any, Any, Any]) -> Response[Any]:
        async def run() -> dict[str, Any]:
            return {"importId": sim.imports.take(sim.market, await _files(request, None))}

        return await seller_call(request, run, 201)

    @get("/order-invoice-imports/{import_id:str}")
    async def invoice_report(
        request: Request[Any, Any, Any], import_id: FromPath[str]
    ) -> Response[Any]:
        return await seller_call(request, lambda: sim.imports.report(import_id))

    from orderhub_octopia.simulator.control import control_routes

    app = Litestar(
        route_handlers=[
            token,
            list_orders,
            count_orders,
            get_order,
            approval,
            shipments,
            carriers,
            cancel_order,
            cancel_lines,
            invoice_document,
            invoice_imports,
            invoice_report,
            *control_routes(sim),
        ],
        debug=False,
    )
    app.state.simulator = sim
    wrapped = Recorder(app, sim)
    wrapped.simulator = sim  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


__all__ = ["Fault", "Simulator", "SimulatorConfig", "create_app", "dt"]
