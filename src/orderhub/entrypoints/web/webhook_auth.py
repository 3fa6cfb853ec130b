"""Authenticating channel webhooks, per account (:class:`WebhookAuth`).

Three ways, each sufficient on its own when the account configures it:

* Standard Webhooks HMAC-SHA256: headers ``webhook-id``, ``webhook-timestamp`` (Unix
  seconds) and ``webhook-signature`` (space-separated ``v1,<base64>`` entries); the signed
  content is ``{id}.{timestamp}.{raw body}``. Secrets are ``whsec_<base64>`` or raw text.
  Several secrets (key rotation) and several signatures are accepted. A timestamp further
  than ``tolerance_seconds`` from now, either way, is refused (replay protection).
* a shared bearer token: ``Authorization: Bearer <token>``;
* a secret path token: ``?token=<token>``.

An account that configures none refuses everything. Every comparison is constant-time.
Nothing here knows about HTTP frameworks: headers come in as a lower-cased mapping.

Before these, :func:`authenticate` asks the adapter's own scheme
(:meth:`ChannelAccount.verify_webhook`, e.g. Spresso's ``X-Spresso-Hmac-SHA256``): its
verdict, accepted or refused, is final; only when it says "not my scheme" (None) do the
account's configured methods decide. An adapter's check that raises refuses the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from orderhub.channels.spi import ChannelAccount, WebhookAuth

SECRET_PREFIX: Final = "whsec_"
SIGNATURE_VERSION: Final = "v1"
# ASCII digits only (str.isdigit() admits "¹²³" and other scripts' digits), and few enough
# that int() never meets its 4300-digit limit: 12 digits reach the year 33658.
_UNIX_SECONDS: Final = re.compile(r"[0-9]{1,12}")


class WebhookAuthMethod(StrEnum):
    HMAC = "hmac"
    BEARER = "bearer"
    PATH_TOKEN = "path_token"


class WebhookAuthError(Exception):
    """The sender could not be authenticated; ``reason`` says why (no secret in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_secret(secret: str) -> bytes:
    """``whsec_<base64>`` -> the key bytes; any other string is used as it is (UTF-8)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except ValueError as exc:  # binascii.Error, or a str that is not ASCII
            raise ValueError("a whsec_ secret must be base64 after its prefix") from exc
    return secret.encode("utf-8")


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature a sender puts in ``webhook-signature``."""
    mac = _mac(decode_secret(secret), message_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac).decode()}"


def _mac(key: bytes, message_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def verify_signature(
    secrets: Iterable[str],
    *,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_seconds: int,
) -> None:
    """Check Standard Webhooks headers against ``secrets``; raise :class:`WebhookAuthError`."""
    message_id = headers.get("webhook-id", "").strip()
    raw_timestamp = headers.get("webhook-timestamp", "").strip()
    signature_header = headers.get("webhook-signature", "").strip()
    if not (message_id and raw_timestamp and signature_header):
        raise WebhookAuthError(
            "webhook-id, webhook-timestamp and webhook-signature headers are required"
        )
    if not _UNIX_SECONDS.fullmatch(raw_timestamp):
        raise WebhookAuthError("webhook-timestamp must be Unix seconds (at most 12 ASCII digits)")
    timestamp = int(raw_timestamp)
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise WebhookAuthError("webhook-timestamp is outside the tolerance")
    presented = _signatures(signature_header)
    if not presented:
        raise WebhookAuthError(f"webhook-signature has no {SIGNATURE_VERSION} signature")
    keys = _usable_keys(secrets)
    if not keys:
        raise WebhookAuthError("no usable webhook secret is configured")
    for key in keys:
        expected = _mac(key, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in presented):
            return
    raise WebhookAuthError("no webhook signature matches")


def _signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except ValueError:  # binascii.Error, or a str that is not ASCII
            continue
    return found


def _usable_keys(secrets: Iterable[str]) -> list[bytes]:
    keys = []
    for secret in secrets:
        try:
            key = decode_secret(secret)
        except ValueError:
            continue  # a broken secret never matches; the others still may
        if key:
            keys.append(key)
    return keys


def token_matches(presented: str, tokens: Iterable[str]) -> bool:
    """Whether ``presented`` is one of ``tokens``, compared in constant time."""
    digest = hashlib.sha256(presented.encode("utf-8")).digest()
    matched = False
    for token in tokens:
        if token and hmac.compare_digest(hashlib.sha256(token.encode("utf-8")).digest(), digest):
            matched = True
    return matched


def verify_webhook(
    auth: WebhookAuth,
    *,
    headers: Mapping[str, str],
    query_token: str | None,
    body: bytes,
    now: datetime,
) -> WebhookAuthMethod:
    """Authenticate one webhook with whichever configured method the sender used.

    ``headers`` must have lower-case names. Raises :class:`WebhookAuthError`."""
    if not auth.configured:
        raise WebhookAuthError("this account has no webhook authentication configured")
    failures: list[str] = []
    if auth.hmac_secrets and "webhook-signature" in headers:
        try:
            verify_signature(
                auth.hmac_secrets,
                headers=headers,
                body=body,
                now=now,
                tolerance_seconds=auth.tolerance_seconds,
            )
        except WebhookAuthError as exc:
            failures.append(exc.reason)
        else:
            return WebhookAuthMethod.HMAC
    if auth.bearer_tokens and (token := bearer_token(headers.get("authorization"))):
        if token_matches(token, auth.bearer_tokens):
            return WebhookAuthMethod.BEARER
        failures.append("the bearer token is not valid")
    if auth.path_tokens and query_token:
        if token_matches(query_token, auth.path_tokens):
            return WebhookAuthMethod.PATH_TOKEN
        failures.append("the path token is not valid")
    if failures:
        raise WebhookAuthError("; ".join(failures))
    raise WebhookAuthError(f"no credentials for the configured methods: {_methods(auth)}")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _methods(auth: WebhookAuth) -> str:
    methods = []
    if auth.hmac_secrets:
        methods.append("webhook-signature headers")
    if auth.bearer_tokens:
        methods.append("Authorization: Bearer")
    if auth.path_tokens:
        methods.append("?token=")
    return ", ".join(methods)


@dataclass(frozen=True, kw_only=True, slots=True)
class Authenticated:
    """How a webhook was authenticated: a configured method, or the adapter's own scheme
    (``method`` is then its name, and ``variant`` says which form of it matched)."""

    method: str
    variant: str | None = None

    @property
    def by_adapter(self) -> bool:
        return self.variant is not None


def authenticate(
    account: ChannelAccount,
    *,
    headers: Mapping[str, str],
    query_token: str | None,
    body: bytes,
    now: datetime,
) -> Authenticated:
    """The adapter's own scheme first, then the account's configured methods.

    ``headers`` must have lower-case names. Raises :class:`WebhookAuthError`; when the
    adapter's check itself raised, that exception is the error's ``__cause__``."""
    try:
        verdict = account.verify_webhook(headers, body, now)
    except Exception as exc:  # hostile input must never reach the sender as a 5xx
        raise WebhookAuthError(f"the {account.channel} signature check failed") from exc
    if verdict is None:
        method = verify_webhook(
            account.config.webhook, headers=headers, query_token=query_token, body=body, now=now
        )
        return Authenticated(method=method.value)
    if not verdict.accepted:
        raise WebhookAuthError(verdict.reason or f"the {verdict.scheme} signature does not match")
    return Authenticated(method=verdict.scheme, variant=verdict.variant)
