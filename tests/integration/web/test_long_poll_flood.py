"""A flood of feed long-polls on PostgreSQL does not starve webhook intake: a long-poll
holds no pooled connection while it waits, so with many more polls open than the pool has
connections, a webhook is stored and acknowledged while every poll is still pending.

No timing is measured: the webhook must answer before the polls' 30 s wait ends, under a
bound (20 s) only reached when something is wrong (a poll holding a connection makes the
webhook wait for the pool, then fail)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
from litestar.testing import AsyncTestClient

from orderhub.adapters.persistence import PoolOptions, SqlUnitOfWorkFactory, create_engine
from orderhub.application.hub import Hub
from orderhub.application.services.intake import Processed, process_message
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.entrypoints.web.long_polls import LONG_POLLS_STATE, LongPolls
from orderhub.testing.fakes import FixedClock, RecordingQueue, SequentialIds
from tests.unit.web.support import API_KEYS, PATH_TOKEN, auth, stub_registry

pytestmark = pytest.mark.postgres

POOL: Final = PoolOptions(size=2, max_overflow=0, timeout_seconds=5.0)
POLLS: Final = 12  # six times the pool
BOUND_SECONDS: Final = 20.0  # under the polls' wait: they are still open when it is reached
WAIT_SECONDS: Final = 30


class Stack:
    def __init__(self, hub: Hub, client: httpx.AsyncClient, limiter: LongPolls) -> None:
        self.hub = hub
        self.client = client
        self.limiter = limiter


@pytest.fixture
async def stack(postgres_url: str) -> AsyncIterator[Stack]:
    engine = create_engine(postgres_url, pool=POOL)
    clock = FixedClock()
    hub = Hub(
        uow=SqlUnitOfWorkFactory(engine, clock=clock),
        channels=stub_registry(),
        clock=clock,
        ids=SequentialIds(),
        queue=RecordingQueue(),
    )
    app = create_app(hub, WebSettings(api_keys=API_KEYS, max_long_polls_per_key=POLLS))
    limiter = app.state[LONG_POLLS_STATE]
    assert isinstance(limiter, LongPolls)
    asgi: Any = app  # httpx types the ASGI callable more narrowly than Litestar
    transport = httpx.ASGITransport(app=asgi)  # the app on this loop: requests overlap
    try:
        async with (
            AsyncTestClient(app=app),  # the app's lifespan
            httpx.AsyncClient(transport=transport, base_url="http://hub") as client,
        ):
            yield Stack(hub, client, limiter)
    finally:
        await engine.dispose()


async def test_a_webhook_is_stored_while_more_long_polls_wait_than_the_pool_has(
    stack: Stack,
) -> None:
    polls = [
        asyncio.create_task(
            stack.client.get(f"/api/v1/feed?after=0&wait={WAIT_SECONDS}", headers=auth("reader"))
        )
        for _ in range(POLLS)
    ]
    async with asyncio.timeout(BOUND_SECONDS):
        while stack.limiter.open("reader") < POLLS:  # noqa: ASYNC110 (a count, no event)
            await asyncio.sleep(0.01)

    body = json.dumps({"id": "FLOOD-1", "lines": [{"id": "a", "quantity": 1}]}).encode()
    async with asyncio.timeout(BOUND_SECONDS):
        stored = await stack.client.post(
            f"/webhooks/stub/pathtoken?token={PATH_TOKEN}", content=body
        )

    assert stored.status_code == 202, stored.text
    assert not [poll for poll in polls if poll.done()]  # every poll still waiting
    message_id = stored.json()["message_id"]
    async with stack.hub.uow() as uow:
        message = await uow.inbox.get(message_id)
    assert message is not None
    assert message.body == body  # durably stored
    assert await process_message(stack.hub, message_id) is Processed.PROCESSED

    async with asyncio.timeout(BOUND_SECONDS):
        answers: list[Any] = await asyncio.gather(*polls)
    for answer in answers:  # the event ends every poll
        assert answer.status_code == 200, answer.text
        assert [e["type"] for e in answer.json()["events"]] == ["order.received"]
    assert stack.limiter.open("reader") == 0
