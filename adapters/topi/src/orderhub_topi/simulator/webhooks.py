"""Outbound order webhooks: signing and best-effort delivery in the background."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
import structlog

from orderhub_topi.wire import OrderWebhook, encode

log = structlog.get_logger("topi_simulator.webhooks")

SECRET_PREFIX: Final = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a Standard Webhooks secret (``whsec_<base64>``)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key,
    f"{id}.{timestamp}.{body}"))."""
    key = decode_secret(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookRecord(msgspec.Struct, kw_only=True):
    """One outbound message, as ``GET /_sim/webhooks`` lists it."""

    id: str
    order_id: str
    status: str
    event: str
    body: str
    dropped: bool = False
    delivered: bool = False
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass
class WebhookTarget:
    url: str | None = None
    token: str | None = None
    secret: str | None = None

    def __post_init__(self) -> None:
        if self.secret is not None:
            decode_secret(self.secret)


@dataclass
class WebhookDispatcher:
    """Queues webhooks and delivers them one by one, in order, from a background task;
    the API never waits for a delivery. Failed deliveries are retried a few times."""

    target: WebhookTarget
    retry_delays: Sequence[float] = (0.2, 1.0, 3.0)
    timeout: float = 5.0
    clock: Callable[[], float] = time.time
    records: list[WebhookRecord] = field(default_factory=list)
    drop_next: int = 0
    _queue: asyncio.Queue[tuple[int, WebhookRecord]] | None = None
    _task: asyncio.Task[None] | None = None
    _http: httpx.AsyncClient | None = None
    _generation: int = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._http = httpx.AsyncClient(timeout=self.timeout)
        self._task = asyncio.create_task(self._run(), name="topi-simulator-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()

    def reset(self) -> None:
        """Forget every message; anything still queued is not sent."""
        self._generation += 1
        self.records.clear()
        self.drop_next = 0

    def enqueue(self, payload: OrderWebhook) -> WebhookRecord:
        record = WebhookRecord(
            id=f"msg_{uuid.uuid4().hex}",
            order_id=payload.id,
            status=payload.status,
            event=payload.event_name,
            body=encode(payload).decode(),
        )
        self.records.append(record)
        if self.drop_next > 0:
            self.drop_next -= 1
            record.dropped = True
            log.info("webhook.dropped", order_id=record.order_id, event_name=record.event)
            return record
        if self.target.url is None or self._queue is None:
            record.last_error = "no webhook URL configured"
            return record
        self._queue.put_nowait((self._generation, record))
        return record

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            generation, record = await self._queue.get()
            try:
                if generation == self._generation:
                    await self._deliver(generation, record)
            except Exception:  # never let one message kill the worker
                log.exception("webhook.worker_error", webhook_id=record.id)
            finally:
                self._queue.task_done()

    async def _deliver(self, generation: int, record: WebhookRecord) -> None:
        assert self._http is not None
        delays = [0.0, *self.retry_delays]
        for delay in delays:
            if delay:
                await asyncio.sleep(delay)
            if generation != self._generation or self.target.url is None:
                return
            record.attempts += 1
            headers = self._headers(record)
            try:
                resp = await self._http.post(
                    self.target.url, content=record.body.encode(), headers=headers
                )
            except httpx.HTTPError as exc:
                record.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning(
                    "webhook.failed", webhook_id=record.id, attempt=record.attempts, error=str(exc)
                )
                continue
            record.last_status_code = resp.status_code
            if resp.is_success:
                record.delivered = True
                record.last_error = None
                log.info(
                    "webhook.delivered",
                    webhook_id=record.id,
                    order_id=record.order_id,
                    event_name=record.event,
                    attempt=record.attempts,
                )
                return
            record.last_error = f"HTTP {resp.status_code}"
            log.warning(
                "webhook.refused",
                webhook_id=record.id,
                attempt=record.attempts,
                status_code=resp.status_code,
            )
        log.error("webhook.gave_up", webhook_id=record.id, order_id=record.order_id)

    def _headers(self, record: WebhookRecord) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "topi-simulator"}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        if self.target.secret:
            timestamp = int(self.clock())
            headers["webhook-id"] = record.id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(
                self.target.secret, record.id, timestamp, record.body.encode()
            )
        return headers
