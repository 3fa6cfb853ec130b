from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from .support import Harness, assert_problem, auth, commanding


async def feed(harness: Harness, query: str = "") -> Any:
    response = await harness.client.get(f"/api/v1/feed{query}", headers=auth("reader"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_events_in_order_with_their_fields(harness: Harness) -> None:
    order = await harness.seed()
    await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())
    body = await feed(harness)
    events = body["events"]
    assert [e["type"] for e in events] == [
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert body["next_cursor"] == 3
    first = events[0]
    assert set(first) == {"seq", "type", "order_id", "channel", "occurred_at", "data"}
    assert (first["order_id"], first["channel"]) == (order.id, "stub")
    assert first["occurred_at"] == "2026-01-01T12:00:00Z"
    assert first["data"] == {
        "channel_order_id": order.channel_order_id,
        "status": "awaiting_acceptance",
    }


async def test_paging_with_after_and_limit(harness: Harness) -> None:
    for _ in range(3):
        await harness.seed()
    first = await feed(harness, "?limit=2")
    assert [e["seq"] for e in first["events"]] == [1, 2]
    second = await feed(harness, f"?after={first['next_cursor']}&limit=2")
    assert [e["seq"] for e in second["events"]] == [3]
    end = await feed(harness, f"?after={second['next_cursor']}")
    assert end == {"events": [], "next_cursor": 3}


@pytest.mark.parametrize("query", ["?limit=0", "?limit=1001", "?after=-1", "?wait=31", "?wait=x"])
async def test_bad_parameters_are_422(harness: Harness, query: str) -> None:
    response = await harness.client.get(f"/api/v1/feed{query}", headers=auth("reader"))
    assert_problem(response, 422, "validation-error")


async def test_long_poll_returns_empty_after_the_wait(harness: Harness) -> None:
    started = time.monotonic()
    body = await feed(harness, "?after=0&wait=0.3")
    assert body == {"events": [], "next_cursor": 0}
    assert time.monotonic() - started >= 0.3


async def test_long_poll_answers_when_an_event_arrives(harness: Harness) -> None:
    # AsyncTestClient runs the app in a thread of its own; to overlap a write with the
    # held request, run the app on this loop through httpx's ASGI transport.
    app: Any = harness.app  # httpx types the ASGI callable more narrowly than Litestar
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

        async def later() -> None:
            await asyncio.sleep(0.3)
            await harness.seed()

        started = time.monotonic()
        response, _ = await asyncio.gather(
            client.get("/api/v1/feed?wait=10", headers=auth("reader")), later()
        )
    assert [e["type"] for e in response.json()["events"]] == ["order.received"]
    assert 0.3 <= time.monotonic() - started < 5
