"""A small synchronous client for the simulator's ``/_sim`` control API (tests, demos)."""

from __future__ import annotations

from typing import Any

import httpx


class SimulatorControl:
    """``SimulatorControl("http://127.0.0.1:8701").create_order(lines=[...])``."""

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

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        resp = self._http.get(f"{self.url}{path}", params=params)
        resp.raise_for_status()
        return resp.json()

    def create_order(self, **spec: Any) -> dict[str, Any]:
        """Place a customer order (``lines`` required); returns the full order JSON."""
        result: dict[str, Any] = self._post("/_sim/orders", spec, expect=201)
        return result

    def cancel(self, order_id: str) -> dict[str, Any]:
        """The customer cancels through topi."""
        result: dict[str, Any] = self._post(f"/_sim/orders/{order_id}/cancel")
        return result

    def add_fault(self, path: str, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post("/_sim/faults", {"path": path, **spec}, expect=201)
        return result

    def clear_faults(self) -> None:
        resp = self._http.delete(f"{self.url}/_sim/faults")
        resp.raise_for_status()

    def drop_webhooks(self, count: int = 1) -> int:
        result: int = self._post("/_sim/webhooks/drop", {"count": count})["drop_next"]
        return result

    def webhooks(self, order_id: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(
            "/_sim/webhooks", {"order_id": order_id} if order_id else None
        )
        return result

    def calls(self, *, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("method", method), ("path", path)) if v}
        result: list[dict[str, Any]] = self._get("/_sim/calls", params)
        return result

    def revoke_tokens(self) -> int:
        result: int = self._post("/_sim/tokens/revoke")["revoked"]
        return result

    def reset(self, *, fixtures: bool = True) -> None:
        self._post("/_sim/reset", {"fixtures": fixtures})
