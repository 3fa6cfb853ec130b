"""The warehouse: it follows the hub's feed, looks at orders through ``/api/v1`` and
sends its decisions, each with an ``Idempotency-Key`` of its own that it keeps across its
retries (a lost answer, a 5xx, a serve that is down: the other one is tried), as a real
WMS does. Every command and its final answer go into :attr:`Wms.ledger`, which the checker
reads."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from chaos.channels import Channel, Record

TERMINAL: Final = frozenset({"shipped", "delivered", "rejected", "cancelled"})
ATTEMPTS: Final = 6
"""Tries per command before the WMS gives up (the answer stays unknown)."""


class Wms:
    def __init__(
        self,
        urls: list[str],
        key: str,
        channels: Mapping[str, Channel],
        record: Record,
        *,
        on_accepted: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.urls = urls
        self.channels = channels
        self.record = record
        self.on_accepted = on_accepted
        self.http = [
            httpx.Client(
                base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
            )
            for url in urls
        ]
        self.cursor = 0
        self.open: dict[str, str] = {}  # hub order id -> channel
        self.ledger: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._next = 0

    def close(self) -> None:
        for http in self.http:
            http.close()

    def _client(self) -> httpx.Client:
        self._next = (self._next + 1) % len(self.http)
        return self.http[self._next]

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        last: Exception | None = None
        for _ in range(len(self.http) * 2):
            try:
                resp = self._client().get(path, params=params)
            except httpx.HTTPError as exc:
                last = exc
                time.sleep(0.3)
                continue
            if resp.status_code >= 500:
                last = RuntimeError(f"GET {path}: {resp.status_code}")
                time.sleep(0.3)
                continue
            resp.raise_for_status()
            return resp.json()
        raise RuntimeError(f"GET {path}: no serve answered ({last})")

    # --- following the feed -------------------------------------------------------------

    def follow_feed(self) -> None:
        page = self._get("/feed", {"after": self.cursor, "limit": 500})
        for event in page["events"]:
            order_id = event.get("order_id")
            if order_id and event.get("channel") in self.channels:
                self.open.setdefault(order_id, event["channel"])
        self.cursor = page["next_cursor"]

    # --- deciding ----------------------------------------------------------------------

    def step(self, rng: random.Random) -> None:
        if not self.open:
            return
        order_id = rng.choice(list(self.open))
        order = self._get(f"/orders/{order_id}")
        if order["status"] in TERMINAL:
            self.open.pop(order_id, None)
            return
        move = self.channels[order["channel"]].wms_move(order, rng)
        if move is not None:
            action, body = move
            self.command(order, action, body)

    def command(self, order: dict[str, Any], action: str, body: Any) -> dict[str, Any]:
        key = str(uuid.uuid4())
        entry: dict[str, Any] = {
            "at": time.time(),
            "key": key,
            "order_id": order["id"],
            "channel": order["channel"],
            "channel_order_id": order["channel_order_id"],
            "action": action,
            "body": body,
            "answers": [],
            "status": None,
            "command_id": None,
        }
        path = f"/orders/{order['id']}/{action}"
        for attempt in range(ATTEMPTS):
            try:
                resp = self._client().post(
                    path, json=body, headers={"Idempotency-Key": key}, timeout=10
                )
            except httpx.HTTPError as exc:
                entry["answers"].append(f"{type(exc).__name__}")
                time.sleep(0.2 * 2**attempt)
                continue
            entry["answers"].append(resp.status_code)
            if resp.status_code >= 500 or resp.status_code == 429:
                time.sleep(0.2 * 2**attempt)
                continue
            entry["status"] = resp.status_code
            if resp.is_success:
                entry["command_id"] = resp.json()["command_id"]
            else:
                entry["problem"] = resp.json().get("type", "") if resp.content else ""
            break
        entry["finished"] = time.time()
        with self.lock:
            self.ledger.append(entry)
        self.record(
            "wms.command",
            channel=order["channel"],
            order=order["channel_order_id"],
            hub_order=order["id"],
            action=action,
            status=entry["status"],
            command_id=entry["command_id"],
        )
        if entry["command_id"]:
            self.on_accepted(entry["command_id"])
        return entry
