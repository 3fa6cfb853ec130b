"""Fixtures: the web app over fakes (a Hub of in-memory ports) and the stub channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from orderhub.application.hub import Hub
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig, WebhookAuth
from orderhub.domain.capabilities import Capabilities
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.testing.fakes import (
    FakeDatabase,
    FixedClock,
    RecordingQueue,
    SequentialIds,
)

from .support import (
    API_KEYS,
    BEARER_TOKEN,
    CHANNEL,
    FULL,
    OLD_SECRET,
    PATH_TOKEN,
    PLAIN,
    SECRET,
    Harness,
    StubPlugin,
    fake_uow,
)


@pytest.fixture
def capabilities() -> Capabilities:
    return FULL


@pytest.fixture
def registry(capabilities: Capabilities) -> ChannelRegistry:
    plugins = {
        CHANNEL: LoadedPlugin(plugin=StubPlugin(), distribution="orderhub-stub", version="0.1.0"),
        "idle": LoadedPlugin(plugin=StubPlugin("idle"), distribution="idle-dist", version="2.0"),
    }
    accounts = [
        AccountConfig(
            channel=CHANNEL,
            name="main",
            settings={"capabilities": capabilities},
            webhook=WebhookAuth(hmac_secrets=(SECRET, OLD_SECRET)),
        ),
        AccountConfig(
            channel=CHANNEL,
            name="plain",
            settings={"capabilities": PLAIN},
            webhook=WebhookAuth(bearer_tokens=(BEARER_TOKEN,)),
        ),
        AccountConfig(
            channel=CHANNEL, name="pathtoken", webhook=WebhookAuth(path_tokens=(PATH_TOKEN,))
        ),
        AccountConfig(channel=CHANNEL, name="closed"),
    ]
    return ChannelRegistry(plugins, accounts)


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=API_KEYS, max_body_bytes=64 * 1024)


@pytest.fixture
async def harness(registry: ChannelRegistry, settings: WebSettings) -> AsyncIterator[Harness]:
    clock = FixedClock()
    db = FakeDatabase()
    queue = RecordingQueue()
    hub = Hub(
        uow=fake_uow(db, clock),
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
    )
    app = create_app(hub, settings)
    async with AsyncTestClient(app=app) as client:
        yield Harness(hub=hub, db=db, clock=clock, queue=queue, client=client, app=app)


@pytest.fixture
async def raw_client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client over the same app that sends header bytes exactly as given (Litestar's test
    client re-encodes header values as UTF-8; a real server passes the client's bytes)."""
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
