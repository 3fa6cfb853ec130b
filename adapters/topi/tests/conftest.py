"""Fixtures for the topi adapter tests.

The integration tests run the simulator and a tiny webhook receiver with uvicorn, each
on a free loopback port in a background thread (``ThreadedServer``), once per session;
every test starts from ``POST /_sim/reset``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from topi_helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    STATIC_TOKEN,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    WebhookReceiver,
    make_client,
)

from orderhub_topi.client import TopiClient
from orderhub_topi.simulator import SimulatorConfig, SimulatorControl, ThreadedServer, create_app


@pytest.fixture(scope="session")
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    app = WebhookReceiver()
    with ThreadedServer(app) as server:
        yield app, f"{server.url}/webhooks/topi/default"


@pytest.fixture(scope="session")
def simulator_url(receiver: tuple[WebhookReceiver, str]) -> Iterator[str]:
    _, hook_url = receiver
    config = SimulatorConfig(
        webhook_url=hook_url,
        webhook_token=WEBHOOK_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        webhook_retry_delays=(0.05, 0.1, 0.2),
        clients={CLIENT_ID: CLIENT_SECRET},
        static_tokens=frozenset({STATIC_TOKEN}),
    )
    with ThreadedServer(create_app(config)) as server:
        yield server.url


@pytest.fixture
def webhooks(receiver: tuple[WebhookReceiver, str]) -> WebhookReceiver:
    return receiver[0]


@pytest.fixture
def sim(simulator_url: str, webhooks: WebhookReceiver) -> Iterator[SimulatorControl]:
    control = SimulatorControl(simulator_url)
    control.reset()
    webhooks.clear()
    yield control
    control.close()


@pytest.fixture
async def topi(sim: SimulatorControl) -> AsyncIterator[TopiClient]:
    async with make_client(sim.url) as client:
        yield client
