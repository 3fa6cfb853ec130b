"""What every use case needs, handed over by the composition root."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from orderhub.application.ports import (
    Clock,
    CommandQueue,
    IdGenerator,
    InboxIntake,
    UnitOfWorkFactory,
)
from orderhub.channels.registry import ChannelRegistry


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` from the channel wins when longer."""

    base_seconds: float = 2.0
    max_seconds: float = 600.0
    max_attempts: int = 10
    lease_seconds: float = 120.0  # a dispatch not finished by then is presumed dead and resent

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        jittered = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_seconds))
        return jittered


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoicePolicy:
    """Invoices: how big a document may be, and how the hub asks a channel that decides
    later (``check_seconds`` apart, at most ``max_checks`` times, then a person looks)."""

    max_document_bytes: int = 10 * 1024 * 1024
    check_seconds: float = 300.0
    max_checks: int = 12
    check_lease_seconds: float = 120.0  # a check not recorded by then may be taken again
    check_limit: int = 50  # invoices checked per scheduler run


@dataclass(kw_only=True, slots=True)
class Hub:
    uow: UnitOfWorkFactory
    channels: ChannelRegistry
    clock: Clock
    ids: IdGenerator
    queue: CommandQueue
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    invoices: InvoicePolicy = field(default_factory=InvoicePolicy)
    rng: random.Random = field(default_factory=random.Random)
    intake: InboxIntake | None = None
    """Where received messages are stored; None: in a unit of work of their own."""
