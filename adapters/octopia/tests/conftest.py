"""Fixtures for the Octopia adapter tests: one simulator on a loopback port for the
session (uvicorn in a background thread), reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orderhub_octopia.simulator import SimulatorControl, ThreadedServer, create_app


@pytest.fixture(scope="session")
def octopia_url() -> Iterator[str]:
    with ThreadedServer(create_app()) as server:
        yield server.url


@pytest.fixture
def sim(octopia_url: str) -> Iterator[SimulatorControl]:
    control = SimulatorControl(octopia_url)
    control.reset()
    yield control
    control.close()
