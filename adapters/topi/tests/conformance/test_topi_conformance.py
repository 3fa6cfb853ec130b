"""topi against the adapter conformance kit (orderhub.testing.conformance): the hub on the
fakes, the real topi plugin, the topi simulator over HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from topi_conformance_driver import CLIENT_ID, CLIENT_SECRET, DRIVER_TOKEN, TopiDriver

from orderhub.testing.conformance import ConformanceSuite
from orderhub_topi.simulator import SimulatorConfig, ThreadedServer, create_app


@pytest.fixture(scope="module")
def topi_simulator() -> Iterator[str]:
    """One simulator for the module, without a webhook URL: the driver reads the webhooks
    topi would send from the control API, so nothing waits for a delivery."""
    config = SimulatorConfig(
        clients={CLIENT_ID: CLIENT_SECRET},
        static_tokens=frozenset({DRIVER_TOKEN}),
        fixtures=False,
    )
    with ThreadedServer(create_app(config)) as server:
        yield server.url


class TestTopiConformance(ConformanceSuite):
    @pytest_asyncio.fixture
    async def conformance_driver(self, topi_simulator: str) -> AsyncIterator[TopiDriver]:
        async with httpx.AsyncClient(timeout=10) as http:
            (
                await http.post(f"{topi_simulator}/_sim/reset", json={"fixtures": False})
            ).raise_for_status()
            yield TopiDriver(topi_simulator, http)
