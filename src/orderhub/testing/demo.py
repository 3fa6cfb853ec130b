"""What every adapter's demo shares: the narration, a scratch directory, and the warehouse
(WMS) talking to the hub through ``/api/v1`` only.

The adapters' ``demo_support`` modules add their own side (the marketplace simulator, the
customer) and the stack they start; they see the hub as a WMS does, never its internals.
Bounded everywhere: paging stops after a fixed number of pages.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import httpx

from orderhub.testing.processes import ProcessFailure

__all__ = ["DemoFailure", "HubApi", "Narrator", "problem_text", "temporary_workdir"]

DemoFailure = ProcessFailure
"""A step did not happen (in time): the message says which and what was seen instead,
followed by the name, state and log tail of each process the step waited for."""

MAX_ORDER_PAGES: Final = 1_000
MAX_FEED_PAGES: Final = 10_000


class Narrator:
    """One clear line per step, with the time since the story began."""

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, pace: float = 0.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.quiet = quiet
        self.pace = pace  # seconds before each step, so that a live audience can follow
        self.started = time.monotonic()
        self._story_started = self.started
        self._story = ""

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def title(self, text: str) -> None:
        self.line()
        self.line(text)
        self.line("-" * min(len(text), 100))

    def story(self, label: str, text: str) -> None:
        self._story = label
        self._story_started = time.monotonic()
        self.title(f"Story {label}: {text}")

    def step(self, number: int, text: str) -> None:
        """The next thing somebody does."""
        if self.pace > 0:
            time.sleep(self.pace)
        self.line(f"[{self._story}{number}] {text}")

    def check(self, text: str) -> None:
        """Something verified, with the seconds since the story began."""
        elapsed = time.monotonic() - self._story_started
        self.line(f"      ok  {text}  (+{elapsed:.1f} s)")

    def note(self, text: str) -> None:
        self.line(f"          {text}")


@contextlib.contextmanager
def temporary_workdir(keep: bool = False) -> Iterator[Path]:
    """A fresh directory for config, database and logs; removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="orderhub-demo-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def problem_text(resp: httpx.Response) -> str:
    """A problem response in one line: its rule and detail (else the body, clipped)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict) and "rule" in body:
        return f"{body.get('rule')}: {body.get('detail')}"
    return json.dumps(body)[:500]


class HubApi:
    """The warehouse's view: ``/api/v1`` with a bearer API key, nothing else. ``channel``:
    whose orders :meth:`find_order` looks among."""

    def __init__(self, base_url: str, api_key: str, *, channel: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.channel = channel
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )
        self._events: list[dict[str, Any]] = []
        self.command_orders: dict[str, str] = {}  # command id -> order id, for diagnostics

    def close(self) -> None:
        self.http.close()

    # --- reading -----------------------------------------------------------------------

    def orders(self, **filters: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {**filters, "limit": 500}
        for _ in range(MAX_ORDER_PAGES):
            resp = self.http.get("/orders", params=params)
            resp.raise_for_status()
            page = resp.json()
            found.extend(page["orders"])
            if not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]
        raise DemoFailure(f"GET /api/v1/orders did not end within {MAX_ORDER_PAGES} pages")

    def find_order(self, channel_order_id: str) -> dict[str, Any] | None:
        """The hub's order for the channel's order id, if the hub has it."""
        for order in self.orders(channel=self.channel):
            if order["channel_order_id"] == channel_order_id:
                return order
        return None

    def order(self, order_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/orders/{order_id}")
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def feed(self) -> list[dict[str, Any]]:
        """Every feed event so far, in order (new ones fetched after the last seen)."""
        for _ in range(MAX_FEED_PAGES):
            after = self._events[-1]["seq"] if self._events else 0
            resp = self.http.get("/feed", params={"after": after, "limit": 1000})
            resp.raise_for_status()
            events = resp.json()["events"]
            if not events:
                return list(self._events)
            self._events.extend(events)
        raise DemoFailure(f"GET /api/v1/feed did not end within {MAX_FEED_PAGES} pages")

    def events_for(self, order_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.feed()
            if e["order_id"] == order_id and (type_ is None or e["type"] == type_)
        ]

    def command_event(self, command_id: str) -> dict[str, Any] | None:
        """The ``command.succeeded`` / ``command.failed`` event of a command, if any."""
        for event in self.feed():
            if event["type"].startswith("command.") and event["data"].get("command_id") == (
                command_id
            ):
                return event
        return None

    # --- commands ----------------------------------------------------------------------

    def post(self, path: str, body: Any = None) -> httpx.Response:
        """As a WMS does: each command with its own Idempotency-Key."""
        return self.http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def command(self, order_id: str, action: str, body: Any = None) -> dict[str, Any]:
        """A command that must be taken (202); its receipt."""
        resp = self.post(f"/orders/{order_id}/{action}", body)
        if resp.status_code != 202:
            raise DemoFailure(
                f"POST /api/v1/orders/{order_id}/{action} answered {resp.status_code}, "
                f"expected 202: {problem_text(resp)}"
            )
        receipt: dict[str, Any] = resp.json()
        self.command_orders[receipt["command_id"]] = order_id
        return receipt
