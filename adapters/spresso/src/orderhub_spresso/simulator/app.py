"""The Spresso simulator as a Litestar app: the fulfilment API, the token endpoint, webhook
registration, and a ``/_sim`` control API (customer, Foxtrot console, faults, call log)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, get, post, put
from litestar.params import FromPath

from orderhub_spresso import wire
from orderhub_spresso.simulator.state import OrderBook, SimError, object_id
from orderhub_spresso.simulator.webhooks import Signing, WebhookDispatcher

Handler = Callable[[], Awaitable[Any]]
Req = Request[Any, Any, Any]


@dataclass(kw_only=True)
class SimulatorConfig:
    clients: Mapping[str, str] = field(default_factory=lambda: {"orderhub": "orderhub-secret"})
    #: signs webhooks; default: the first client's secret ([doc] "your Client Secret")
    webhook_secret: str | None = None
    #: where webhooks go besides the registered URLs (a manual registration)
    webhook_url: str | None = None
    static_tokens: frozenset[str] = frozenset()
    audience: str = wire.DEFAULT_AUDIENCE
    token_ttl: int = 3600
    grace_seconds: float = 600.0
    tick_seconds: float = 0.05
    webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 3.0, 10.0)
    signing: Signing = "raw"
    carriers: frozenset[str] = wire.CARRIERS


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.book = OrderBook(
            clock=lambda: dt.datetime.now(dt.UTC), grace_seconds=config.grace_seconds
        )
        secret = config.webhook_secret or next(iter(config.clients.values()), "")
        self.webhooks = WebhookDispatcher(
            secret=secret, retry_delays=config.webhook_retry_delays, signing=config.signing
        )
        self.tokens: dict[str, float] = {}
        self.registrations: dict[str, dict[str, str]] = {}
        self.faults: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.replies: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.lock = asyncio.Lock()
        #: calls held by a ``hold`` fault until :meth:`release_holds` (or their limit)
        self.released = asyncio.Event()

    def reset(self) -> None:
        self.book.reset()
        self.webhooks.reset()
        self.tokens.clear()
        self.registrations.clear()
        self.faults.clear()
        self.calls.clear()
        self.replies.clear()
        self.release_holds()

    def release_holds(self) -> int:
        """Let every held call go on (each then does what it came for); how many waited."""
        held = sum(1 for call in self.calls if call.get("held"))
        self.released.set()
        self.released = asyncio.Event()
        return held

    async def _hold(self, call: dict[str, Any], fault: Mapping[str, Any]) -> None:
        """A ``hold`` fault: the call waits, logged as held, until released or until its
        ``hold_seconds`` (default 120) are over; the caller may be gone by then (a worker
        killed mid-call), and the call is carried out all the same."""
        call["held"] = True
        released = self.released
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), float(fault.get("hold_seconds") or 120))
        call["held"] = False

    # --- webhooks ---------------------------------------------------------------------

    def urls(self, event: FromPath[str]) -> list[str]:
        found = [r["url"] for r in self.registrations.values() if r["event"] == event]
        if self.config.webhook_url and self.config.webhook_url not in found:
            found.append(self.config.webhook_url)
        return found

    def announce(self, event: str, order_id: FromPath[str]) -> None:
        order = self.book.get(order_id)
        self.webhooks.enqueue(event, order.document(), self.urls(event))

    def tick(self, *, force: bool = False) -> list[str]:
        due = self.book.due(force=force)
        for order in due:
            self.announce(wire.ORDER_FULFILLABLE, order.id)
        return [order.id for order in due]

    # --- the API's plumbing -----------------------------------------------------------

    def authorised(self, request: Req) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if token in self.config.static_tokens:
            return True
        expiry = self.tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def take_fault(self, method: str, path: FromPath[str]) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault["remaining"] <= 0:
                continue
            if fault.get("method") and fault["method"].upper() != method:
                continue
            if fault["path"] != path and not fnmatch.fnmatchcase(path, fault["path"]):
                continue
            fault["remaining"] -= 1
            return fault
        return None

    async def api(
        self, request: Req, handler: Callable[[Any], Any], *, auth: bool = True
    ) -> Response[Any]:
        """Log the call, play a fault, check the token, replay an idempotent answer."""
        raw = await request.body()
        method, path = request.method.upper(), request.url.path
        key = request.headers.get(wire.IDEMPOTENCY_HEADER.lower())
        call = {
            "seq": len(self.calls) + 1,
            "method": method,
            "path": path,
            "body": raw.decode("utf-8", "replace"),
            "idempotency_key": key,
            "status_code": None,
            "fault": False,
            "at": time.time(),
        }
        self.calls.append(call)
        fault = self.take_fault(method, path)
        if fault is not None:
            if fault.get("hold"):
                await self._hold(call, fault)
            if fault.get("delay"):
                await asyncio.sleep(float(fault["delay"]))
            if fault.get("status"):
                call.update(status_code=fault["status"], fault=True)
                headers = {"Retry-After": fault["retry_after"]} if fault.get("retry_after") else {}
                body = fault.get("body") or {"message": f"simulated {fault['status']}"}
                return Response(body, status_code=int(fault["status"]), headers=headers)
        if auth and not self.authorised(request):
            call["status_code"] = 401
            return Response({"message": "invalid or expired token"}, status_code=401)
        async with self.lock:
            if key and (path, key) in self.replies:
                status, content = self.replies[(path, key)]
                call.update(status_code=status, replayed=True)
                return Response(content, status_code=status, media_type="application/json")
            try:
                doc = json.loads(raw) if raw else None
                answer = handler(doc)
                status = 200
            except SimError as exc:
                answer, status = {"message": exc.message}, exc.status
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                answer, status = {"message": f"bad request: {exc}"}, 400
            content = json.dumps(answer).encode()
            if key and status < 300:
                self.replies[(path, key)] = (status, content)
        call["status_code"] = status
        return Response(content, status_code=status, media_type="application/json")


def _sim(request: Req) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


# --- Spresso's API -----------------------------------------------------------------------


@post(wire.TOKEN_PATH, status_code=200)
async def token(request: Req) -> Response[Any]:
    sim = _sim(request)

    def issue(doc: Any) -> dict[str, Any]:
        doc = doc if isinstance(doc, dict) else {}
        if sim.config.clients.get(str(doc.get("client_id"))) != doc.get("client_secret"):
            raise SimError(401, "invalid client credentials")
        if doc.get("grant_type") != "client_credentials":
            raise SimError(400, "grant_type must be client_credentials")
        if doc.get("audience") != sim.config.audience:
            raise SimError(403, f"audience must be {sim.config.audience}")
        value = secrets.token_urlsafe(24)
        sim.tokens[value] = time.monotonic() + sim.config.token_ttl
        return {"access_token": value, "token_type": "Bearer", "expires_in": sim.config.token_ttl}

    return await sim.api(request, issue, auth=False)


@put("/v1/fulfillments/{fulfillment_id:str}/shipments")
async def put_shipment(request: Req, fulfillment_id: FromPath[str]) -> Response[Any]:
    sim = _sim(request)
    return await sim.api(
        request,
        lambda doc: sim.book.put_shipment(fulfillment_id, doc, sim.config.carriers).document(),
    )


@put("/v1/fulfillments/{fulfillment_id:str}")
async def update_fulfillment(request: Req, fulfillment_id: FromPath[str]) -> Response[Any]:
    sim = _sim(request)
    return await sim.api(
        request, lambda doc: sim.book.update_fulfillment(fulfillment_id, doc).document()
    )


@get(wire.WEBHOOKS_PATH)
async def list_webhooks(request: Req) -> Response[Any]:
    sim = _sim(request)
    return await sim.api(request, lambda _: list(sim.registrations.values()))


@post(wire.WEBHOOKS_PATH, status_code=200)
async def create_webhook(request: Req) -> Response[Any]:
    sim = _sim(request)

    def create(doc: Any) -> dict[str, str]:
        if doc.get("event") not in wire.EVENTS or not str(doc.get("url", "")).startswith("http"):
            raise SimError(400, f"event must be one of {wire.EVENTS} and url an http(s) URL")
        hook = {"id": object_id(), "url": str(doc["url"]), "event": str(doc["event"])}
        sim.registrations[hook["id"]] = hook
        return hook

    return await sim.api(request, create)


@put("/v1/webhooks/{webhook_id:str}")
async def update_webhook(request: Req, webhook_id: FromPath[str]) -> Response[Any]:
    sim = _sim(request)

    def update(doc: Any) -> dict[str, str]:
        hook = sim.registrations.get(webhook_id)
        if hook is None:
            raise SimError(404, f"webhook {webhook_id} not found")
        hook.update(url=str(doc["url"]), event=str(doc.get("event", hook["event"])))
        return hook

    return await sim.api(request, update)


def create_app(config: SimulatorConfig | None = None) -> Litestar:
    simulator = Simulator(config or SimulatorConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await simulator.webhooks.start()

        async def ticker() -> None:
            while True:
                simulator.tick()
                await asyncio.sleep(simulator.config.tick_seconds)

        task = asyncio.create_task(ticker(), name="spresso-simulator-queue")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await simulator.webhooks.stop()

    from orderhub_spresso.simulator.control_api import CONTROL_ROUTES

    app = Litestar(
        route_handlers=[
            *CONTROL_ROUTES,
            token,
            put_shipment,
            update_fulfillment,
            list_webhooks,
            create_webhook,
            update_webhook,
        ],
        lifespan=[lifespan],
        openapi_config=None,
    )
    app.state.simulator = simulator
    return app
