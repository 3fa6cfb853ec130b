"""Signed webhooks, delivered in the background and retried until answered 200.

Each message is signed ``X-Spresso-Hmac-SHA256`` (base64 HMAC-SHA256 with the client
secret). ``signing``: ``raw`` signs the bytes sent (compact JSON, the default), ``compact``
sends pretty-printed JSON but signs its compact re-serialisation (what Spresso's Node
sample does). Messages can be dropped, held and released in any order, or sent again."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import msgspec
import structlog

from orderhub.channels.signatures import body_signature
from orderhub_spresso import wire

log = structlog.get_logger("spresso_simulator.webhooks")
Signing = Literal["raw", "compact"]


class WebhookRecord(msgspec.Struct, kw_only=True):
    """One message, as ``GET /_sim/webhooks`` lists it."""

    id: int
    order_id: str
    event: str
    url: str | None
    body: str
    signature: str
    dropped: bool = False
    held: bool = False
    delivered: bool = False
    attempts: int = 0
    statuses: list[int] = msgspec.field(default_factory=list)
    last_error: str | None = None


def sign(secret: str, body: bytes) -> str:
    return body_signature(secret, body)


@dataclass
class WebhookDispatcher:
    secret: str
    retry_delays: Sequence[float] = (0.2, 1.0, 3.0, 10.0)
    timeout: float = 5.0
    signing: Signing = "raw"
    records: list[WebhookRecord] = field(default_factory=list)
    drop_next: int = 0
    holding: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _http: httpx.AsyncClient | None = None
    _generation: int = 0

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.timeout)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()

    def reset(self) -> None:
        self._generation += 1
        self.records.clear()
        self.drop_next = 0
        self.holding = False

    def enqueue(
        self, event: str, order: dict[str, Any], urls: Sequence[str]
    ) -> list[WebhookRecord]:
        made = []
        for url in urls or [None]:  # type: ignore[list-item]
            body = {"event": event, **order}
            if self.signing == "compact":
                sent = json.dumps(body, indent=2).encode()
                signed = wire.compact(body)
            else:
                sent = signed = wire.compact(body)
            record = WebhookRecord(
                id=next(self._ids),
                order_id=order["id"],
                event=event,
                url=url,
                body=sent.decode(),
                signature=sign(self.secret, signed),
            )
            self.records.append(record)
            made.append(record)
            if self.drop_next > 0:
                self.drop_next -= 1
                record.dropped = True
            elif url is None:
                record.last_error = "no webhook registered"
            elif self.holding:
                record.held = True
            else:
                self._spawn(record)
        return made

    def release(self, *, reverse: bool = False) -> list[int]:
        """Send the held messages, oldest first (or newest first: reordered)."""
        self.holding = False
        held = [r for r in self.records if r.held]
        for record in reversed(held) if reverse else held:
            record.held = False
            self._spawn(record)
        return [r.id for r in held]

    def redeliver(self, record_id: int) -> WebhookRecord:
        """The same message again (a duplicate, as after a lost acknowledgement)."""
        record = next(r for r in self.records if r.id == record_id)
        self._spawn(record)
        return record

    def _spawn(self, record: WebhookRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(self._generation, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, generation: int, record: WebhookRecord) -> None:
        assert self._http is not None
        assert record.url is not None
        headers = {"Content-Type": "application/json", wire.SIGNATURE_HEADER: record.signature}
        for delay in (0.0, *self.retry_delays):
            if delay:
                await asyncio.sleep(delay)
            if generation != self._generation:
                return
            record.attempts += 1
            try:
                resp = await self._http.post(record.url, content=record.body, headers=headers)
            except httpx.HTTPError as exc:
                record.last_error = f"{exc.__class__.__name__}: {exc}"
                continue
            record.statuses.append(resp.status_code)
            if resp.status_code == 200:  # [doc] 200 acknowledges; anything else is retried
                record.delivered = True
                record.last_error = None
                return
            record.last_error = f"HTTP {resp.status_code}"
        log.warning("webhook.gave_up", webhook=record.id, order_id=record.order_id)
