"""Spresso: orders reach the seller after a grace period (``order_fulfillable`` webhook),
in one or more fulfilments shipped in parcels (a short ship closes one), deliveries the
warehouse confirms, cancellations only in Foxtrot (Spresso's console)."""

from __future__ import annotations

import random
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import httpx

from chaos.channels import Record
from chaos.channels.common import SKUS, client, get_json, parcel
from orderhub.testing.processes import free_port, wait_for_http

if TYPE_CHECKING:
    from chaos.stack import Stack

ACCOUNT: Final = "chaos"
CLIENT_ID: Final = "orderhub-chaos"
TIMEOUT_SECONDS: Final = 3.0
EVENTS: Final = ("order_fulfillable", "order_cancelled")
EFFECT_PATHS: Final = ("/v1/fulfillments/*/shipments", "/v1/fulfillments/*")
HOLD_SECONDS: Final = 3.0
GIVE_UP_ATTEMPTS: Final = 5
"""The simulator's tries of one webhook (the first and four retries) before it gives up."""


class SpressoChannel:
    name = "spresso"

    def __init__(self) -> None:
        self.client_secret = secrets.token_urlsafe(18)
        self.support = "support-" + secrets.token_urlsafe(12)
        self.url = ""
        self.hub_url = ""
        self.created: list[str] = []
        self.holding = False
        self.held_at = 0.0
        self.retried: set[int] = set()
        self._sim: httpx.Client | None = None

    @property
    def sim(self) -> httpx.Client:
        assert self._sim is not None, "start() first"
        return self._sim

    def start(self, stack: Stack, *, hub_url: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.hub_url = hub_url
        argv = [sys.executable, "-m", "orderhub_spresso.simulator", "--port", str(port)]
        argv += ["--grace-seconds", "2", "--static-token", self.support]
        argv += ["--log-level", "warning"]
        env = {"SPRESSO_SIM_CLIENT_ID": CLIENT_ID, "SPRESSO_SIM_CLIENT_SECRET": self.client_secret}
        stack.add_simulator("sim-spresso", argv, env)
        self._sim = client(self.url)

    def wait_ready(self) -> None:
        wait_for_http(f"{self.url}/_sim/faults", what="the Spresso simulator", timeout=60)
        # as Spresso's support does it: one URL per event
        with client(self.url, self.support) as support:
            for event in EVENTS:
                url = f"{self.hub_url}/webhooks/spresso/{ACCOUNT}/{event}"
                support.post("/v1/webhooks", json={"url": url, "event": event}).raise_for_status()

    def account(self) -> dict[str, Any]:
        return {
            "channel": "spresso",
            "name": ACCOUNT,
            "settings": {
                "base_url": self.url,
                "client_id": CLIENT_ID,
                "client_secret": self.client_secret,
                "carriers": {"UPS": "ups", "DHL": "dhl"},
                "timeout_seconds": TIMEOUT_SECONDS,
            },
        }

    # --- customers and Foxtrot ---------------------------------------------------------

    def customer_step(self, rng: random.Random, record: Record) -> None:
        if self.holding and time.monotonic() - self.held_at > HOLD_SECONDS:
            self.sim.post("/_sim/webhooks/release", json={"reverse": True})
            self.holding = False
        if rng.random() < 0.85 or not self.created:
            variants = [
                {"sku": sku, "name": sku.title(), "price": 1290}
                for sku in rng.sample(SKUS, rng.randint(1, 3))
            ]
            groups: list[list[dict[str, Any]]] = [[] for _ in range(rng.randint(1, 2))]
            for index in range(len(variants)):
                groups[index % len(groups)].append(
                    {"variant": index, "quantity": rng.randint(1, 3)}
                )
            spec = {"variants": variants, "fulfillments": [g for g in groups if g]}
            resp = self.sim.post("/_sim/orders", json=spec)
            resp.raise_for_status()
            order_id = resp.json()["id"]
            self.created.append(order_id)
            record("customer.order", channel=self.name, order=order_id)
            return
        order_id = rng.choice(self.created[-40:])
        resp = self.sim.post(f"/_sim/orders/{order_id}/cancel")
        record("foxtrot.cancel", channel=self.name, order=order_id, status=resp.status_code)

    # --- the warehouse -----------------------------------------------------------------

    def wms_move(self, order: dict[str, Any], rng: random.Random) -> tuple[str, Any] | None:
        status = order["status"]
        if status == "shipped" and rng.random() < 0.5:
            return "deliveries", {}
        if status not in ("ready_to_ship", "partially_shipped"):
            return None
        open_ = [f["id"] for f in order["fulfilments"] if f["status"] not in ("cancelled",)]
        rng.shuffle(open_)
        for fulfilment in open_:
            lines = [ln for ln in order["lines"] if ln["fulfilment_id"] == fulfilment]
            mine = {**order, "lines": lines}
            body = parcel(mine, rng, whole=rng.random() < 0.4)
            if body is None:
                continue
            body["fulfilment_id"] = fulfilment
            if rng.random() < 0.15:
                body["final"] = True  # a short ship: what is not in this parcel is not coming
            return "shipments", body
        return None

    # --- faults ------------------------------------------------------------------------

    def inject_fault(self, rng: random.Random) -> str:
        # no dropped webhook: Spresso has no API to list orders, an order_fulfillable never
        # sent is an order the seller never hears of (Spresso retries until it gets a 2xx)
        kind = rng.choice(("5xx", "429", "timeout", "reorder-webhooks", "duplicate-webhook"))
        path = rng.choice(EFFECT_PATHS)
        if kind == "5xx":
            spec = {"path": path, "method": "PUT", "status": rng.choice((500, 502, 503))}
            self.sim.post("/_sim/faults", json={**spec, "count": rng.randint(1, 2)})
        elif kind == "429":
            spec = {"path": path, "method": "PUT", "status": 429, "retry_after": "1"}
            self.sim.post("/_sim/faults", json=spec)
        elif kind == "timeout":  # held past the hub's timeout, then carried out
            spec = {"path": path, "method": "PUT", "hold": True}
            self.sim.post("/_sim/faults", json={**spec, "hold_seconds": TIMEOUT_SECONDS + 1})
        elif kind == "reorder-webhooks":  # held a few seconds, then sent newest first
            if not self.holding:
                self.sim.post("/_sim/webhooks/hold")
                self.holding = True
                self.held_at = time.monotonic()
        else:
            delivered = [r for r in get_json(self.sim, "/_sim/webhooks") if r["delivered"]]
            if delivered:
                chosen = rng.choice(delivered[-30:])
                self.sim.post(f"/_sim/webhooks/{chosen['id']}/redeliver")
        return f"spresso {kind}"

    def clear_faults(self) -> None:
        self.sim.delete("/_sim/faults")
        if self.holding:
            self.sim.post("/_sim/webhooks/release", json={"reverse": True})
            self.holding = False

    def settle_step(self) -> None:
        """Spresso tries a webhook again later when its quick retries all failed (the hub
        was unreachable for a while): each given-up message once more."""
        for record in get_json(self.sim, "/_sim/webhooks"):
            done = record["delivered"] or record["dropped"] or record["held"]
            if done or record["attempts"] < GIVE_UP_ATTEMPTS or record["id"] in self.retried:
                continue
            self.retried.add(record["id"])
            self.sim.post(f"/_sim/webhooks/{record['id']}/redeliver")

    # --- afterwards --------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        """The orders Spresso showed the seller (sent to the fulfiller: the others were
        never the seller's business), every change call with the order it is about."""
        documents = get_json(self.sim, "/_sim/orders")
        owner = {f["id"]: d["id"] for d in documents for f in d["fulfillments"]}
        orders = [
            {"id": d["id"], "status": d["status"]}
            for d in documents
            if any(h["status"] == "sent_to_fulfiller" for h in d["statusHistory"])
        ]
        calls = []
        for call in get_json(self.sim, "/_sim/calls", {"method": "PUT"}):
            parts = call["path"].split("/")
            fulfilment = parts[3] if len(parts) > 3 else ""
            calls.append({**call, "order": owner.get(fulfilment, ""), "fulfilment": fulfilment})
        webhooks = [
            {k: v for k, v in r.items() if k not in ("body", "signature")}
            for r in get_json(self.sim, "/_sim/webhooks")
        ]
        return {
            "orders": orders,
            "calls": calls,
            "webhooks": webhooks,
            "webhooks_retried_after_give_up": len(self.retried),
        }

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
