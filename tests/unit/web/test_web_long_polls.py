"""Feed long-polls per API key: its share held open, one more is a 429 with Retry-After;
other keys, plain reads and webhooks go on; a place is given back when a poll answers or
its client goes away."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import httpx
import pytest

from orderhub.entrypoints.web import WebSettings
from orderhub.entrypoints.web.long_polls import LONG_POLLS_STATE, LongPolls

from .support import API_KEYS, PATH_TOKEN, Harness, assert_problem, auth

PER_KEY: Final = 3
BOUND_SECONDS: Final = 20.0  # generous: only reached when something is wrong
LONG_WAIT: Final = "wait=30"


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=API_KEYS, max_body_bytes=64 * 1024, max_long_polls_per_key=PER_KEY)


def limiter(harness: Harness) -> LongPolls:
    found = harness.app.state[LONG_POLLS_STATE]
    assert isinstance(found, LongPolls)
    return found


async def until_open(harness: Harness, key: str, count: int) -> None:
    """Bounded: the polls' requests have reached the route and hold their places."""
    async with asyncio.timeout(BOUND_SECONDS):
        while limiter(harness).open(key) != count:  # noqa: ASYNC110 (a count, no event)
            await asyncio.sleep(0.01)


def long_poll(client: httpx.AsyncClient, key: str, after: int = 0) -> asyncio.Task[Any]:
    return asyncio.create_task(
        client.get(f"/api/v1/feed?after={after}&{LONG_WAIT}", headers=auth(key))
    )


async def test_one_long_poll_over_the_share_of_a_key_is_429_and_others_go_on(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    """On this loop (httpx's ASGI transport): the polls are held while the test goes on."""
    polls = [long_poll(raw_client, "reader") for _ in range(PER_KEY)]
    await until_open(harness, "reader", PER_KEY)

    over = await raw_client.get(f"/api/v1/feed?{LONG_WAIT}", headers=auth("reader"))

    problem = assert_problem(over, 429, "too-many-long-polls")
    assert over.headers["retry-after"] == "1"
    assert f"{PER_KEY} feed long-polls" in problem["detail"]
    plain = await raw_client.get("/api/v1/feed", headers=auth("reader"))
    assert plain.status_code == 200  # a read without wait is never counted
    other = long_poll(raw_client, "writer")
    await until_open(harness, "writer", 1)  # another key has its own share
    stored = await raw_client.post(
        f"/webhooks/stub/pathtoken?token={PATH_TOKEN}",
        content=b'{"id": "CH-1", "lines": [{"id": "a", "quantity": 1}]}',
    )
    assert stored.status_code == 202  # intake is not held up by the polls
    await harness.seed()  # an event: every poll answers
    async with asyncio.timeout(BOUND_SECONDS):
        answers = await asyncio.gather(*polls, other)
    assert all(a.status_code == 200 and a.json()["events"] for a in answers)
    assert limiter(harness).open("reader") == 0
    again = long_poll(raw_client, "reader", after=answers[0].json()["next_cursor"])
    await until_open(harness, "reader", 1)  # its places are back
    again.cancel()


async def test_a_poll_whose_client_goes_away_gives_its_place_back(
    harness: Harness, raw_client: httpx.AsyncClient
) -> None:
    polls = [long_poll(raw_client, "reader") for _ in range(PER_KEY)]
    await until_open(harness, "reader", PER_KEY)

    polls[0].cancel()

    await until_open(harness, "reader", PER_KEY - 1)
    for poll in polls[1:]:
        poll.cancel()
    await until_open(harness, "reader", 0)


def test_the_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="per_key"):
        LongPolls(per_key=0)
    with pytest.raises(ValueError, match="max_long_polls_per_key"):
        WebSettings(max_long_polls_per_key=0)
