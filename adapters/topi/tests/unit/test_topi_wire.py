"""The wire structs against topi's published examples, and the wire-level rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import msgspec
import pytest

from orderhub_topi.wire import (
    FullOrderResult,
    OrderResult,
    OrdersSummaryPaginated,
    SellerProductReference,
    SerialNumberByAsset,
    ShipmentRequest,
    asset_requires_serial_number,
    decode_error_body,
    decode_webhook,
    encode,
)

DATA = Path(__file__).parent / "data"


def _example(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_full_order_example_from_openapi_decodes() -> None:
    order = msgspec.json.decode(_example("openapi_get_order_200.json"), type=FullOrderResult)

    assert order.id == "739b63c2-9e58-4964-b38d-4ebb424de242"
    assert order.status == "confirmed"
    assert order.created_at == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert order.seller_offer_reference == "abc123"
    asset = order.assets[0]
    assert (asset.status, asset.serial_number, asset.title) == (
        "shipped",
        "BA-3456786-334-9",
        "Pro Laptop 64GB",
    )
    assert asset.seller_product_references == [
        SellerProductReference(source="sap", reference="123ab-5343")
    ]
    line = order.order_lines[0]
    assert line.contract_type == "rent"
    assert line.quantity == 1
    assert line.monthly_price is not None
    assert line.monthly_price.gross == 119000
    assert line.monthly_price.net == 100000
    assert line.monthly_price.currency == "EUR"
    assert len(line.sublines) == 1
    assert line.sublines[0].title == "abc123"
    assert order.customer_info is not None
    assert order.customer_info.company is not None
    assert order.customer_info.company.vat_number == "DE123456789"
    assert order.shipping_address is not None
    assert order.shipping_address.recipient == "Felix Wolf"
    assert order.seller_info is not None
    assert order.seller_info.product_reference_source == "abc123"
    assert order.tracking_urls == ["abc123"]


def test_unknown_fields_are_ignored_but_missing_required_fields_are_not() -> None:
    raw = json.loads(_example("openapi_get_order_200.json"))
    raw["brand_new_field"] = {"x": 1}
    raw["assets"][0]["also_new"] = True
    assert msgspec.convert(raw, FullOrderResult).id == raw["id"]

    del raw["order_lines"]
    with pytest.raises(msgspec.ValidationError, match="order_lines"):
        msgspec.convert(raw, FullOrderResult)


def test_paginated_and_command_examples_decode() -> None:
    page = msgspec.json.decode(
        _example("openapi_orders_paginated_200.json"), type=OrdersSummaryPaginated
    )
    assert page.orders[0].status == "confirmed"
    assert page.pagination.total_pages == 1
    result = msgspec.json.decode(_example("openapi_accept_200.json"), type=OrderResult)
    assert result.status == "confirmed"
    assert result.metadata == {"tracking_number": "123456"}


def test_shipment_request_omits_unset_fields_and_keeps_empty_serials() -> None:
    body = ShipmentRequest(
        order_id="o-1",
        serial_numbers=[
            SerialNumberByAsset(
                seller_product_reference=SellerProductReference(source="sku", reference="A"),
                serial_number="SN-1",
            ),
            SerialNumberByAsset(
                seller_product_reference=SellerProductReference(source="sku", reference="CABLE"),
                serial_number="",
            ),
        ],
    )
    assert json.loads(encode(body)) == {
        "order_id": "o-1",
        "serial_numbers": [
            {
                "seller_product_reference": {"source": "sku", "reference": "A"},
                "serial_number": "SN-1",
            },
            {
                "seller_product_reference": {"source": "sku", "reference": "CABLE"},
                "serial_number": "",
            },
        ],
    }
    with_url = msgspec.structs.replace(body, tracking_url="https://t.example/1")
    assert json.loads(encode(with_url))["tracking_url"] == "https://t.example/1"


def test_serial_entry_for_asset_prefers_the_requested_source() -> None:
    order = msgspec.json.decode(_example("openapi_get_order_200.json"), type=FullOrderResult)
    asset = msgspec.structs.replace(
        order.assets[0],
        seller_product_references=[
            SellerProductReference(source="ean", reference="0719726100000"),
            SellerProductReference(source="sku", reference="MBP14-001"),
        ],
    )
    assert SerialNumberByAsset.for_asset(asset, "X", source="sku").seller_product_reference == (
        SellerProductReference(source="sku", reference="MBP14-001")
    )
    entry = SerialNumberByAsset.for_asset(asset)
    assert entry.seller_product_reference.source == "ean"
    assert entry.serial_number == ""
    with pytest.raises(ValueError, match="no seller product reference"):
        SerialNumberByAsset.for_asset(msgspec.structs.replace(asset, seller_product_references=[]))


def _order(lines: list[dict[str, object]], assets: list[dict[str, object]]) -> FullOrderResult:
    raw = json.loads(_example("openapi_get_order_200.json"))
    raw["order_lines"] = lines
    raw["assets"] = assets
    return msgspec.convert(raw, FullOrderResult)


def _line(product_id: str, sku: str, contract: str, sublines: list[dict[str, object]] = ()):  # type: ignore[assignment]
    return {
        "title": sku,
        "subtitle": "",
        "quantity": 1,
        "contract_type": contract,
        "duration": 12,
        "product_id": product_id,
        "seller_product_references": [{"source": "sku", "reference": sku}],
        "selected_first_party_services": [],
        "sublines": list(sublines),
    }


def _asset(asset_id: str, product_id: str, sku: str) -> dict[str, object]:
    return {
        "id": asset_id,
        "product_id": product_id,
        "title": sku,
        "status": "created",
        "seller_product_references": [{"source": "sku", "reference": sku}],
    }


def test_rent_lines_and_rent_sublines_require_serial_numbers_pay_now_lines_do_not() -> None:
    charger = _line("p-charger", "CHG", "rent")
    charger.pop("sublines")
    order = _order(
        [_line("p-laptop", "LAP", "rent", [charger]), _line("p-cable", "CBL", "pay_now")],
        [
            _asset("a1", "p-laptop", "LAP"),
            _asset("a2", "p-charger", "CHG"),
            _asset("a3", "p-cable", "CBL"),
        ],
    )
    required = {a.id: asset_requires_serial_number(a, order.order_lines) for a in order.assets}
    assert required == {"a1": True, "a2": True, "a3": False}


def test_serial_rule_matches_by_seller_reference_when_product_ids_differ() -> None:
    order = _order(
        [_line("p-other-id", "LAP", "rent")],
        [_asset("a1", "p-laptop", "LAP"), _asset("a2", "p-mouse", "MOUSE")],
    )
    assert asset_requires_serial_number(order.assets[0], order.order_lines)
    assert not asset_requires_serial_number(order.assets[1], order.order_lines)


def test_webhook_flat_payload_documented_fields() -> None:
    body = json.dumps(
        {
            "id": "o-1",
            "status": "canceled",
            "offer_id": "of-1",
            "seller_offer_reference": "cart-42",
            "metadata": {"k": "v"},
            "assets": [_asset("a1", "p1", "LAP")],
            "shipping_address": {
                "name": "Felix Wolf",
                "line1": "10 Downing Street",
                "postal_code": "10243",
                "city": "Munich",
                "country_code": "DE",
            },
        }
    )
    hook = decode_webhook(body)
    assert hook.event_name == "order.canceled"
    assert hook.seller_offer_reference == "cart-42"
    assert hook.shipping_address is not None
    assert hook.shipping_address.recipient == "Felix Wolf"
    assert hook.assets[0].id == "a1"


def test_webhook_in_an_envelope_keeps_the_envelope_event() -> None:
    hook = decode_webhook(b'{"event": "order.created", "data": {"id": "o-2", "status": "created"}}')
    assert (hook.id, hook.status, hook.event_name) == ("o-2", "created", "order.created")


def test_webhook_without_id_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_webhook(b'{"status": "created"}')


@pytest.mark.parametrize(
    ("body", "name", "message"),
    [
        (
            b'{"name":"invalid_status","id":"x1","message":"cannot reject","temporary":false,'
            b'"timeout":false,"fault":false}',
            "invalid_status",
            "cannot reject",
        ),
        (b'"invalid token"', "", "invalid token"),
        (
            b'{"error":"invalid_client","error_description":"bad secret"}',
            "invalid_client",
            "bad secret",
        ),
    ],
)
def test_error_bodies(body: bytes, name: str, message: str) -> None:
    err = decode_error_body(body)
    assert err is not None
    assert (err.name, err.message) == (name, message)


def test_error_body_that_is_not_json_is_none() -> None:
    assert decode_error_body(b"<html>502 Bad Gateway</html>") is None
    assert decode_error_body(b"[1, 2]") is None
