"""The feed has no gap while many writers commit at once (production mode).

Writers: ``orderhub serve`` (the warehouse's commands: order events) and two ``orderhub
worker`` processes with several threads each (webhooks applied: order events; channel calls
finished: ``command.*`` events), all on one PostgreSQL database, their transactions
committing in whatever order they finish. A reader follows ``after=`` with small pages the
whole time and must see seq 1..N, every event exactly once, each page starting right after
the last event it saw."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx
import pytest

from .conftest import HubFactory
from .support import (
    READER_KEY,
    SETTLE_SECONDS,
    WEBHOOK_TOKEN,
    Hub,
    auth,
    order_document,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.broker]

ORDERS: Final = 48
"""Half of them accepted by the warehouse, half updated by the channel."""
PAGE: Final = 7
WRITERS: Final = 8


class FeedFollower(threading.Thread):
    """Reads ``after=last`` until stopped, then once more to the end; notes every page that
    does not start right after the last event seen."""

    def __init__(self, url: str) -> None:
        super().__init__(name="feed-follower", daemon=True)
        self.client = httpx.Client(base_url=url, headers=auth(READER_KEY), timeout=30.0)
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.stop_after_drain = threading.Event()
        self.error: BaseException | None = None

    def read(self, wait: float = 0) -> list[dict[str, Any]]:
        after = self.events[-1]["seq"] if self.events else 0
        response = self.client.get(
            "/api/v1/feed", params={"after": after, "limit": PAGE, "wait": wait}
        )
        response.raise_for_status()
        page = response.json()
        events: list[dict[str, Any]] = page["events"]
        seqs = [e["seq"] for e in events]
        if seqs != list(range(after + 1, after + 1 + len(seqs))):
            self.problems.append(f"after={after}: got {seqs}")
        if page["next_cursor"] != (seqs[-1] if seqs else after):
            self.problems.append(f"after={after}: next_cursor {page['next_cursor']}")
        self.events += events
        return events

    def run(self) -> None:
        try:
            wait = 0.0
            while not self.stop_after_drain.is_set():
                wait = 0.0 if self.read(wait) else 0.5  # long-poll when it has caught up
            while self.read():  # the writers are done: read to the end
                pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()


def test_a_follower_sees_every_event_once_and_in_order(
    production_backends: str, hub_factory: HubFactory
) -> None:
    hub: Hub = hub_factory("production", worker_processes=2, worker_threads=4)
    follower = FeedFollower(hub.url)
    follower.start()
    ids = [f"CO-7{n:03d}" for n in range(ORDERS)]
    webhook = httpx.Client(timeout=30.0, headers=auth(WEBHOOK_TOKEN))

    def post(channel_order_id: str, status: str) -> None:
        document = order_document(channel_order_id, status, [("L1", 1), ("L2", 2)])
        answer = webhook.post(hub.webhook_url("topi"), json=document)
        assert answer.status_code == 202, answer.text

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(lambda cid: post(cid, "created"), ids))

        def all_orders() -> list[dict[str, Any]] | None:
            found = topi_orders(hub)
            return found if len(found) == ORDERS else None

        orders = wait_until(all_orders, f"{ORDERS} orders", alive=hub.check_alive)
        by_channel_id = {o["channel_order_id"]: o["id"] for o in orders}
        accepted, updated = ids[::2], ids[1::2]

        def accept(channel_order_id: str) -> str:
            return hub.command(by_channel_id[channel_order_id], "accept", None)

        # the warehouse's commands and the channel's updates at the same time
        with ThreadPoolExecutor(WRITERS) as pool:
            commands = pool.map(accept, accepted)
            updates = pool.map(lambda cid: post(cid, "acknowledged"), updated)
            command_ids = list(commands)
            list(updates)

        expected = ORDERS + 3 * len(accepted) + len(updated)
        wait_until(
            lambda: len(follower.events) >= expected,
            f"the follower to see {expected} events",
            timeout=SETTLE_SECONDS * 2,
            alive=lambda: alive(hub, follower),
        )
    finally:
        follower.stop_after_drain.set()
        follower.join(timeout=60)
        webhook.close()
    assert follower.error is None, follower.error
    assert follower.problems == []

    everything = hub.feed()
    assert len(everything) == expected  # nothing more came after quiescence
    assert [e["seq"] for e in everything] == list(range(1, expected + 1))
    assert follower.events == everything  # every event exactly once, as stored

    counts: dict[str, int] = {}
    for event in everything:
        counts[event["type"]] = counts.get(event["type"], 0) + 1
    assert counts == {
        "order.received": ORDERS,
        "order.accepted": len(accepted),
        "order.ready_to_ship": len(accepted),
        "command.succeeded": len(accepted),
        "order.updated": len(updated),
    }
    succeeded = [e["data"]["command_id"] for e in everything if e["type"] == "command.succeeded"]
    assert sorted(succeeded) == sorted(command_ids)
    assert hub.count("channel_commands", "state <> 'succeeded'") == 0
    assert hub.count("inbox_messages", "state <> 'processed'") == 0


def topi_orders(hub: Hub) -> list[dict[str, Any]]:
    response = hub.get("/orders", params={"account": "topi", "limit": 500})
    assert response.status_code == 200, response.text
    orders: list[dict[str, Any]] = response.json()["orders"]
    return orders


def alive(hub: Hub, follower: FeedFollower) -> None:
    hub.check_alive()
    if follower.error is not None:
        raise AssertionError(f"the feed follower failed: {follower.error!r}")
