"""Every route of the warehouse API, probed with API keys limited to other accounts.

The routes come from the app's route table, checked against its OpenAPI document, so a
route added later is probed without anyone listing it here. Each account of the stub
channel gets the same world (:func:`build_account`): an order accepted, with a failed
shipment and one held behind it, an order with an invoice, a failed inbox message.

* A route that names something in its path (an order, a fulfilment or invoice of it, a
  command, a message) is probed with the ids of an account the key may not see: it is 404
  ``not-found`` with the very detail an unknown id gets, and changes nothing; the same
  request with an unlimited key is not 404 (the ids are real).
* A route that names nothing is a read (anything else fails the probe until it is
  classified here): the limited key's answer holds none of the hidden accounts' ids and
  names, while an unlimited key's answer does (the probe is not vacuous).

The probe runs over the fakes (``tests/unit/web``) and over PostgreSQL and SQLite
(``tests/integration/persistence``): the fakes filter like the queries."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute

from orderhub.application.access import AccountLimit
from orderhub.application.hub import Hub
from orderhub.application.services.dispatch import dispatch_command
from orderhub.application.services.intake import (
    Processed,
    apply_snapshot,
    process_message,
    store_message,
)
from orderhub.entrypoints.web import ApiKey

from .support import CHANNEL, StubAccount, snapshot_from

PREFIX: Final = "/api/v1"
EVERY_SCOPE: Final = frozenset({"orders:read", "orders:write", "ops"})
SECRETS: Final = {
    "boss": "key-boss-000000000000000000",
    "tpl": "key-tpl-1111111111111111111",
    "idle-only": "key-idle-only-22222222222222",
}
OWN_ACCOUNT: Final = "pathtoken"
"""The account key ``tpl`` is limited to."""
LIMITED: Final = {
    "tpl": AccountLimit.of(accounts=[f"{CHANNEL}/{OWN_ACCOUNT}"]),
    "idle-only": AccountLimit.of(channels=["idle"]),  # a channel with no orders at all
}
KEYS: Final = (
    ApiKey("boss", SECRETS["boss"], EVERY_SCOPE),
    *(ApiKey(name, SECRETS[name], EVERY_SCOPE, limit) for name, limit in LIMITED.items()),
)
PDF: Final = b"%PDF-1.4\n" + b"0" * 200 + b"\n%%EOF\n"
UNKNOWN: Final = "no-such-thing"
PARAM: Final = re.compile(r"{(\w+)(?::\w+)?}")
READ_METHODS: Final = frozenset({"GET"})
NOT_FOUND: Final = frozenset({"not-found", "order-not-found"})


def headers(name: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}", **extra}


_counter = iter(range(1, 1_000_000))


def commanding(name: str = "boss") -> dict[str, str]:
    return headers(name, **{"Idempotency-Key": f"probe-{next(_counter)}"})


@dataclass
class AccountWorld:
    """What one account has, by kind of id, for the probes."""

    account: str
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> an id of it
    markers: set[str] = field(default_factory=set)  # what its answers show, as JSON text

    def remember(self, param: str | None, *values: str) -> None:
        for value in values:
            if param is not None:
                self.ids.setdefault(param, value)
            self.markers.add(json.dumps(value))


async def build_account(
    client: httpx.AsyncClient, hub: Hub, account: str, *, invoices: bool
) -> AccountWorld:
    world = AccountWorld(account=account)
    world.markers.add(f'"account":"{account}"')
    world.markers.add(f'"name":"{account}"')
    channel_account = hub.channels.account(CHANNEL, account)
    assert isinstance(channel_account, StubAccount)
    order = await apply_snapshot(
        hub,
        channel_account,
        snapshot_from({"id": f"{account}-CH-1", "lines": [{"id": "a", "quantity": 3}]}),
    )
    world.remember("order_id", order.id, order.channel_order_id)
    accepted = await client.post(f"{PREFIX}/orders/{order.id}/accept", headers=commanding())
    assert accepted.status_code == 202, accepted.text
    world.remember(None, accepted.json()["command_id"])
    await dispatch_command(hub, accepted.json()["command_id"])
    detail = (await client.get(f"{PREFIX}/orders/{order.id}", headers=headers("boss"))).json()
    line_id = detail["lines"][0]["id"]
    world.remember("fulfilment_id", *(f["id"] for f in detail["fulfilments"]))
    shipped = []
    for n in (1, 2):
        response = await client.post(
            f"{PREFIX}/orders/{order.id}/shipments",
            headers=commanding(),
            json={
                "carrier": "dhl",
                "tracking_number": f"{account}-T{n}",
                "items": [{"line_id": line_id, "quantity": 1}],
            },
        )
        assert response.status_code == 202, response.text
        shipped.append(response.json()["command_id"])
    channel_account.refuse_next = "the channel says no"
    await dispatch_command(hub, shipped[0])  # failed for good: a permanent refusal
    await dispatch_command(hub, shipped[1])  # held behind it
    world.remember("command_id", *shipped)

    if invoices:
        uploaded = await client.post(
            f"{PREFIX}/orders/{order.id}/invoices",
            headers=commanding(),
            files={"file": ("invoice.pdf", PDF, "application/pdf")},
            data={"number": f"INV-{account}"},
        )
        assert uploaded.status_code == 202, uploaded.text
        world.remember(None, uploaded.json()["command_id"])
        world.remember("invoice_id", uploaded.json()["details"]["invoice_id"])

    stored = await store_message(
        hub,
        channel=CHANNEL,
        account=account,
        body=b"this is not JSON",
        headers={},
        key=f"bad-{account}",
    )
    assert await process_message(hub, stored.message_id) is Processed.FAILED
    world.remember("message_id", stored.message_id)
    return world


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the OpenAPI document writes it: /api/v1/orders/{order_id}

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    def filled(self, ids: dict[str, str]) -> str:
        return PARAM.sub(lambda match: ids[match.group(1)], self.path)


async def api_routes(app: Litestar, client: httpx.AsyncClient) -> list[Route]:
    """Every route under the API prefix, from the route table; the OpenAPI document lists
    exactly the same ones."""
    table = {
        Route(method, route.path_format)
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith(PREFIX)
        for method in route.route_handler_map
        if method not in {"HEAD", "OPTIONS"}
    }
    document = (await client.get("/schema/openapi.json")).json()
    documented = {
        Route(method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith(PREFIX)
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert table == documented
    return sorted(table, key=lambda r: (r.path, r.method))


Snapshot = Callable[[], Awaitable[Any]]


async def observed(client: httpx.AsyncClient, extra: Snapshot | None = None) -> Any:
    """Everything an unlimited key can see (and what the caller adds: the queue)."""
    seen: dict[str, Any] = {}
    for path in (
        "/orders?limit=500",
        "/ops/failed-commands",
        "/ops/held-commands",
        "/ops/failed-messages",
        "/feed?limit=1000",
    ):
        seen[path] = (await client.get(f"{PREFIX}{path}", headers=headers("boss"))).json()
    for order in seen["/orders?limit=500"]["orders"]:
        detail = await client.get(f"{PREFIX}/orders/{order['id']}", headers=headers("boss"))
        seen[order["id"]] = detail.json()
    if extra is not None:
        seen["extra"] = await extra()
    return seen


async def send(client: httpx.AsyncClient, route: Route, path: str, key: str) -> Any:
    if route.method == "GET":
        return await client.get(path, headers=headers(key))
    return await client.request(route.method, path, headers=commanding(key), json={})


def shows(text: str, markers: Iterable[str]) -> list[str]:
    compact = text.replace(": ", ":").replace(", ", ",")
    return sorted(marker for marker in markers if marker in compact)


async def probe(
    app: Litestar,
    client: httpx.AsyncClient,
    *,
    key: str,
    hidden: list[AccountWorld],
    visible: list[AccountWorld],
    extra_state: Snapshot | None = None,
) -> list[Route]:
    """Probe every route with ``key``: nothing of ``hidden`` is shown or reachable,
    ``visible`` is shown by the reads. Returns the routes probed."""
    routes = await api_routes(app, client)
    hidden_markers = set().union(*(w.markers for w in hidden))
    visible_markers = set().union(*(w.markers for w in visible))
    controls: list[tuple[Route, str]] = []
    for route in routes:
        if route.params:
            target = next(w for w in hidden if set(route.params) <= set(w.ids))
            path = route.filled(target.ids)
            before = await observed(client, extra_state)
            response = await send(client, route, path, key)
            assert response.status_code == 404, (route, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            body = response.json()
            assert body["rule"] in NOT_FOUND, (route, body)
            unknown = await send(
                client, route, route.filled(dict.fromkeys(target.ids, UNKNOWN)), key
            )
            assert unknown.status_code == 404
            assert (unknown.json()["type"], unknown.json()["title"]) == (
                body["type"],
                body["title"],
            )
            named = [v for v in target.ids.values() if v in body["detail"]]
            detail = body["detail"]
            for value in named:
                detail = detail.replace(value, UNKNOWN)
            assert detail == unknown.json()["detail"], (route, body, unknown.json())
            assert await observed(client, extra_state) == before, route
            controls.append((route, path))
        else:
            assert route.method in READ_METHODS, f"classify {route} for limited API keys"
            limited = await client.get(route.path, headers=headers(key))
            assert limited.status_code == 200, (route, limited.text)
            assert shows(limited.text, hidden_markers) == [], route
            everything = await client.get(route.path, headers=headers("boss"))
            assert shows(everything.text, hidden_markers), route
            if visible:
                assert shows(limited.text, visible_markers), route
    for route, path in controls:
        response = await send(client, route, path, "boss")
        assert response.status_code != 404, (route, response.text)
    return routes
