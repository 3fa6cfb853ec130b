"""TopiClient against the simulator over real HTTP (uvicorn on loopback, see conftest)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import httpx
import pytest
from topi_helpers import (
    STATIC_TOKEN,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    WebhookReceiver,
    make_client,
    verify_standard_webhook,
    wait_for,
)

from orderhub_topi.client import (
    ClientCredentials,
    TopiAuthError,
    TopiClient,
    TopiRejectedError,
    TopiTransientError,
)
from orderhub_topi.simulator import SimulatorConfig, SimulatorControl, ThreadedServer, create_app
from orderhub_topi.simulator.fixtures import SANDBOX_ORDER_IDS
from orderhub_topi.wire import (
    WEBHOOK_ORDER_STATUSES,
    Asset,
    FullOrderResult,
    SellerProductReference,
    SerialNumberByAsset,
    ShipmentRequest,
    asset_requires_serial_number,
    decode_webhook,
)

LAPTOP_BUNDLE: dict[str, Any] = {
    "title": "Pro Laptop 64GB",
    "sku": "LAP-1",
    "quantity": 2,
    "contract_type": "rent",
    "sublines": [{"title": "Charger", "sku": "CHG-1"}],
}
CABLE: dict[str, Any] = {"title": "USB-C cable", "sku": "CBL-1", "contract_type": "pay_now"}


def entry(sku: str, serial: str) -> SerialNumberByAsset:
    return SerialNumberByAsset(
        seller_product_reference=SellerProductReference(source="sku", reference=sku),
        serial_number=serial,
    )


def by_sku(order: FullOrderResult, sku: str) -> list[Asset]:
    return [a for a in order.assets if a.seller_product_references[0].reference == sku]


def action_calls(sim: SimulatorControl, order_id: str, action: str) -> list[dict[str, Any]]:
    return sim.calls(method="POST", path=f"/v1/orders/{order_id}/{action}")


async def confirmed_order(sim: SimulatorControl, topi: TopiClient, **spec: Any) -> str:
    spec.setdefault("lines", [LAPTOP_BUNDLE, CABLE])
    order_id: str = sim.create_order(**spec)["id"]
    await topi.accept(order_id)
    return order_id


# ---- auth --------------------------------------------------------------------------


async def test_bad_client_credentials_are_refused(sim: SimulatorControl) -> None:
    creds = ClientCredentials(
        client_id="orderhub-test", client_secret="wrong", token_url=f"{sim.url}/oauth/token"
    )
    async with make_client(sim.url, credentials=creds) as client:
        with pytest.raises(TopiAuthError, match="client authentication failed"):
            await client.get_order(SANDBOX_ORDER_IDS["created"])
    assert sim.calls(path="/v1/*") == []


def test_token_endpoint_speaks_oauth2(sim: SimulatorControl) -> None:
    ok = httpx.post(
        f"{sim.url}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "orderhub-test",
            "client_secret": "s3cret-for-tests",
        },
    )
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "bearer"
    assert ok.json()["expires_in"] == 3600
    wrong_grant = httpx.post(
        f"{sim.url}/oauth/token", data={"grant_type": "password"}, auth=("orderhub-test", "x")
    )
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    # The recorded call does not keep the secret.
    assert "s3cret" not in json.dumps(sim.calls(path="/oauth2/token"))


def test_seller_api_requires_a_valid_bearer_token(sim: SimulatorControl) -> None:
    url = f"{sim.url}/v1/orders/{SANDBOX_ORDER_IDS['created']}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer made-up"}).status_code == 401
    assert httpx.post(f"{url}/accept").status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {STATIC_TOKEN}"})
    assert ok.status_code == 200
    assert ok.json()["status"] == "created"


async def test_revoked_token_is_refreshed_once_by_the_client(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    await topi.get_order(SANDBOX_ORDER_IDS["created"])
    assert sim.revoke_tokens() == 1
    order = await topi.get_order(SANDBOX_ORDER_IDS["confirmed"])
    assert order.status == "confirmed"
    assert len(sim.calls(path="/oauth/token")) == 2
    statuses = [c["status_code"] for c in sim.calls(path="/v1/orders/*")]
    assert statuses == [200, 401, 200]


async def test_static_token_mode(sim: SimulatorControl) -> None:
    async with make_client(sim.url, access_token=STATIC_TOKEN) as client:
        assert (await client.get_order(SANDBOX_ORDER_IDS["completed"])).status == "completed"
    assert sim.calls(path="/oauth/token") == []


# ---- reading orders -------------------------------------------------------------------


async def test_sandbox_fixtures_are_preloaded(topi: TopiClient) -> None:
    for status, order_id in SANDBOX_ORDER_IDS.items():
        order = await topi.get_order(order_id)
        assert (order.id, order.status) == (order_id, status)
    partial = await topi.get_order(SANDBOX_ORDER_IDS["partially_fulfilled"])
    assert [a.status for a in partial.assets].count("shipped") == 1
    canceled = await topi.get_order(SANDBOX_ORDER_IDS["canceled"])
    assert canceled.canceled_at is not None


async def test_unknown_order_is_a_404_with_topis_error_body(topi: TopiClient) -> None:
    missing = "00000000-0000-4000-8000-00000000dead"
    with pytest.raises(TopiRejectedError) as info:
        await topi.get_order(missing)
    assert info.value.status_code == 404
    assert info.value.name == "not_found"
    assert missing in info.value.message
    with pytest.raises(TopiRejectedError) as info:
        await topi.accept(missing)
    assert info.value.status_code == 404


def test_error_body_has_goa_shape(sim: SimulatorControl) -> None:
    resp = httpx.get(
        f"{sim.url}/v1/orders/nope-1", headers={"Authorization": f"Bearer {STATIC_TOKEN}"}
    )
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/vnd.goa.error")
    assert set(resp.json()) == {"name", "id", "message", "temporary", "timeout", "fault"}


async def test_created_order_has_lines_sublines_and_one_asset_per_unit(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = sim.create_order(lines=[LAPTOP_BUNDLE, CABLE], seller_offer_reference="cart-7")["id"]
    order = await topi.get_order(order_id)
    assert order.status == "created"
    assert order.seller_offer_reference == "cart-7"
    laptop, cable = order.order_lines
    assert (laptop.quantity, laptop.contract_type, cable.contract_type) == (2, "rent", "pay_now")
    assert [(s.title, s.quantity, s.contract_type) for s in laptop.sublines] == [
        ("Charger", 2, "rent")
    ]
    assert laptop.unit_price is not None
    assert laptop.unit_price.gross > laptop.unit_price.net
    assert (
        len(by_sku(order, "LAP-1")),
        len(by_sku(order, "CHG-1")),
        len(by_sku(order, "CBL-1")),
    ) == (
        2,
        2,
        1,
    )
    assert {a.status for a in order.assets} == {"created"}
    needs_serial = {
        a.id for a in order.assets if asset_requires_serial_number(a, order.order_lines)
    }
    assert needs_serial == {a.id for a in by_sku(order, "LAP-1") + by_sku(order, "CHG-1")}


# ---- the lifecycle ------------------------------------------------------------------


async def test_happy_path_with_a_partial_shipment(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    order_id = sim.create_order(lines=[LAPTOP_BUNDLE, CABLE])["id"]

    assert (await topi.acknowledge(order_id)).status == "acknowledged"
    assert (await topi.accept(order_id)).status == "confirmed"

    first = await topi.create_shipment(
        ShipmentRequest(
            order_id=order_id,
            serial_numbers=[entry("LAP-1", "SN-L1"), entry("CHG-1", "SN-C1")],
            tracking_url="https://track.example/1",
        )
    )
    assert [e.serial_number for e in first.serial_numbers] == ["SN-L1", "SN-C1"]
    order = await topi.get_order(order_id)
    assert order.status == "partially_fulfilled"
    assert [a.status for a in by_sku(order, "LAP-1")] == ["shipped", "created"]
    assert by_sku(order, "LAP-1")[0].serial_number == "SN-L1"
    assert by_sku(order, "LAP-1")[0].tracking_url == "https://track.example/1"

    await topi.create_shipment(
        ShipmentRequest(
            order_id=order_id,
            serial_numbers=[entry("LAP-1", "SN-L2"), entry("CHG-1", "SN-C2"), entry("CBL-1", "")],
            tracking_url="https://track.example/2",
            metadata={"parcel": "2"},
        )
    )
    order = await topi.get_order(order_id)
    assert order.status == "completed"
    assert {a.status for a in order.assets} == {"shipped"}
    assert sorted(a.serial_number or "" for a in order.assets) == [
        "",
        "SN-C1",
        "SN-C2",
        "SN-L1",
        "SN-L2",
    ]
    assert order.tracking_urls == ["https://track.example/1", "https://track.example/2"]
    assert order.metadata == {"parcel": "2"}

    # Each command reached topi exactly once.
    assert len(action_calls(sim, order_id, "acknowledge")) == 1
    assert len(action_calls(sim, order_id, "accept")) == 1
    assert len(sim.calls(method="POST", path="/v1/shipment")) == 2

    # Webhooks: only the statuses topi documents, in order, signed and with the token.
    hooks = wait_for(lambda: (h := webhooks.for_order(order_id)) and len(h) >= 3 and h)
    await asyncio.sleep(0.2)  # nothing else may follow
    hooks = webhooks.for_order(order_id)
    assert [decode_webhook(h.body).event_name for h in hooks] == [
        "order.created",
        "order.partially_fulfilled",
        "order.completed",
    ]
    for hook in hooks:
        assert hook.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
        assert verify_standard_webhook(WEBHOOK_SECRET, hook.headers, hook.body)
        assert not verify_standard_webhook(WEBHOOK_SECRET, hook.headers, hook.body + b" ")
    assert len({h.headers["webhook-id"] for h in hooks}) == 3
    created = decode_webhook(hooks[0].body)
    assert created.shipping_address is not None
    assert created.shipping_address.name
    assert len(created.assets) == 5


async def test_shipment_before_acceptance_is_refused(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = sim.create_order(lines=[CABLE])["id"]
    with pytest.raises(TopiRejectedError, match='status "created"') as info:
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("CBL-1", "")])
        )
    assert info.value.status_code == 400
    assert (await topi.get_order(order_id)).assets[0].status == "created"


async def test_rent_asset_without_serial_number_is_refused_and_nothing_ships(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = await confirmed_order(sim, topi)
    with pytest.raises(TopiRejectedError, match="requires a serial number") as info:
        await topi.create_shipment(
            ShipmentRequest(
                order_id=order_id, serial_numbers=[entry("CBL-1", ""), entry("LAP-1", "")]
            )
        )
    assert info.value.status_code == 400
    order = await topi.get_order(order_id)
    assert order.status == "confirmed"
    assert {a.status for a in order.assets} == {"created"}  # all or nothing
    # The bought accessory ships without one.
    await topi.create_shipment(
        ShipmentRequest(order_id=order_id, serial_numbers=[entry("CBL-1", "")])
    )
    assert (await topi.get_order(order_id)).status == "partially_fulfilled"


async def test_bought_product_with_a_rent_option_still_needs_a_serial(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    monitor = {"title": "Monitor", "sku": "MON-1", "contract_type": "pay_now", "rent_option": True}
    order_id = await confirmed_order(sim, topi, lines=[monitor])
    order = await topi.get_order(order_id)
    # The hub cannot see a rent option on a pay_now line...
    assert not asset_requires_serial_number(order.assets[0], order.order_lines)
    # ...so topi's refusal, with its message, is what tells.
    with pytest.raises(TopiRejectedError, match="rent option"):
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("MON-1", "")])
        )
    await topi.create_shipment(
        ShipmentRequest(order_id=order_id, serial_numbers=[entry("MON-1", "M-1")])
    )
    assert (await topi.get_order(order_id)).status == "completed"


async def test_shipping_an_already_shipped_asset_is_refused(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = await confirmed_order(sim, topi, lines=[CABLE, {"title": "Mouse", "sku": "MOU-1"}])
    await topi.create_shipment(
        ShipmentRequest(order_id=order_id, serial_numbers=[entry("CBL-1", "")])
    )
    with pytest.raises(TopiRejectedError, match="already been shipped") as info:
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("CBL-1", "")])
        )
    assert info.value.status_code == 400
    with pytest.raises(TopiRejectedError, match="no asset with seller product"):
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("NOPE", "x")])
        )
    with pytest.raises(TopiRejectedError, match="requires a serial number"):
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("MOU-1", "")])
        )  # "" is the no-serial marker, but the mouse is rented
    assert (await topi.get_order(order_id)).status == "partially_fulfilled"


async def test_duplicate_serial_number_in_one_order_is_refused(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = await confirmed_order(sim, topi, lines=[LAPTOP_BUNDLE])
    with pytest.raises(TopiRejectedError, match="already registered"):
        await topi.create_shipment(
            ShipmentRequest(
                order_id=order_id, serial_numbers=[entry("LAP-1", "SN-1"), entry("LAP-1", "SN-1")]
            )
        )
    assert {a.status for a in (await topi.get_order(order_id)).assets} == {"created"}


async def test_reject_after_confirmation_is_refused(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    order_id = await confirmed_order(sim, topi)
    with pytest.raises(TopiRejectedError) as info:
        await topi.reject(order_id, reason="out of stock")
    assert info.value.status_code == 422
    assert info.value.name == "invalid_status"
    assert 'can only reject orders that have been in the status "created" or "acknowledged"' in (
        info.value.message
    )
    assert (await topi.get_order(order_id)).status == "confirmed"
    await asyncio.sleep(0.2)
    assert [decode_webhook(h.body).status for h in webhooks.for_order(order_id)] == ["created"]


async def test_reject_from_acknowledged_sends_the_rejected_webhook(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    order_id = sim.create_order(lines=[CABLE])["id"]
    await topi.acknowledge(order_id)
    result = await topi.reject(order_id)
    assert result.status == "rejected"
    assert {a.status for a in result.assets} == {"rejected"}
    hooks = wait_for(lambda: (h := webhooks.for_order(order_id)) and len(h) >= 2 and h)
    assert [decode_webhook(h.body).status for h in hooks] == ["created", "rejected"]
    with pytest.raises(TopiRejectedError):
        await topi.accept(order_id)


async def test_acknowledge_only_from_created(sim: SimulatorControl, topi: TopiClient) -> None:
    order_id = await confirmed_order(sim, topi)
    with pytest.raises(TopiRejectedError, match='status "confirmed"') as info:
        await topi.acknowledge(order_id, already_applied_ok=False)
    assert info.value.status_code == 422
    # By default the client treats "already past acknowledged" as done.
    assert (await topi.acknowledge(order_id)).status == "confirmed"


async def test_repeated_accept_is_refused_by_topi_and_absorbed_by_the_client(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    order_id = await confirmed_order(sim, topi)
    again = await topi.accept(order_id)
    assert again.status == "confirmed"
    assert [c["status_code"] for c in action_calls(sim, order_id, "accept")] == [200, 422]
    with pytest.raises(TopiRejectedError, match="can only accept"):
        await topi.accept(order_id, already_applied_ok=False)
    await asyncio.sleep(0.2)
    assert len(webhooks.for_order(order_id)) == 1  # created only: no duplicate notifications


async def test_customer_cancellation(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    order_id = await confirmed_order(sim, topi)
    canceled = sim.cancel(order_id)
    assert canceled["status"] == "canceled"
    assert canceled["canceled_at"]
    order = await topi.get_order(order_id)
    assert order.status == "canceled"
    assert order.canceled_at is not None
    hooks = wait_for(lambda: (h := webhooks.for_order(order_id)) and len(h) >= 2 and h)
    assert decode_webhook(hooks[-1].body).event_name == "order.canceled"
    with pytest.raises(TopiRejectedError):
        await topi.create_shipment(
            ShipmentRequest(order_id=order_id, serial_numbers=[entry("CBL-1", "")])
        )


def test_completed_order_cannot_be_canceled(sim: SimulatorControl) -> None:
    with pytest.raises(RuntimeError, match="return"):
        sim.cancel(SANDBOX_ORDER_IDS["completed"])


async def test_metadata(sim: SimulatorControl, topi: TopiClient) -> None:
    order_id = sim.create_order(lines=[CABLE], metadata={"a": "1"})["id"]
    result = await topi.set_metadata(order_id, {"b": "2"})
    assert result.metadata == {"a": "1", "b": "2"}
    assert (await topi.get_order(order_id)).metadata == {"a": "1", "b": "2"}


# ---- reconciliation -----------------------------------------------------------------


async def test_paginated_cursor_walks(sim: SimulatorControl, topi: TopiClient) -> None:
    sim.reset(fixtures=False)
    base = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    stamps = [base + dt.timedelta(seconds=s) for s in (0, 1, 1, 2, 3, 3, 3, 4)]
    ids = [sim.create_order(lines=[CABLE], created_at=s.isoformat())["id"] for s in stamps]
    expected = [i for _, i in sorted(zip(stamps, ids, strict=True))]

    # id_gt as a cursor (topi's recommendation): every order once, in created order.
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await topi.list_orders_paginated(id_gt=cursor, limit=3)
        if not page.orders:
            break
        assert len(page.orders) <= 3
        seen += [o.id for o in page.orders]
        cursor = page.orders[-1].id
    assert seen == expected

    # created_at_gt: strictly after.
    after = await topi.list_orders_paginated(created_at_gt=stamps[2], limit=100)
    assert [o.id for o in after.orders] == expected[3:]
    assert after.pagination.total_count == 5
    gte = await topi.list_orders_paginated(created_at_gte=stamps[3], limit=100)
    assert [o.id for o in gte.orders] == expected[3:]

    # Page metadata and descending order.
    second = await topi.list_orders_paginated(limit=3, page=2)
    assert [o.id for o in second.orders] == expected[3:6]
    assert (second.pagination.page, second.pagination.total_pages) == (2, 3)
    desc = await topi.list_orders_paginated(limit=2, sort_order="desc")
    assert [o.id for o in desc.orders] == expected[::-1][:2]

    # The client's page walk over one created_at filter, with an order arriving meanwhile.
    walked = []
    async for summary in topi.iter_orders(created_at_gt=stamps[0], page_size=2):
        walked.append(summary.id)
        if len(walked) == 1:
            late = sim.create_order(lines=[CABLE])["id"]
    assert walked == [*expected[1:], late]


async def test_dropped_webhook_is_found_by_the_reconciliation_poll(
    sim: SimulatorControl, topi: TopiClient, webhooks: WebhookReceiver
) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    sim.drop_webhooks(1)
    lost = sim.create_order(lines=[CABLE])["id"]
    delivered = sim.create_order(lines=[CABLE])["id"]
    wait_for(lambda: webhooks.for_order(delivered))

    def records_now() -> dict[str, Any]:
        return {r["order_id"]: r for r in sim.webhooks()}

    # the simulator marks a delivery once the receiver's answer is back: a moment after
    # the receiver has it (CI caught the assertion below running in between)
    wait_for(lambda: records_now()[delivered]["delivered"])
    assert webhooks.for_order(lost) == []
    records = records_now()
    assert records[lost]["dropped"]
    assert not records[lost]["delivered"]
    assert records[delivered]["delivered"]
    found = [o.id async for o in topi.iter_orders(created_at_gt=since)]
    assert found == [lost, delivered]


# ---- delivery and faults ------------------------------------------------------------


async def test_webhook_is_retried_with_the_same_id_until_the_receiver_accepts(
    sim: SimulatorControl, webhooks: WebhookReceiver
) -> None:
    webhooks.fail_next = 2
    order_id = sim.create_order(lines=[CABLE])["id"]
    record = wait_for(lambda: (r := sim.webhooks(order_id)) and r[0]["delivered"] and r[0])
    assert record["attempts"] == 3
    attempts = webhooks.for_order(order_id)
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert all(verify_standard_webhook(WEBHOOK_SECRET, a.headers, a.body) for a in attempts)


def test_api_answers_without_waiting_for_webhook_delivery(
    sim: SimulatorControl, webhooks: WebhookReceiver
) -> None:
    webhooks.delay = 1.5
    started = time.monotonic()
    order_id = sim.create_order(lines=[CABLE])["id"]
    assert time.monotonic() - started < 1.0
    wait_for(lambda: webhooks.for_order(order_id))


async def test_injected_5xx_and_429_are_transient_then_the_call_goes_through(
    sim: SimulatorControl, topi: TopiClient
) -> None:
    order_id = sim.create_order(lines=[CABLE])["id"]
    sim.add_fault(path="/v1/orders/*/accept", method="POST", status=503, count=1)
    sim.add_fault(path="/v1/orders/*/accept", status=429, retry_after="7", count=1)
    with pytest.raises(TopiTransientError) as first:
        await topi.accept(order_id)
    assert (first.value.status_code, first.value.retry_after) == (503, None)
    with pytest.raises(TopiTransientError) as second:
        await topi.accept(order_id)
    assert (second.value.status_code, second.value.retry_after) == (429, 7.0)
    assert (await topi.get_order(order_id)).status == "created"  # faults changed nothing
    assert (await topi.accept(order_id)).status == "confirmed"
    calls = action_calls(sim, order_id, "accept")
    assert [(c["status_code"], c["fault"]) for c in calls] == [
        (503, True),
        (429, True),
        (200, False),
    ]


async def test_timeout_after_topi_applied_the_call_is_absorbed_on_retry(
    sim: SimulatorControl,
) -> None:
    order_id = sim.create_order(lines=[CABLE])["id"]
    sim.add_fault(path=f"/v1/orders/{order_id}/accept", delay=0.8)
    async with make_client(sim.url, timeout=0.3) as client:
        with pytest.raises(TopiTransientError, match="timeout"):
            await client.accept(order_id)
        wait_for(lambda: action_calls(sim, order_id, "accept")[0]["status_code"] == 200)
        assert (await client.accept(order_id)).status == "confirmed"


async def test_faults_can_target_the_token_endpoint(sim: SimulatorControl) -> None:
    sim.add_fault(path="/oauth/token", status=500)
    async with make_client(sim.url) as client:
        with pytest.raises(TopiTransientError):
            await client.get_order(SANDBOX_ORDER_IDS["created"])
        assert (await client.get_order(SANDBOX_ORDER_IDS["created"])).status == "created"


def test_reset_forgets_orders_calls_and_faults(sim: SimulatorControl) -> None:
    order_id = sim.create_order(lines=[CABLE])["id"]
    sim.add_fault(path="/v1/shipment", status=500, count=5)
    sim.reset()
    headers = {"Authorization": f"Bearer {STATIC_TOKEN}"}
    assert httpx.get(f"{sim.url}/v1/orders/{order_id}", headers=headers).status_code == 404
    assert httpx.get(f"{sim.url}/_sim/faults").json() == []
    assert [c["path"] for c in sim.calls()] == [f"/v1/orders/{order_id}"]
    assert sim.webhooks() == []


async def test_all_statuses_mode_also_notifies_acknowledged_and_confirmed(
    webhooks: WebhookReceiver, receiver: tuple[WebhookReceiver, str]
) -> None:
    config = SimulatorConfig(
        webhook_url=receiver[1],
        webhook_statuses=WEBHOOK_ORDER_STATUSES | {"acknowledged", "confirmed"},
        static_tokens=frozenset({STATIC_TOKEN}),
        fixtures=False,
    )
    webhooks.clear()
    with ThreadedServer(create_app(config)) as server:
        control = SimulatorControl(server.url)
        order_id = control.create_order(lines=[CABLE])["id"]
        async with make_client(server.url, access_token=STATIC_TOKEN) as client:
            await client.acknowledge(order_id)
            await client.accept(order_id)
        hooks = wait_for(lambda: (h := webhooks.for_order(order_id)) and len(h) >= 3 and h)
        control.close()
    assert [decode_webhook(h.body).status for h in hooks] == [
        "created",
        "acknowledged",
        "confirmed",
    ]
    assert "authorization" not in hooks[0].headers  # no token configured
    assert "webhook-signature" not in hooks[0].headers  # no secret configured
