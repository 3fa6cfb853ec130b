"""The test channel: profiles, intake format, outbound calls and their error mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from orderhub.channels.registry import discover
from orderhub.channels.spi import (
    AccountConfig,
    ChannelCommand,
    ChannelConfigurationError,
    CommandKind,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.capabilities import DeliveryConfirmation, Scope
from orderhub.domain.model import Order
from orderhub.domain.values import FulfilledBy, Initiator, OrderStatus, Reason, RequestState
from orderhub.testing.channel import (
    InvalidTestOrder,
    TestChannelAccount,
    capabilities_for,
    decode_orders,
    octopia_like,
    plugin,
    spresso_like,
    to_snapshot,
    topi_like,
)
from orderhub.testing.channel_server import create_app

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def account(
    profile: str = "topi", transport: httpx.AsyncBaseTransport | None = None, **settings: Any
) -> TestChannelAccount:
    config = AccountConfig(
        channel="testchannel", name="main", settings={"profile": profile, **settings}
    )
    return plugin.open_account(config, transport=transport)


DOC: dict[str, Any] = {
    "id": "CO-1",
    "status": "InPreparation",
    "number": "1001",
    "currency": "EUR",
    "placed_at": "2026-01-01T10:00:00Z",
    "released": True,
    "customer": {"name": "Ada", "email": "ada@example.com"},
    "shipping_address": {"name": "Ada", "city": "Berlin", "country_code": "DE"},
    "lines": [
        {"id": "B", "title": "bundle", "quantity": 1},
        {"id": "L1", "title": "Phone", "quantity": 2, "sku": "S1", "price": 19900,
         "requires_serial": True, "parent": "B", "fulfilment": "F1"},
        {"id": "L2", "title": "Case", "quantity": 1, "fulfilment": "F2"},
    ],
    "fulfilments": [{"id": "F1"}, {"id": "F2", "fulfilled_by": "channel"}],
    "counters": {"L1": {"accepted": 2, "shipped": 1}, "L2": {"accepted": 1}},
    "cancellations": [
        {"id": "X1", "initiator": "customer", "reason": "damaged", "state": "requested",
         "lines": [{"line": "L1", "quantity": 1}]},
        {"id": "X2", "initiator": "seller", "reason": "seller-refusal", "state": "refused"},
    ],
}  # fmt: skip


def order_for(acct: TestChannelAccount, doc: dict[str, Any] | None = None) -> Order:
    [parsed] = decode_orders(json.dumps(doc or DOC).encode())
    snapshot = to_snapshot(parsed)
    ids = iter(f"h{n}" for n in range(1, 100))
    return Order.receive(
        snapshot,
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=acct.capabilities,
        now=NOW,
        new_id=lambda: next(ids),
    )


# --- profiles ----------------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point() -> None:
    loaded = discover(enabled=["testchannel"])
    assert loaded["testchannel"].plugin is plugin
    assert loaded["testchannel"].distribution == "orderhub"


def test_profiles_declare_their_channels_abilities() -> None:
    topi, octopia, spresso = topi_like(), octopia_like(), spresso_like()
    assert (topi.acceptance, topi.rejection, topi.shipment) == (Scope.ORDER,) * 2 + (Scope.LINE,)
    assert topi.serial_numbers
    assert topi.partial_shipment
    assert topi.delivery_confirmation is DeliveryConfirmation.NONE
    assert topi.seller_cancellation is Scope.NONE
    assert "reject the order before confirmation" in topi.explain("cancel", "")
    assert topi.intake == {"webhook"}

    assert (octopia.acceptance, octopia.rejection, octopia.shipment) == (Scope.LINE,) * 3
    assert not octopia.release_on_accept
    assert octopia.delivery_confirmation is DeliveryConfirmation.CHANNEL
    assert octopia.cancellation_requests
    assert octopia.cancellation_reasons[Reason.SELLER_REFUSAL] == {
        OrderStatus.ACCEPTED,
        OrderStatus.READY_TO_SHIP,
        OrderStatus.PARTIALLY_SHIPPED,
    }
    assert octopia.cancellation_reasons[Reason.DAMAGED] == {
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
    }
    assert octopia.intake == {"polling"}

    assert (spresso.acceptance, spresso.rejection) == (Scope.NONE, Scope.NONE)
    assert spresso.multiple_fulfilments
    assert spresso.short_ship
    assert spresso.delivery_confirmation is DeliveryConfirmation.SELLER
    assert spresso.seller_cancellation is Scope.NONE


def test_the_account_picks_its_profile_and_overrides() -> None:
    assert account().capabilities == topi_like()
    assert account("spresso").capabilities == spresso_like()
    tuned = account("octopia", capabilities={"shipment": "order", "short_ship": True})
    assert tuned.capabilities.shipment is Scope.ORDER
    assert tuned.capabilities.short_ship
    assert tuned.capabilities.acceptance is Scope.LINE


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"profile": "amazon"}, "unknown profile 'amazon'"),
        ({"capabilities": {"refusals": {}}}, "cannot override 'refusals'"),
        ({"capabilities": {"nope": 1}}, "cannot override 'nope'"),
        ({"capabilities": {"short_ship": "yes"}}, "must be true or false"),
    ],
)
def test_bad_settings_are_refused_clearly(settings: dict[str, Any], message: str) -> None:
    config = AccountConfig(channel="testchannel", name="main", settings=settings)
    with pytest.raises(ValueError, match=message):
        capabilities_for(config)


# --- intake ------------------------------------------------------------------------------


async def test_the_document_maps_to_a_snapshot() -> None:
    [snapshot] = await account("octopia").snapshots(json.dumps(DOC).encode(), {})

    assert snapshot.channel_order_id == "CO-1"
    assert snapshot.channel_status == "InPreparation"
    assert snapshot.order_number == "1001"
    assert snapshot.released
    assert snapshot.placed_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert snapshot.customer is not None
    assert snapshot.customer.email == "ada@example.com"
    assert snapshot.shipping_address is not None
    assert snapshot.shipping_address.city == "Berlin"
    l1 = snapshot.lines[1]
    assert (l1.channel_line_id, l1.sku, l1.quantity) == ("L1", "S1", 2)
    assert l1.unit_price is not None
    assert (l1.unit_price.gross.amount, l1.unit_price.gross.currency) == (19900, "EUR")
    assert (l1.parent_channel_line_id, l1.channel_fulfilment_id) == ("B", "F1")
    assert l1.requires_serial_number
    assert (l1.accepted, l1.shipped, l1.rejected, l1.delivered) == (2, 1, 0, 0)
    assert snapshot.lines[0].accepted == 0  # no counters given: zero
    assert [(f.channel_fulfilment_id, f.fulfilled_by) for f in snapshot.fulfilments] == [
        ("F1", FulfilledBy.SELLER),
        ("F2", FulfilledBy.CHANNEL),
    ]
    x1, x2 = snapshot.cancellations
    assert (x1.initiator, x1.reason, x1.state, x1.lines) == (
        Initiator.CUSTOMER,
        Reason.DAMAGED,
        RequestState.REQUESTED,
        (("L1", 1),),
    )
    # an Octopia code maps to the canonical reason; the raw value is kept
    assert (x2.reason, x2.channel_reason, x2.lines) == (
        Reason.SELLER_REFUSAL,
        "seller-refusal",
        (),
    )


async def test_a_list_of_documents_is_several_snapshots() -> None:
    body = json.dumps([DOC, {**DOC, "id": "CO-2"}]).encode()
    snapshots = await account().snapshots(body, {})
    assert [s.channel_order_id for s in snapshots] == ["CO-1", "CO-2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not a test channel order document"),
        (b"{", "truncated"),
        (b"{x", "malformed"),
        (b'{"id": "x", "status": "s"}', "missing required field `lines`"),
        (b'{"id": "x", "status": "s", "lines": [{"id": "L", "title": "t"}]}', "`quantity`"),
        (
            b'{"id": "x", "status": "s", "lines": [{"id": "L", "title": "t", "quantity": 0}]}',
            "Expected `int` >= 1",
        ),
        (
            b'{"id": "x", "status": "s", "lines": [], "cancellations": '
            b'[{"id": "c", "initiator": "alien", "reason": "other"}]}',
            "Invalid enum value 'alien'",
        ),
        (
            b'{"id": "x", "status": "s", "lines": [], "cancellations": '
            b'[{"id": "c", "initiator": "customer", "reason": "because"}]}',
            "unknown cancellation reason 'because'",
        ),
        (
            b'{"id": "x", "status": "s", "lines": [{"id": "L", "title": "t", "quantity": 1}],'
            b' "cancellations": [{"id": "c", "initiator": "customer", "reason": "other",'
            b' "lines": [{"line": "Z", "quantity": 1}]}]}',
            "unknown line 'Z'",
        ),
        (
            b'{"id": "x", "status": "s", "lines": [{"id": "L", "title": "t", "quantity": 1},'
            b' {"id": "L", "title": "t", "quantity": 1}]}',
            "line ids repeat",
        ),
    ],
)
async def test_a_bad_document_raises_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(InvalidTestOrder, match=message):
        await account().snapshots(body, {})


def test_the_webhook_id_is_the_dedupe_key() -> None:
    assert account().dedupe_key(b"{}", {"webhook-id": "m-1"}) == "m-1"
    assert account().dedupe_key(b"{}", {}) is None


def test_follow_ups_acknowledge_new_orders_when_asked() -> None:
    plain, acknowledging = account(), account(acknowledge_on_receipt=True)
    order = order_for(plain)
    assert plain.follow_ups(order, new=True) == ()
    [follow_up] = acknowledging.follow_ups(order, new=True)
    assert follow_up.kind is CommandKind.ACKNOWLEDGE
    assert acknowledging.follow_ups(order, new=False) == ()


# --- outbound ----------------------------------------------------------------------------


def command(
    kind: CommandKind, payload: dict[str, Any], command_id: str = "cmd-1"
) -> ChannelCommand:
    return ChannelCommand(
        id=command_id,
        order_id="O-1",
        channel="testchannel",
        account="main",
        kind=kind,
        payload=payload,
        created_at=NOW,
    )


async def test_in_memory_calls_are_recorded_with_channel_ids() -> None:
    acct = account("octopia")
    order = order_for(acct)
    l1 = next(line.id for line in order.lines if line.channel_line_id == "L1")

    outcome = await acct.execute(
        command(
            CommandKind.CANCEL,
            {"reason": "seller_refusal", "lines": [{"line_id": l1, "quantity": 1}]},
        ),
        order,
    )

    assert outcome.data == {"recorded": 1}
    [call] = acct.calls
    assert (call.command_id, call.kind, call.order) == ("cmd-1", "cancel", "CO-1")
    assert call.payload["lines"] == [{"line_id": l1, "quantity": 1, "channel_line_id": "L1"}]
    assert call.payload["reason_code"] == "seller-refusal"


async def test_in_memory_faults_play_in_order() -> None:
    acct = account()
    order = order_for(acct)
    acct.fail_next(TransientChannelError("one"), times=2)
    acct.fail_next(PermanentChannelError("two"))
    for expected in (TransientChannelError, TransientChannelError, PermanentChannelError):
        with pytest.raises(expected):
            await acct.execute(command(CommandKind.ACCEPT, {}), order)
    await acct.execute(command(CommandKind.ACCEPT, {}), order)
    assert len(acct.calls) == 4  # every attempt reached the channel


def mock(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return httpx.MockTransport(handler)


async def test_the_http_call_carries_the_command_and_its_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "call": 7})

    acct = account(transport=httpx.MockTransport(handler), base_url="http://channel", token="t0k")
    order = order_for(acct)
    outcome = await acct.execute(command(CommandKind.ACCEPT, {"whole_order": True}), order)

    assert outcome.data == {"ok": True, "call": 7}
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "http://channel/calls"
    assert request.headers["Idempotency-Key"] == "cmd-1"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert json.loads(request.content) == {
        "command_id": "cmd-1",
        "kind": "accept",
        "order": "CO-1",
        "payload": {"whole_order": True},
    }
    assert acct.calls == []  # nothing in memory when a server is configured
    await acct.aclose()


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (500, {}, TransientChannelError, None),
        (503, {"Retry-After": "7"}, TransientChannelError, 7.0),
        (429, {"Retry-After": "12"}, TransientChannelError, 12.0),
        (408, {}, TransientChannelError, None),
        (409, {}, TransientChannelError, None),
        (400, {}, PermanentChannelError, None),
        (404, {}, PermanentChannelError, None),
        (422, {}, PermanentChannelError, None),
        (401, {}, ChannelConfigurationError, None),
    ],
)
async def test_http_errors_are_mapped(
    status: int, headers: dict[str, str], error: type[Exception], retry_after: float | None
) -> None:
    acct = account(
        transport=mock(status, {"message": "the channel says no"}, headers),
        base_url="http://channel",
    )
    with pytest.raises(error) as caught:
        await acct.execute(command(CommandKind.ACCEPT, {}), order_for(acct))
    assert type(caught.value) is error
    assert "the channel says no" in str(caught.value)
    assert getattr(caught.value, "status", None) == status
    if isinstance(caught.value, TransientChannelError):
        assert caught.value.retry_after == retry_after


async def test_a_retry_after_date_counts_down() -> None:
    acct = account(
        transport=mock(429, {}, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
        base_url="http://channel",
    )
    with pytest.raises(TransientChannelError) as caught:
        await acct.execute(command(CommandKind.ACCEPT, {}), order_for(acct))
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 60 * 60 * 24 * 365


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused")], ids=["timeout", "connect"]
)
async def test_timeouts_and_connection_errors_are_transient(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    acct = account(transport=httpx.MockTransport(handler), base_url="http://channel")
    with pytest.raises(TransientChannelError):
        await acct.execute(command(CommandKind.ACCEPT, {}), order_for(acct))


async def test_calls_against_the_test_server_are_recorded_once_per_key() -> None:
    app = create_app()
    acct = account(transport=httpx.ASGITransport(app=app), base_url="http://channel")
    order = order_for(acct)

    first = await acct.execute(command(CommandKind.ACCEPT, {"whole_order": True}), order)
    again = await acct.execute(command(CommandKind.ACCEPT, {"whole_order": True}), order)
    other = await acct.execute(command(CommandKind.ACCEPT, {}, command_id="cmd-2"), order)

    assert first.data == again.data == {"ok": True, "call": 1, "command_id": "cmd-1"}
    assert other.data["call"] == 2
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://channel"
    ) as client:
        calls = (await client.get("/calls")).json()["calls"]
    assert [(c["command_id"], c["replays"]) for c in calls] == [("cmd-1", 1), ("cmd-2", 0)]
    await acct.aclose()
