"""The control API (``/_sim``): what the marketplace, the customer and a test do, and a
small synchronous client for it (tests, demos)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery

from orderhub_octopia.simulator.state import Refused

if TYPE_CHECKING:
    from orderhub_octopia.simulator.app import Simulator


def control_routes(sim: Simulator) -> list[Any]:
    from orderhub_octopia.simulator.app import Fault

    def answer(run: Any, status: int = 200) -> Response[Any]:
        try:
            return Response(run(), status_code=status)
        except Refused as exc:
            return Response(exc.body(), status_code=exc.status)

    async def body_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
        raw = await request.body()
        data = msgspec.json.decode(raw) if raw else {}
        return data if isinstance(data, dict) else {}

    @post("/_sim/reset", status_code=200)
    async def reset() -> dict[str, bool]:
        sim.reset()
        return {"reset": True}

    @post("/_sim/orders", status_code=201)
    async def create(request: Request[Any, Any, Any]) -> Response[Any]:
        spec = await body_of(request)
        return answer(lambda: sim.market.create(spec), 201)

    @get("/_sim/orders/{order_id:str}")
    async def show(order_id: FromPath[str]) -> Response[Any]:
        return answer(lambda: sim.market.order(order_id))

    @post("/_sim/orders/{order_id:str}/{move:str}", status_code=200)
    async def move(
        request: Request[Any, Any, Any], order_id: FromPath[str], move: FromPath[str]
    ) -> Response[Any]:
        spec = await body_of(request)
        market = sim.market
        moves: dict[str, Any] = {
            "release": lambda: market.release(order_id),
            "fail-controls": lambda: market.fail_controls(order_id),
            "pay": lambda: market.pay(order_id),
            "deliver": lambda: market.deliver(order_id),
            "fulfil": lambda: market.fulfil(order_id),
            "cancel": lambda: market.cancel_by_channel(order_id),
            "touch": lambda: market.touched(order_id),
            "cancel-request": lambda: market.request_cancellation(order_id, spec.get("lines")),
        }
        if move not in moves:
            return Response({"detail": f"unknown move {move}"}, status_code=404)
        return answer(moves[move])

    @post("/_sim/orders/{order_id:str}/requests/{request_id:str}/{decision:str}", status_code=200)
    async def decide(
        order_id: FromPath[str], request_id: FromPath[str], decision: FromPath[str]
    ) -> Response[Any]:
        accept = decision == "accept"
        return answer(lambda: sim.market.decide_request(order_id, request_id, accept=accept))

    @post("/_sim/faults", status_code=201)
    async def add_fault(request: Request[Any, Any, Any]) -> dict[str, Any]:
        spec = await body_of(request)
        fault = Fault(**spec)
        sim.faults.append(fault)
        return {"path": fault.path, "times": fault.times}

    @delete("/_sim/faults", status_code=204)
    async def clear_faults() -> None:
        sim.faults.clear()

    @get("/_sim/calls")
    async def calls(
        method: FromQuery[str | None] = None, path: FromQuery[str | None] = None
    ) -> list[dict[str, Any]]:
        return [
            c
            for c in sim.calls
            if (method is None or c["method"] == method) and (path is None or path in c["path"])
        ]

    @get("/_sim/tokens")
    async def tokens() -> dict[str, int]:
        return {"issued": sim.issued, "live": len(sim.tokens)}

    @post("/_sim/tokens/revoke", status_code=200)
    async def revoke() -> dict[str, int]:
        count = len(sim.tokens)
        sim.tokens.clear()
        return {"revoked": count}

    @post("/_sim/carriers", status_code=201)
    async def add_carrier(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        spec = await body_of(request)
        sim.market.carriers.append({"code": str(spec["code"]), "label": str(spec["label"])})
        return sim.market.carriers

    @post("/_sim/clock", status_code=200)
    async def clock(request: Request[Any, Any, Any]) -> dict[str, float]:
        spec = await body_of(request)
        sim.market.offset = dt.timedelta(seconds=float(spec.get("offset_seconds", 0)))
        return {"offset_seconds": sim.market.offset.total_seconds()}

    return [
        reset,
        create,
        show,
        move,
        decide,
        add_fault,
        clear_faults,
        calls,
        tokens,
        revoke,
        add_carrier,
        clock,
    ]


class SimulatorControl:
    """``SimulatorControl(url).create_order(sales_channel="CDISFR", lines=[...])``."""

    def __init__(self, url: str, *, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(timeout=10)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, json: Any = None, expect: int = 200) -> Any:
        resp = self._http.post(f"{self.url}{path}", json=json)
        if resp.status_code != expect:
            raise RuntimeError(f"POST {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json() if resp.content else None

    def reset(self) -> None:
        self._post("/_sim/reset")

    def create_order(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post("/_sim/orders", spec, expect=201)
        return result

    def order(self, order_id: str) -> dict[str, Any]:
        resp = self._http.get(f"{self.url}/_sim/orders/{order_id}")
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def move(self, order_id: str, move: str, **spec: Any) -> Any:
        """release, fail-controls, pay, deliver, fulfil, cancel, touch, cancel-request."""
        return self._post(f"/_sim/orders/{order_id}/{move}", spec or None)

    def decide_request(self, order_id: str, request_id: str, *, accept: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._post(
            f"/_sim/orders/{order_id}/requests/{request_id}/{'accept' if accept else 'reject'}"
        )
        return result

    def add_fault(self, path: str, **spec: Any) -> None:
        self._post("/_sim/faults", {"path": path, **spec}, expect=201)

    def clear_faults(self) -> None:
        self._http.delete(f"{self.url}/_sim/faults").raise_for_status()

    def calls(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("method", method), ("path", path)) if v}
        resp = self._http.get(f"{self.url}/_sim/calls", params=params)
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()
        return result

    def tokens_issued(self) -> int:
        resp = self._http.get(f"{self.url}/_sim/tokens")
        resp.raise_for_status()
        return int(resp.json()["issued"])

    def revoke_tokens(self) -> int:
        return int(self._post("/_sim/tokens/revoke")["revoked"])

    def add_carrier(self, code: str, label: str) -> None:
        self._post("/_sim/carriers", {"code": code, "label": label}, expect=201)

    def shift_clock(self, seconds: float) -> None:
        self._post("/_sim/clock", {"offset_seconds": seconds})
