"""How the test channel's HTTP answers map to the SPI's errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from orderhub.channels.spi import (
    ChannelConfigurationError,
    ChannelError,
    PermanentChannelError,
    TransientChannelError,
)

TRANSIENT_STATUSES: Final = frozenset({408, 409, 429})


def error_for(response: httpx.Response) -> ChannelError:
    status = response.status_code
    message = f"test channel answered {status}: {_message(response)}"
    if status == 401:
        return ChannelConfigurationError(message, status=status)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientChannelError(
            message, status=status, retry_after=_retry_after(response.headers.get("Retry-After"))
        )
    return PermanentChannelError(message, status=status)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:500]


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
