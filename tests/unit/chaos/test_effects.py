"""Each marketplace's calls read as the effects the checker counts."""

from __future__ import annotations

import json

from chaos.effects import Effect, octopia_call, satisfies, spresso_call, topi_call, wms_key


def test_topi_acceptance_and_parcels() -> None:
    accept = {"method": "POST", "path": "/v1/orders/T1/accept"}
    assert topi_call(accept) == Effect("T1", "accept")
    body = {"order_id": "T1", "metadata": {"tracking_number": "TRK9"}}
    ship = {"method": "POST", "path": "/v1/shipment", "body": json.dumps(body)}
    assert topi_call(ship) == Effect("T1", "ship:TRK9")
    assert topi_call({"method": "GET", "path": "/v1/orders/T1"}) is None


def test_octopia_approval_parcel_and_cancellation() -> None:
    refuse = {
        "method": "POST",
        "path": "/orders/OCT00001/approval-status",
        "body": json.dumps({"approval_status": "Refused"}),
    }
    assert octopia_call(refuse) == Effect("OCT00001", "reject")
    parcel = {
        "method": "POST",
        "path": "/orders/OCT00001/shipments",
        "body": json.dumps([{"parcelNumber": "TRK1", "carrierName": "UPS"}]),
    }
    assert octopia_call(parcel) == Effect("OCT00001", "ship:TRK1")
    cancel = {
        "method": "POST",
        "path": "/order-cancellation-requests",
        "body": json.dumps({"orderSellerId": "OCT00001", "reason": "x"}),
    }
    assert octopia_call(cancel) == Effect("OCT00001", "cancel")
    lines = [{"lineId": "L2", "reason": "r"}, {"lineId": "L1", "reason": "r"}]
    partial = {
        "method": "POST",
        "path": "/order-partial-cancellation-requests",
        "body": json.dumps({"orderSellerId": "OCT00001", "lines": lines}),
    }
    assert octopia_call(partial) == Effect("OCT00001", "cancel:L1,L2")


def test_a_spresso_answer_replayed_from_its_idempotency_store_is_not_an_effect() -> None:
    call = {
        "method": "PUT",
        "path": "/v1/fulfillments/F1/shipments",
        "body": json.dumps({"trackingNumber": "TRK2"}),
        "order": "S1",
        "fulfilment": "F1",
    }
    assert spresso_call(call) == Effect("S1", "ship:TRK2")
    assert spresso_call({**call, "replayed": True}) is None
    status = {**call, "path": "/v1/fulfillments/F1", "body": json.dumps({"status": "delivered"})}
    assert spresso_call(status) == Effect("S1", "delivered:F1")


def test_what_each_warehouse_command_expects() -> None:
    assert wms_key("accept", None) == "accept"
    assert wms_key("shipments", {"tracking_number": "TRK3"}) == "ship:TRK3"
    assert wms_key("cancellations", {"reason": "out_of_stock"}) == "cancel"
    assert wms_key("cancellations", {"decision": "refuse", "cancellation_id": "c"}) is None
    assert wms_key("deliveries", {}) is None


def test_accepting_a_customers_request_expects_its_lines_cancelled() -> None:
    """make chaos-short seed 526186: three requests (one per line of OCT00002), three
    accepted commands, three calls (two partial, then the whole order for the last
    line); each request is its own effect, not one cancellation taken three times."""
    order = {
        "lines": [{"id": "h1", "channel_line_id": "L1"}, {"id": "h2", "channel_line_id": "L2"}],
        "cancellations": [
            {"id": "c1", "lines": [{"line_id": "h2", "quantity": 1}]},
            {"id": "c2", "lines": []},
        ],
    }
    accept = {"decision": "accept", "cancellation_id": "c1"}
    assert wms_key("cancellations", accept, order) == "cancel:L2"
    # a request without lines, one the hub does not show, or no order: the whole order
    assert wms_key("cancellations", {**accept, "cancellation_id": "c2"}, order) == "cancel"
    assert wms_key("cancellations", {**accept, "cancellation_id": "c9"}, order) == "cancel"
    assert wms_key("cancellations", accept) == "cancel"
    assert satisfies("cancel:L2", "cancel:L2")
    assert satisfies("cancel", "cancel:L2")
    assert not satisfies("cancel:L1", "cancel:L2")
    assert not satisfies("cancel:L2", "cancel")
