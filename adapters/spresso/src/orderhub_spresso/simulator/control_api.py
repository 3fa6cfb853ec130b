"""The simulator's ``/_sim`` control API: the customer, Foxtrot (Spresso's admin console),
the webhook queue (drop, hold, release in any order, send again), faults, the call log."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any, Final

from litestar import Response, delete, get, post
from litestar.params import FromPath

from orderhub_spresso import wire
from orderhub_spresso.simulator.app import Req, _sim
from orderhub_spresso.simulator.state import SimError


async def _json(request: Req) -> dict[str, Any]:
    raw = await request.body()
    doc = json.loads(raw) if raw else {}
    return doc if isinstance(doc, dict) else {}


def _answer(work: Callable[[], Any], status: int = 200) -> Response[Any]:
    try:
        return Response(work(), status_code=status)
    except SimError as exc:
        return Response({"message": exc.message}, status_code=exc.status)


@post("/_sim/reset", status_code=200)
async def reset(request: Req) -> dict[str, bool]:
    _sim(request).reset()
    return {"reset": True}


@post("/_sim/config", status_code=200)
async def configure(request: Req) -> dict[str, Any]:
    sim, doc = _sim(request), await _json(request)
    if "grace_seconds" in doc:
        sim.book.grace_seconds = float(doc["grace_seconds"])
    if "signing" in doc:
        sim.webhooks.signing = doc["signing"]
    if "webhook_url" in doc:
        sim.config.webhook_url = doc["webhook_url"]
    return {"grace_seconds": sim.book.grace_seconds, "signing": sim.webhooks.signing}


@post("/_sim/orders", status_code=201)
async def place_order(request: Req) -> Response[Any]:
    sim, doc = _sim(request), await _json(request)
    return _answer(lambda: sim.book.place(doc).document(), 201)


@get("/_sim/orders")
async def list_orders(request: Req) -> list[dict[str, Any]]:
    """Every order, as the API shows it (a test's view of all Spresso holds)."""
    return [order.document() for order in _sim(request).book.orders.values()]


@get("/_sim/orders/{order_id:str}")
async def show_order(request: Req, order_id: FromPath[str]) -> Response[Any]:
    sim = _sim(request)

    def show() -> dict[str, Any]:
        order = sim.book.get(order_id)
        shipments = {f.id: list(f.shipments.values()) for f in order.fulfillments}
        extra = {"settlements": order.settlements, "charged": order.charged()}
        return {**order.document(), "_shipments": shipments, "_settlement": extra}

    return _answer(show)


@post("/_sim/orders/{order_id:str}/pay", status_code=200)
async def pay(request: Req, order_id: FromPath[str]) -> Response[Any]:
    sim = _sim(request)
    return _answer(lambda: sim.book.pay(order_id).document())


@post("/_sim/orders/{order_id:str}/cancel", status_code=200)
async def console_cancel(request: Req, order_id: FromPath[str]) -> Response[Any]:
    """Foxtrot: the only way to cancel; the fulfiller hears of it once it had the order."""
    sim = _sim(request)

    def cancel() -> dict[str, Any]:
        order, announce = sim.book.cancel(order_id)
        if announce:
            sim.announce(wire.ORDER_CANCELLED, order.id)
        return {**order.document(), "_announced": announce}

    return _answer(cancel)


@post("/_sim/tick", status_code=200)
async def tick(request: Req) -> dict[str, Any]:
    sim, doc = _sim(request), await _json(request)
    return {"fulfillable": sim.tick(force=bool(doc.get("force")))}


@get("/_sim/webhooks")
async def webhooks(request: Req) -> list[Any]:
    order_id = request.query_params.get("order_id")
    return [r for r in _sim(request).webhooks.records if not order_id or r.order_id == order_id]


@post("/_sim/webhooks/drop", status_code=200)
async def drop(request: Req) -> dict[str, int]:
    sim, doc = _sim(request), await _json(request)
    sim.webhooks.drop_next = int(doc.get("count", 1))
    return {"drop_next": sim.webhooks.drop_next}


@post("/_sim/webhooks/hold", status_code=200)
async def hold(request: Req) -> dict[str, bool]:
    _sim(request).webhooks.holding = True
    return {"holding": True}


@post("/_sim/webhooks/release", status_code=200)
async def release(request: Req) -> dict[str, list[int]]:
    doc = await _json(request)
    return {"released": _sim(request).webhooks.release(reverse=bool(doc.get("reverse")))}


@post("/_sim/webhooks/{record_id:int}/redeliver", status_code=200)
async def redeliver(request: Req, record_id: FromPath[int]) -> Any:
    return _sim(request).webhooks.redeliver(record_id)


@post("/_sim/faults", status_code=201)
async def add_fault(request: Req) -> dict[str, Any]:
    sim, doc = _sim(request), await _json(request)
    fault = {"id": len(sim.faults) + 1, "remaining": int(doc.get("count", 1)), **doc}
    sim.faults.append(fault)
    return fault


@delete("/_sim/faults", status_code=204)
async def clear_faults(request: Req) -> None:
    sim = _sim(request)
    sim.faults.clear()
    sim.release_holds()


@post("/_sim/faults/release", status_code=200)
async def release_holds(request: Req) -> dict[str, int]:
    """Calls held by a ``hold`` fault go on now."""
    return {"released": _sim(request).release_holds()}


@get("/_sim/faults")
async def list_faults(request: Req) -> list[dict[str, Any]]:
    return _sim(request).faults


@get("/_sim/calls")
async def calls(request: Req) -> list[dict[str, Any]]:
    method, path = request.query_params.get("method"), request.query_params.get("path")
    return [
        c
        for c in _sim(request).calls
        if (not method or c["method"] == method.upper())
        and (not path or c["path"] == path or fnmatch.fnmatchcase(c["path"], path))
    ]


@post("/_sim/tokens/revoke", status_code=200)
async def revoke(request: Req) -> dict[str, int]:
    sim = _sim(request)
    count = len(sim.tokens)
    sim.tokens.clear()
    return {"revoked": count}


CONTROL_ROUTES: Final = [
    reset, configure, place_order, list_orders, show_order, pay, console_cancel, tick,
    webhooks, drop, hold, release, redeliver, add_fault, clear_faults, release_holds,
    list_faults, calls, revoke,
]  # fmt: skip
