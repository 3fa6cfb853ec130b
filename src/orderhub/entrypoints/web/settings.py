"""What the web app needs from configuration. The runtime's config is adapted to this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from orderhub.application.access import AccountLimit

READ: Final = "orders:read"
WRITE: Final = "orders:write"
OPS: Final = "ops"
CONSOLE_READ: Final = "console:read"  # the operator console, to look but not act
SCOPES: Final = frozenset({READ, WRITE, OPS, CONSOLE_READ})

MetricsRenderer = Callable[[], bytes]
"""Renders the Prometheus text exposition format."""

ReadyCheck = Callable[[], Awaitable[tuple[str, bool]]]
"""One readiness probe: answers (what was checked, whether it is reachable)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A warehouse API key. ``name`` is what logs show; ``key`` is never logged or shown."""

    name: str
    key: str = field(repr=False)
    scopes: frozenset[str]
    limit: AccountLimit | None = None
    """Only these channels and accounts (a 3PL, an agency): everything else is filtered
    out of its lists and feed, or answered 404. None: every channel and account."""

    def __post_init__(self) -> None:
        if not self.name or not self.key:
            raise ValueError("an API key needs a name and a non-empty key")
        if unknown := self.scopes - SCOPES:
            raise ValueError(
                f"API key {self.name!r} has unknown scopes: {', '.join(sorted(unknown))}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class WebSettings:
    api_keys: tuple[ApiKey, ...] = ()
    metrics_renderer: MetricsRenderer | None = None
    max_body_bytes: int = 1_048_576
    max_document_bytes: int = 10 * 1024 * 1024  # an invoice's PDF (its route's own limit)
    max_long_polls_per_key: int = 4
    """Feed reads with ``wait`` held open at once per API key, in this process; one more is
    a 429 (docs/limits.md)."""
    ready_check_timeout_seconds: float = 5.0
    console_log_sign_in: bool = False  # development: log the console's sign-in keys
    overview_metrics_seconds: float | None = None
    """The overview gauges on ``/metrics`` are read from the database when scraped, at most
    once per this many seconds (:mod:`orderhub.entrypoints.web.overview_metrics`); None:
    not shown."""
    title: str = "Orderhub"
    version: str = "1.0.0"

    def __post_init__(self) -> None:
        names = [key.name for key in self.api_keys]
        if len(names) != len(set(names)):
            raise ValueError("API key names must be unique")
        if len({key.key for key in self.api_keys}) != len(self.api_keys):
            raise ValueError("two API keys share one secret")
        if self.max_body_bytes <= 0 or self.max_document_bytes <= 0:
            raise ValueError("max_body_bytes and max_document_bytes must be positive")
        if self.max_long_polls_per_key <= 0:
            raise ValueError("max_long_polls_per_key must be positive")
        if self.overview_metrics_seconds is not None and self.overview_metrics_seconds <= 0:
            raise ValueError("overview_metrics_seconds must be positive")
