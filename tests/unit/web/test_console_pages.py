"""The console's pages over fakes: what needs a person, orders, one order, actions, and
bad input answered with a 4xx page (escaped, never a 500)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from orderhub.adapters.persistence.health import UnitOfWorkAccountHealth
from orderhub.application.ports import CommandState
from orderhub.application.services.intake import Processed, apply_snapshot, process_message
from orderhub.domain.entities import Shipment, ShipmentItem
from orderhub.domain.model import Order
from orderhub.domain.values import Customer

from .console_support import post_form, sign_in
from .support import CHANNEL, Harness, commanding, snapshot_from
from .test_web_ops import fail_a_command

SCRIPT = "<script>alert(1)</script>"


async def seed_customer(harness: Harness, name: str, **extra: object) -> Order:
    snapshot = snapshot_from(
        {"id": extra.pop("id", "CH-X"), "lines": [{"id": "a", "quantity": 1}], **extra}
    )
    snapshot = dataclasses.replace(snapshot, customer=Customer(name=name, email="c@example.com"))
    return await apply_snapshot(
        harness.hub, harness.hub.channels.account(CHANNEL, "main"), snapshot
    )


async def test_overview_shows_what_needs_a_person(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    soon = (harness.clock.now() + timedelta(hours=2)).isoformat()
    late = await harness.seed(channel_order_id="LATE-1", ship_by=soon)
    body = b"not json"
    stored = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    assert await process_message(harness.hub, stored.json()["message_id"]) is Processed.FAILED
    await sign_in(harness.client)
    page = await harness.client.get("/console/")
    assert page.status_code == 200
    html = page.text
    assert "Failed commands (1)" in html
    assert f"/console/commands/{command_id}/retry" in html
    assert "HTTP 422" in html
    assert "Failed inbox messages (1)" in html
    assert stored.json()["message_id"] in html
    assert "Ship-by past or within 24 h (1)" in html
    assert late.channel_order_id in html
    assert "Commands pending" in html
    assert "Feed head" in html
    assert "<svg" in html
    assert "Orders received per hour" in html
    assert "stub / main" in html


async def test_a_customer_named_script_is_shown_escaped_everywhere(harness: Harness) -> None:
    order = await seed_customer(harness, SCRIPT, id=SCRIPT, order_number=SCRIPT)
    await sign_in(harness.client)
    for path in (
        "/console/",
        f"/console/orders?q={SCRIPT}",
        f"/console/orders/{order.id}",
        f"/console/orders/{order.id}/messages",
        "/console/orders?q=%3Cscript",
    ):
        page = await harness.client.get(path)
        assert page.status_code == 200, path
        assert "<script>" not in page.text, path
    found = await harness.client.get("/console/orders", params={"q": "script>alert"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in found.text


async def test_search_by_channel_id_number_customer_or_sku(harness: Harness) -> None:
    order = await seed_customer(harness, "Ada Lovelace", id="CH-777", order_number="N-42")
    other = await harness.seed(channel_order_id="CH-other")
    await sign_in(harness.client)
    for term in ("ch-777", "N-42", "lovelace", "C@EXAMPLE", "SKU-a"):
        page = await harness.client.get("/console/orders", params={"q": term})
        assert f"/console/orders/{order.id}" in page.text, term
    page = await harness.client.get("/console/orders", params={"q": "lovelace"})
    assert f"/console/orders/{other.id}" not in page.text


async def test_filters_as_in_the_api_and_bad_ones_are_400(harness: Harness) -> None:
    order = await harness.seed()
    await sign_in(harness.client)
    page = await harness.client.get("/console/orders", params={"status": "awaiting_acceptance"})
    assert f"/console/orders/{order.id}" in page.text
    page = await harness.client.get("/console/orders", params={"status": "shipped"})
    assert f"/console/orders/{order.id}" not in page.text
    for params in (
        {"status": "nope"},
        {"attention": "maybe"},
        {"fulfilled_by": "x"},
        {"ship_by_before": "yesterday"},
        {"cursor": "!!"},
        {"q": "x" * 500},
    ):
        bad = await harness.client.get("/console/orders", params=params)
        assert bad.status_code == 400, params
        assert "text/html" in bad.headers["content-type"]


async def test_unknown_things_are_404_pages(harness: Harness) -> None:
    await sign_in(harness.client)
    for path in (
        "/console/orders/nope",
        "/console/orders/nope/messages",
        "/console/messages/nope",
        "/console/commands/nope/retry",
        "/console/commands/nope/explode",
        "/console/no/such/page",
    ):
        page = await harness.client.get(path)
        assert page.status_code == 404, path
        assert "text/html" in page.headers["content-type"]


async def test_the_order_page_shows_everything(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    order_id = harness.db.commands[command_id].order_id
    order = harness.db.orders[order_id]
    order.shipments.append(
        Shipment(
            id="s1",
            fulfilment_id=None,
            carrier="dhl",
            tracking_number="JD1",
            tracking_url="javascript:alert(1)",
            items=[ShipmentItem(line_id=order.lines[0].id, quantity=1)],
            shipped_at=harness.clock.now(),
        )
    )
    await sign_in(harness.client)
    page = await harness.client.get(f"/console/orders/{order_id}")
    html = page.text
    assert page.status_code == 200
    assert "channel says" in html
    assert "created" in html
    assert "accept" in html
    assert "HTTP 422" in html
    assert "failed" in html
    assert "order.received" in html  # the timeline
    assert "JD1" in html
    assert 'href="javascript:' not in html
    assert f"/console/orders/{order_id}/messages" in html


async def test_retry_asks_first_then_records_who_did_it(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    order_id = harness.db.commands[command_id].order_id
    await sign_in(harness.client)
    confirm = await harness.client.get(f"/console/commands/{command_id}/retry")
    assert confirm.status_code == 200
    assert "Send this command to the marketplace again" in confirm.text
    assert harness.db.commands[command_id].state is CommandState.FAILED  # nothing yet
    done = await post_form(
        harness.client,
        f"/console/commands/{command_id}/retry",
        page=f"/console/commands/{command_id}/retry",
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/orders/{order_id}?done=command_retried"
    assert harness.db.commands[command_id].state is CommandState.PENDING
    assert harness.queue.commands == [(command_id, 0)]
    (event,) = [e for e in harness.db.feed if e.type == "operator.action"]
    assert event.data == {"action": "command_retried", "by": "operator", "command_id": command_id}
    assert event.order_id == order_id
    again = await post_form(
        harness.client, f"/console/commands/{command_id}/retry", page=f"/console/orders/{order_id}"
    )
    assert again.status_code == 409
    assert "text/html" in again.headers["content-type"]


async def test_abandon_resync_message_retry_and_resolve(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    order_id = harness.db.commands[command_id].order_id
    await sign_in(harness.client)
    page = f"/console/orders/{order_id}"
    abandoned = await post_form(
        harness.client, f"/console/commands/{command_id}/abandon", page=page
    )
    assert abandoned.status_code == 303
    assert harness.db.commands[command_id].state is CommandState.ABANDONED

    account = harness.hub.channels.account(CHANNEL, "main")
    order = harness.db.orders[order_id]
    account.shows[order.channel_order_id] = {
        "id": order.channel_order_id,
        "lines": [{"id": "a", "quantity": 2}],
    }  # type: ignore[attr-defined]
    confirm = await harness.client.get(f"/console/orders/{order_id}/resync")
    assert "Read order" in confirm.text
    resynced = await post_form(harness.client, f"{page}/resync", page=page)
    assert resynced.status_code == 303

    body = b"not json"
    stored = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    message_id = stored.json()["message_id"]
    await process_message(harness.hub, message_id)
    message_page = f"/console/messages/{message_id}"
    retried = await post_form(harness.client, f"{message_page}/retry", page=message_page)
    assert retried.status_code == 303

    resolved = await post_form(harness.client, f"{page}/attention/resolve", page=page)
    assert resolved.status_code == 303
    actions = [e.data["action"] for e in harness.db.feed if e.type == "operator.action"]
    assert actions == [
        "command_abandoned",
        "order_resynced",
        "message_retried",
        "attention_resolved",
    ]
    assert {e.data["by"] for e in harness.db.feed if e.type == "operator.action"} == {"operator"}


async def test_the_raw_messages_are_one_click_away_escaped(harness: Harness) -> None:
    body = b'{"id": "CH-9", "lines": [{"id": "a", "quantity": 1}], "note": "<b>hi</b>"}'
    stored = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    message_id = stored.json()["message_id"]
    harness.db.inbox[message_id].order_key = "CH-9"  # the stub adapter reads no order key
    await process_message(harness.hub, message_id)
    order_id = next(iter(harness.db.orders))
    await sign_in(harness.client)
    page = await harness.client.get(f"/console/orders/{order_id}/messages")
    assert page.status_code == 200
    assert "&lt;b&gt;hi&lt;/b&gt;" in page.text
    assert "<b>hi</b>" not in page.text
    one = await harness.client.get(f"/console/messages/{stored.json()['message_id']}")
    assert "webhook-signature: ***" in one.text


async def test_static_assets_are_served_from_the_package(harness: Harness) -> None:
    css = await harness.client.get("/console/static/console.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]


async def test_an_accept_through_the_api_is_not_an_operator_action(harness: Harness) -> None:
    order = await harness.seed()
    await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())
    assert not [e for e in harness.db.feed if e.type == "operator.action"]


async def test_overview_shows_each_accounts_token_and_job_health(harness: Harness) -> None:
    health = UnitOfWorkAccountHealth(harness.hub.uow, harness.clock)
    await health.note(CHANNEL, "main", "job poll", ok=True)
    await health.note(CHANNEL, "main", "token", ok=True)
    harness.clock.advance(30 * 60)
    await health.note(CHANNEL, "main", "token", ok=False, detail=f"refused: {SCRIPT}")
    harness.clock.advance(5 * 60)
    await health.note(CHANNEL, "main", "token", ok=False, detail="endpoint answered 503")
    await health.flush()
    await sign_in(harness.client)
    html = (await harness.client.get("/console/")).text
    assert "Channel accounts" in html
    assert "job poll: ok" in html
    # failing since the first failure, with the last one's words, and when it last worked
    assert "token: failing</strong> for 5 min (last ok 35 min ago): endpoint answered 503" in html
    await health.note(CHANNEL, "main", "token", ok=False, detail=SCRIPT)
    await health.flush()
    html = (await harness.client.get("/console/")).text
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
