"""The simulator's ``hold`` fault: a call waits, logged as held, until released (or its
limit), and is then carried out even though its caller may be gone."""

from __future__ import annotations

import asyncio

import httpx
from spresso_hub import SpressoDriver

from orderhub_spresso.simulator.control import TWO_FULFILMENTS

DRIVER_TOKEN = "conformance-driver-token"  # the simulator's static token (conftest)


async def held_calls(http: httpx.AsyncClient, url: str) -> list[dict[str, object]]:
    calls = (await http.get(f"{url}/_sim/calls", params={"method": "PUT"})).json()
    return [c for c in calls if c.get("held")]


async def test_a_held_call_waits_until_released_and_is_then_carried_out(
    driver: SpressoDriver, spresso_url: str
) -> None:
    sid = await driver.create_order(TWO_FULFILMENTS)
    order = await driver.order(sid)
    fid = order["fulfillments"][1]["id"]
    variant = order["fulfillments"][1]["fulfillmentVariants"][0]["variant"]
    path = f"/v1/fulfillments/{fid}"
    async with httpx.AsyncClient(timeout=30) as http:
        fault = {"path": path, "method": "PUT", "hold": True, "hold_seconds": 60}
        (await http.post(f"{spresso_url}/_sim/faults", json=fault)).raise_for_status()
        body = {"status": "in_transit", "fulfillmentVariants": [
            {"variant": variant, "fulfilledQuantity": 1}
        ]}  # fmt: skip
        call = asyncio.create_task(
            http.put(
                f"{spresso_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {DRIVER_TOKEN}"},
            )
        )
        for _ in range(2000):  # bounded: until the call is logged as held
            if await held_calls(http, spresso_url):
                break
            await asyncio.sleep(0.01)
        (held,) = await held_calls(http, spresso_url)
        assert held["status_code"] is None
        assert not call.done()
        assert (await driver.order(sid))["fulfillments"][1]["status"] == "order_placed"

        released = (await http.post(f"{spresso_url}/_sim/faults/release")).json()
        assert released == {"released": 1}
        answer = await asyncio.wait_for(call, timeout=30)
        assert answer.status_code == 200, answer.text
        assert await held_calls(http, spresso_url) == []
    assert (await driver.order(sid))["fulfillments"][1]["status"] == "in_transit"
