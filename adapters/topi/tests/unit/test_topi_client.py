"""TopiClient against httpx.MockTransport: tokens, error classification, request shapes."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from orderhub_topi.client import (
    ClientCredentials,
    TopiAuthError,
    TopiClient,
    TopiProtocolError,
    TopiRejectedError,
    TopiTransientError,
    parse_retry_after,
)
from orderhub_topi.wire import SellerProductReference, SerialNumberByAsset, ShipmentRequest

BASE = "https://topi.test"
TOKEN_URL = "https://identity.test/oauth2/token"
ORDER_ID = "739b63c2-9e58-4964-b38d-4ebb424de242"
FULL_ORDER = (Path(__file__).parent / "data" / "openapi_get_order_200.json").read_bytes()
ACCEPTED = (Path(__file__).parent / "data" / "openapi_accept_200.json").read_bytes()


def goa_error(status: int, name: str, message: str, **headers: str) -> httpx.Response:
    body = {
        "name": name,
        "id": "e1",
        "message": message,
        "temporary": False,
        "timeout": False,
        "fault": status >= 500,
    }
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/vnd.goa.error", **headers},
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTopi:
    """A scripted topi: counts token grants, answers API calls via ``api``."""

    def __init__(self, *, expires_in: int | None = 3600) -> None:
        self.expires_in = expires_in
        self.token_requests: list[httpx.Request] = []
        self.api_requests: list[httpx.Request] = []
        self.token_response: Callable[[httpx.Request], httpx.Response] | None = None
        self.api: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(
            200, content=FULL_ORDER
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            if self.token_response is not None:
                return self.token_response(request)
            body: dict[str, object] = {
                "access_token": f"tok-{len(self.token_requests)}",
                "token_type": "bearer",
            }
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        self.api_requests.append(request)
        return self.api(request)

    def client(self, **kw: object) -> TopiClient:
        kw.setdefault(
            "credentials",
            ClientCredentials(client_id="cid", client_secret="c:secret", token_url=TOKEN_URL),
        )
        return TopiClient(base_url=BASE, transport=httpx.MockTransport(self.handler), **kw)  # type: ignore[arg-type]

    def bearer(self, i: int) -> str:
        return self.api_requests[i].headers["authorization"]


# ---- tokens -------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused() -> None:
    topi = FakeTopi()
    async with topi.client() as client:
        for _ in range(3):
            await client.get_order(ORDER_ID)
    assert len(topi.token_requests) == 1
    assert [topi.bearer(i) for i in range(3)] == ["Bearer tok-1"] * 3
    grant = topi.token_requests[0]
    assert parse_qs(grant.content.decode()) == {"grant_type": ["client_credentials"]}
    assert grant.headers["authorization"] == "Basic " + base64.b64encode(b"cid:c:secret").decode()


async def test_client_secret_post_sends_credentials_in_the_form() -> None:
    topi = FakeTopi()
    creds = ClientCredentials(
        client_id="cid", client_secret="sec", token_url=TOKEN_URL, auth_method="post", scope="a b"
    )
    async with topi.client(credentials=creds) as client:
        await client.get_order(ORDER_ID)
    form = parse_qs(topi.token_requests[0].content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": ["sec"],
        "scope": ["a b"],
    }
    assert "authorization" not in topi.token_requests[0].headers


async def test_token_is_refreshed_sixty_seconds_before_expiry() -> None:
    topi, clock = FakeTopi(expires_in=3600), FakeClock()
    async with topi.client(clock=clock) as client:
        await client.get_order(ORDER_ID)
        clock.now += 3600 - 61
        await client.get_order(ORDER_ID)
        assert len(topi.token_requests) == 1
        clock.now += 2  # now 59 s before expiry
        await client.get_order(ORDER_ID)
    assert len(topi.token_requests) == 2
    assert topi.bearer(2) == "Bearer tok-2"


async def test_short_lived_token_is_refreshed_at_half_life() -> None:
    topi, clock = FakeTopi(expires_in=40), FakeClock()
    async with topi.client(clock=clock) as client:
        await client.get_order(ORDER_ID)
        clock.now += 19
        await client.get_order(ORDER_ID)
        assert len(topi.token_requests) == 1
        clock.now += 2
        await client.get_order(ORDER_ID)
    assert len(topi.token_requests) == 2


async def test_concurrent_calls_share_one_token_request() -> None:
    topi = FakeTopi()
    async with topi.client() as client:
        await asyncio.gather(*(client.get_order(ORDER_ID) for _ in range(5)))
    assert len(topi.token_requests) == 1
    assert len(topi.api_requests) == 5


async def test_401_refreshes_the_token_once_and_retries() -> None:
    topi = FakeTopi()

    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            return httpx.Response(401, json="token expired")
        return httpx.Response(200, content=FULL_ORDER)

    topi.api = api
    async with topi.client() as client:
        order = await client.get_order(ORDER_ID)
    assert order.id == ORDER_ID
    assert len(topi.token_requests) == 2
    assert [topi.bearer(0), topi.bearer(1)] == ["Bearer tok-1", "Bearer tok-2"]


async def test_401_after_refresh_is_an_auth_error() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(401, json="invalid token")
    async with topi.client() as client:
        with pytest.raises(TopiAuthError) as info:
            await client.accept(ORDER_ID)
    assert info.value.status_code == 401
    assert info.value.message == "invalid token"
    assert len(topi.token_requests) == 2
    assert len(topi.api_requests) == 2


async def test_static_token_is_sent_and_a_401_is_not_retried() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(401, json="nope")
    async with topi.client(credentials=None, access_token="static-1") as client:
        with pytest.raises(TopiAuthError):
            await client.get_order(ORDER_ID)
    assert topi.token_requests == []
    assert len(topi.api_requests) == 1
    assert topi.bearer(0) == "Bearer static-1"


async def test_token_endpoint_refusal_is_an_auth_error_with_its_description() -> None:
    topi = FakeTopi()
    topi.token_response = lambda r: httpx.Response(
        401, json={"error": "invalid_client", "error_description": "Client authentication failed"}
    )
    async with topi.client() as client:
        with pytest.raises(TopiAuthError, match="Client authentication failed") as info:
            await client.get_order(ORDER_ID)
    assert info.value.name == "invalid_client"
    assert topi.api_requests == []


async def test_token_endpoint_outage_is_transient() -> None:
    topi = FakeTopi()
    topi.token_response = lambda r: httpx.Response(503, headers={"Retry-After": "3"})
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.get_order(ORDER_ID)
    assert info.value.retry_after == 3.0


def test_exactly_one_auth_mode_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TopiClient(base_url=BASE)
    with pytest.raises(ValueError, match="exactly one"):
        TopiClient(
            base_url=BASE,
            access_token="t",
            credentials=ClientCredentials(client_id="a", client_secret="b"),
        )


def test_credentials_repr_hides_the_secret() -> None:
    creds = ClientCredentials(client_id="cid", client_secret="hunter2")
    assert "hunter2" not in repr(creds)


# ---- error classification -------------------------------------------------------


async def test_429_retry_after_seconds() -> None:
    topi = FakeTopi()
    topi.api = lambda r: goa_error(429, "too_many_requests", "slow down", **{"Retry-After": "7"})
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.accept(ORDER_ID)
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert info.value.message == "slow down"


async def test_429_retry_after_http_date() -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(
        429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)}
    )
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.get_order(ORDER_ID)
    assert info.value.retry_after is not None
    assert 110 <= info.value.retry_after <= 121


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("15", 15.0),
        (" 15 ", 15.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = dt.datetime(2015, 10, 21, 7, 27, 30, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_transient_and_keeps_topis_message(status: int) -> None:
    topi = FakeTopi()
    topi.api = lambda r: goa_error(status, "fault", "database unavailable")
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.get_order(ORDER_ID)
    assert info.value.status_code == status
    assert info.value.message == "database unavailable"
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [408, 409, 425])
async def test_retryable_4xx_are_transient(status: int) -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(status)
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.create_shipment(ShipmentRequest(order_id=ORDER_ID, serial_numbers=[]))
    assert info.value.status_code == status


@pytest.mark.parametrize(
    ("status", "name", "message"),
    [
        (400, "bad_request", "asset has a rent option and requires a serial number"),
        (404, "not_found", f"order {ORDER_ID} not found"),
        (422, "invalid_status", 'you can only reject orders in status "created"'),
    ],
)
async def test_other_4xx_are_rejections_with_topis_message(
    status: int, name: str, message: str
) -> None:
    topi = FakeTopi()
    topi.api = lambda r: goa_error(status, name, message)
    async with topi.client() as client:
        with pytest.raises(TopiRejectedError) as info:
            await client.reject(ORDER_ID, already_applied_ok=False)
    err = info.value
    assert (err.status_code, err.name, err.message) == (status, name, message)
    assert err.method == "POST"
    assert err.url == f"{BASE}/v1/orders/{ORDER_ID}/reject"
    assert message in str(err)
    assert str(status) in str(err)


async def test_rejection_with_a_non_json_body_keeps_the_text() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(400, text="<html>bad request</html>")
    async with topi.client() as client:
        with pytest.raises(TopiRejectedError, match="bad request"):
            await client.get_order(ORDER_ID)


async def test_403_missing_scope_is_an_auth_error() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(403, json="missing scope seller-shipment:edit")
    async with topi.client() as client:
        with pytest.raises(TopiAuthError, match="seller-shipment:edit"):
            await client.create_shipment(ShipmentRequest(order_id=ORDER_ID, serial_numbers=[]))
    assert len(topi.token_requests) == 1  # a 403 does not refresh the token


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
async def test_transport_failures_are_transient(exc: Exception) -> None:
    topi = FakeTopi()

    def api(request: httpx.Request) -> httpx.Response:
        raise exc

    topi.api = api
    async with topi.client() as client:
        with pytest.raises(TopiTransientError) as info:
            await client.accept(ORDER_ID)
    assert info.value.status_code is None
    assert info.value.__cause__ is exc


async def test_undecodable_success_body_is_a_protocol_error() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(200, json={"unexpected": True})
    async with topi.client() as client:
        with pytest.raises(TopiProtocolError, match="FullOrderResult"):
            await client.get_order(ORDER_ID)


# ---- requests ---------------------------------------------------------------


async def test_order_commands_post_to_the_documented_paths_without_a_body() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(200, content=ACCEPTED)
    async with topi.client() as client:
        await client.acknowledge(ORDER_ID)
        await client.accept(ORDER_ID)
        result = await client.reject(ORDER_ID, reason="out of stock")
    assert result.status == "confirmed"
    assert [(r.method, r.url.path, r.content) for r in topi.api_requests] == [
        ("POST", f"/v1/orders/{ORDER_ID}/acknowledge", b""),
        ("POST", f"/v1/orders/{ORDER_ID}/accept", b""),
        ("POST", f"/v1/orders/{ORDER_ID}/reject", b""),
    ]


async def test_repeated_accept_refused_with_422_is_success_when_already_confirmed() -> None:
    topi = FakeTopi()

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return goa_error(422, "invalid_status", "order is in status confirmed")
        return httpx.Response(200, content=FULL_ORDER)  # status: confirmed

    topi.api = api
    async with topi.client() as client:
        result = await client.accept(ORDER_ID)
        assert result.status == "confirmed"
        assert result.id == ORDER_ID
        with pytest.raises(TopiRejectedError):
            await client.accept(ORDER_ID, already_applied_ok=False)
        # The same 422 on reject is a real refusal: the order is confirmed, not rejected.
        with pytest.raises(TopiRejectedError, match="confirmed"):
            await client.reject(ORDER_ID)
    assert [r.method for r in topi.api_requests] == ["POST", "GET", "POST", "POST", "GET"]


async def test_list_orders_paginated_query() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(200, json={"orders": [], "pagination": {}})
    since = dt.datetime(2025, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    async with topi.client() as client:
        await client.list_orders_paginated(created_at_gt=since, id_gt="abc-1", limit=50, page=2)
        with pytest.raises(ValueError, match="timezone"):
            await client.list_orders_paginated(created_at_gt=dt.datetime(2025, 1, 1))
    request = topi.api_requests[0]
    assert request.url.path == "/v1/orders/paginated"
    assert dict(request.url.params) == {
        "limit": "50",
        "page": "2",
        "created_at_gt": "2025-01-01T00:00:00Z",
        "id_gt": "abc-1",
    }


async def test_iter_orders_walks_every_page_of_one_filter() -> None:
    rows = [
        {"id": f"o-{i}", "status": "created", "created_at": f"2025-01-01T00:00:0{i}Z"}
        for i in range(5)
    ]
    topi = FakeTopi()

    def api(request: httpx.Request) -> httpx.Response:
        page, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        chunk = rows[(page - 1) * limit : page * limit]
        return httpx.Response(
            200,
            json={
                "orders": chunk,
                "pagination": {
                    "page": page,
                    "page_size": limit,
                    "total_count": 5,
                    "total_pages": 3,
                },
            },
        )

    topi.api = api
    async with topi.client() as client:
        seen = [
            o.id
            async for o in client.iter_orders(created_at_gt="2024-12-31T00:00:00Z", page_size=2)
        ]
    assert seen == ["o-0", "o-1", "o-2", "o-3", "o-4"]
    assert [r.url.params["page"] for r in topi.api_requests] == ["1", "2", "3"]
    assert {r.url.params["created_at_gt"] for r in topi.api_requests} == {"2024-12-31T00:00:00Z"}
    assert {r.url.params["sort_order"] for r in topi.api_requests} == {"asc"}


async def test_create_shipment_body() -> None:
    topi = FakeTopi()
    topi.api = lambda r: httpx.Response(200, content=r.content)
    shipment = ShipmentRequest(
        order_id=ORDER_ID,
        serial_numbers=[
            SerialNumberByAsset(
                seller_product_reference=SellerProductReference(
                    source="sap", reference="123ab-5343"
                ),
                serial_number="BA-1",
            )
        ],
        tracking_url="https://track.example/1",
        metadata={"carrier": "DHL"},
    )
    async with topi.client() as client:
        answer = await client.create_shipment(shipment)
    request = topi.api_requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/shipment")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "order_id": ORDER_ID,
        "serial_numbers": [
            {
                "seller_product_reference": {"source": "sap", "reference": "123ab-5343"},
                "serial_number": "BA-1",
            }
        ],
        "tracking_url": "https://track.example/1",
        "metadata": {"carrier": "DHL"},
    }
    assert answer.serial_numbers == shipment.serial_numbers


async def test_ids_that_could_escape_the_path_are_refused_before_any_call() -> None:
    topi = FakeTopi()
    async with topi.client() as client:
        for bad in ("../admin", "a/b", "", "x?y=1"):
            with pytest.raises(ValueError, match="not a topi id"):
                await client.get_order(bad)
    assert topi.api_requests == []
    assert topi.token_requests == []


async def test_injected_http_client_is_not_closed() -> None:
    topi = FakeTopi()
    http = httpx.AsyncClient(transport=httpx.MockTransport(topi.handler))
    async with TopiClient(base_url=BASE, access_token="t", http_client=http) as client:
        await client.get_order(ORDER_ID)
    assert not http.is_closed
    await http.aclose()


@pytest.mark.parametrize("closed", ["rejected", "canceled"])
async def test_an_acknowledge_that_lost_the_race_to_a_closed_order_is_moot(closed: str) -> None:
    """The hub acknowledges on receipt; a fast reject or a customer cancel may come first."""
    topi = FakeTopi()
    order = json.loads(FULL_ORDER)
    order["status"] = closed

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return goa_error(422, "invalid_status", "you can only acknowledge created orders")
        return httpx.Response(200, json=order)

    topi.api = api
    async with topi.client() as client:
        result = await client.acknowledge(ORDER_ID)
        assert result.status == closed
        # accept is no such case: a closed order that was never confirmed is a refusal
        with pytest.raises(TopiRejectedError):
            await client.accept(ORDER_ID)


async def test_each_token_fetch_is_reported_for_the_accounts_health() -> None:
    topi, clock, reports = FakeTopi(expires_in=3600), FakeClock(), []

    async def report(ok: bool, detail: str) -> None:
        reports.append((ok, detail))

    topi.token_response = lambda _r: httpx.Response(503)
    async with topi.client(clock=clock) as client:
        client.token_report = report
        with pytest.raises(TopiTransientError):
            await client.get_order(ORDER_ID)
        topi.token_response = None
        await client.get_order(ORDER_ID)
        await client.get_order(ORDER_ID)  # the cached token: nothing to report
    assert [ok for ok, _ in reports] == [False, True]
    assert "503" in reports[0][1]
