"""Helpers shared by the topi tests (kept independent of the package under test)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orderhub_topi.client import ClientCredentials, TopiClient

CLIENT_ID = "orderhub-test"
CLIENT_SECRET = "s3cret-for-tests"
STATIC_TOKEN = "static-test-token"
WEBHOOK_TOKEN = "hook-bearer-token"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


# --------------------------------------------------------------------------
# Webhook receiver
# --------------------------------------------------------------------------


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class WebhookReceiver:
    """A raw ASGI app that stores every POST; can fail or stall on demand."""

    received: list[ReceivedWebhook] = field(default_factory=list)
    fail_next: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.received.append(ReceivedWebhook(headers=headers, body=body, at=time.time()))
            status = 500 if self.fail_next > 0 else 204
            if self.fail_next > 0:
                self.fail_next -= 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def for_order(self, order_id: str) -> list[ReceivedWebhook]:
        with self.lock:
            return [w for w in self.received if order_id.encode() in w.body]

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.fail_next = 0
            self.delay = 0.0


def verify_standard_webhook(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300
) -> bool:
    """Independent Standard Webhooks verification (not the simulator's own code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    signatures = headers["webhook-signature"].split(" ")
    return any(
        version == "v1" and hmac.compare_digest(sig, expected)
        for version, _, sig in (s.partition(",") for s in signatures)
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 8.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def make_client(simulator_url: str, **kw: Any) -> TopiClient:
    """A TopiClient for the simulator, with the test OAuth2 client unless told otherwise."""
    if "access_token" not in kw and "credentials" not in kw:
        kw["credentials"] = ClientCredentials(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_url=f"{simulator_url}/oauth/token",
        )
    return TopiClient(base_url=simulator_url, **kw)
