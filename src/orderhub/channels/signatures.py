"""Body signatures for adapters' own webhook schemes (:meth:`ChannelAccount.verify_webhook`).

The scheme Shopify made common and Spresso documents: one header holding the base64
HMAC-SHA256 of the request body, keyed with a client secret. Several secrets are tried
(rotation); every comparison is constant-time.

The compact fallback: a sender whose sample code signs ``JSON.stringify(parsed body)``
signs the compact re-serialisation of the JSON, not the bytes on the wire. When the raw
body does not match, :func:`verify_body_signature` tries :func:`compact_json` of it and
says so (``variant="compact"``), so that a metric shows which form the sender really
signs; the fallback is meant to go once that is known."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any, Final

from orderhub.channels.spi import WebhookVerdict

RAW: Final = "raw"
COMPACT: Final = "compact"
_SAFE_INTEGER: Final = 2**53  # beyond it, JavaScript prints floats its own way


def body_signature(secret: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``body`` keyed with ``secret`` (UTF-8), as a sender puts it."""
    return base64.b64encode(_mac(secret.encode("utf-8"), body)).decode("ascii")


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


def compact_json(body: bytes) -> bytes | None:
    """``body`` re-serialised as ``JSON.stringify(JSON.parse(body))`` would, or None when it
    is not JSON. Compact separators, non-ASCII kept, integral numbers without ``.0``; other
    numbers as Python prints them, which for the usual ones is JavaScript's way too."""
    try:
        parsed = json.loads(body, parse_float=_js_number, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    try:
        text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except (ValueError, RecursionError):  # a lone surrogate escaped in the body
        return None


def _js_number(text: str) -> Any:
    number = float(text)
    if number.is_integer() and abs(number) < _SAFE_INTEGER:
        return int(number)
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def verify_body_signature(
    presented: str | None,
    body: bytes,
    secrets: Iterable[str],
    *,
    scheme: str,
    compact_fallback: bool = True,
) -> WebhookVerdict | None:
    """Check a base64 HMAC-SHA256 body signature against ``secrets``.

    None when no signature was presented (not this scheme); a refusal when it is not
    base64, no secret is configured, or nothing matches; else accepted, with the variant
    that matched: ``raw`` (the bytes received) or ``compact`` (see :func:`compact_json`)."""
    if presented is None:
        return None
    try:
        candidate = base64.b64decode(presented.strip(), validate=True)
    except (binascii.Error, ValueError):  # ValueError: a str that is not ASCII
        return WebhookVerdict.refuse(scheme, "the signature is not base64")
    keys = [secret.encode("utf-8") for secret in secrets if secret]
    if not keys:
        return WebhookVerdict.refuse(scheme, "no webhook secret is configured")
    if _matches(keys, body, candidate):
        return WebhookVerdict.accept(scheme, RAW)
    if compact_fallback:
        compact = compact_json(body)
        if compact is not None and compact != body and _matches(keys, compact, candidate):
            return WebhookVerdict.accept(scheme, COMPACT)
    return WebhookVerdict.refuse(scheme, "no webhook signature matches")


def _matches(keys: list[bytes], signed: bytes, candidate: bytes) -> bool:
    matched = False
    for key in keys:  # every key, so that the time taken does not say which one matched
        matched |= hmac.compare_digest(_mac(key, signed), candidate)
    return matched
