"""The Spresso simulator on a loopback port for the module's tests (reset before each)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from spresso_hub import SpressoDriver, Story

from orderhub_spresso.simulator import SimulatorConfig, ThreadedServer, create_app

CLIENT_ID = "orderhub-conformance"
CLIENT_SECRET = "conformance-secret"
DRIVER_TOKEN = "conformance-driver-token"


@pytest.fixture(scope="session")
def spresso_url() -> Iterator[str]:
    config = SimulatorConfig(
        clients={CLIENT_ID: CLIENT_SECRET},
        static_tokens=frozenset({DRIVER_TOKEN}),
        webhook_retry_delays=(0.05, 0.1, 0.2),
    )
    with ThreadedServer(create_app(config)) as server:
        yield server.url


@pytest_asyncio.fixture
async def driver(spresso_url: str) -> AsyncIterator[SpressoDriver]:
    async with httpx.AsyncClient(timeout=10) as http:
        (await http.post(f"{spresso_url}/_sim/reset")).raise_for_status()
        yield SpressoDriver(spresso_url, http, timeout_seconds=2)


@pytest_asyncio.fixture
async def story(driver: SpressoDriver) -> AsyncIterator[Story]:
    made = Story(driver)
    yield made
    await made.aclose()
