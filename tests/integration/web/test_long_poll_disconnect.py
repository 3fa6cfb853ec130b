"""Under a real server (uvicorn, which does not cancel a handler when its client leaves),
a long-poll whose client goes away ends at once and gives its place back: a WMS whose
proxy times out and reconnects is not locked out for the rest of the abandoned waits.

No timing is measured: the places must be free again long before the polls' 30 s wait
would end, under a bound (20 s) only reached when something is wrong."""

from __future__ import annotations

import socket
import time
from typing import Final

import httpx

from orderhub.application.hub import Hub
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.entrypoints.web.long_polls import LONG_POLLS_STATE, LongPolls
from orderhub.testing.fakes import FakeUnitOfWorkFactory, FixedClock, RecordingQueue, SequentialIds
from orderhub.testing.servers import ThreadedServer
from tests.unit.web.support import API_KEYS, KEYS, stub_registry

PER_KEY: Final = 2
BOUND_SECONDS: Final = 20.0
WAIT_SECONDS: Final = 30


def open_poll(host: str, port: int) -> socket.socket:
    """A long-poll sent on a raw socket, its answer never read."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(
        f"GET /api/v1/feed?after=0&wait={WAIT_SECONDS} HTTP/1.1\r\nHost: hub\r\n"
        f"Authorization: Bearer {KEYS['reader']}\r\n\r\n".encode()
    )
    return sock


def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_long_poll_whose_client_left_gives_its_place_back() -> None:
    clock = FixedClock()
    hub = Hub(
        uow=FakeUnitOfWorkFactory(clock=clock),
        channels=stub_registry(),
        clock=clock,
        ids=SequentialIds(),
        queue=RecordingQueue(),
    )
    app = create_app(hub, WebSettings(api_keys=API_KEYS, max_long_polls_per_key=PER_KEY))
    limiter = app.state[LONG_POLLS_STATE]
    assert isinstance(limiter, LongPolls)
    with ThreadedServer(app) as server:
        polls = [open_poll(server.host, server.port) for _ in range(PER_KEY)]
        until(lambda: limiter.open("reader") == PER_KEY, "the polls to hold their places")
        headers = {"Authorization": f"Bearer {KEYS['reader']}"}
        over = httpx.get(f"{server.url}/api/v1/feed?wait=1", headers=headers, timeout=10)
        assert over.status_code == 429  # the key's share is held
        for sock in polls:  # the WMS's proxy gives up on them
            sock.close()
        until(lambda: limiter.open("reader") == 0, "the abandoned polls to give their places back")
        again = httpx.get(f"{server.url}/api/v1/feed?wait=0.1", headers=headers, timeout=10)
        assert again.status_code == 200
