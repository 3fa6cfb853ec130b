"""Best-effort progress updates (``progress = true``) never step a fulfilment back: an
acknowledgement carried out late (its worker died, the lease ran out after the order
shipped) sends nothing for a fulfilment already in transit."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest_asyncio
from spresso_hub import SpressoDriver, Story

from orderhub.channels.spi import CommandKind, CommandView
from orderhub_spresso.simulator.control import TWO_FULFILMENTS


@pytest_asyncio.fixture
async def progress(driver: SpressoDriver) -> AsyncIterator[Story]:
    made = Story(SpressoDriver(driver.url, driver._http, progress=True))
    yield made
    await made.aclose()


async def test_a_late_acknowledgement_sends_nothing_for_a_fulfilment_in_transit(
    progress: Story,
) -> None:
    story = progress
    sid = await story.place(TWO_FULFILMENTS)
    f2 = (await story.driver.order(sid))["fulfillments"][1]["id"]
    [ack] = [c for c in story.rig.commands(story.order(sid)) if c.kind is CommandKind.ACKNOWLEDGE]
    await story.ship(sid, 1, [(0, 1)], "1Z900")  # F2 whole: in_transit
    spresso = await story.driver.order(sid)
    assert spresso["fulfillments"][1]["status"] == "in_transit"
    before = [c for c in await story.driver.calls(sid) if f"/{f2}" in c.what]
    again = dataclasses.replace(CommandView.of(ack), fence=ack.fence + 1)
    outcome = await story.rig.account.execute(again, story.order(sid))
    after = [c for c in await story.driver.calls(sid) if f"/{f2}" in c.what]
    assert after == before, "a progress update was sent to a fulfilment in transit"
    assert f2 not in outcome.data["sent"]
