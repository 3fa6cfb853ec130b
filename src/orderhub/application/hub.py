"""What every use case needs, handed over by the composition root."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from orderhub.application.ports import Clock, CommandQueue, IdGenerator, UnitOfWorkFactory
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


@dataclass(kw_only=True, slots=True)
class Hub:
    uow: UnitOfWorkFactory
    channels: ChannelRegistry
    clock: Clock
    ids: IdGenerator
    queue: CommandQueue
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
