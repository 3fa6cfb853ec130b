"""The test channel server: calls recorded once per key, faults, persistence, webhook push."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from orderhub.testing.channel_server import create_app


def client_for(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://channel")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app()) as c:
        yield c


def call(command_id: str = "c1", **payload: Any) -> dict[str, Any]:
    return {"command_id": command_id, "kind": "ship", "order": "CO-1", "payload": payload}


async def send(
    client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None, **headers: str
) -> httpx.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/calls", json=body, headers=headers)


async def calls(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/calls")
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.json()["calls"]
    return found


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"ok": True}


async def test_a_call_is_recorded_once_per_key_and_a_replay_gets_the_first_answer(
    client: httpx.AsyncClient,
) -> None:
    first = await send(client, call("c1", tracking="T1"), "c1")
    replay = await send(client, call("c1", tracking="T1"), "c1")
    other = await send(client, call("c2"), "c2")

    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json() == {"ok": True, "call": 1, "command_id": "c1"}
    assert other.json()["call"] == 2
    recorded = await calls(client)
    assert [(c["key"], c["replays"]) for c in recorded] == [("c1", 1), ("c2", 0)]
    assert recorded[0]["payload"] == {"tracking": "T1"}
    assert recorded[0]["kind"] == "ship"
    assert recorded[0]["order"] == "CO-1"


async def test_a_key_reused_with_another_body_is_refused(client: httpx.AsyncClient) -> None:
    await send(client, call("c1", tracking="T1"), "c1")
    response = await send(client, call("c1", tracking="T2"), "c1")
    assert response.status_code == 422
    assert "another body" in response.json()["message"]
    assert [c["payload"] for c in await calls(client)] == [{"tracking": "T1"}]


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        (call(), None, "Idempotency-Key header is required"),
        ({"command_id": "c1"}, "c1", "missing kind, order, payload"),
        ([1, 2], "c1", "missing command_id"),
    ],
)
async def test_a_malformed_call_is_a_400(
    client: httpx.AsyncClient, body: Any, key: str | None, message: str
) -> None:
    response = await client.post(
        "/calls", json=body, headers={"Idempotency-Key": key} if key else {}
    )
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert await calls(client) == []


async def test_a_token_guards_the_calls() -> None:
    async with client_for(create_app(token="s3cret")) as client:
        assert (await send(client, call(), "c1")).status_code == 401
        wrong = await send(client, call(), "c1", Authorization="Bearer nope")
        assert wrong.status_code == 401
        right = await send(client, call(), "c1", Authorization="Bearer s3cret")
        assert right.status_code == 200
        assert len(await calls(client)) == 1


async def test_injected_statuses_answer_the_next_calls_unrecorded(
    client: httpx.AsyncClient,
) -> None:
    fault = {"kind": "status", "status": 500, "count": 2}
    assert (await client.post("/_faults", json=fault)).status_code == 200

    first = await send(client, call("c1"), "c1")
    second = await send(client, call("c1"), "c1")
    third = await send(client, call("c1"), "c1")

    assert [first.status_code, second.status_code, third.status_code] == [500, 500, 200]
    assert first.json() == {"message": "injected 500"}
    assert [(c["key"], c["replays"]) for c in await calls(client)] == [("c1", 0)]
    assert (await client.get("/_faults")).json() == {"faults": []}


async def test_a_429_carries_retry_after_and_a_message(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_faults",
        json={"kind": "status", "status": 429, "retry_after": 2.5, "message": "slow down"},
    )
    response = await send(client, call(), "c1")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2.5"
    assert response.json() == {"message": "slow down"}


async def test_faults_play_in_the_order_given(client: httpx.AsyncClient) -> None:
    await client.post("/_faults", json={"kind": "status", "status": 503})
    await client.post("/_faults", json={"kind": "status", "status": 400, "message": "bad carrier"})
    listed = (await client.get("/_faults")).json()["faults"]
    assert [f["status"] for f in listed] == [503, 400]
    assert (await send(client, call(), "c1")).status_code == 503
    refused = await send(client, call(), "c1")
    assert (refused.status_code, refused.json()["message"]) == (400, "bad carrier")
    assert (await send(client, call(), "c1")).status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "status", "count": 0},
        {"kind": "hang", "seconds": -1},
        {"kind": "status", "status": "x"},
    ],
)
async def test_a_bad_fault_is_a_400(client: httpx.AsyncClient, fault: dict[str, Any]) -> None:
    response = await client.post("/_faults", json=fault)
    assert response.status_code == 400
    assert (await client.get("/_faults")).json() == {"faults": []}


async def test_a_hung_call_is_recorded_before_its_late_answer(client: httpx.AsyncClient) -> None:
    await client.post("/_faults", json={"kind": "hang", "seconds": 0.4})
    started = time.monotonic()
    pending = asyncio.create_task(send(client, call("c1"), "c1"))
    await asyncio.sleep(0.1)

    assert [c["key"] for c in await calls(client)] == ["c1"]  # recorded, answer not sent
    assert not pending.done()
    response = await pending
    assert time.monotonic() - started >= 0.4
    assert response.json()["call"] == 1
    # the hub's retry after a dead worker finds the record
    replay = await send(client, call("c1"), "c1")
    assert replay.json() == response.json()


async def test_reset_forgets_calls_and_faults(client: httpx.AsyncClient) -> None:
    await send(client, call(), "c1")
    await client.post("/_faults", json={"kind": "status", "status": 500})
    assert (await client.post("/_reset")).json() == {"ok": True}
    assert await calls(client) == []
    assert (await client.get("/_faults")).json() == {"faults": []}
    assert (await send(client, call(), "c1")).json()["call"] == 1


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "channel.json"
    async with client_for(create_app(state_file=state)) as client:
        first = await send(client, call("c1", n=1), "c1")
        await send(client, call("c2"), "c2")
        await send(client, call("c1", n=1), "c1")

    saved = json.loads(state.read_text())
    assert [c["key"] for c in saved["calls"]] == ["c1", "c2"]
    assert not list(state.parent.glob(".*.tmp"))  # written atomically

    async with client_for(create_app(state_file=state)) as client:
        replay = await send(client, call("c1", n=1), "c1")
        assert replay.json() == first.json()
        assert [(c["key"], c["replays"]) for c in await calls(client)] == [("c1", 2), ("c2", 0)]
        third = await send(client, call("c3"), "c3")
        assert third.json()["call"] == 3


async def test_send_order_pushes_the_document_to_the_hubs_webhook() -> None:
    seen: list[httpx.Request] = []

    def hub(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"message_id": "m-1", "duplicate": False})

    order = {"id": "CO-1", "status": "created", "lines": []}
    async with client_for(create_app(webhook_transport=httpx.MockTransport(hub))) as client:
        response = await client.post(
            "/_send_order",
            json={
                "order": order,
                "webhook_url": "http://hub/webhooks/testchannel/main",
                "token": "hook-token",
                "webhook_id": "wh-1",
            },
        )

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == 202
    assert json.loads(answer["body"]) == {"message_id": "m-1", "duplicate": False}
    assert answer["webhook_id"] == "wh-1"
    [request] = seen
    assert str(request.url) == "http://hub/webhooks/testchannel/main"
    assert request.headers["Authorization"] == "Bearer hook-token"
    assert request.headers["webhook-id"] == "wh-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == order


async def test_send_order_makes_up_a_webhook_id() -> None:
    ids: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        ids.append(request.headers["webhook-id"])
        return httpx.Response(200)

    async with client_for(create_app(webhook_transport=httpx.MockTransport(hub))) as client:
        for _ in range(2):
            await client.post("/_send_order", json={"order": {}, "webhook_url": "http://hub/x"})
    assert len(set(ids)) == 2


async def test_send_order_reports_an_unreachable_hub() -> None:
    def hub(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client_for(create_app(webhook_transport=httpx.MockTransport(hub))) as client:
        response = await client.post(
            "/_send_order", json={"order": {}, "webhook_url": "http://hub/x"}
        )
        assert response.status_code == 502
        bad = await client.post("/_send_order", json={"order": {}})
        assert bad.status_code == 400
