from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from orderhub.entrypoints.web import ApiKey, WebSettings

from .support import KEYS, Harness, assert_problem, auth

READS = ["/api/v1/orders", "/api/v1/feed", "/api/v1/channels"]
OPS_READS = ["/api/v1/ops/failed-commands", "/api/v1/ops/failed-messages"]


@pytest.mark.parametrize("path", READS + OPS_READS)
async def test_no_key_is_401_with_a_challenge(harness: Harness, path: str) -> None:
    response = await harness.client.get(path)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-configured-key",
        f"Basic {KEYS['reader']}",
        "Bearer",
        f"Bearer {KEYS['reader']}x",
        f"Bearer {KEYS['reader'][:-1]}",
    ],
)
async def test_a_wrong_key_is_401(harness: Harness, header: str) -> None:
    response = await harness.client.get("/api/v1/orders", headers={"Authorization": header})
    assert_problem(response, 401, "unauthorized")
    assert "www-authenticate" in response.headers


async def test_the_bearer_scheme_is_case_insensitive(harness: Harness) -> None:
    response = await harness.client.get(
        "/api/v1/orders", headers={"Authorization": f"bearer {KEYS['reader']}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", READS)
async def test_orders_read_scope_reads(harness: Harness, path: str) -> None:
    response = await harness.client.get(path, headers=auth("reader"))
    assert response.status_code == 200, response.text


async def test_a_write_without_orders_write_is_403_and_changes_nothing(harness: Harness) -> None:
    order = await harness.seed()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept", json={}, headers=auth("reader")
    )
    body = assert_problem(response, 403, "forbidden")
    assert "orders:write" in body["detail"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert harness.state() == before


@pytest.mark.parametrize("name", ["reader", "writer"])
@pytest.mark.parametrize("path", OPS_READS)
async def test_ops_needs_the_ops_scope(harness: Harness, name: str, path: str) -> None:
    assert_problem(await harness.client.get(path, headers=auth(name)), 403, "forbidden")
    response = await harness.client.post("/api/v1/ops/commands/whatever/retry", headers=auth(name))
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("path", READS)
async def test_the_ops_scope_alone_cannot_read_orders(harness: Harness, path: str) -> None:
    assert_problem(await harness.client.get(path, headers=auth("operator")), 403, "forbidden")


@pytest.mark.parametrize("path", OPS_READS)
async def test_the_ops_scope_reaches_ops(harness: Harness, path: str) -> None:
    assert (await harness.client.get(path, headers=auth("operator"))).status_code == 200


async def test_health_schema_and_webhooks_need_no_api_key(harness: Harness) -> None:
    for path in ["/healthz", "/readyz", "/metrics", "/schema/openapi.json"]:
        assert (await harness.client.get(path)).status_code == 200, path
    response = await harness.client.post("/webhooks/stub/closed", content=b"{}")
    assert response.status_code == 401  # the account's own authentication, not an API key


async def test_keys_never_reach_the_logs(harness: Harness) -> None:
    with capture_logs() as logs:
        await harness.client.get("/api/v1/orders", headers=auth("operator"))
        await harness.client.get("/api/v1/orders", headers={"Authorization": "Bearer guess"})
        await harness.client.post("/api/v1/orders/x/accept", headers=auth("reader"))
    assert logs
    text = repr(logs)
    assert all(key not in text for key in KEYS.values())
    assert "guess" not in text


def test_api_keys_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        ApiKey("x", "secret", frozenset({"orders:delete"}))
    with pytest.raises(ValueError, match="non-empty"):
        ApiKey("x", "", frozenset({"ops"}))
    with pytest.raises(ValueError, match="unique"):
        WebSettings(
            api_keys=(ApiKey("x", "a", frozenset({"ops"})), ApiKey("x", "b", frozenset({"ops"})))
        )
    assert "secret" not in repr(ApiKey("x", "secret", frozenset({"ops"})))


async def test_the_key_is_checked_before_the_body_is_read(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/reject",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 401, "unauthorized")
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/reject", content=b"{not json", headers=auth("reader")
    )
    assert_problem(response, 403, "forbidden")
