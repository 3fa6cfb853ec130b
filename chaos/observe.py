"""After the faults: let the hub settle (bounded), then read what the checker may read:
the simulators' orders and logs, the hub's orders, feed and ops lists through its API."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import httpx

from chaos.channels import Channel
from chaos.checker import waiting_for_operator
from chaos.effects import statuses_agree

PAGE: Final = 500


class HubReader:
    """The hub's public API with the checker's key (``orders:read`` and ``ops``)."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        resp = self.http.get(path, params=params)
        resp.raise_for_status()
        return resp.json()

    def orders(self, channel: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"channel": channel, "limit": PAGE}
        for _ in range(10_000):
            page = self.get("/orders", params)
            found.extend(page["orders"])
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
        # an order that changed while we paged shows up twice: keep its newest copy
        newest: dict[str, dict[str, Any]] = {}
        for order in found:
            if order["id"] not in newest or order["last_seq"] > newest[order["id"]]["last_seq"]:
                newest[order["id"]] = order
        return list(newest.values())

    def feed(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = 0
        for _ in range(100_000):
            page = self.get("/feed", {"after": after, "limit": 1000})
            if not page["events"]:
                break
            events.extend(page["events"])
            after = page["next_cursor"]
        return events


class Settling:
    """Whether anything still moves: marketplace orders the hub lacks or shows otherwise
    (without an attention reason), orders with pending commands, new feed events."""

    def __init__(self, reader: HubReader, channels: Sequence[Channel]) -> None:
        self.reader = reader
        self.channels = channels
        self.clean: dict[str, int] = {}  # order id -> last_seq when it had nothing pending
        self.cursor = 0

    def feed_moved(self) -> bool:
        moved = False
        for _ in range(10_000):
            page = self.reader.get("/feed", {"after": self.cursor, "limit": 1000})
            if not page["events"]:
                return moved
            moved = True
            self.cursor = page["next_cursor"]
        return moved

    def problems(self) -> list[str]:
        found: list[str] = []
        for channel in self.channels:
            channel.settle_step()
            hub = {o["channel_order_id"]: o for o in self.reader.orders(channel.name)}
            for order in channel.observe()["orders"]:
                mine = hub.get(order["id"])
                if mine is None:
                    found.append(f"{channel.name} {order['id']} missing")
                elif not statuses_agree(
                    channel.name, order["status"], mine["channel_status"]
                ) and not mine.get("needs_attention"):
                    found.append(
                        f"{channel.name} {order['id']} {order['status']} != "
                        f"{mine['channel_status']}"
                    )
            for mine in hub.values():
                if self.clean.get(mine["id"]) == mine["last_seq"]:
                    continue
                detail = self.reader.get(f"/orders/{mine['id']}")
                # held behind a failed command: waits for an operator, not for time
                pending = detail["pending_commands"]
                if len(waiting_for_operator(pending)) < len(pending):
                    found.append(f"{mine['id']} has pending commands")
                else:
                    self.clean[mine["id"]] = mine["last_seq"]
        return found


def settle(reader: HubReader, channels: Sequence[Channel], timeout: float) -> dict[str, Any]:
    """Until nothing moves twice in a row, or ``timeout``."""
    start = time.monotonic()
    settling = Settling(reader, channels)
    quiet = 0
    problems: list[str] = []
    while time.monotonic() - start < timeout:
        try:
            moved = settling.feed_moved()
            problems = settling.problems()
        except (httpx.HTTPError, KeyError) as exc:
            problems, moved = [f"hub not answering: {exc}"], True
        quiet = quiet + 1 if not problems and not moved else 0
        if quiet >= 2:
            break
        time.sleep(3.0)
    return {"seconds": round(time.monotonic() - start, 1), "unsettled": problems[:50]}


GAUGES: Final = (
    "orderhub_inbox_backlog",
    "orderhub_inbox_backlog_oldest_age_seconds",
    "orderhub_command_backlog",
    "orderhub_command_backlog_oldest_age_seconds",
    "orderhub_feed_head_sequence",
    "orderhub_overview_age_seconds",
)


def gauges(url: str) -> dict[str, float]:
    """The backlog gauges of ``GET /metrics`` (what an operator's dashboard shows)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            found[name.removeprefix("orderhub_")] = float(value)
    return found


def observe(
    reader: HubReader, channels: Sequence[Channel], extra: dict[str, Any], *, url: str
) -> dict[str, Any]:
    """The checker's input (see :mod:`chaos.checker`)."""
    seen = {c.name: c.observe() for c in channels}
    hub_orders = []
    for channel in channels:
        for order in reader.orders(channel.name):
            hub_orders.append(reader.get(f"/orders/{order['id']}"))
    return {
        **extra,
        "observed_at": time.time(),
        "channels": seen,
        "hub_orders": hub_orders,
        "feed": reader.feed(),
        "failed_messages": reader.get("/ops/failed-messages", {"limit": 500})["messages"],
        "failed_commands": reader.get("/ops/failed-commands", {"limit": 500})["commands"],
        "gauges": gauges(url),
    }
