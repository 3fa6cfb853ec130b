from __future__ import annotations

from typing import Any

import msgspec

from orderhub.application.ports import CommandKind, CommandState
from orderhub.entrypoints.web.routes.commands import fingerprint
from orderhub.entrypoints.web.schemas import AcceptRequest, LineQuantityIn

from .support import Harness, assert_problem, auth, commanding


async def post(harness: Harness, path: str, payload: Any = None, *, key: str | None = None) -> Any:
    """A WMS command: with ``key`` as its Idempotency-Key, else a fresh one."""
    headers = commanding() if key is None else {**auth("writer"), "Idempotency-Key": key}
    return await harness.client.post(path, json=payload, headers=headers)


def receipt(response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"command_id", "order_id", "kind", "state", "order_status", "details"}
    return body


async def test_accepting_queues_the_channel_call(harness: Harness) -> None:
    order = await harness.seed()
    body = receipt(await post(harness, f"/api/v1/orders/{order.id}/accept"))
    assert body["order_id"] == order.id
    assert body["kind"] == "accept"
    assert body["state"] == "pending"
    assert body["order_status"] == "ready_to_ship"
    command = harness.db.commands[body["command_id"]]
    assert command.kind is CommandKind.ACCEPT
    assert command.state is CommandState.PENDING
    assert harness.queue.commands == [(body["command_id"], 0)]
    assert harness.db.orders[order.id].lines[0].accepted == 2


async def test_accepting_some_units_of_a_line(harness: Harness) -> None:
    order = await harness.seed()
    line = order.lines[0]
    body = receipt(
        await post(
            harness,
            f"/api/v1/orders/{order.id}/accept",
            {"lines": [{"line_id": line.id, "quantity": 1}]},
        )
    )
    assert body["order_status"] == "awaiting_acceptance"
    assert harness.db.orders[order.id].lines[0].accepted == 1


async def test_rejecting(harness: Harness) -> None:
    order = await harness.seed()
    body = receipt(
        await post(harness, f"/api/v1/orders/{order.id}/reject", {"reason": "out_of_stock"})
    )
    assert body["kind"] == "reject"
    assert body["order_status"] == "rejected"
    assert harness.db.commands[body["command_id"]].payload["reason"] == "out_of_stock"


async def test_shipping_with_serial_numbers_then_delivering(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "s", "quantity": 2, "serial": True}])
    line_id = order.lines[0].id
    receipt(await post(harness, f"/api/v1/orders/{order.id}/accept"))
    shipped = receipt(
        await post(
            harness,
            f"/api/v1/orders/{order.id}/shipments",
            {
                "carrier": "DHL",
                "tracking_number": "JD0001",
                "tracking_url": "https://track.example/JD0001",
                "items": [{"line_id": line_id, "quantity": 2, "serial_numbers": ["S1", "S2"]}],
            },
        )
    )
    assert shipped["kind"] == "ship"
    assert shipped["order_status"] == "shipped"
    shipment_id = shipped["details"]["shipment_id"]
    stored = harness.db.orders[order.id]
    assert stored.shipments[0].id == shipment_id
    assert stored.shipments[0].items[0].serial_numbers == ("S1", "S2")
    delivered = receipt(await post(harness, f"/api/v1/orders/{order.id}/deliveries"))
    assert delivered["kind"] == "deliver"
    assert delivered["order_status"] == "delivered"


async def test_a_final_shipment_ships_short(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": 3}])
    receipt(await post(harness, f"/api/v1/orders/{order.id}/accept"))
    body = receipt(
        await post(
            harness,
            f"/api/v1/orders/{order.id}/shipments",
            {
                "carrier": "UPS",
                "tracking_number": "1Z",
                "items": [{"line_id": order.lines[0].id, "quantity": 2}],
                "final": True,
            },
        )
    )
    assert body["order_status"] == "shipped"
    line = harness.db.orders[order.id].lines[0]
    assert (line.shipped, line.cancelled) == (2, 1)
    assert harness.db.orders[order.id].cancellations[0].reason.value == "out_of_stock"


async def test_cancelling(harness: Harness) -> None:
    order = await harness.seed()
    body = receipt(
        await post(
            harness, f"/api/v1/orders/{order.id}/cancellations", {"reason": "customer_request"}
        )
    )
    assert body["kind"] == "cancel"
    assert body["order_status"] == "cancelled"
    assert body["details"]["cancellation_id"]


async def test_deciding_an_open_cancellation_request(harness: Harness) -> None:
    refused = await harness.seed(cancellation={"id": "c-1"})
    assert refused.cancellation_requested
    body = receipt(
        await post(harness, f"/api/v1/orders/{refused.id}/cancellations", {"decision": "refuse"})
    )
    assert body["kind"] == "decide_cancellation"
    assert body["order_status"] == "awaiting_acceptance"
    assert not harness.db.orders[refused.id].cancellation_requested

    granted = await harness.seed(cancellation={"id": "c-2"})
    cancellation_id = granted.cancellations[0].id
    body = receipt(
        await post(
            harness,
            f"/api/v1/orders/{granted.id}/cancellations",
            {"decision": "accept", "cancellation_id": cancellation_id},
        )
    )
    assert body["details"] == {"cancellation_id": cancellation_id}
    assert body["order_status"] == "cancelled"


async def test_the_same_key_and_body_answer_the_first_receipt_once(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": 5}])
    receipt(await post(harness, f"/api/v1/orders/{order.id}/accept"))
    path = f"/api/v1/orders/{order.id}/shipments"
    payload = {
        "carrier": "DHL",
        "tracking_number": "T1",
        "items": [{"line_id": order.lines[0].id, "quantity": 1}],
    }
    first = receipt(await post(harness, path, payload, key="ship-1"))
    commands = len(harness.db.commands)
    # the same request again, its keys in another order
    again = await harness.client.post(
        path,
        content=b'{"items": [{"quantity": 1, "line_id": "%s"}], "tracking_number": "T1",'
        b' "carrier": "DHL"}' % order.lines[0].id.encode(),
        headers={**auth("writer"), "Idempotency-Key": "ship-1", "Content-Type": "application/json"},
    )
    assert receipt(again) == first
    assert len(harness.db.commands) == commands
    assert len(harness.db.orders[order.id].shipments) == 1
    assert harness.db.orders[order.id].lines[0].shipped == 1
    assert [c for c, _ in harness.queue.commands].count(first["command_id"]) == 1


async def test_the_same_key_with_another_body_is_422(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": 5}])
    line_id = order.lines[0].id
    path = f"/api/v1/orders/{order.id}/accept"
    receipt(await post(harness, path, {"lines": [{"line_id": line_id, "quantity": 1}]}, key="k"))
    before = harness.state()
    response = await post(harness, path, {"lines": [{"line_id": line_id, "quantity": 2}]}, key="k")
    assert_problem(response, 422, "idempotency-key-reused")
    assert harness.state() == before


async def test_the_same_key_on_another_order_is_422(harness: Harness) -> None:
    one, two = await harness.seed(), await harness.seed()
    receipt(await post(harness, f"/api/v1/orders/{one.id}/accept", key="k"))
    before = harness.state()
    response = await post(harness, f"/api/v1/orders/{two.id}/accept", key="k")
    assert_problem(response, 422, "idempotency-key-reused")
    assert harness.state() == before


async def test_an_empty_body_and_an_empty_object_are_the_same_request(harness: Harness) -> None:
    order = await harness.seed()
    first = receipt(await post(harness, f"/api/v1/orders/{order.id}/accept", key="k"))
    again = receipt(await post(harness, f"/api/v1/orders/{order.id}/accept", {}, key="k"))
    assert again == first


async def test_without_a_key_a_command_is_refused_and_changes_nothing(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept", headers=auth("writer")
    )
    body = assert_problem(response, 400, "idempotency-key-required")
    assert "Idempotency-Key" in body["detail"]
    assert harness.db.commands == {}
    assert harness.db.orders[order.id].lines[0].accepted == 0


async def test_a_parcel_posted_twice_under_two_keys_is_recorded_once(harness: Harness) -> None:
    """A WMS that retries with a new key (or none it remembers) does not ship twice: the
    same carrier and tracking number with the same items answer the first shipment."""
    order = await harness.seed(lines=[{"id": "a", "quantity": 5}])
    receipt(await post(harness, f"/api/v1/orders/{order.id}/accept"))
    payload = {
        "carrier": "DHL",
        "tracking_number": "T1",
        "items": [{"line_id": order.lines[0].id, "quantity": 1}],
    }
    one = receipt(await post(harness, f"/api/v1/orders/{order.id}/shipments", payload))
    two = receipt(await post(harness, f"/api/v1/orders/{order.id}/shipments", payload))
    assert one["command_id"] == two["command_id"]
    assert two["details"]["replayed"] is True
    assert harness.db.orders[order.id].lines[0].shipped == 1
    other = {**payload, "items": [{"line_id": order.lines[0].id, "quantity": 2}]}
    refused = await post(harness, f"/api/v1/orders/{order.id}/shipments", other)
    assert_problem(refused, 409, "tracking-number-reused")
    next_parcel = {**payload, "tracking_number": "T2"}
    three = receipt(await post(harness, f"/api/v1/orders/{order.id}/shipments", next_parcel))
    assert three["command_id"] != one["command_id"]
    assert harness.db.orders[order.id].lines[0].shipped == 2


async def test_keys_are_scoped_to_the_api_key_that_sends_them(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "a", "quantity": 5}])
    path = f"/api/v1/orders/{order.id}/accept"
    lines = {"lines": [{"line_id": order.lines[0].id, "quantity": 1}]}
    mine = receipt(await post(harness, path, lines, key="shared-key"))
    theirs = await harness.client.post(
        path, json=lines, headers={**auth("other-wms"), "Idempotency-Key": "shared-key"}
    )
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["command_id"] != mine["command_id"]  # not the other client's answer


async def test_an_empty_idempotency_key_is_422(harness: Harness) -> None:
    order = await harness.seed()
    response = await post(harness, f"/api/v1/orders/{order.id}/accept", key="")
    assert_problem(response, 422, "validation-error")


def test_the_fingerprint_covers_method_path_and_canonical_body() -> None:
    body = AcceptRequest(lines=[LineQuantityIn(line_id="a", quantity=1)])
    same = msgspec.json.decode(b'{"lines": [{"quantity": 1, "line_id": "a"}]}', type=AcceptRequest)
    assert fingerprint("POST", "/p", body) == fingerprint("post", "/p", same)
    assert fingerprint("POST", "/p", body) != fingerprint("POST", "/q", body)
    assert fingerprint("POST", "/p", body) != fingerprint("POST", "/p", AcceptRequest())
