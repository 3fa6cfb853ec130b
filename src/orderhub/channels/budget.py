"""Rate budgets shared by every process of the hub: how often a channel may be asked.

A marketplace that limits how often it is asked (Octopia: 500 token requests an hour per
client) counts every process that opens the account: the API processes, each worker and
each scheduler. :class:`RateBudget` is the port an adapter spends from; the hub gives every
account one backed by its database (``orderhub.adapters.persistence.budgets``), so the
limit holds across processes and restarts. :class:`LocalRateBudget` counts in one process
only: for tests and for a hub built without a database.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateBudget(Protocol):
    async def spend(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        """Take one unit of ``key``'s budget of ``limit`` per sliding ``window_seconds``:
        None when taken, else the seconds until one is free (nothing taken)."""
        ...


class LocalRateBudget:
    """A :class:`RateBudget` of this process alone (a sliding window per key)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._spent: dict[str, deque[float]] = {}
        self._lock = asyncio.Lock()

    async def spend(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate budget needs a limit of at least 1 and a positive window")
        async with self._lock:
            now = self._clock()
            spent = self._spent.setdefault(key, deque())
            while spent and spent[0] <= now - window_seconds:
                spent.popleft()
            if len(spent) >= limit:
                return spent[0] + window_seconds - now
            spent.append(now)
            return None
