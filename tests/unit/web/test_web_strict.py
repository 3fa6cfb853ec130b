"""The strict web edge (``strict.py``): bodies decoded with no coercion for every route,
NUL characters refused wherever a client can put one, and the OpenAPI document unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from orderhub.entrypoints.web.strict import find_nul

from .support import Harness, assert_problem, commanding

COMMAND_BODIES = {
    "accept": "AcceptRequest",
    "reject": "RejectRequest",
    "shipments": "ShipmentRequest",
    "deliveries": "DeliveryRequest",
    "cancellations": "CancellationRequest",
}


async def test_the_document_still_describes_every_command_body(harness: Harness) -> None:
    schema = (await harness.client.get("/schema/openapi.json")).json()
    for command, name in COMMAND_BODIES.items():
        body = schema["paths"][f"/api/v1/orders/{{order_id}}/{command}"]["post"]["requestBody"]
        described = str(body["content"]["application/json"]["schema"])
        assert f"#/components/schemas/{name}" in described, (command, described)
    quantity = schema["components"]["schemas"]["LineQuantityIn"]["properties"]["quantity"]
    assert (quantity["type"], quantity["minimum"]) == ("integer", 1)
    after = next(
        p for p in schema["paths"]["/api/v1/feed"]["get"]["parameters"] if p["name"] == "after"
    )
    assert after["schema"]["maximum"] == 2**63 - 1


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": "ok", "b": ["x", "y\x00"]}, "b[1]"),
        ({"lines": [{"line_id": "\x00"}]}, "lines[0].line_id"),
        ({"ke\x00y": 1}, "ke\x00y"),
        ("\x00", "data"),
        ({"a": [1, 2.5, None, True, {"b": "fine"}]}, None),
    ],
)
def test_find_nul_names_where_it_is(value: Any, where: str | None) -> None:
    assert find_nul(value) == where


async def test_a_nul_in_a_body_key_is_422(harness: Harness) -> None:
    order = await harness.seed()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        content=b'{"lin\\u0000es": []}',
        headers={**commanding(), "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation-error")
    assert harness.state() == before


async def test_malformed_json_is_still_400_before_any_type_check(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        content=b'{"lines": [{"quantity": "1"}',
        headers={**commanding(), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (
            b'{"lines": [{"line_id": "a", "quantity": 1}, {"line_id": 2, "quantity": 1}]}',
            "lines[1].line_id",
        ),
        (b'{"lines": "all"}', "lines"),
        (b"null", "body"),
        (b'"accept"', "body"),
        (b'{"lines": [{"line_id": "a", "quantity": 1, "extra": true}]}', "lines[0].extra"),
    ],
)
async def test_a_wrong_type_anywhere_names_its_place(
    harness: Harness, content: bytes, field: str
) -> None:
    order = await harness.seed()
    before = harness.state()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/reject"
        if content == b"null"
        else f"/api/v1/orders/{order.id}/accept",
        content=content,
        headers={**commanding(), "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, "validation-error")
    assert [(e["field"], e["source"]) for e in body["errors"]] == [(field, "body")]
    assert harness.state() == before


async def test_without_a_body_an_optional_body_is_still_optional(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())
    assert response.status_code == 202, response.text


async def test_an_unauthenticated_request_with_a_bad_body_is_401(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/accept",
        json={"lines": [{"line_id": "a", "quantity": "1"}]},
    )
    assert_problem(response, 401, "unauthorized")
