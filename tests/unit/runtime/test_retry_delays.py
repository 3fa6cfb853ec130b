"""The retry delays both queues use: backoff bounds, jitter, Retry-After."""

from __future__ import annotations

import random

import pytest

from orderhub.application.hub import RetryPolicy

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=60.0, max_attempts=10)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (40, 60.0)],
)
def test_delay_is_full_jitter_between_half_and_the_exponential_ceiling(
    attempt: int, ceiling: float
) -> None:
    rng = random.Random(7)

    delays = [POLICY.delay(attempt, rng=rng) for _ in range(500)]

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_delays_never_exceed_the_maximum_however_many_attempts() -> None:
    rng = random.Random(1)

    assert max(POLICY.delay(n, rng=rng) for n in range(1, 200)) <= POLICY.max_seconds


def test_a_longer_retry_after_wins() -> None:
    rng = random.Random(3)

    assert POLICY.delay(1, retry_after=30.0, rng=rng) == 30.0


def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    rng = random.Random(3)

    delay = POLICY.delay(4, retry_after=0.5, rng=rng)

    assert 8.0 <= delay <= 16.0


def test_retry_after_is_capped_at_the_maximum() -> None:
    rng = random.Random(3)

    assert POLICY.delay(1, retry_after=3600.0, rng=rng) == POLICY.max_seconds
