"""SpressoClient against httpx.MockTransport: tokens (client credentials, cached, renewed
five minutes early, a 401 renews once), error classes, Spresso's text kept."""

from __future__ import annotations

import json

import httpx
import pytest

from orderhub_spresso import wire
from orderhub_spresso.client import (
    ClientCredentials,
    SpressoAuthError,
    SpressoClient,
    SpressoRejectedError,
    SpressoTransientError,
    StaticToken,
)

BASE = "https://spresso.test"
TOKEN_URL = f"{BASE}/identity/v1/public/token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Spresso:
    """Hands out tokens ``t1``, ``t2``...; answers PUTs from a list of statuses."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == wire.TOKEN_PATH:
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"t{self.tokens}", "expires_in": 3600})
        return self.answers.pop(0) if self.answers else httpx.Response(200, json={})

    def auth(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if r.url.path != wire.TOKEN_PATH]


def client(spresso: Spresso, clock: Clock | None = None) -> tuple[SpressoClient, ClientCredentials]:
    tokens = ClientCredentials(
        token_url=TOKEN_URL, client_id="id", client_secret="secret", clock=clock or Clock()
    )
    made = SpressoClient(base_url=BASE, tokens=tokens, transport=httpx.MockTransport(spresso))
    return made, tokens


UPDATE = wire.FulfillmentUpdate(status=wire.DELIVERED)


async def test_the_token_is_asked_for_with_client_credentials_and_cached() -> None:
    spresso = Spresso()
    c, _ = client(spresso)
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k1")
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k2")
    token_call = spresso.requests[0]
    assert json.loads(token_call.content) == {
        "client_id": "id",
        "client_secret": "secret",
        "audience": "https://spresso-api",
        "grant_type": "client_credentials",
    }
    assert spresso.tokens == 1
    assert spresso.auth() == ["Bearer t1", "Bearer t1"]
    put = spresso.requests[1]
    assert (put.method, put.url.path, put.headers["idempotency-key"]) == (
        "PUT",
        "/v1/fulfillments/F1",
        "k1",
    )
    assert json.loads(put.content) == {"status": "delivered"}


async def test_the_token_is_renewed_five_minutes_before_it_expires() -> None:
    spresso, clock = Spresso(), Clock()
    c, _ = client(spresso, clock)
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    clock.now += 3600 - 301
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert spresso.tokens == 1
    clock.now += 2
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert spresso.auth() == ["Bearer t1", "Bearer t1", "Bearer t2"]


async def test_a_401_renews_the_token_once_then_fails_as_a_configuration_error() -> None:
    spresso = Spresso(httpx.Response(401, json={"message": "expired"}))
    c, _ = client(spresso)
    await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert spresso.auth() == ["Bearer t1", "Bearer t2"]

    refused = Spresso(*[httpx.Response(401, json={"message": "who are you"})] * 2)
    c, _ = client(refused)
    with pytest.raises(SpressoAuthError, match="who are you"):
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert len(refused.auth()) == 2


async def test_a_static_token_is_not_renewed() -> None:
    spresso = Spresso(httpx.Response(401, json={"message": "revoked"}))
    c = SpressoClient(
        base_url=BASE, tokens=StaticToken("static"), transport=httpx.MockTransport(spresso)
    )
    with pytest.raises(SpressoAuthError, match="revoked"):
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert spresso.auth() == ["Bearer static"]


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_5xx_429_and_408_are_transient(status: int) -> None:
    answer = httpx.Response(status, json={"message": "busy"}, headers={"Retry-After": "7"})
    c, _ = client(Spresso(answer))
    with pytest.raises(SpressoTransientError) as caught:
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert (caught.value.status, caught.value.retry_after) == (status, 7.0)


async def test_other_4xx_fail_for_good_with_spressos_text_and_body() -> None:
    answer = httpx.Response(409, json={"message": "fulfillment is cancelled", "code": "X"})
    c, _ = client(Spresso(answer))
    with pytest.raises(SpressoRejectedError) as caught:
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
    assert caught.value.message == "fulfillment is cancelled"
    assert caught.value.body is not None
    assert '"code":"X"' in caught.value.body.replace(" ", "")


async def test_timeouts_and_refused_connections_are_transient() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    c = SpressoClient(base_url=BASE, tokens=StaticToken("s"), transport=httpx.MockTransport(boom))
    with pytest.raises(SpressoTransientError, match="timeout"):
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")


async def test_a_token_endpoint_refusal_is_an_auth_error_and_its_outage_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json={"error": "access_denied", "error_description": "bad audience"}
        )

    c, _ = client(Spresso())
    c = SpressoClient(base_url=BASE, tokens=c.tokens, transport=httpx.MockTransport(refuse))
    with pytest.raises(SpressoAuthError, match="bad audience"):
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="maintenance")

    c = SpressoClient(
        base_url=BASE,
        tokens=ClientCredentials(token_url=TOKEN_URL, client_id="i", client_secret="s"),
        transport=httpx.MockTransport(down),
    )
    with pytest.raises(SpressoTransientError, match="maintenance"):
        await c.update_fulfillment("F1", UPDATE, idempotency_key="k")
