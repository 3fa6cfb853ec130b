"""The Octopia side of the conformance kit: its simulator, driven as Octopia's own users
would (the marketplace and the customer through the control API, the seller through the
Seller API with a token of its own). Octopia is polled: the messages of an order are the
readings of it the driver made, one per change."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx
from octopia_helpers import CLIENT_ID, CLIENT_SECRET, SELLER_ID, account_config

from orderhub.channels.spi import AccountConfig, ChannelPlugin, CommandKind
from orderhub.domain.values import OrderStatus
from orderhub.testing.conformance import ChannelCall, Delivery
from orderhub_octopia import wire
from orderhub_octopia.plugin import plugin
from orderhub_octopia.polling import POLL_SOURCE, message_for
from orderhub_octopia.simulator import TOKEN_PATH

REFUSAL: Final = "conformance: Octopia refuses this call for good"
SALES_CHANNEL: Final = "OCTOBE"
STATUSES: Final[Mapping[str, OrderStatus]] = {
    wire.WAITING_ACCEPTANCE: OrderStatus.AWAITING_ACCEPTANCE,
    wire.ACCEPTED: OrderStatus.ACCEPTED,
    wire.IN_PREPARATION: OrderStatus.READY_TO_SHIP,
    wire.SHIPPED: OrderStatus.SHIPPED,
    wire.DELIVERED: OrderStatus.DELIVERED,
    wire.REFUSED: OrderStatus.REJECTED,
    wire.CANCELLED: OrderStatus.CANCELLED,
}
PATHS: Final = (
    (wire.WAITING_ACCEPTANCE, wire.ACCEPTED, wire.IN_PREPARATION, wire.SHIPPED, wire.DELIVERED),
    (wire.WAITING_ACCEPTANCE, wire.REFUSED),
    (wire.WAITING_ACCEPTANCE, wire.ACCEPTED, wire.CANCELLED),
    (wire.WAITING_ACCEPTANCE, wire.ACCEPTED, wire.IN_PREPARATION, wire.CANCELLED),
)
_FAULT_PATHS: Final = {
    CommandKind.ACCEPT: "/orders/*/approval-status",
    CommandKind.REJECT: "/orders/*/approval-status",
    CommandKind.SHIP: "/orders/*/shipments",
    CommandKind.CANCEL: "/order-*cancellation-requests",
}


def _kind(method: str, path: str, body: str) -> CommandKind | None:
    if method != "POST":
        return None
    if path.endswith("/approval-status"):
        refused = wire.REFUSE in body
        return CommandKind.REJECT if refused else CommandKind.ACCEPT
    if path.endswith("/shipments"):
        return CommandKind.SHIP
    if "cancellation-requests" in path:
        return CommandKind.CANCEL
    if "invoice" in path:
        return CommandKind.INVOICE
    return None


class OctopiaDriver:
    statuses = STATUSES
    paths = PATHS
    known_gaps: Mapping[str, str] = {}

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.plugin: ChannelPlugin = plugin
        self._http = http
        self._token: str | None = None
        self._own: set[int] = set()
        self._history: dict[str, list[Delivery]] = {}

    def account_config(self) -> AccountConfig:
        return account_config(self.url, name="conformance")

    async def create_order(self) -> str:
        spec = {"sales_channel": SALES_CHANNEL, "lines": [{"quantity": 2}, {"quantity": 1}]}
        created = await self._control("POST", "/_sim/orders", spec)
        return str(created["orderId"])

    async def channel_state(self, channel_order_id: str) -> str:
        return str((await self._control("GET", f"/_sim/orders/{channel_order_id}"))["status"])

    async def move_to(self, channel_order_id: str, state: str) -> None:
        current = await self.channel_state(channel_order_id)
        orders = f"/orders/{channel_order_id}"
        if state in (wire.ACCEPTED, wire.REFUSED):
            decision = wire.APPROVE if state == wire.ACCEPTED else wire.REFUSE
            await self._seller("POST", f"{orders}/approval-status", {"approval_status": decision})
        elif state == wire.IN_PREPARATION:
            if current == wire.WAITING_ACCEPTANCE:
                await self.move_to(channel_order_id, wire.ACCEPTED)
            await self._control("POST", f"/_sim{orders}/pay")
        elif state in (wire.SHIPPED, wire.DELIVERED):
            if current != wire.SHIPPED:
                if current != wire.IN_PREPARATION:
                    await self.move_to(channel_order_id, wire.IN_PREPARATION)
                parcel = {"parcelNumber": f"DRV{channel_order_id}", "carrierName": "UPS"}
                await self._seller("POST", f"{orders}/shipments", [parcel])
            if state == wire.DELIVERED:
                await self._control("POST", f"/_sim{orders}/deliver")
        elif state == wire.CANCELLED:
            await self._control("POST", f"/_sim{orders}/cancel")
        else:
            raise ValueError(f"the Octopia driver cannot move an order to {state!r}")

    async def messages(self, channel_order_id: str) -> Sequence[Delivery]:
        """Every reading of the order that showed a change, oldest first (what the polling
        job would have stored)."""
        body = json.dumps(await self._control("GET", f"/_sim/orders/{channel_order_id}")).encode()
        message = message_for(body, POLL_SOURCE)
        history = self._history.setdefault(channel_order_id, [])
        if not history or history[-1].key != message.dedupe_key:
            history.append(
                Delivery(body=body, headers=message.headers, source="poll", key=message.dedupe_key)
            )
        return list(history)

    async def calls(self, channel_order_id: str) -> Sequence[ChannelCall]:
        found = []
        for call in await self._control("GET", "/_sim/calls"):
            if call["seq"] in self._own:
                continue
            if channel_order_id in call["path"] or channel_order_id in (call["body"] or ""):
                found.append(
                    ChannelCall(
                        kind=_kind(call["method"], call["path"], call["body"] or ""),
                        status=call["status_code"],
                        what=f"{call['method']} {call['path']} -> {call['status_code']}",
                    )
                )
        return found

    async def inject_fault(self, kind: CommandKind, *, transient: bool) -> str:
        fault: dict[str, Any] = {"path": _FAULT_PATHS[kind], "method": "POST"}
        if transient:
            await self._control("POST", "/_sim/faults", {**fault, "status": 503})
            return "503"
        body = {"title": "Validation Failed", "status": 400, "errors": {"order": [REFUSAL]}}
        await self._control("POST", "/_sim/faults", {**fault, "status": 400, "body": body})
        return REFUSAL

    # --- HTTP -------------------------------------------------------------------------

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self._http.request(method, f"{self.url}{path}", json=body)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    async def _seller(self, method: str, path: str, body: Any = None) -> Any:
        if self._token is None:
            form = {"grant_type": "client_credentials", "client_id": CLIENT_ID}
            form["client_secret"] = CLIENT_SECRET
            answer = await self._http.post(f"{self.url}{TOKEN_PATH}", data=form)
            self._token = answer.json()["access_token"]
            self._own.add(len(await self._control("GET", "/_sim/calls")))
        headers = {"Authorization": f"Bearer {self._token}", "SellerId": SELLER_ID}
        resp = await self._http.request(method, f"{self.url}{path}", json=body, headers=headers)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path}: HTTP {resp.status_code}: {resp.text}")
        mine = await self._control("GET", f"/_sim/calls?method={method}&path={path}")
        self._own.add(max(call["seq"] for call in mine))
        return resp.json() if resp.content else None
