"""The topi side of the conformance kit: its simulator, driven as topi's own users would
(the customer through the control API, the seller through the seller API)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from orderhub.channels.spi import AccountConfig, ChannelPlugin, CommandKind
from orderhub.domain.values import OrderStatus
from orderhub.testing.conformance import ChannelCall, Delivery
from orderhub_topi import wire
from orderhub_topi.plugin import plugin

CLIENT_ID: Final = "orderhub-conformance"
CLIENT_SECRET: Final = "conformance-secret"
DRIVER_TOKEN: Final = "conformance-driver-token"  # the driver's own seller API token
REFUSAL: Final = "conformance: topi refuses this call for good"

#: docs/shared canonical-model.md, "topi": the status of an order first heard of in each state.
STATUSES: Final[Mapping[str, OrderStatus]] = {
    wire.ORDER_CREATED: OrderStatus.AWAITING_ACCEPTANCE,
    wire.ORDER_ACKNOWLEDGED: OrderStatus.AWAITING_ACCEPTANCE,
    wire.ORDER_CONFIRMED: OrderStatus.READY_TO_SHIP,
    wire.ORDER_PARTIALLY_FULFILLED: OrderStatus.PARTIALLY_SHIPPED,
    wire.ORDER_COMPLETED: OrderStatus.SHIPPED,
    wire.ORDER_REJECTED: OrderStatus.REJECTED,
    wire.ORDER_CANCELED: OrderStatus.CANCELLED,
}
PATHS: Final = (
    (
        wire.ORDER_CREATED,
        wire.ORDER_ACKNOWLEDGED,
        wire.ORDER_CONFIRMED,
        wire.ORDER_PARTIALLY_FULFILLED,
        wire.ORDER_COMPLETED,
    ),
    (
        wire.ORDER_CREATED,
        wire.ORDER_CONFIRMED,
        wire.ORDER_PARTIALLY_FULFILLED,
        wire.ORDER_COMPLETED,
    ),
    (wire.ORDER_CREATED, wire.ORDER_ACKNOWLEDGED, wire.ORDER_REJECTED),
    (wire.ORDER_CREATED, wire.ORDER_REJECTED),
    (wire.ORDER_CREATED, wire.ORDER_CONFIRMED, wire.ORDER_PARTIALLY_FULFILLED, wire.ORDER_CANCELED),
)
#: Checks topi is known to fail (docs: the conformance kit, "Known gaps"); each fails the
#: kit again once fixed, until removed from here. None since topi's snapshots carry their
#: read time and a canceled order keeps its acceptance.
KNOWN_GAPS: Final[Mapping[str, str]] = {}
#: A rented laptop bundle (two units, a charger sub-line) and a bought cable: serial
#: numbers on some lines only, sub-lines, and three parcels where topi ships per line.
ORDER: Final[dict[str, Any]] = {
    "lines": [
        {
            "title": "Laptop",
            "sku": "CONF-LAP",
            "quantity": 2,
            "contract_type": "rent",
            "sublines": [{"title": "Charger", "sku": "CONF-CHG"}],
        },
        {"title": "USB-C cable", "sku": "CONF-CBL", "contract_type": "pay_now"},
    ]
}
_COMMAND_PATHS: Final = {
    CommandKind.ACKNOWLEDGE: "/v1/orders/*/acknowledge",
    CommandKind.ACCEPT: "/v1/orders/*/accept",
    CommandKind.REJECT: "/v1/orders/*/reject",
    CommandKind.SHIP: "/v1/shipment",
}


def _kind(method: str, path: str) -> CommandKind | None:
    if method != "POST":
        return None
    if path == "/v1/shipment":
        return CommandKind.SHIP
    action = path.rsplit("/", 1)[-1]
    kinds = {"acknowledge": CommandKind.ACKNOWLEDGE, "accept": CommandKind.ACCEPT}
    return kinds.get(action, CommandKind.REJECT if action == "reject" else None)


class TopiDriver:
    statuses = STATUSES
    paths = PATHS
    known_gaps = KNOWN_GAPS

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.plugin: ChannelPlugin = plugin
        self._http = http
        self._own: set[int] = set()  # the simulator's numbers of the driver's own calls

    def account_config(self) -> AccountConfig:
        return AccountConfig(
            channel="topi",
            name="conformance",
            settings={
                "base_url": self.url,
                "token_url": f"{self.url}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
        )

    async def create_order(self) -> str:
        created = await self._control("POST", "/_sim/orders", ORDER)
        return str(created["id"])

    async def channel_state(self, channel_order_id: str) -> str:
        return str((await self._seller("GET", f"/v1/orders/{channel_order_id}"))["status"])

    async def move_to(self, channel_order_id: str, state: str) -> None:
        current = await self.channel_state(channel_order_id)
        orders = f"/v1/orders/{channel_order_id}"
        if state == wire.ORDER_ACKNOWLEDGED:
            await self._seller("POST", f"{orders}/acknowledge")
        elif state == wire.ORDER_REJECTED:
            await self._seller("POST", f"{orders}/reject")
        elif state == wire.ORDER_CANCELED:
            await self._control("POST", f"/_sim/orders/{channel_order_id}/cancel")
        elif state in (wire.ORDER_CONFIRMED, wire.ORDER_PARTIALLY_FULFILLED, wire.ORDER_COMPLETED):
            if current in (wire.ORDER_CREATED, wire.ORDER_ACKNOWLEDGED):
                await self._seller("POST", f"{orders}/accept")
            if state != wire.ORDER_CONFIRMED:
                await self._ship(
                    channel_order_id, only="CONF-LAP" if state != "completed" else None
                )
        else:
            raise ValueError(f"the topi driver cannot move an order to {state!r}")

    async def _ship(self, channel_order_id: str, *, only: str | None) -> None:
        """Ship the assets still to ship (of one product only, with ``only``), each with
        a serial number."""
        order = await self._seller("GET", f"/v1/orders/{channel_order_id}")
        entries = [
            {"seller_product_reference": ref, "serial_number": f"DRV-{asset['id']}"}
            for asset in order["assets"]
            if asset["status"] == wire.ASSET_CREATED
            for ref in asset["seller_product_references"][:1]
            if only is None or ref["reference"] == only
        ]
        body = {"order_id": channel_order_id, "serial_numbers": entries}
        await self._seller("POST", "/v1/shipment", body)

    async def messages(self, channel_order_id: str) -> Sequence[Delivery]:
        records = await self._control("GET", f"/_sim/webhooks?order_id={channel_order_id}")
        return [
            Delivery(body=r["body"].encode(), headers={"webhook-id": r["id"]})
            for r in records
            if not r["dropped"]
        ]

    async def calls(self, channel_order_id: str) -> Sequence[ChannelCall]:
        found = []
        for call in await self._control("GET", "/_sim/calls"):
            if call["seq"] in self._own:
                continue
            about = channel_order_id in call["path"] or (
                call["path"] == "/v1/shipment"
                and json.loads(call["body"] or "{}").get("order_id") == channel_order_id
            )
            if about:
                found.append(
                    ChannelCall(
                        kind=_kind(call["method"], call["path"]),
                        status=call["status_code"],
                        what=f"{call['method']} {call['path']} -> {call['status_code']}",
                    )
                )
        return found

    async def inject_fault(self, kind: CommandKind, *, transient: bool) -> str:
        fault: dict[str, Any] = {"path": _COMMAND_PATHS[kind], "method": "POST"}
        if transient:
            await self._control("POST", "/_sim/faults", {**fault, "status": 503})
            return "503"
        body = {"name": "invalid_status", "id": "conformance", "message": REFUSAL}
        await self._control("POST", "/_sim/faults", {**fault, "status": 422, "body": body})
        return REFUSAL

    # --- HTTP -------------------------------------------------------------------------

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self._http.request(method, f"{self.url}{path}", json=body)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    async def _seller(self, method: str, path: str, body: Any = None) -> Any:
        """A seller API call of the driver's own (not the hub's): remembered, so that
        :meth:`calls` leaves it out."""
        headers = {"Authorization": f"Bearer {DRIVER_TOKEN}"}
        resp = await self._http.request(method, f"{self.url}{path}", json=body, headers=headers)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path}: HTTP {resp.status_code}: {resp.text}")
        mine = await self._control("GET", f"/_sim/calls?method={method}&path={path}")
        self._own.add(max(call["seq"] for call in mine))
        return resp.json()
