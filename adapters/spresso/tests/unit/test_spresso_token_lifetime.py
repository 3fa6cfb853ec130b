"""A token answer that says the token is already expired must not cost a token per call."""

from __future__ import annotations

import httpx
import pytest

from orderhub_spresso import wire
from orderhub_spresso.client import ClientCredentials, SpressoAuthError, SpressoClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("expires_in", [-5, 0.001])
async def test_a_token_said_to_expire_at_once_is_kept_a_minute(expires_in: float) -> None:
    clock, tokens = Clock(), []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == wire.TOKEN_PATH:
            tokens.append(1)
            return httpx.Response(200, json={"access_token": "t", "expires_in": expires_in})
        return httpx.Response(200, json={})

    c = SpressoClient(
        base_url="https://spresso",
        tokens=ClientCredentials(
            token_url=f"https://spresso{wire.TOKEN_PATH}",
            client_id="i",
            client_secret="s",
            clock=clock,
        ),
        transport=httpx.MockTransport(handler),
    )
    for _ in range(20):
        await c.update_fulfillment(
            "F1", wire.FulfillmentUpdate(status="delivered"), idempotency_key="k"
        )
        clock.now += 1
    assert len(tokens) == 1
    await c.aclose()


async def test_each_token_fetch_is_reported_for_the_accounts_health() -> None:
    answers = [httpx.Response(401, json={"message": "bad client"})]
    reports: list[tuple[bool, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == wire.TOKEN_PATH:
            if answers:
                return answers.pop()
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={})

    async def report(ok: bool, detail: str) -> None:
        reports.append((ok, detail))

    tokens = ClientCredentials(
        token_url=f"https://spresso{wire.TOKEN_PATH}", client_id="i", client_secret="s"
    )
    tokens.report = report
    c = SpressoClient(
        base_url="https://spresso", tokens=tokens, transport=httpx.MockTransport(handler)
    )
    update = wire.FulfillmentUpdate(status="delivered")
    with pytest.raises(SpressoAuthError):
        await c.update_fulfillment("F1", update, idempotency_key="k")
    await c.update_fulfillment("F1", update, idempotency_key="k")
    await c.aclose()
    assert [ok for ok, _ in reports] == [False, True]
    assert "refused the client" in reports[0][1]
