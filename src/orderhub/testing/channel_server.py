"""The test channel server: the marketplace end of :mod:`orderhub.testing.channel`.

A tiny Litestar app that records each call the hub makes, once per ``Idempotency-Key``,
and keeps the records in a JSON state file so they survive a restart. Tests steer it
through control endpoints:

``POST /calls``
    a hub call (``{command_id, kind, order, payload}`` with ``Idempotency-Key``). The first
    call with a key is recorded and answered ``200 {"ok": true, "call": n, "command_id"}``;
    a replay with the same body gets the same answer (the record counts ``replays``), with
    another body ``422``. A missing key or field is ``400``; with ``--token``, a wrong
    bearer token is ``401``.
``GET /calls``
    ``{"calls": [...]}``, first call first.
``POST /_faults``
    ``{"kind": "status", "status": 500|429|400|..., "count": 1, "retry_after": 2,
    "message": "..."}`` answers the next ``count`` calls with that status (not recorded);
    ``{"kind": "hang", "seconds": 30, "count": 1}`` records the next call, then holds the
    answer for that long (kill a worker mid-dispatch; its replay later finds the record).
    ``GET /_faults`` lists what is left.
``POST /_reset``
    forget calls and faults.
``POST /_send_order``
    ``{"order": {...}, "webhook_url": "...", "token": "...", "webhook_id": "..."}`` posts the
    order document to the hub's webhook (``Authorization: Bearer``, ``webhook-id``) and
    answers ``{"status", "body"}`` with the hub's response. With ``"spresso_secret"`` it
    sends as Spresso does: the compact JSON body signed in ``X-Spresso-Hmac-SHA256``
    (base64 HMAC-SHA256 of the bytes sent, keyed with that client secret), and no
    ``webhook-id`` (Spresso has no message id); ``"spresso_secret": ""`` sends it unsigned.
``GET /orders/{id}``
    the order document last sent (``/_send_order``) or set (``PUT /_orders/{id}``) for that
    id: what the hub reads when it resyncs an order. ``404`` for an unknown id.
``PUT /_orders/{id}``
    set that document without sending a webhook (a webhook the hub never got).
``GET /healthz``
    ``{"ok": true}``.

Run it with ``python -m orderhub.testing.channel_server --port 8766 --state-file
var/testchannel.json [--host 127.0.0.1] [--token secret]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from litestar import Litestar, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath

from orderhub.testing.channel import spresso

JSON: Final = "application/json"
STATE_VERSION: Final = 1


@dataclass(kw_only=True, slots=True)
class CallRecord:
    key: str
    command_id: str
    kind: str
    order: str
    payload: dict[str, Any]
    fingerprint: str
    received_at: str
    answer: dict[str, Any]
    replays: int = 0


@dataclass(kw_only=True, slots=True)
class Fault:
    kind: str  # status | hang
    count: int = 1
    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    seconds: float = 0.0


@dataclass(kw_only=True)
class ChannelServerState:
    """Calls by key (persisted when ``state_file`` is set) and the faults still to play."""

    state_file: Path | None = None
    token: str | None = None
    webhook_transport: httpx.AsyncBaseTransport | None = None
    calls: dict[str, CallRecord] = field(default_factory=dict)
    orders: dict[str, Any] = field(default_factory=dict)  # the channel's view, by order id
    faults: list[Fault] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text(encoding="utf-8") or "{}")
        self.calls = {c["key"]: CallRecord(**c) for c in data.get("calls", [])}
        self.orders = dict(data.get("orders", {}))

    def save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        body = {
            "version": STATE_VERSION,
            "calls": [asdict(c) for c in self.calls.values()],
            "orders": self.orders,
        }
        tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
        os.replace(tmp, self.state_file)  # atomic: a crash leaves the old file or the new

    def next_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self.faults.pop(0)
        return fault

    def record(self, key: str, call: dict[str, Any], fingerprint: str) -> CallRecord:
        record = CallRecord(
            key=key,
            command_id=call["command_id"],
            kind=call["kind"],
            order=call["order"],
            payload=call["payload"],
            fingerprint=fingerprint,
            received_at=datetime.now(UTC).isoformat(),
            answer={"ok": True, "call": len(self.calls) + 1, "command_id": call["command_id"]},
        )
        self.calls[key] = record
        self.save()
        return record


def _state(request: Request[Any, Any, Any]) -> ChannelServerState:
    server: ChannelServerState = request.app.state.channel
    return server


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content={"message": message}, status_code=status, media_type=JSON, headers=headers
    )


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, bool]:
    return {"ok": True}


@post("/calls", status_code=200)
async def receive_call(request: Request[Any, Any, Any]) -> Response[Any]:
    server = _state(request)
    if server.token and request.headers.get("authorization") != f"Bearer {server.token}":
        return _problem(401, "invalid or missing bearer token")
    key = request.headers.get("idempotency-key")
    if not key:
        return _problem(400, "Idempotency-Key header is required")
    raw = await request.body()
    call = await _json_body(request)
    missing = [
        name
        for name in ("command_id", "kind", "order", "payload")
        if not isinstance(call, dict) or name not in call
    ]
    if missing:
        return _problem(400, f"call body is missing {', '.join(missing)}")
    fingerprint = hashlib.sha256(raw).hexdigest()
    async with server.lock:
        fault = server.next_fault()
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return _problem(fault.status, fault.message or f"injected {fault.status}", headers)
        record = server.calls.get(key)
        if record is None:
            record = server.record(key, call, fingerprint)
        elif record.fingerprint != fingerprint:
            return _problem(422, f"Idempotency-Key {key} was used with another body")
        else:
            record.replays += 1
            server.save()
    if fault is not None and fault.kind == "hang":
        await asyncio.sleep(fault.seconds)  # recorded already: only the answer is late
    return Response(content=record.answer, status_code=200, media_type=JSON)


@get("/calls")
async def list_calls(request: Request[Any, Any, Any]) -> dict[str, Any]:
    server = _state(request)
    async with server.lock:
        return {
            "calls": [
                {k: v for k, v in asdict(c).items() if k != "fingerprint"}
                for c in server.calls.values()
            ]
        }


@post("/_faults", status_code=200)
async def add_fault(request: Request[Any, Any, Any]) -> Response[Any]:
    server = _state(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _problem(400, "a fault is a JSON object")
    try:
        fault = _fault(body)
    except (TypeError, ValueError) as exc:
        return _problem(400, str(exc))
    async with server.lock:
        server.faults.append(fault)
        pending = [asdict(f) for f in server.faults]
    return Response(content={"faults": pending}, status_code=200, media_type=JSON)


def _fault(body: dict[str, Any]) -> Fault:
    kind = body.get("kind")
    count = int(body.get("count", 1))
    if count < 1:
        raise ValueError("count must be at least 1")
    if kind == "status":
        status = int(body.get("status", 500))
        if not 400 <= status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        retry_after = body.get("retry_after")
        return Fault(
            kind="status",
            count=count,
            status=status,
            retry_after=float(retry_after) if retry_after is not None else None,
            message=str(body["message"]) if body.get("message") is not None else None,
        )
    if kind == "hang":
        seconds = float(body.get("seconds", 0))
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        return Fault(kind="hang", count=count, seconds=seconds)
    raise ValueError("kind must be 'status' or 'hang'")


@get("/_faults")
async def list_faults(request: Request[Any, Any, Any]) -> dict[str, Any]:
    server = _state(request)
    async with server.lock:
        return {"faults": [asdict(f) for f in server.faults]}


@post("/_reset", status_code=200)
async def reset(request: Request[Any, Any, Any]) -> dict[str, bool]:
    server = _state(request)
    async with server.lock:
        server.calls.clear()
        server.orders.clear()
        server.faults.clear()
        server.save()
    return {"ok": True}


@post("/_send_order", status_code=200)
async def send_order(request: Request[Any, Any, Any]) -> Response[Any]:
    server = _state(request)
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("webhook_url"), str):
        return _problem(400, "give the order document as 'order' and the hub's 'webhook_url'")
    if not isinstance(body.get("order"), dict | list):
        return _problem(400, "'order' must be an order document (or a list of them)")
    spresso_secret = body.get("spresso_secret")
    headers = {"Content-Type": JSON}
    if spresso_secret is None:
        headers["webhook-id"] = str(body.get("webhook_id") or uuid.uuid4())
    if body.get("token"):
        headers["Authorization"] = f"Bearer {body['token']}"
    for doc in body["order"] if isinstance(body["order"], list) else [body["order"]]:
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            server.orders[doc["id"]] = doc
    server.save()
    if spresso_secret is None:
        content = json.dumps(body["order"]).encode()
    else:
        content = json.dumps(body["order"], separators=(",", ":")).encode()
        if spresso_secret:
            headers.update(spresso.sign(str(spresso_secret), content))
    try:
        async with httpx.AsyncClient(transport=server.webhook_transport, timeout=10.0) as client:
            answer = await client.post(body["webhook_url"], content=content, headers=headers)
    except httpx.HTTPError as exc:
        return _problem(502, f"the hub's webhook could not be reached: {exc!r}")
    return Response(
        content={
            "status": answer.status_code,
            "body": answer.text,
            "webhook_id": headers.get("webhook-id"),
        },
        status_code=200,
        media_type=JSON,
    )


@get("/orders/{order_id:str}")
async def get_order(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
    doc = _state(request).orders.get(order_id)
    if doc is None:
        return _problem(404, f"no order {order_id}")
    return Response(content=doc, status_code=200, media_type=JSON)


@put("/_orders/{order_id:str}", status_code=200)
async def set_order(request: Request[Any, Any, Any], order_id: FromPath[str]) -> Response[Any]:
    server = _state(request)
    doc = await _json_body(request)
    if not isinstance(doc, dict) or doc.get("id") != order_id:
        return _problem(400, "give the order document, with this id")
    server.orders[order_id] = doc
    server.save()
    return Response(content={"ok": True}, status_code=200, media_type=JSON)


def create_app(
    *,
    state_file: Path | str | None = None,
    token: str | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    """The server app. ``webhook_transport`` replaces the network for ``/_send_order``."""
    server = ChannelServerState(
        state_file=Path(state_file) if state_file is not None else None,
        token=token,
        webhook_transport=webhook_transport,
    )
    server.load()
    return Litestar(
        route_handlers=[
            healthz,
            receive_call,
            list_calls,
            add_fault,
            get_order,
            set_order,
            list_faults,
            reset,
            send_order,
        ],
        state=State({"channel": server}),
        openapi_config=None,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m orderhub.testing.channel_server",
        description="The test channel's marketplace end: records hub calls, injects faults.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--token", default=None, help="require this bearer token on /calls")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(
        create_app(state_file=args.state_file, token=args.token),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
