from __future__ import annotations

import asyncio
import re

import prometheus_client
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from orderhub.application.hub import Hub
from orderhub.entrypoints.web import ReadyCheck, WebSettings, create_app

from .support import Harness, assert_problem, auth, commanding


async def ok() -> tuple[str, bool]:
    return "database", True


async def down() -> tuple[str, bool]:
    return "broker", False


async def broken() -> tuple[str, bool]:
    raise ConnectionError("refused")


async def hangs() -> tuple[str, bool]:
    await asyncio.sleep(60)
    return "never", True


def app_with(hub: Hub, settings: WebSettings, *checks: ReadyCheck) -> AsyncTestClient[Litestar]:
    return AsyncTestClient(app=create_app(hub, settings, ready_checks=checks))


async def test_healthz(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_every_check_passes(harness: Harness) -> None:
    async with app_with(harness.hub, WebSettings(), ok) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": True}}


async def test_readyz_is_503_when_a_check_fails_breaks_or_hangs(harness: Harness) -> None:
    settings = WebSettings(ready_check_timeout_seconds=0.2)
    async with app_with(harness.hub, settings, ok, down, broken, hangs) as client:
        response = await client.get("/readyz")
    body = assert_problem(response, 503, "not-ready")
    assert body["checks"] == {"database": True, "broker": False, "broken": False, "hangs": False}
    assert "refused" not in response.text


async def test_metrics_from_the_default_registry(harness: Harness) -> None:
    response = await harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert b"python_info" in response.content or b"process_" in response.content


async def test_metrics_from_a_renderer(harness: Harness) -> None:
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("orderhub_things", "things", registry=registry).inc(3)
    settings = WebSettings(metrics_renderer=lambda: prometheus_client.generate_latest(registry))
    async with AsyncTestClient(app=create_app(harness.hub, settings)) as client:
        response = await client.get("/metrics")
    assert "orderhub_things_total 3.0" in response.text


async def test_the_openapi_document(harness: Harness) -> None:
    response = await harness.client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in [
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/{order_id}/accept",
        "/api/v1/orders/{order_id}/reject",
        "/api/v1/orders/{order_id}/shipments",
        "/api/v1/orders/{order_id}/deliveries",
        "/api/v1/orders/{order_id}/cancellations",
        "/api/v1/feed",
        "/api/v1/channels",
        "/api/v1/ops/failed-commands",
        "/webhooks/{channel}/{account}",
    ]:
        assert path in paths, path
    accept = paths["/api/v1/orders/{order_id}/accept"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in accept["parameters"]]
    assert "application/problem+json" in accept["responses"]["422"]["content"]
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert (await harness.client.get("/schema")).status_code == 200


async def test_a_request_id_is_made_returned_and_bound(harness: Harness) -> None:
    order = await harness.seed()
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await harness.client.post(
            f"/api/v1/orders/{order.id}/accept",
            json={"lines": [{"line_id": "nope", "quantity": 1}]},
            headers=commanding(),
        )
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert response.json()["request_id"] == request_id
    refused = next(log for log in logs if log["event"] == "request refused")
    assert refused["request_id"] == request_id
    assert refused["order_id"] == order.id
    assert refused["rule"] == "unknown-line"


async def test_each_request_without_an_id_gets_a_new_random_one(harness: Harness) -> None:
    made = {(await harness.client.get("/healthz")).headers["x-request-id"] for _ in range(50)}

    assert len(made) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)


async def test_the_callers_request_id_is_kept_when_sane(harness: Harness) -> None:
    given = {"X-Request-ID": "wms-7f3a:42"}
    response = await harness.client.get("/healthz", headers=given)
    assert response.headers["x-request-id"] == "wms-7f3a:42"
    response = await harness.client.get("/no/such/route", headers=given)
    assert response.headers["x-request-id"] == "wms-7f3a:42"
    assert response.json()["request_id"] == "wms-7f3a:42"
    evil = await harness.client.get("/healthz", headers={"X-Request-ID": "x\ty" * 100})
    assert evil.headers["x-request-id"] != "x\ty" * 100
    assert len(evil.headers["x-request-id"]) == 32


async def test_no_context_leaks_between_requests(harness: Harness) -> None:
    order = await harness.seed()
    await harness.client.get(f"/api/v1/orders/{order.id}", headers=auth("reader"))
    with capture_logs(processors=[merge_contextvars]) as logs:
        await harness.client.get("/api/v1/orders", headers={"Authorization": "Bearer x"})
    assert all("order_id" not in log for log in logs)
