"""Octopia against the adapter conformance kit (orderhub.testing.conformance): the hub on
the fakes, the real Octopia plugin, the Octopia simulator over HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from octopia_conformance_driver import OctopiaDriver

from orderhub.testing.conformance import ConformanceSuite

CARRIER = "conformance-carrier"


class TestOctopiaConformance(ConformanceSuite):
    @pytest_asyncio.fixture
    async def conformance_driver(self, octopia_url: str) -> AsyncIterator[OctopiaDriver]:
        async with httpx.AsyncClient(timeout=10) as http:
            (await http.post(f"{octopia_url}/_sim/reset")).raise_for_status()
            carrier = {"code": "conf", "label": CARRIER}  # the kit's shipments name it
            (await http.post(f"{octopia_url}/_sim/carriers", json=carrier)).raise_for_status()
            yield OctopiaDriver(octopia_url, http)
