"""topi: webhooks (Standard Webhooks signed), OAuth2, acceptance, parcels with serial
numbers for rented units, cancellations by the customer only."""

from __future__ import annotations

import base64
import contextlib
import random
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import httpx

from chaos.channels import Record
from chaos.channels.common import SKUS, client, get_json, parcel
from orderhub.testing.processes import free_port, wait_for_http
from orderhub_topi.simulator.webhooks import sign

if TYPE_CHECKING:
    from chaos.stack import Stack

ACCOUNT: Final = "chaos"
CLIENT_ID: Final = "orderhub-chaos"
TIMEOUT_SECONDS: Final = 3.0
EFFECT_PATHS: Final = ("/v1/orders/*/accept", "/v1/orders/*/reject", "/v1/shipment")
CANCELLABLE: Final = ("created", "acknowledged", "confirmed", "partially_fulfilled")


class TopiChannel:
    name = "topi"

    def __init__(self) -> None:
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.client_secret = secrets.token_urlsafe(18)
        self.observer = "observer-" + secrets.token_urlsafe(12)
        self.url = ""
        self.webhook_url = ""
        self.created: list[str] = []
        self.sim: httpx.Client | None = None
        self.seller: httpx.Client | None = None

    def start(self, stack: Stack, *, hub_url: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.webhook_url = f"{hub_url}/webhooks/topi/{ACCOUNT}"
        argv = [sys.executable, "-m", "orderhub_topi.simulator", "--port", str(port)]
        argv += ["--no-fixtures", "--static-token", self.observer, "--log-level", "warning"]
        env = {
            "TOPI_SIM_WEBHOOK_URL": self.webhook_url,
            "TOPI_SIM_WEBHOOK_SECRET": self.secret,
            "TOPI_SIM_CLIENT_ID": CLIENT_ID,
            "TOPI_SIM_CLIENT_SECRET": self.client_secret,
        }
        stack.add_simulator("sim-topi", argv, env)
        self.sim = client(self.url)
        self.seller = client(self.url, self.observer)

    def wait_ready(self) -> None:
        wait_for_http(f"{self.url}/_sim/faults", what="the topi simulator", timeout=60)

    def account(self) -> dict[str, Any]:
        return {
            "channel": "topi",
            "name": ACCOUNT,
            "settings": {
                "base_url": self.url,
                "client_id": CLIENT_ID,
                "client_secret": self.client_secret,
                "token_url": f"{self.url}/oauth2/token",
                "reconcile_interval_seconds": 5.0,
                "reconcile_lookback_hours": 1,
                "reconcile_overlap_minutes": 5,
                "timeout_seconds": TIMEOUT_SECONDS,
            },
            "webhook": {"hmac_secrets": [self.secret]},
        }

    # --- customers ---------------------------------------------------------------------

    def customer_step(self, rng: random.Random, record: Record) -> None:
        assert self.sim is not None
        roll = rng.random()
        if roll < 0.75 or not self.created:
            lines: list[dict[str, Any]] = []
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.3:
                    lines.append(
                        {"title": "Rented", "sku": rng.choice(SKUS), "contract_type": "rent"}
                    )
                else:
                    lines.append(
                        {
                            "title": "Bought",
                            "sku": rng.choice(SKUS),
                            "quantity": rng.randint(1, 3),
                            "contract_type": "pay_now",
                        }
                    )
            resp = self.sim.post("/_sim/orders", json={"lines": lines})
            resp.raise_for_status()
            order_id = resp.json()["id"]
            self.created.append(order_id)
            record("customer.order", channel=self.name, order=order_id)
            return
        order_id = rng.choice(self.created[-50:])
        resp = self.sim.post(f"/_sim/orders/{order_id}/cancel")
        record("customer.cancel", channel=self.name, order=order_id, status=resp.status_code)

    # --- the warehouse -----------------------------------------------------------------

    def wms_move(self, order: dict[str, Any], rng: random.Random) -> tuple[str, Any] | None:
        status = order["status"]
        if status == "awaiting_acceptance":
            if rng.random() < 0.15:
                return "reject", {"reason": "out_of_stock"}
            return "accept", None
        if status in ("ready_to_ship", "partially_shipped"):
            body = parcel(order, rng, whole=rng.random() < 0.4)
            return ("shipments", body) if body else None
        return None

    # --- faults ------------------------------------------------------------------------

    def inject_fault(self, rng: random.Random) -> str:
        assert self.sim is not None
        kind = rng.choice(("5xx", "429", "timeout", "drop-webhook", "duplicate-webhook"))
        path = rng.choice((*EFFECT_PATHS, "/v1/orders/*/acknowledge"))
        spec: dict[str, Any]
        if kind == "5xx":
            spec = {"status": rng.choice((500, 502, 503)), "count": rng.randint(1, 2)}
            self.sim.post("/_sim/faults", json={"path": path, "method": "POST", **spec})
        elif kind == "429":
            spec = {"status": 429, "retry_after": "1", "count": rng.randint(1, 2)}
            self.sim.post("/_sim/faults", json={"path": path, "method": "POST", **spec})
        elif kind == "timeout":  # the call goes through after the hub stopped waiting
            spec = {"delay": TIMEOUT_SECONDS + 1.0, "count": 1}
            self.sim.post("/_sim/faults", json={"path": path, "method": "POST", **spec})
        elif kind == "drop-webhook":
            self.sim.post("/_sim/webhooks/drop", json={"count": rng.randint(1, 2)})
        else:
            self._duplicate_webhook(rng)
        return f"topi {kind}"

    def _duplicate_webhook(self, rng: random.Random) -> None:
        """topi sends a delivered webhook again (it did not see our 2xx): same id and body,
        a fresh signature."""
        assert self.sim is not None
        delivered = [r for r in get_json(self.sim, "/_sim/webhooks") if r["delivered"]]
        if not delivered:
            return
        chosen = rng.choice(delivered[-30:])
        body = str(chosen["body"]).encode()
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": str(chosen["id"]),
            "webhook-timestamp": str(now),
            "webhook-signature": sign(self.secret, str(chosen["id"]), now, body),
        }
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(self.webhook_url, content=body, headers=headers, timeout=5)

    def clear_faults(self) -> None:
        assert self.sim is not None
        self.sim.delete("/_sim/faults")

    def settle_step(self) -> None:
        """Nothing: reconciliation finds what a lost webhook said."""

    # --- afterwards --------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        assert self.sim is not None
        assert self.seller is not None
        orders: list[dict[str, Any]] = []
        for page in range(1, 1000):
            found = get_json(self.seller, "/v1/orders/paginated", {"limit": 100, "page": page})
            orders.extend({"id": o["id"], "status": o["status"]} for o in found["orders"])
            if page >= found["pagination"]["total_pages"]:
                break
        return {
            "orders": orders,
            "calls": get_json(self.sim, "/_sim/calls", {"method": "POST"}),
            "webhooks": [
                {k: v for k, v in r.items() if k != "body"}
                for r in get_json(self.sim, "/_sim/webhooks")
            ],
        }

    def close(self) -> None:
        for http in (self.sim, self.seller):
            if http is not None:
                http.close()
