from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from octopia_rig import OctopiaRig

from orderhub_octopia.simulator import SimulatorControl


@pytest_asyncio.fixture
async def rigs(sim: SimulatorControl) -> AsyncIterator[Callable[..., OctopiaRig]]:
    opened: list[OctopiaRig] = []

    def make(**settings: Any) -> OctopiaRig:
        rig = OctopiaRig(sim.url, **settings)
        opened.append(rig)
        return rig

    yield make
    for rig in opened:
        await rig.aclose()


@pytest_asyncio.fixture
async def rig(rigs: Callable[..., OctopiaRig]) -> OctopiaRig:
    return rigs(carriers_refresh_seconds=86400)
