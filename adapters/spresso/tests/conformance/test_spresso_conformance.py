"""Spresso against the adapter conformance kit (orderhub.testing.conformance): the hub on
the fakes, the real Spresso plugin, the Spresso simulator over HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from spresso_conformance_driver import CLIENT_ID, CLIENT_SECRET, DRIVER_TOKEN, SpressoDriver

from orderhub.testing.conformance import ConformanceSuite
from orderhub_spresso.simulator import SimulatorConfig, ThreadedServer, create_app


@pytest.fixture(scope="module")
def spresso_simulator() -> Iterator[str]:
    """No webhook URL: the driver reads the webhooks Spresso would send from the control
    API, so nothing waits for a delivery."""
    config = SimulatorConfig(
        clients={CLIENT_ID: CLIENT_SECRET}, static_tokens=frozenset({DRIVER_TOKEN})
    )
    with ThreadedServer(create_app(config)) as server:
        yield server.url


class TestSpressoConformance(ConformanceSuite):
    @pytest_asyncio.fixture
    async def conformance_driver(self, spresso_simulator: str) -> AsyncIterator[SpressoDriver]:
        async with httpx.AsyncClient(timeout=10) as http:
            (await http.post(f"{spresso_simulator}/_sim/reset")).raise_for_status()
            yield SpressoDriver(spresso_simulator, http)
