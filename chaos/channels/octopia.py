"""Octopia (Cdiscount): no webhooks, the hub polls; acceptance or refusal, the marketplace
clears the payment, parcels (one per order on CDISFR, by line on OCTOBE), deliveries by
the marketplace, the customer's cancellation requests the warehouse decides."""

from __future__ import annotations

import random
import secrets
import sys
from typing import TYPE_CHECKING, Any, Final

import httpx

from chaos.channels import Record
from chaos.channels.common import SKUS, client, parcel
from orderhub.testing.processes import free_port, wait_for_http
from orderhub_octopia import demo_support
from orderhub_octopia.demo_support import SELLER_ID
from orderhub_octopia.simulator import TOKEN_PATH

if TYPE_CHECKING:
    from chaos.stack import Stack

ACCOUNT: Final = "chaos"
CLIENT_ID: Final = "orderhub-chaos"
TIMEOUT_SECONDS: Final = 3.0
# the demo's sales channels but the auto-accepting one: the WMS decides every order here
SALES_CHANNELS: Final = {
    name: caps for name, caps in demo_support.SALES_CHANNELS.items() if name != "AUTOFR"
}
EFFECT_PATHS: Final = ("/orders/*/approval-status", "/orders/*/shipments")
CARRIERS: Final = ("Colissimo", "UPS")


class OctopiaChannel:
    name = "octopia"

    def __init__(self) -> None:
        self.client_secret = secrets.token_urlsafe(18)
        self.url = ""
        self.created: list[str] = []
        self._sim: httpx.Client | None = None

    @property
    def sim(self) -> httpx.Client:
        assert self._sim is not None, "start() first"
        return self._sim

    def start(self, stack: Stack, *, hub_url: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "orderhub_octopia.simulator", "--port", str(port)]
        env = {
            "OCTOPIA_SIM_CLIENT_ID": CLIENT_ID,
            "OCTOPIA_SIM_CLIENT_SECRET": self.client_secret,
            "OCTOPIA_SIM_SELLER_ID": SELLER_ID,
        }
        stack.add_simulator("sim-octopia", argv, env)
        self._sim = client(self.url)

    def wait_ready(self) -> None:
        wait_for_http(f"{self.url}/_sim/tokens", what="the Octopia simulator", timeout=60)

    def account(self) -> dict[str, Any]:
        return {
            "channel": "octopia",
            "name": ACCOUNT,
            "settings": {
                "base_url": self.url,
                "token_url": f"{self.url}{TOKEN_PATH}",
                "client_id": CLIENT_ID,
                "client_secret": self.client_secret,
                "seller_id": SELLER_ID,
                "timeout_seconds": TIMEOUT_SECONDS,
                "poll_interval_seconds": 2.0,
                "poll_overlap_minutes": 5,
                "poll_lookback_hours": 1,
                "poll_page_attempts": 2,
                "sales_channels": SALES_CHANNELS,
            },
        }

    # --- customers and the marketplace -------------------------------------------------

    def customer_step(self, rng: random.Random, record: Record) -> None:
        if rng.random() < 0.45 or not self.created:
            lines = [
                {
                    "title": "Item",
                    "sku": rng.choice(SKUS),
                    "quantity": rng.randint(1, 2),
                    "price": 19.9,
                }
                for _ in range(rng.randint(1, 3))
            ]
            spec = {"sales_channel": rng.choice(tuple(SALES_CHANNELS)), "lines": lines}
            resp = self.sim.post("/_sim/orders", json=spec)
            resp.raise_for_status()
            order_id = resp.json()["orderId"]
            self.created.append(order_id)
            record("customer.order", channel=self.name, order=order_id)
            return
        for _ in range(3):  # a few orders looked at, one of them moved
            order_id = rng.choice(self.created[-40:])
            resp = self.sim.get(f"/_sim/orders/{order_id}")
            resp.raise_for_status()
            status = resp.json()["status"]
            move = None
            if status == "Accepted":
                move = "pay"
            elif status == "Shipped":
                move = "deliver"
            if status in ("Accepted", "InPreparation") and rng.random() < 0.2:
                move = "cancel-request"
            if move is not None:
                break
        if move is None:
            return
        answer = self.sim.post(f"/_sim/orders/{order_id}/{move}")
        kind = "customer.cancel_request" if move == "cancel-request" else f"marketplace.{move}"
        record(kind, channel=self.name, order=order_id, status=answer.status_code)

    # --- the warehouse -----------------------------------------------------------------

    def wms_move(self, order: dict[str, Any], rng: random.Random) -> tuple[str, Any] | None:
        status = order["status"]
        if status == "awaiting_acceptance":
            if rng.random() < 0.15:
                return "reject", {"reason": "out_of_stock"}
            return "accept", None
        if status not in ("ready_to_ship", "partially_shipped"):
            return None
        asked = [c for c in order["cancellations"] if c["state"] == "requested"]
        if asked:
            decision = "accept" if rng.random() < 0.6 else "refuse"
            return "cancellations", {"decision": decision, "cancellation_id": asked[0]["id"]}
        if status == "ready_to_ship" and rng.random() < 0.08:
            return "cancellations", {"reason": "out_of_stock"}
        cdiscount = order["extras"].get("sales_channel") == "CDISFR"
        body = parcel(order, rng, whole=cdiscount, whole_lines=True)
        if body is None:
            return None
        body["carrier"] = rng.choice(CARRIERS)
        return "shipments", body

    # --- faults ------------------------------------------------------------------------

    def inject_fault(self, rng: random.Random) -> str:
        kind = rng.choice(("5xx", "429", "timeout", "poll-5xx"))
        path = rng.choice(EFFECT_PATHS)
        spec: dict[str, Any]
        if kind == "5xx":
            spec = {"path": path, "method": "POST", "status": rng.choice((500, 502, 503))}
            spec["times"] = rng.randint(1, 2)
        elif kind == "429":
            spec = {"path": path, "method": "POST", "status": 429, "retry_after": "1"}
        elif kind == "timeout":  # the call goes through after the hub stopped waiting
            spec = {"path": path, "method": "POST", "status": None}
            spec["delay"] = TIMEOUT_SECONDS + 1.0
        else:
            spec = {"path": "/orders", "method": "GET", "status": 503}
        self.sim.post("/_sim/faults", json=spec)
        return f"octopia {kind}"

    def clear_faults(self) -> None:
        self.sim.delete("/_sim/faults")

    def settle_step(self) -> None:
        """Nothing: the hub polls."""

    # --- afterwards --------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        """Every order the simulator holds: its ids are OCT00001, OCT00002, ... (with gaps,
        the numbers are shared with its cancellation requests)."""
        orders = []
        missing = 0
        for number in range(1, 100_000):
            resp = self.sim.get(f"/_sim/orders/OCT{number:05d}")
            if resp.status_code == 404:
                missing += 1
                if missing > 200:
                    break
                continue
            missing = 0
            resp.raise_for_status()
            found = resp.json()
            requests = {  # each cancellation request's lines (none: the whole order)
                str(d.get("cancellationRequestId")): [
                    str(line.get("orderLineId")) for line in d.get("lines") or []
                ]
                for d in found.get("cancellationDetails") or []
            }
            orders.append({"id": found["orderId"], "status": found["status"], "requests": requests})
        calls = [c for c in self.sim.get("/_sim/calls").json() if c["method"] == "POST"]
        return {"orders": orders, "calls": calls, "webhooks": []}

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
