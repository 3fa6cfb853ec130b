"""Fixtures: the web app over fakes (a Hub of in-memory ports) and the stub channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from orderhub.channels.registry import ChannelRegistry
from orderhub.domain.capabilities import Capabilities
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue

from .support import API_KEYS, FULL, Harness, fake_hub, stub_registry


@pytest.fixture
def capabilities() -> Capabilities:
    return FULL


@pytest.fixture
def registry(capabilities: Capabilities) -> ChannelRegistry:
    return stub_registry(capabilities)


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings(api_keys=API_KEYS, max_body_bytes=64 * 1024)


@pytest.fixture
async def harness(registry: ChannelRegistry, settings: WebSettings) -> AsyncIterator[Harness]:
    clock = FixedClock()
    db = FakeDatabase()
    queue = RecordingQueue()
    hub = fake_hub(registry, db=db, clock=clock, queue=queue)
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
