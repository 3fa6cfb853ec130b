"""A stub channel with a webhook door of its own, Spresso-like: a base64 HMAC-SHA256 of
the body in ``X-Signed-Hmac-SHA256`` keyed with the account's ``client_secrets`` (several:
rotation), acknowledged with 200, deduplicated on a natural key (event, order id, status,
updated time) because the sender gives no message id.

Its bodies are the stub channel's format (:func:`support.snapshot_from`) plus ``event``
and ``updated_at``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.signatures import body_signature, verify_body_signature
from orderhub.channels.spi import AccountConfig, ChannelAccount, WebhookAuth, WebhookVerdict
from orderhub.domain.capabilities import Capabilities

from .support import FULL, PATH_TOKEN, StubAccount

CHANNEL: Final = "signed"
SCHEME: Final = "signed-hmac"
HEADER: Final = "x-signed-hmac-sha256"
SECRET: Final = "client-secret-current-0123456789"
OLD_SECRET: Final = "client-secret-previous-987654321"
OTHER_SECRET: Final = "client-secret-of-somebody-else-0"


def order_body(
    order_id: str = "CH-1",
    *,
    event: str = "order_fulfillable",
    status: str = "created",
    updated_at: str = "2026-01-01T11:59:00Z",
    indent: int | None = None,
) -> bytes:
    data = {
        "event": event,
        "id": order_id,
        "status": status,
        "updated_at": updated_at,
        "lines": [{"id": "a", "quantity": 1}],
        "weight_kg": 1.0,  # a JSON.stringify round trip prints 1
    }
    return json.dumps(data, indent=indent).encode()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Signed-Hmac-SHA256": body_signature(secret, body)}


@dataclass
class Calls:
    """What the hooks were asked, for the tests to look at."""

    verified: list[bytes] = field(default_factory=list)
    explode: bool = False


class SignedAccount(StubAccount):
    webhook_ack_status: Literal[200] = 200

    def __init__(self, config: AccountConfig, capabilities: Capabilities, calls: Calls) -> None:
        super().__init__(config, capabilities)
        self.calls = calls

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> WebhookVerdict | None:
        self.calls.verified.append(body)
        if self.calls.explode:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a bug in the adapter")
        secrets = self.config.settings.get("client_secrets", ())
        return verify_body_signature(headers.get(HEADER), body, secrets, scheme=SCHEME)

    def dedupe_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        try:
            data: Any = json.loads(body)
            return ":".join(str(data[k]) for k in ("event", "id", "status", "updated_at"))
        except (ValueError, KeyError, TypeError):
            return None  # the hub hashes the body


@dataclass
class SignedPlugin:
    calls: Calls
    name: str = CHANNEL

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return FULL

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return SignedAccount(config, FULL, self.calls)


def signed_registry(calls: Calls) -> ChannelRegistry:
    """Account ``main`` (two secrets), ``fallback`` (also a path token), ``nosecret``."""
    plugins = {CHANNEL: LoadedPlugin(plugin=SignedPlugin(calls), distribution="d", version="1")}
    secrets = {"client_secrets": (SECRET, OLD_SECRET)}
    accounts = [
        AccountConfig(channel=CHANNEL, name="main", settings=secrets),
        AccountConfig(
            channel=CHANNEL,
            name="fallback",
            settings=secrets,
            webhook=WebhookAuth(path_tokens=(PATH_TOKEN,)),
        ),
        AccountConfig(channel=CHANNEL, name="nosecret"),
    ]
    return ChannelRegistry(plugins, accounts)
