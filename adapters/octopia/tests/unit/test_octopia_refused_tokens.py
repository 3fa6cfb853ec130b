"""A fresh token refused with 401 on every call (credentials revoked, SellerId unlinked):
each call must not buy another token until the hour's budget is gone."""

from __future__ import annotations

import httpx
import pytest

from orderhub.channels.spi import ChannelConfigurationError, TransientChannelError
from orderhub_octopia.auth import Credentials
from orderhub_octopia.client import OctopiaClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_storm_of_401_does_not_spend_the_token_budget() -> None:
    clock, tokens = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            tokens.append(1)
            return httpx.Response(200, json={"access_token": f"t{len(tokens)}", "expires_in": 7200})
        return httpx.Response(401, json={"title": "Unauthorized"})

    c = OctopiaClient(
        seller_id="1",
        credentials=Credentials(client_id="c", client_secret="s", token_url="https://auth/t"),
        base_url="https://api",
        transport=httpx.MockTransport(handler),
        clock=clock,
        tokens_per_hour=500,
    )
    for _ in range(200):  # commands and polls, one a second
        with pytest.raises((ChannelConfigurationError, TransientChannelError)):
            await c.get_order("O")
        clock.now += 1
    # a pause after each refused fresh token (2 s doubling): a handful, not one a call
    assert len(tokens) <= 16, len(tokens)
    await c.aclose()


@pytest.mark.parametrize("expires_in", [-5, 0.001])
async def test_a_token_said_to_expire_at_once_is_not_bought_again_for_each_call(
    expires_in: float,
) -> None:
    clock, tokens = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth":
            tokens.append(1)
            return httpx.Response(
                200, json={"access_token": f"t{len(tokens)}", "expires_in": expires_in}
            )
        return httpx.Response(200, json={"orderId": "O", "status": "Accepted", "lines": []})

    c = OctopiaClient(
        seller_id="1",
        credentials=Credentials(client_id="c", client_secret="s", token_url="https://auth/t"),
        base_url="https://api",
        transport=httpx.MockTransport(handler),
        clock=clock,
    )
    for _ in range(50):
        await c.get_order("O")
        clock.now += 0.5
    assert len(tokens) == 1
    await c.aclose()
