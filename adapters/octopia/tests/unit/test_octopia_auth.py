"""The token source and the client's errors against httpx.MockTransport (no network)."""

from __future__ import annotations

import httpx
import pytest

from orderhub.channels.spi import ChannelConfigurationError, TransientChannelError
from orderhub_octopia.auth import Credentials, TokenSource
from orderhub_octopia.client import OctopiaClient, OctopiaRejected


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(handler, clock: Clock, **kw) -> OctopiaClient:  # type: ignore[no-untyped-def]
    return OctopiaClient(
        seller_id="1",
        credentials=Credentials(client_id="c", client_secret="s", token_url="https://auth/t"),
        base_url="https://api",
        transport=httpx.MockTransport(handler),
        clock=clock,
        **kw,
    )


async def test_one_token_is_reused_until_shortly_before_it_expires() -> None:
    clock, tokens = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            assert b"grant_type=client_credentials" in request.content
            tokens.append(1)
            return httpx.Response(200, json={"access_token": f"t{len(tokens)}", "expires_in": 7200})
        assert request.headers["SellerId"] == "1"
        return httpx.Response(200, json={"orderId": "O", "status": "Accepted", "lines": []})

    c = client(handler, clock)
    for _ in range(5):
        await c.get_order("O")
    clock.now += 7200 - 301
    await c.get_order("O")
    assert len(tokens) == 1
    clock.now += 2
    await c.get_order("O")
    assert len(tokens) == 2
    await c.aclose()


async def test_failures_pause_the_token_endpoint_and_the_quota_holds() -> None:
    clock, calls = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(503)

    c = client(handler, clock, tokens_per_hour=3)
    for _ in range(20):  # a storm of commands during an outage
        with pytest.raises(TransientChannelError):
            await c.get_order("O")
        clock.now += 1
    assert calls.count("auth") <= 3
    await c.aclose()


async def test_401_refreshes_once_then_is_a_configuration_error() -> None:
    clock, tokens = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            tokens.append(1)
            return httpx.Response(200, json={"access_token": "t", "expires_in": 7200})
        return httpx.Response(401, json={"title": "Unauthorized"})

    c = client(handler, clock)
    with pytest.raises(ChannelConfigurationError, match="fresh token"):
        await c.get_order("O")
    assert len(tokens) == 2
    await c.aclose()


async def test_problem_details_are_kept_whole_and_429_says_when() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            return httpx.Response(200, json={"access_token": "t"})
        if request.method == "GET":
            return httpx.Response(429, headers={"Retry-After": "12"})
        return httpx.Response(
            400,
            json={
                "title": "Validation Failed",
                "detail": "bad",
                "errors": {"carrierName": ["unknown carrier"]},
            },
            headers={"content-type": "application/problem+json"},
        )

    c = client(handler, Clock())
    with pytest.raises(TransientChannelError) as busy:
        await c.get_order("O")
    assert busy.value.retry_after == 12
    with pytest.raises(OctopiaRejected) as refused:
        await c.ship("O", parcel_number="P", carrier_name="X", tracking_url=None, line_ids=["L"])
    assert "Validation Failed; bad; carrierName: unknown carrier" in refused.value.message
    await c.aclose()


async def test_bad_credentials_are_a_configuration_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client", "error_description": "nope"})

    c = client(handler, Clock())
    with pytest.raises(ChannelConfigurationError, match="nope"):
        await c.get_order("O")
    await c.aclose()


def test_the_budget_key_names_the_client_or_its_hash() -> None:
    def key(client_id: str) -> str:
        credentials = Credentials(client_id=client_id, client_secret="s")
        return TokenSource(credentials, httpx.AsyncClient()).budget_key

    assert key("orderhub") == "octopia:token:orderhub"
    long = key("x" * 300)
    assert long.startswith("octopia:token:sha256:")
    assert len(long) < 100
    assert key("a\x00b").startswith("octopia:token:sha256:")
    assert key("x" * 300) == long  # the same client, the same budget


async def test_a_budget_that_cannot_be_read_asks_for_no_token_and_backs_off() -> None:
    class Down:
        async def spend(self, key: str, *, limit: int, window_seconds: float) -> float | None:
            raise OSError("database unreachable")

    asked: list[httpx.Request] = []
    now = [0.0]
    transport = httpx.MockTransport(lambda r: asked.append(r) or httpx.Response(500))
    tokens = TokenSource(
        Credentials(client_id="c", client_secret="s"),
        httpx.AsyncClient(transport=transport),
        clock=lambda: now[0],
    )
    tokens.share(Down())
    pauses = []
    for _ in range(3):
        with pytest.raises(TransientChannelError, match="database unreachable") as waiting:
            await tokens.token()
        pauses.append(waiting.value.retry_after)
        now[0] += 1000  # past any pause
    assert asked == []
    assert pauses == [2.0, 4.0, 8.0]  # growing, as after a failed fetch
