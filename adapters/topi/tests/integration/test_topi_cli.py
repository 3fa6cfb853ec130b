"""The ``python -m orderhub_topi.simulator`` entry point, run as a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def cli_simulator() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderhub_topi.simulator",
            "--port",
            str(port),
            "--client-id",
            "cli-client",
            "--client-secret",
            "cli-secret",
            "--token-ttl",
            "120",
            "--no-fixtures",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"simulator exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                httpx.get(f"{url}/_sim/faults", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # also closes the stderr pipe


def test_cli_flags_configure_credentials_token_lifetime_and_fixtures(cli_simulator: str) -> None:
    refused = httpx.post(
        f"{cli_simulator}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("orderhub", "orderhub-secret"),
    )
    assert refused.status_code == 401
    granted = httpx.post(
        f"{cli_simulator}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("cli-client", "cli-secret"),
    )
    assert granted.status_code == 200
    assert granted.json()["expires_in"] == 120
    token = granted.json()["access_token"]
    fixture = httpx.get(
        f"{cli_simulator}/v1/orders/52c1e8ec-a592-48a9-b574-ab88b0937b38",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert fixture.status_code == 404  # --no-fixtures
