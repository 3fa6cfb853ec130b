"""The fault proxy between the hub and a shared server: passes bytes through, holds them
during a pause (connections kept), resets or closes every connection on a restart and
refuses new ones for the restart's length."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import pytest
from chaos.netfaults import FaultProxy
from chaos.run import SKEWS, clock_skews

from tests.unit.chaos.echo import echo_server


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server, port = echo_server()
    p = FaultProxy("127.0.0.1", port, "test").start()
    try:
        yield p
    finally:
        p.close()
        server.close()


def _connect(p: FaultProxy) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    conn.sendall(b"hi")
    assert conn.recv(100) == b"echo:hi"
    return conn


def test_bytes_pass_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as conn:
        conn.sendall(b"again")
        assert conn.recv(100) == b"echo:again"


def test_a_pause_holds_traffic_and_keeps_the_connection(proxy: FaultProxy) -> None:
    with _connect(proxy) as conn:
        proxy.pause(0.6)
        started = time.monotonic()
        conn.sendall(b"held")
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(100)
        conn.settimeout(5)
        assert conn.recv(100) == b"echo:held"
        assert 0.5 <= time.monotonic() - started < 3
        conn.sendall(b"after")
        assert conn.recv(100) == b"echo:after"


def test_a_pause_holds_a_new_connection_until_it_ends(proxy: FaultProxy) -> None:
    proxy.pause(0.5)
    started = time.monotonic()
    with _connect(proxy):
        assert 0.4 <= time.monotonic() - started < 3


def test_a_reset_breaks_open_connections_and_refuses_for_a_while(proxy: FaultProxy) -> None:
    conn = _connect(proxy)
    proxy.reset(0.6)
    with pytest.raises(ConnectionResetError):
        conn.recv(100)  # the RST, not an end of stream
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    assert proxy.open_connections() == 0
    time.sleep(1.0)
    with _connect(proxy):
        pass


def test_a_clean_close_sends_a_fin_and_refuses_for_a_while(proxy: FaultProxy) -> None:
    conn = _connect(proxy)
    proxy.close_all(0.6)
    assert conn.recv(100) == b""  # end of stream, not a reset
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    time.sleep(1.0)
    with _connect(proxy):
        pass


def test_clock_skews_are_seeded_and_skew_at_least_one_process() -> None:
    for seed in range(50):
        skews = clock_skews(random.Random(f"{seed}:skew"))
        assert skews == clock_skews(random.Random(f"{seed}:skew"))
        assert skews
        assert all(s in SKEWS and s for s in skews.values())
