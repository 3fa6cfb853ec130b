"""API keys limited to channels and accounts (issue 11): every route refuses or filters
what lies outside the limit; lists page fully; the feed skips the others' events."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.params import FromPath

from orderhub.application.access import AccountLimit
from orderhub.application.services.operations import retry_message
from orderhub.application.services.queries import FEED_POLL_SECONDS, read_feed_page
from orderhub.channels.registry import ChannelRegistry
from orderhub.domain.capabilities import Capabilities
from orderhub.entrypoints.web import ApiKey, WebSettings, create_app
from orderhub.entrypoints.web.limits import check_routes
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue

from .console_support import sign_in
from .limits_probe import (
    KEYS,
    LIMITED,
    OWN_ACCOUNT,
    PREFIX,
    SECRETS,
    AccountWorld,
    build_account,
    headers,
    probe,
)
from .support import FULL, Harness, fake_hub, stub_registry

HIDDEN_ACCOUNT = "main"


@pytest.fixture
def capabilities() -> Capabilities:
    return dataclasses.replace(FULL, invoices=True)  # account main takes invoices


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=KEYS, max_body_bytes=64 * 1024)


async def worlds(harness: Harness) -> tuple[AccountWorld, AccountWorld]:
    hidden = await build_account(harness.client, harness.hub, HIDDEN_ACCOUNT, invoices=True)
    own = await build_account(harness.client, harness.hub, OWN_ACCOUNT, invoices=False)
    return hidden, own


async def queued(harness: Harness) -> Any:
    return (list(harness.queue.commands), list(harness.queue.messages))


@pytest.mark.parametrize(
    ("key", "sees_own"), [("tpl", True), ("idle-only", False)], ids=["account", "channel"]
)
async def test_every_route_refuses_or_filters_what_lies_outside_the_limit(
    harness: Harness, key: str, sees_own: bool
) -> None:
    hidden, own = await worlds(harness)

    async def extra() -> Any:
        return await queued(harness)

    routes = await probe(
        harness.app,
        harness.client,
        key=key,
        hidden=[hidden] if sees_own else [hidden, own],
        visible=[own] if sees_own else [],
        extra_state=extra,
    )
    probed = {(r.method, r.path) for r in routes}
    # the probe found the routes it must (a sample: it enumerates them itself)
    assert ("GET", f"{PREFIX}/orders/{{order_id}}") in probed
    assert ("POST", f"{PREFIX}/ops/messages/{{message_id}}/retry") in probed
    assert ("GET", f"{PREFIX}/feed") in probed
    assert len(probed) >= 20


async def test_a_limited_key_reaches_its_own_orders(harness: Harness) -> None:
    _, own = await worlds(harness)
    order_id = own.ids["order_id"]
    detail = await harness.client.get(f"{PREFIX}/orders/{order_id}", headers=headers("tpl"))
    assert detail.status_code == 200
    retried = await harness.client.post(
        f"{PREFIX}/ops/commands/{own.ids['command_id']}/retry", headers=headers("tpl")
    )
    assert retried.status_code == 202, retried.text
    channels = await harness.client.get(f"{PREFIX}/channels", headers=headers("tpl"))
    assert [
        (c["name"], [a["name"] for a in c["accounts"]]) for c in channels.json()["channels"]
    ] == [("stub", [OWN_ACCOUNT])]
    idle = await harness.client.get(f"{PREFIX}/channels", headers=headers("idle-only"))
    assert [(c["name"], c["accounts"]) for c in idle.json()["channels"]] == [("idle", [])]


async def test_orders_pages_stay_full_and_the_cursor_right(harness: Harness) -> None:
    for n in range(7):
        for account in (HIDDEN_ACCOUNT, OWN_ACCOUNT, HIDDEN_ACCOUNT):
            await harness.seed(account=account, channel_order_id=f"{account}-{n}")
    everything = await harness.client.get(f"{PREFIX}/orders?limit=500", headers=headers("boss"))
    expected = [o["id"] for o in everything.json()["orders"] if o["account"] == OWN_ACCOUNT]
    assert len(expected) == 7
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        query = f"{PREFIX}/orders?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await harness.client.get(query, headers=headers("tpl"))).json()
        ids = [o["id"] for o in page["orders"]]
        seen += ids
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(ids) == 1  # 7 = 2 + 2 + 2 + 1: every page but the last is full
            break
        assert len(ids) == 2
    assert seen == expected
    # a filter the limit excludes is empty, not an error
    other = await harness.client.get(
        f"{PREFIX}/orders?account={HIDDEN_ACCOUNT}", headers=headers("tpl")
    )
    assert other.json() == {"orders": [], "next_cursor": None}


async def read_feed(harness: Harness, key: str, after: int, limit: int) -> dict[str, Any]:
    response = await harness.client.get(
        f"{PREFIX}/feed?after={after}&limit={limit}", headers=headers(key)
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_the_feed_of_a_limited_key_is_its_own_events_gapless(harness: Harness) -> None:
    hidden, own = await worlds(harness)
    everything = (await read_feed(harness, "boss", 0, 1000))["events"]
    own_orders = {own.ids["order_id"]}
    expected = [e["seq"] for e in everything if e["order_id"] in own_orders]
    assert expected
    assert len(expected) < len(everything)
    seen: list[int] = []
    after = 0
    for _ in range(len(everything) + 2):
        page = await read_feed(harness, "tpl", after, 1)
        seen += [e["seq"] for e in page["events"]]
        assert all(e["order_id"] in own_orders for e in page["events"])
        if not page["events"]:
            break
        after = page["next_cursor"]
    assert seen == expected
    head = everything[-1]["seq"]
    # a reader that has seen all its own events moves to the head: the others' skipped
    assert page["next_cursor"] == head
    assert (await read_feed(harness, "idle-only", 0, 100)) == {"events": [], "next_cursor": head}

    # another account's new event is skipped; an own one is read after it
    await harness.seed(account=HIDDEN_ACCOUNT, channel_order_id="later-hidden")
    quiet = await read_feed(harness, "tpl", head, 100)
    assert quiet == {"events": [], "next_cursor": head + 1}
    mine = await harness.seed(account=OWN_ACCOUNT, channel_order_id="later-own")
    news = await read_feed(harness, "tpl", head + 1, 100)
    assert [(e["seq"], e["order_id"]) for e in news["events"]] == [(head + 2, mine.id)]
    assert news["next_cursor"] == head + 2
    assert hidden.ids["order_id"] not in str(news)


async def test_events_of_no_order_are_read_by_unlimited_keys_only(harness: Harness) -> None:
    _, own = await worlds(harness)
    # an operator's action on a message (of the limited key's own account) names no order
    await retry_message(harness.hub, own.ids["message_id"], by="operator")
    newest = (await read_feed(harness, "boss", 0, 1000))["events"][-1]
    assert (newest["type"], newest["order_id"]) == ("operator.action", None)
    limited = await read_feed(harness, "tpl", newest["seq"] - 1, 100)
    assert limited == {"events": [], "next_cursor": newest["seq"]}


async def test_a_limited_key_cannot_sign_in_to_the_console(harness: Harness) -> None:
    refused = await sign_in(harness.client, key=SECRETS["tpl"])
    assert refused.status_code == 403
    assert "limited to some channels and accounts" in refused.text
    assert "orderhub_console=" not in refused.headers.get("set-cookie", "")
    assert (await sign_in(harness.client, key=SECRETS["boss"])).status_code == 303


def test_a_limit_naming_an_unknown_account_or_channel_is_refused(
    registry: ChannelRegistry,
) -> None:
    hub = fake_hub(registry, db=FakeDatabase(), clock=FixedClock(), queue=RecordingQueue())
    for limit, message in (
        (AccountLimit.of(accounts=["stub/nope"]), "unknown accounts: ['stub/nope']"),
        (AccountLimit.of(channels=["topii"]), "unknown channels: ['topii']"),
    ):
        key = ApiKey("tpl", SECRETS["tpl"], frozenset({"orders:read"}), limit)
        with pytest.raises(ValueError, match=re.escape(message)):
            create_app(hub, WebSettings(api_keys=(key,)))
    create_app(hub, WebSettings(api_keys=KEYS))  # known ones are fine


def test_the_limit_admits_named_channels_and_accounts() -> None:
    limit = AccountLimit.of(channels=["topi"], accounts=["octopia/shop-fr"])
    assert limit.admits("topi", "anything")
    assert limit.admits("octopia", "shop-fr")
    assert not limit.admits("octopia", "shop-de")
    assert not limit.admits(None, None)
    assert not limit.admits("octopia", None)
    assert limit.describe() == "topi, octopia/shop-fr"
    for bad in ("topi", "/x", "topi/", "a/b/c"):
        with pytest.raises(ValueError, match="not channel/account"):
            AccountLimit.of(accounts=[bad])
    with pytest.raises(ValueError, match="at least one"):
        AccountLimit()


def test_stub_registry_has_the_accounts_the_probe_uses() -> None:
    names = {(a.channel, a.name) for a in stub_registry().accounts()}
    assert {("stub", HIDDEN_ACCOUNT), ("stub", OWN_ACCOUNT)} <= names


def test_an_app_with_a_path_parameter_the_check_does_not_know_is_refused() -> None:
    @get("/api/v1/widgets/{widget_id:str}", sync_to_thread=False)
    def widget(widget_id: FromPath[str]) -> str:
        return widget_id

    @get("/api/v1/orders/{order_id:str}/parts/{invoice_id:str}", sync_to_thread=False)
    def part(order_id: FromPath[str], invoice_id: FromPath[str]) -> str:
        return invoice_id

    @get("/api/v1/parts/{invoice_id:str}", sync_to_thread=False)
    def orphan(invoice_id: FromPath[str]) -> str:
        return invoice_id

    with pytest.raises(RuntimeError, match=re.escape("path parameters ['widget_id']")):
        check_routes(Litestar([widget]), prefix=PREFIX)
    check_routes(Litestar([part]), prefix=PREFIX)  # an invoice of the order the path names
    with pytest.raises(RuntimeError, match="names a part of an order without the order"):
        check_routes(Litestar([orphan]), prefix=PREFIX)
    check_routes(Litestar([widget]), prefix="/elsewhere")


async def test_a_limited_long_poll_waits_for_its_own_event(harness: Harness) -> None:
    head = (await read_feed(harness, "boss", 0, 1000))["next_cursor"]
    limit = LIMITED["tpl"]
    waiting = asyncio.create_task(
        read_feed_page(harness.hub, after=head, limit=10, wait_seconds=20, within=limit)
    )
    await asyncio.sleep(0)
    await harness.seed(account=HIDDEN_ACCOUNT, channel_order_id="while-waiting")
    for _ in range(3):  # the poll sees the other account's event and keeps waiting
        await asyncio.sleep(FEED_POLL_SECONDS)
    assert not waiting.done()
    mine = await harness.seed(account=OWN_ACCOUNT, channel_order_id="mine")
    page = await asyncio.wait_for(waiting, timeout=20)
    assert [e.order_id for e in page.entries] == [mine.id]
    assert page.next_cursor == page.entries[-1].seq
