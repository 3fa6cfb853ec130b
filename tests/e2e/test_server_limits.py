"""The limits a real ``orderhub serve`` enforces before the app (docs/limits.md): a request
head (request line and headers) that is still incomplete after 16 KiB (h11's limit, as
uvicorn runs it: a head read whole in one go may be larger, up to one 64 KiB read) is a
400, and the server goes on answering; a body over ``max_body_bytes`` is a 413 problem,
announced or streamed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Final

import httpx

from .conftest import HubFactory

OVERSIZED_HEAD: Final = 256 * 1024  # well over what one read takes in
BODY_LIMIT: Final = 1_048_576  # [api] max_body_bytes, default


def raw_request(port: int, request: bytes) -> bytes:
    """What the server answers to exactly these bytes (up to 64 KiB, bounded in time)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while len(answer) < 65536 and (chunk := sock.recv(4096)):
                answer += chunk
        except ConnectionResetError:  # the server may close before reading it all
            pass
    return answer


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


def test_oversized_heads_and_bodies_are_refused_and_the_server_goes_on(
    hub_factory: HubFactory,
) -> None:
    hub = hub_factory("embedded")
    big_header = b"x-big: " + b"a" * OVERSIZED_HEAD + b"\r\n"
    answer = raw_request(
        hub.port,
        b"GET /healthz HTTP/1.1\r\nhost: hub\r\n" + big_header + b"connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]

    announced = httpx.post(
        f"{hub.url}/webhooks/testchannel/topi",
        content=b" " * (BODY_LIMIT + 1),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert announced.status_code == 413, announced.text
    assert announced.headers["content-type"].startswith("application/problem+json")
    assert announced.json()["rule"] == "payload-too-large"
    streamed = httpx.post(  # no Content-Length: counted as it arrives
        f"{hub.url}/webhooks/testchannel/topi",
        content=chunks(BODY_LIMIT + 1),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["rule"] == "payload-too-large"

    assert httpx.get(f"{hub.url}/healthz", timeout=30).status_code == 200
