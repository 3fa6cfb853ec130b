"""What the warehouse and its operators see when the hub and a channel disagree, and what
they do about it over the API: attention, held commands, abandon, resync, resolve."""

from __future__ import annotations

from typing import Any

from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message

from .support import CHANNEL, Harness, StubAccount, assert_problem, auth, commanding


def stub(harness: Harness) -> StubAccount:
    account = harness.hub.channels.account(CHANNEL, "main")
    assert isinstance(account, StubAccount)
    return account


async def command(harness: Harness, order_id: str, action: str, body: Any = None) -> str:
    response = await harness.client.post(
        f"/api/v1/orders/{order_id}/{action}", json=body, headers=commanding()
    )
    assert response.status_code == 202, response.text
    command_id: str = response.json()["command_id"]
    return command_id


async def ops(harness: Harness, path: str, body: Any = None) -> Any:
    return await harness.client.post(f"/api/v1/ops{path}", json=body, headers=auth("operator"))


async def test_a_refused_decision_shows_on_the_order_and_holds_the_next_command(
    harness: Harness,
) -> None:
    order = await harness.seed()
    accept_id = await command(harness, order.id, "accept")
    ship_id = await command(
        harness,
        order.id,
        "shipments",
        {
            "carrier": "dhl",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 1}],
        },
    )
    stub(harness).refuse_next = "the order was cancelled"
    assert await dispatch_command(harness.hub, accept_id) is Dispatched.FAILED
    assert await dispatch_command(harness.hub, ship_id) is Dispatched.HELD

    listed = await harness.client.get("/api/v1/orders?attention=true", headers=auth("reader"))
    assert [o["id"] for o in listed.json()["orders"]] == [order.id]
    calm = await harness.client.get("/api/v1/orders?attention=false", headers=auth("reader"))
    assert calm.json()["orders"] == []
    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    assert body["needs_attention"] is True
    [reason] = body["attention"]
    assert (reason["code"], reason["ref"]) == ("command_failed", accept_id)
    assert "the order was cancelled" in reason["detail"]
    # the refused accept was undone, but for the unit that left the warehouse: a fact
    assert [(line["accepted"], line["shipped"]) for line in body["lines"]] == [(1, 1)]
    assert body["status"] == "partially_shipped"
    [held] = body["pending_commands"]
    assert (held["id"], held["held_by"]) == (ship_id, accept_id)
    held_list = await harness.client.get("/api/v1/ops/held-commands", headers=auth("operator"))
    assert [c["id"] for c in held_list.json()["commands"]] == [ship_id]

    abandoned = await ops(harness, f"/commands/{accept_id}/abandon")
    assert abandoned.status_code == 202
    assert abandoned.json()["state"] == "abandoned"
    assert harness.queue.commands[-1] == (ship_id, 0)  # the chain goes on
    assert await dispatch_command(harness.hub, ship_id) is Dispatched.SUCCEEDED
    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    assert (body["needs_attention"], body["pending_commands"]) == (False, [])
    feed = [e.type for e in harness.db.feed if e.order_id == order.id]
    assert feed.count("order.attention_required") == feed.count("order.attention_cleared") == 1
    assert_problem(await ops(harness, f"/commands/{accept_id}/abandon"), 409, "abandon-not-failed")


async def test_resync_reads_the_order_again_from_its_channel(harness: Harness) -> None:
    order = await harness.seed(status="created")
    not_supported = await ops(harness, f"/orders/{order.id}/resync")
    assert_problem(not_supported, 409, "resync-not-supported")
    stub(harness).shows[order.channel_order_id] = {
        "id": order.channel_order_id,
        "status": "shipped-by-now",
        "lines": [{"id": "a", "quantity": 2, "price": 1999}],
    }

    answer = await ops(harness, f"/orders/{order.id}/resync")
    assert answer.status_code == 202, answer.text
    assert answer.json()["duplicate"] is False
    assert await process_message(harness.hub, answer.json()["message_id"]) is Processed.PROCESSED
    assert harness.db.orders[order.id].channel_status == "shipped-by-now"
    version = harness.db.orders[order.id].version
    again = await ops(harness, f"/orders/{order.id}/resync")  # every read is applied...
    assert again.json()["duplicate"] is False
    assert await process_message(harness.hub, again.json()["message_id"]) is Processed.PROCESSED
    assert harness.db.orders[order.id].version == version  # ...and changes nothing here
    assert_problem(await ops(harness, "/orders/nope/resync"), 404, "order-not-found")


async def test_resolving_attention_clears_what_a_person_handled(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": 2}])
    # the channel adds a line: the order shows it, and asks for a person
    await harness.seed(
        channel_order_id=order.channel_order_id,
        lines=[{"id": "a", "quantity": 2}, {"id": "b", "quantity": 1}],
    )
    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    assert [r["code"] for r in body["attention"]] == ["channel_edited_lines"]

    refused = await ops(
        harness, f"/orders/{order.id}/attention/resolve", {"code": "command_failed"}
    )
    assert_problem(refused, 409, "attention-needs-command-decision")
    cleared = await ops(harness, f"/orders/{order.id}/attention/resolve")
    assert cleared.status_code == 200
    assert cleared.json() == {"cleared": 1}
    body = (await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))).json()
    assert (body["needs_attention"], body["attention"]) == (False, [])
    unknown = await ops(harness, f"/orders/{order.id}/attention/resolve", {"code": "nonsense"})
    assert_problem(unknown, 422, "validation-error")
    assert (await ops(harness, f"/orders/{order.id}/attention/resolve")).json() == {"cleared": 0}
    forbidden = await harness.client.post(
        f"/api/v1/ops/orders/{order.id}/attention/resolve", headers=auth("writer")
    )
    assert_problem(forbidden, 403, "forbidden")


async def test_orders_the_channel_ships_can_be_left_out_of_the_warehouse_s_list(
    harness: Harness,
) -> None:
    ours = await harness.seed()
    theirs = await harness.seed(
        lines=({"id": "a", "quantity": 1, "fulfilment": "FBC"},),
        fulfilments={"FBC": "channel"},
    )
    both = await harness.seed(
        lines=(
            {"id": "a", "quantity": 1, "fulfilment": "OWN"},
            {"id": "b", "quantity": 1, "fulfilment": "FBC"},
        ),
        fulfilments={"OWN": "seller", "FBC": "channel"},
    )

    async def listed(query: str) -> list[str]:
        response = await harness.client.get(f"/api/v1/orders?{query}", headers=auth("reader"))
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()["orders"]]

    assert await listed("fulfilled_by=seller") == [ours.id]
    assert await listed("fulfilled_by=channel") == [theirs.id]
    assert await listed("fulfilled_by=mixed") == [both.id]
    body = (await harness.client.get(f"/api/v1/orders/{both.id}", headers=auth("reader"))).json()
    assert body["fulfilled_by"] == "mixed"
    wrong = await harness.client.get("/api/v1/orders?fulfilled_by=amazon", headers=auth("reader"))
    assert_problem(wrong, 422, "validation-error")
