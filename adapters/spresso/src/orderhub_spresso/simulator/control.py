"""A small synchronous client for the simulator's ``/_sim`` control API (tests, demos)."""

from __future__ import annotations

import time
from typing import Any

import httpx

#: A simple order: two variants, two fulfilments, the coffee split over both.
TWO_FULFILMENTS: dict[str, Any] = {
    "variants": [
        {"sku": "COFFEE-1KG", "name": "Espresso beans 1 kg", "upc": "012345678905", "price": 2400},
        {"sku": "MUG-2", "name": "Double-wall mug", "price": 1200},
    ],
    "fulfillments": [
        [{"variant": 0, "quantity": 2}, {"variant": 1, "quantity": 1}],
        [{"variant": 0, "quantity": 1}],
    ],
}


class SimulatorControl:
    def __init__(self, url: str, *, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = http or httpx.Client(timeout=10)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None, expect: int = 200) -> Any:
        resp = self._http.request(method, f"{self.url}{path}", json=json)
        if resp.status_code != expect:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json() if resp.content else None

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/config", settings)
        return result

    def place_order(self, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        """A customer's order, queued until paid and past the grace period."""
        result: dict[str, Any] = self._call("POST", "/_sim/orders", spec or TWO_FULFILMENTS, 201)
        return result

    def order(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/_sim/orders/{order_id}")
        return result

    def pay(self, order_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/_sim/orders/{order_id}/pay")
        return result

    def cancel(self, order_id: str) -> dict[str, Any]:
        """Cancelled in Foxtrot, Spresso's admin console."""
        result: dict[str, Any] = self._call("POST", f"/_sim/orders/{order_id}/cancel")
        return result

    def tick(self, *, force: bool = False) -> list[str]:
        result: list[str] = self._call("POST", "/_sim/tick", {"force": force})["fulfillable"]
        return result

    def webhooks(self, order_id: str | None = None) -> list[dict[str, Any]]:
        query = f"?order_id={order_id}" if order_id else ""
        result: list[dict[str, Any]] = self._call("GET", f"/_sim/webhooks{query}")
        return result

    def drop_webhooks(self, count: int = 1) -> None:
        self._call("POST", "/_sim/webhooks/drop", {"count": count})

    def hold_webhooks(self) -> None:
        self._call("POST", "/_sim/webhooks/hold")

    def release_webhooks(self, *, reverse: bool = False) -> list[int]:
        result: list[int] = self._call("POST", "/_sim/webhooks/release", {"reverse": reverse})[
            "released"
        ]
        return result

    def redeliver(self, record_id: int) -> None:
        self._call("POST", f"/_sim/webhooks/{record_id}/redeliver")

    def add_fault(self, path: str, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sim/faults", {"path": path, **spec}, 201)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults", expect=204)

    def release_holds(self) -> int:
        """Let the calls a ``hold`` fault keeps waiting go on; how many there were."""
        result: int = self._call("POST", "/_sim/faults/release")["released"]
        return result

    def calls(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("method", method), ("path", path)) if v}
        resp = self._http.get(f"{self.url}/_sim/calls", params=params)
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()
        return result

    def revoke_tokens(self) -> int:
        result: int = self._call("POST", "/_sim/tokens/revoke")["revoked"]
        return result

    def wait_for_fulfillable(self, order_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Until the order was sent to the fulfiller (its grace period over)."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_id)
            if order["status"] != "on_fulfillment_queue":
                return order
            if time.monotonic() > deadline:
                raise TimeoutError(f"order {order_id} never became fulfillable")
            time.sleep(0.02)
