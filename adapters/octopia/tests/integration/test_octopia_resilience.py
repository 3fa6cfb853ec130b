"""Polling and failures over HTTP: a lost page, an outage of hours, a 5xx then success,
a token outage, the token quota, a 403 naming the permission."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from octopia_rig import OctopiaRig

from orderhub.application.ports import CommandState
from orderhub.application.services import seller_commands
from orderhub.channels.spi import TransientChannelError
from orderhub.domain.values import OrderStatus
from orderhub_octopia.simulator import TOKEN_PATH, SimulatorControl


def fed(rig: OctopiaRig, order_id: str) -> list[str]:
    return [e.type for e in rig.feed(rig.order(order_id))]


async def test_a_lost_page_is_read_again_and_nothing_is_applied_twice(
    rigs: Callable[..., OctopiaRig], sim: SimulatorControl
) -> None:
    rig = rigs(poll_page_size=2, poll_page_attempts=1)
    ids = [str(sim.create_order(sales_channel="OCTOBE")["orderId"]) for _ in range(5)]
    sim.add_fault("/orders", status=503, query="pageIndex=2")
    with pytest.raises(TransientChannelError):
        await rig.poll()
    assert await rig.cursor() is None  # the cursor did not move past the lost page
    assert await rig.poll() == 3  # the first page again (stored already), then the rest
    assert await rig.cursor() is not None
    for order_id in ids:
        assert fed(rig, order_id).count("order.received") == 1
    assert await rig.poll() == 0


async def test_an_outage_of_hours_is_caught_up(
    rigs: Callable[..., OctopiaRig], sim: SimulatorControl
) -> None:
    rig = rigs(poll_page_size=3)
    first = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    await rig.poll()
    cursor = await rig.cursor()
    sim.add_fault("/orders", status=502, times=100)  # Octopia down
    with pytest.raises(TransientChannelError):
        await rig.poll()
    assert await rig.cursor() == cursor
    sim.clear_faults()
    sim.shift_clock(5 * 3600)  # five hours later, Octopia answers again
    await rig.poll()  # (the hub's own runs stopped too: its clock moves on)
    rig.poll_clock.current += dt.timedelta(hours=5)
    await seller_commands.accept_order(rig.hub, order_id=rig.order(first).id)
    await rig.settle(first)
    made = [str(sim.create_order(sales_channel="OCTOBE")["orderId"]) for _ in range(7)]
    sim.move(first, "pay")
    assert await rig.poll() == 8
    assert rig.order(first).status is OrderStatus.READY_TO_SHIP
    assert all(rig.order(m).status is OrderStatus.AWAITING_ACCEPTANCE for m in made)
    assert fed(rig, first).count("order.ready_to_ship") == 1


async def test_a_5xx_then_success(rig: OctopiaRig, sim: SimulatorControl) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    sim.add_fault("/orders/*/approval-status", status=503, retry_after="7")
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    [command] = rig.commands(rig.order(order_id))
    assert command.state is CommandState.SUCCEEDED
    assert command.attempts == 2
    statuses = [c["status_code"] for c in sim.calls(path="approval-status")]
    assert statuses == [503, 204]
    assert sim.order(order_id)["status"] == "Accepted"


async def test_a_token_outage_is_waited_out_within_the_quota(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    sim.revoke_tokens()
    sim.add_fault(TOKEN_PATH, status=503, times=2)
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    [command] = rig.commands(rig.order(order_id))
    assert command.state is CommandState.SUCCEEDED
    token_calls = [c["status_code"] for c in sim.calls(path=TOKEN_PATH)]
    assert token_calls == [200, 503, 503, 200]  # one per outage attempt, none in between


async def test_the_token_quota_is_never_exceeded(
    rigs: Callable[..., OctopiaRig], sim: SimulatorControl
) -> None:
    rig = rigs(token_requests_per_hour=2)
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    client = rig.octopia.client
    await client.get_order(order_id)  # token 1
    sim.revoke_tokens()
    await client.get_order(order_id)  # 401, then token 2
    sim.revoke_tokens()
    with pytest.raises(TransientChannelError, match="quota") as waiting:
        await client.get_order(order_id)  # 401: a third token would exceed the quota
    assert sim.tokens_issued() == 2
    assert waiting.value.retry_after is not None
    assert waiting.value.retry_after > 3000
    rig.clock.current += dt.timedelta(hours=1)  # an hour later the quota has room again
    await client.get_order(order_id)
    assert sim.tokens_issued() == 3


async def test_a_403_fails_the_command_naming_the_permission(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    sim.add_fault("/orders/*/approval-status", status=403, body={"title": "Forbidden"})
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    [command] = rig.commands(rig.order(order_id))
    assert command.state is CommandState.FAILED
    assert "ORDER-APPROVAL-STATUS_POST" in (command.last_error or "")
    assert rig.order(order_id).status is OrderStatus.ACCEPTED  # kept: an operator acts


async def test_a_4xx_fails_the_command_with_octopias_whole_message(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    body = {"title": "Validation Failed", "errors": {"approval_status": ["order is locked"]}}
    sim.add_fault("/orders/*/approval-status", status=400, body=body)
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    [command] = rig.commands(rig.order(order_id))
    assert command.state is CommandState.FAILED
    assert "Validation Failed; approval_status: order is locked" in (command.last_error or "")
    events = [e.data for e in rig.feed(rig.order(order_id)) if e.type == "command.failed"]
    assert "order is locked" in str(events)


async def test_a_timeout_is_retried(rigs: Callable[..., OctopiaRig], sim: SimulatorControl) -> None:
    rig = rigs(timeout_seconds=0.3)
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    order = await rig.polled(order_id)
    sim.add_fault("/orders/*/approval-status", status=504, delay=1.0)
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    [command] = rig.commands(rig.order(order_id))
    assert command.state is CommandState.SUCCEEDED
    assert command.attempts == 2
