"""The Spresso side of the conformance kit: its simulator, driven as Spresso's own users
would (the customer and Foxtrot through the control API, a seller through the API)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from orderhub.channels.spi import AccountConfig, ChannelPlugin, CommandKind
from orderhub.domain.values import OrderStatus
from orderhub.testing.conformance import ChannelCall, Delivery
from orderhub_spresso import wire
from orderhub_spresso.plugin import plugin

CLIENT_ID: Final = "orderhub-conformance"
CLIENT_SECRET: Final = "conformance-secret"
DRIVER_TOKEN: Final = "conformance-driver-token"
REFUSAL: Final = "conformance: Spresso refuses this call for good"


class Statuses(dict[str, OrderStatus]):
    """The states an order can first be heard of in (iterated by the kit), and, looked up
    only, the states no message announces: Spresso sends no webhook for ``in_transit`` or
    ``delivered``; the hub learns them from the answers to its own calls."""

    def __missing__(self, state: str) -> OrderStatus:
        return REPORTED[state]


REPORTED: Final[Mapping[str, OrderStatus]] = {
    wire.IN_TRANSIT: OrderStatus.SHIPPED,
    wire.DELIVERED: OrderStatus.DELIVERED,
}
STATUSES: Final = Statuses(
    {
        wire.ORDER_SENT_TO_FULFILLER: OrderStatus.READY_TO_SHIP,
        wire.CANCELLED: OrderStatus.CANCELLED,
    }
)
PATHS: Final = ((wire.ORDER_SENT_TO_FULFILLER, wire.CANCELLED),)
#: One fulfilment of two variants: the kit's whole-order delivery is then one call.
ORDER: Final[dict[str, Any]] = {
    "variants": [
        {"sku": "CONF-BEANS", "name": "Beans", "price": 1500},
        {"sku": "CONF-MUG", "name": "Mug", "price": 900},
    ],
    "fulfillments": [[{"variant": 0, "quantity": 2}, {"variant": 1, "quantity": 1}]],
}
_FAULT_PATHS: Final = {
    CommandKind.SHIP: "/v1/fulfillments/*/shipments",
    CommandKind.DELIVER: "/v1/fulfillments/*",
    CommandKind.CLOSE_FULFILMENT: "/v1/fulfillments/*",
}


def kind_of(method: str, path: str, body: str) -> CommandKind | None:
    if method != "PUT" or not path.startswith("/v1/fulfillments/"):
        return None
    if path.endswith("/shipments"):
        return CommandKind.SHIP
    status = json.loads(body or "{}").get("status")
    if status == wire.IN_TRANSIT:
        return CommandKind.CLOSE_FULFILMENT
    if status == wire.DELIVERED:
        return CommandKind.DELIVER
    return CommandKind.ACKNOWLEDGE if status in wire.PROGRESS else None


class SpressoDriver:
    statuses = STATUSES
    paths = PATHS
    known_gaps: Mapping[str, str] = {}

    def __init__(self, url: str, http: httpx.AsyncClient, **settings: Any) -> None:
        self.url = url
        self.plugin: ChannelPlugin = plugin
        self._http = http
        self._settings = settings

    def account_config(self) -> AccountConfig:
        return AccountConfig(
            channel="spresso",
            name="conformance",
            settings={
                "base_url": self.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "carriers": {"conformance-carrier": "ups"},
                **self._settings,
            },
        )

    async def create_order(self, spec: dict[str, Any] | None = None) -> str:
        created = await self.control("POST", "/_sim/orders", spec or ORDER)
        await self.control("POST", "/_sim/tick", {"force": True})
        return str(created["id"])

    async def order(self, channel_order_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.control("GET", f"/_sim/orders/{channel_order_id}")
        return found

    async def channel_state(self, channel_order_id: str) -> str:
        return str((await self.order(channel_order_id))["status"])

    async def move_to(self, channel_order_id: str, state: str) -> None:
        order = await self.order(channel_order_id)
        if state == wire.CANCELLED:
            await self.control("POST", f"/_sim/orders/{channel_order_id}/cancel")
            return
        if state not in REPORTED:
            raise ValueError(f"the Spresso driver cannot move an order to {state!r}")
        for f in order["fulfillments"]:
            path = f"/v1/fulfillments/{f['id']}"
            if f["status"] not in wire.SHIPPED_STATUSES:
                variants = [
                    {"variant": v["variant"], "fulfilledQuantity": v["quantity"]}
                    for v in f["fulfillmentVariants"]
                ]
                await self.seller(
                    path, {"status": wire.IN_TRANSIT, "fulfillmentVariants": variants}
                )
            if state == wire.DELIVERED:
                await self.seller(path, {"status": wire.DELIVERED})

    async def messages(self, channel_order_id: str) -> Sequence[Delivery]:
        records = await self.control("GET", f"/_sim/webhooks?order_id={channel_order_id}")
        return [
            Delivery(
                body=r["body"].encode(), headers={wire.SIGNATURE_HEADER.lower(): r["signature"]}
            )
            for r in records
            if not r["dropped"]
        ]

    async def calls(self, channel_order_id: str) -> Sequence[ChannelCall]:
        order = await self.order(channel_order_id)
        ids = {f["id"] for f in order["fulfillments"]}
        found = []
        for call in await self.control("GET", "/_sim/calls"):
            if call.get("driver") or call["path"].split("/")[3:4] == []:
                continue
            if call["path"].split("/")[3] not in ids or call["idempotency_key"] == "driver":
                continue
            found.append(
                ChannelCall(
                    kind=kind_of(call["method"], call["path"], call["body"]),
                    status=call["status_code"],
                    what=f"{call['method']} {call['path']} {call['body']} -> {call['status_code']}",
                )
            )
        return found

    async def inject_fault(self, kind: CommandKind, *, transient: bool) -> str:
        fault: dict[str, Any] = {"path": _FAULT_PATHS[kind], "method": "PUT"}
        if transient:
            await self.control("POST", "/_sim/faults", {**fault, "status": 503})
            return "503"
        await self.control(
            "POST", "/_sim/faults", {**fault, "status": 422, "body": {"message": REFUSAL}}
        )
        return REFUSAL

    # --- HTTP -------------------------------------------------------------------------

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self._http.request(method, f"{self.url}{path}", json=body)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    async def seller(self, path: str, body: Any) -> Any:
        """A seller call of the driver's own (marked, so that :meth:`calls` leaves it out)."""
        headers = {"Authorization": f"Bearer {DRIVER_TOKEN}", "Idempotency-Key": "driver"}
        resp = await self._http.put(f"{self.url}{path}", json=body, headers=headers)
        if resp.status_code >= 400:
            raise AssertionError(f"PUT {path}: HTTP {resp.status_code}: {resp.text}")
        return resp.json()
