"""The hub's service layer with the real topi plugin against the simulator over HTTP.

The hub runs on the in-memory fakes (FakeUnitOfWorkFactory, RecordingQueue, FixedClock,
SequentialIds); the channel registry is loaded through the ``orderhub.channels`` entry point
and opens one topi account whose settings point at the simulator (OAuth2 client
credentials). Webhooks arrive at the test receiver (conftest) and are handed to
``intake.store_message`` as the web layer would; the queue is drained by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from topi_helpers import CLIENT_ID, CLIENT_SECRET, WebhookReceiver, wait_for

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, CommandKind, InboxState
from orderhub.application.services import intake, operations, seller_commands
from orderhub.application.services.cursors import UnitOfWorkCursorStore
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.channels.registry import ChannelRegistry, discover
from orderhub.channels.spi import AccountConfig, IntakeMessage, JobContext
from orderhub.domain.errors import InvalidTransition
from orderhub.domain.model import Line, Order
from orderhub.domain.values import Initiator, LineQuantity, OrderStatus, Reason
from orderhub.testing.fakes import FakeUnitOfWorkFactory, FixedClock, RecordingQueue, SequentialIds
from orderhub_topi.client import TopiClient
from orderhub_topi.plugin import TopiAccount
from orderhub_topi.simulator import SimulatorControl
from orderhub_topi.wire import FullOrderResult

ACCOUNT = "default"

BUNDLE_ORDER: dict[str, Any] = {
    "seller_offer_reference": "SO-INT-1",
    "lines": [
        {
            "title": "Pro Laptop 64GB",
            "sku": "LAP-1",
            "quantity": 2,
            "contract_type": "rent",
            "sublines": [{"title": "Charger", "sku": "CHG-1"}],
        },
        {"title": "USB-C cable", "sku": "CBL-1", "contract_type": "pay_now"},
    ],
}
SIMPLE_ORDER: dict[str, Any] = {
    "lines": [{"title": "Monitor", "sku": "MON-1", "contract_type": "pay_now"}]
}


@dataclass
class Rig:
    """A hub on fakes, wired to the simulator, with helpers to drive it."""

    hub: Hub
    uow: FakeUnitOfWorkFactory
    queue: RecordingQueue
    clock: FixedClock
    sim: SimulatorControl
    webhooks: WebhookReceiver
    registry: ChannelRegistry
    stored_webhooks: set[tuple[str, int]] = field(default_factory=set)

    @property
    def account(self) -> TopiAccount:
        acct = self.registry.account("topi", ACCOUNT)
        assert isinstance(acct, TopiAccount)
        return acct

    # --- topi side ------------------------------------------------------------------

    def webhook(self, topi_id: str, status: str) -> tuple[bytes, dict[str, str]]:
        """Wait until topi's ``status`` webhook for the order arrived; its body and headers."""

        def arrived() -> Any:
            for hook in self.webhooks.for_order(topi_id):
                if json.loads(hook.body)["status"] == status:
                    return hook
            return None

        hook = wait_for(arrived)
        return hook.body, hook.headers

    async def deliver(self, topi_id: str, status: str) -> intake.Stored:
        """Hand topi's ``status`` webhook to the hub, as the web layer does, and process it."""
        body, headers = self.webhook(topi_id, status)
        stored = await intake.store_message(
            self.hub, channel="topi", account=ACCOUNT, body=body, headers=headers
        )
        await self.process_inbox()
        return stored

    # --- hub side -------------------------------------------------------------------

    async def process_inbox(self) -> list[intake.Processed]:
        states = []
        while self.queue.messages:
            states.append(await intake.process_message(self.hub, self.queue.messages.pop(0)))
        return states

    async def dispatch_queued(self) -> list[Dispatched]:
        """Dispatch what is queued now (a retry queued meanwhile stays in the queue), then
        apply what topi answered (the read-back stored in the inbox)."""
        batch = list(self.queue.commands)
        self.queue.commands.clear()
        outcomes = [await dispatch_command(self.hub, command_id) for command_id, _ in batch]
        await self.process_inbox()
        return outcomes

    def order(self, topi_id: str) -> Order:
        (order,) = [o for o in self.uow.db.orders.values() if o.channel_order_id == topi_id]
        return order

    def commands(self, order: Order, kind: CommandKind | None = None) -> list[ChannelCommand]:
        return [
            c
            for c in self.uow.db.commands.values()
            if c.order_id == order.id and (kind is None or c.kind is kind)
        ]

    def command(self, command_id: str) -> ChannelCommand:
        return self.uow.db.commands[command_id]

    def feed(self, order: Order) -> list[str]:
        return [e.type for e in self.uow.db.feed if e.order_id == order.id]

    def calls(self, path: str, method: str = "POST") -> list[dict[str, Any]]:
        return self.sim.calls(method=method, path=path)

    async def new_order(self, spec: dict[str, Any]) -> str:
        """A customer order in topi, received by the hub and acknowledged; its topi id."""
        topi_id: str = self.sim.create_order(**spec)["id"]
        await self.deliver(topi_id, "created")
        assert await self.dispatch_queued() == [Dispatched.SUCCEEDED]  # the acknowledgement
        return topi_id

    async def accept(self, topi_id: str) -> None:
        await seller_commands.accept_order(self.hub, order_id=self.order(topi_id).id)
        assert await self.dispatch_queued() == [Dispatched.SUCCEEDED]

    async def ship(self, topi_id: str, *items: tuple[str, int, tuple[str, ...]], **kw: Any) -> str:
        """Record a shipment of (channel line id, quantity, serials); the command id."""
        order = self.order(topi_id)
        receipt = await seller_commands.record_shipment(
            self.hub,
            order_id=order.id,
            items=[
                LineQuantity(line_id=line(order, cid).id, quantity=q, serial_numbers=serials)
                for cid, q, serials in items
            ],
            **kw,
        )
        return receipt.command_id

    def job_context(self, submitted: list[IntakeMessage] | None = None) -> JobContext:
        async def submit(message: IntakeMessage) -> bool:
            if submitted is not None:
                submitted.append(message)
            stored = await intake.store_message(
                self.hub,
                channel="topi",
                account=ACCOUNT,
                body=message.body,
                headers=message.headers,
                source="poll",
                key=message.dedupe_key,
            )
            return not stored.duplicate

        return JobContext(
            account=self.account.config,
            cursors=UnitOfWorkCursorStore(self.hub.uow),
            clock=self.clock,
            submit=submit,
        )


def line(order: Order, channel_line_id: str) -> Line:
    return next(li for li in order.lines if li.channel_line_id == channel_line_id)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(sim: SimulatorControl, webhooks: WebhookReceiver) -> AsyncIterator[RigFactory]:
    registries: list[ChannelRegistry] = []

    async def make(**settings: Any) -> Rig:
        config = AccountConfig(
            channel="topi",
            name=ACCOUNT,
            settings={
                "base_url": sim.url,
                "token_url": f"{sim.url}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                **settings,
            },
        )
        registry = ChannelRegistry(discover(enabled=["topi"]), [config])
        registries.append(registry)
        clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        uow = FakeUnitOfWorkFactory(clock=clock)
        queue = RecordingQueue()
        hub = Hub(uow=uow, channels=registry, clock=clock, ids=SequentialIds("hub"), queue=queue)
        return Rig(
            hub=hub,
            uow=uow,
            queue=queue,
            clock=clock,
            sim=sim,
            webhooks=webhooks,
            registry=registry,
        )

    yield make
    for registry in registries:
        await registry.aclose()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()


def shipped_serials(order: FullOrderResult) -> dict[str, list[str]]:
    """Per SKU, the serial numbers of topi's shipped assets ("" for none)."""
    found: dict[str, list[str]] = {}
    for a in order.assets:
        if a.status == "shipped":
            sku = a.seller_product_references[0].reference
            found.setdefault(sku, []).append(a.serial_number or "")
    return {sku: sorted(serials) for sku, serials in found.items()}


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------
# the happy path
# ---------------------------------------------------------------------------------------


async def test_a_new_order_is_fetched_created_and_acknowledged(rig: Rig, topi: TopiClient) -> None:
    topi_id: str = rig.sim.create_order(**BUNDLE_ORDER)["id"]

    stored = await rig.deliver(topi_id, "created")

    assert not stored.duplicate
    assert len(rig.uow.db.inbox) == 1
    assert rig.uow.db.inbox[stored.message_id].state is InboxState.PROCESSED
    assert [c["path"] for c in rig.calls(f"/v1/orders/{topi_id}", "GET")] == [
        f"/v1/orders/{topi_id}"
    ]
    order = rig.order(topi_id)
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert order.channel_status == "created"
    assert order.seller_reference == "SO-INT-1"
    assert [(li.channel_line_id, li.sku, li.quantity) for li in order.lines] == [
        ("1", "LAP-1", 2),
        ("1.0", "LAP-1", 2),
        ("1.1", "CHG-1", 2),
        ("2", "CBL-1", 1),
    ]
    assert {li.channel_line_id: len(li.units) for li in order.leaf_lines} == {
        "1.0": 2,
        "1.1": 2,
        "2": 1,
    }
    assert rig.feed(order) == ["order.received"]
    (ack,) = rig.commands(order)
    assert ack.kind is CommandKind.ACKNOWLEDGE

    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]

    assert (await topi.get_order(topi_id)).status == "acknowledged"
    assert rig.command(ack.id).result == {"topi_status": "acknowledged"}
    # the call recorded, then topi's answer (read back) applied through the inbox
    assert rig.feed(order)[-2:] == ["command.succeeded", "order.updated"]
    assert rig.order(topi_id).channel_status == "acknowledged"


async def test_accept_and_ship_in_two_parcels_keeps_hub_and_topi_in_step(
    rig: Rig, topi: TopiClient
) -> None:
    topi_id = await rig.new_order(BUNDLE_ORDER)

    await rig.accept(topi_id)
    assert (await topi.get_order(topi_id)).status == "confirmed"
    assert rig.order(topi_id).status is OrderStatus.READY_TO_SHIP

    # first parcel: the two laptops and their chargers, with serial numbers
    await rig.ship(
        topi_id,
        ("1.0", 2, ("SN-L1", "SN-L2")),
        ("1.1", 2, ("SN-C1", "SN-C2")),
        tracking_url="https://track.example/p1",
    )
    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]
    at_topi = await topi.get_order(topi_id)
    assert at_topi.status == "partially_fulfilled"
    assert shipped_serials(at_topi) == {"LAP-1": ["SN-L1", "SN-L2"], "CHG-1": ["SN-C1", "SN-C2"]}

    await rig.deliver(topi_id, "partially_fulfilled")
    order = rig.order(topi_id)
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert order.channel_status == "partially_fulfilled"

    # second parcel: the cable, which has no serial number
    await rig.ship(topi_id, ("2", 1, ()), tracking_url="https://track.example/p2")
    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]
    at_topi = await topi.get_order(topi_id)
    assert at_topi.status == "completed"
    assert shipped_serials(at_topi)["CBL-1"] == [""]
    assert at_topi.tracking_urls == ["https://track.example/p1", "https://track.example/p2"]

    await rig.deliver(topi_id, "completed")
    order = rig.order(topi_id)
    assert order.status is OrderStatus.SHIPPED
    assert order.channel_status == "completed"
    assert all(li.shipped == li.quantity for li in order.leaf_lines)
    # the hub's units carry the serial numbers topi holds for the same assets
    hub_units = {u.channel_unit_id: u.serial_number for li in order.leaf_lines for u in li.units}
    assert hub_units == {a.id: (a.serial_number or None) for a in at_topi.assets}
    assert rig.feed(order).count("order.shipped") == 1
    assert "command.failed" not in rig.feed(order)


async def test_reject_after_confirmation_is_refused_before_anything_is_sent(rig: Rig) -> None:
    topi_id = await rig.new_order(BUNDLE_ORDER)
    await rig.accept(topi_id)
    order = rig.order(topi_id)
    commands_before = len(rig.uow.db.commands)

    with pytest.raises(InvalidTransition) as caught:
        await seller_commands.reject_order(rig.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)

    assert caught.value.rule == "rejection-after-acceptance"
    assert len(rig.uow.db.commands) == commands_before
    assert rig.queue.commands == []
    assert rig.calls(f"/v1/orders/{topi_id}/reject") == []
    assert rig.order(topi_id).status is OrderStatus.READY_TO_SHIP


async def test_rejecting_an_order_before_confirmation(rig: Rig, topi: TopiClient) -> None:
    await rig.new_order(SIMPLE_ORDER)  # another order of the same account, left alone
    topi_id = await rig.new_order(BUNDLE_ORDER)

    await seller_commands.reject_order(
        rig.hub, order_id=rig.order(topi_id).id, reason=Reason.OUT_OF_STOCK
    )
    assert rig.order(topi_id).status is OrderStatus.REJECTED
    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]
    assert (await topi.get_order(topi_id)).status == "rejected"

    await rig.deliver(topi_id, "rejected")

    order = rig.order(topi_id)
    assert order.status is OrderStatus.REJECTED
    assert order.channel_status == "rejected"
    assert rig.feed(order).count("order.rejected") == 1


# ---------------------------------------------------------------------------------------
# customer cancellations
# ---------------------------------------------------------------------------------------


async def test_a_customer_cancellation_cancels_the_order(rig: Rig) -> None:
    topi_id = await rig.new_order(BUNDLE_ORDER)
    await rig.accept(topi_id)

    rig.sim.cancel(topi_id)
    await rig.deliver(topi_id, "canceled")

    order = rig.order(topi_id)
    assert order.status is OrderStatus.CANCELLED
    assert order.channel_status == "canceled"
    (cancellation,) = order.cancellations
    assert cancellation.initiator is Initiator.CUSTOMER
    cancelled = [e for e in rig.uow.db.feed if e.type == "order.cancelled"]
    assert [e.data["initiator"] for e in cancelled] == ["customer"]


async def test_a_lost_cancellation_webhook_is_healed_by_the_scheduled_refresh(rig: Rig) -> None:
    """The customer cancels, topi's webhook is lost: the warehouse must not ship a cancelled
    order. The scheduled refresh reads silent open orders again (GET /v1/orders/{id})."""
    topi_id = await rig.new_order(SIMPLE_ORDER)
    await rig.accept(topi_id)
    assert rig.order(topi_id).status is OrderStatus.READY_TO_SHIP
    rig.sim.drop_webhooks(1)
    rig.sim.cancel(topi_id)

    assert await operations.refresh_stale(rig.hub, older_than_seconds=3600, limit=10) == (0, 0)
    rig.clock.advance(3601)  # silent for longer than the refresh age
    assert await operations.refresh_stale(rig.hub, older_than_seconds=3600, limit=10) == (1, 0)
    assert await rig.process_inbox() == [intake.Processed.PROCESSED]

    order = rig.order(topi_id)
    assert order.status is OrderStatus.CANCELLED
    assert order.channel_status == "canceled"
    assert [c.initiator for c in order.cancellations] == [Initiator.CUSTOMER]
    # asked again at once: not stale any more; later, topi shows the same: stored once
    assert await operations.refresh_stale(rig.hub, older_than_seconds=3600, limit=10) == (0, 0)
    assert rig.calls(f"/v1/orders/{topi_id}", method="GET")


async def test_topi_takes_no_cancellation_after_completion_the_order_stays_shipped(
    rig: Rig,
) -> None:
    topi_id = await rig.new_order(SIMPLE_ORDER)
    await rig.accept(topi_id)
    await rig.ship(topi_id, ("1", 1, ()))
    await rig.dispatch_queued()
    await rig.deliver(topi_id, "completed")

    with pytest.raises(RuntimeError, match="handled as a return"):
        rig.sim.cancel(topi_id)

    assert [w["status"] for w in rig.sim.webhooks(topi_id)] == ["created", "completed"]
    assert rig.order(topi_id).status is OrderStatus.SHIPPED


async def test_a_cancellation_after_the_hub_shipped_everything_is_a_return_request(
    rig: Rig,
) -> None:
    # the warehouse shipped both parcels; topi has the first when the customer cancels
    topi_id = await rig.new_order(BUNDLE_ORDER)
    await rig.accept(topi_id)
    await rig.ship(topi_id, ("1.0", 2, ("SN-L1", "SN-L2")), ("1.1", 2, ("SN-C1", "SN-C2")))
    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]
    second = await rig.ship(topi_id, ("2", 1, ()))
    assert rig.order(topi_id).status is OrderStatus.SHIPPED

    rig.sim.cancel(topi_id)
    await rig.deliver(topi_id, "canceled")

    order = rig.order(topi_id)
    assert order.status is OrderStatus.SHIPPED
    assert order.cancellations == []
    (ret,) = order.returns
    assert ret.initiator is Initiator.CUSTOMER
    assert "order.return_requested" in rig.feed(order)
    # the second parcel cannot reach topi any more: visible, with topi's reason
    assert await rig.dispatch_queued() == [Dispatched.FAILED]
    assert 'status "canceled"' in (rig.command(second).last_error or "")


# ---------------------------------------------------------------------------------------
# duplicates and late webhooks
# ---------------------------------------------------------------------------------------


async def test_a_redelivered_webhook_is_stored_once(rig: Rig) -> None:
    rig.webhooks.fail_next = 1  # the first delivery fails: topi sends the same message again
    topi_id: str = rig.sim.create_order(**BUNDLE_ORDER)["id"]
    wait_for(lambda: len(rig.webhooks.for_order(topi_id)) == 2)
    first, again = rig.webhooks.for_order(topi_id)
    assert first.body == again.body
    assert first.headers["webhook-id"] == again.headers["webhook-id"]

    stored = [
        await intake.store_message(
            rig.hub, channel="topi", account=ACCOUNT, body=hook.body, headers=hook.headers
        )
        for hook in (first, again)
    ]
    await rig.process_inbox()

    assert [s.duplicate for s in stored] == [False, True]
    assert len(rig.uow.db.inbox) == 1
    assert len(rig.uow.db.orders) == 1
    assert len(rig.commands(rig.order(topi_id), CommandKind.ACKNOWLEDGE)) == 1


async def test_the_same_body_without_a_message_id_is_stored_once(rig: Rig) -> None:
    topi_id: str = rig.sim.create_order(**SIMPLE_ORDER)["id"]
    body, _ = rig.webhook(topi_id, "created")

    stored = [
        await intake.store_message(rig.hub, channel="topi", account=ACCOUNT, body=body, headers={})
        for _ in range(2)
    ]

    assert [s.duplicate for s in stored] == [False, True]
    assert len(rig.uow.db.inbox) == 1


async def test_a_late_created_webhook_after_completion_is_recorded_not_applied(rig: Rig) -> None:
    topi_id = await rig.new_order(SIMPLE_ORDER)
    await rig.accept(topi_id)
    await rig.ship(topi_id, ("1", 1, ()))
    await rig.dispatch_queued()
    await rig.deliver(topi_id, "completed")
    order = rig.order(topi_id)
    feed_before = rig.feed(order)
    commands_before = len(rig.uow.db.commands)

    # the created message again, under a new message id (a late delivery)
    body, headers = rig.webhook(topi_id, "created")
    stored = await intake.store_message(
        rig.hub,
        channel="topi",
        account=ACCOUNT,
        body=body,
        headers=headers | {"webhook-id": "msg_late"},
    )
    await rig.process_inbox()

    assert not stored.duplicate
    assert rig.uow.db.inbox[stored.message_id].state is InboxState.PROCESSED
    after = rig.order(topi_id)
    assert after.status is OrderStatus.SHIPPED
    assert after.channel_status == "completed"
    assert after.version == order.version
    assert rig.feed(after) == feed_before
    assert len(rig.uow.db.commands) == commands_before  # no second acknowledgement


# ---------------------------------------------------------------------------------------
# channel failures
# ---------------------------------------------------------------------------------------


async def test_a_server_error_on_the_shipment_is_retried_and_ships_once(
    rig: Rig, topi: TopiClient
) -> None:
    topi_id = await rig.new_order(BUNDLE_ORDER)
    await rig.accept(topi_id)
    rig.sim.add_fault("/v1/shipment", method="POST", status=500)
    command_id = await rig.ship(topi_id, ("1.0", 2, ("SN-L1", "SN-L2")))

    assert await rig.dispatch_queued() == [Dispatched.RETRY]
    pending = rig.command(command_id)
    assert pending.attempts == 1
    assert "500" in (pending.last_error or "")
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at > rig.clock.now()
    delay = rig.queue.commands[-1][1]
    assert rig.queue.commands == [(command_id, delay)]
    assert delay > 0

    # not due yet: nothing is sent
    assert await dispatch_command(rig.hub, command_id) is Dispatched.NOT_DUE
    assert len(rig.calls("/v1/shipment")) == 1

    rig.clock.current = pending.next_attempt_at
    assert await dispatch_command(rig.hub, command_id) is Dispatched.SUCCEEDED

    calls = rig.calls("/v1/shipment")
    assert [(c["fault"], c["status_code"]) for c in calls] == [(True, 500), (False, 200)]
    assert shipped_serials(await topi.get_order(topi_id)) == {"LAP-1": ["SN-L1", "SN-L2"]}
    assert rig.command(command_id).attempts == 2


async def test_too_many_requests_waits_at_least_retry_after(rig: Rig, topi: TopiClient) -> None:
    topi_id = await rig.new_order(SIMPLE_ORDER)
    rig.sim.add_fault(f"/v1/orders/{topi_id}/accept", status=429, retry_after="120")
    receipt = await seller_commands.accept_order(rig.hub, order_id=rig.order(topi_id).id)
    started = rig.clock.now()

    assert await rig.dispatch_queued() == [Dispatched.RETRY]

    pending = rig.command(receipt.command_id)
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at >= started + dt.timedelta(seconds=120)
    assert rig.queue.commands[-1][1] >= 120
    rig.clock.advance(60)
    assert await dispatch_command(rig.hub, receipt.command_id) is Dispatched.NOT_DUE
    assert len(rig.calls(f"/v1/orders/{topi_id}/accept")) == 1

    rig.clock.current = pending.next_attempt_at
    assert await dispatch_command(rig.hub, receipt.command_id) is Dispatched.SUCCEEDED
    assert (await topi.get_order(topi_id)).status == "confirmed"


async def test_a_refusal_fails_the_command_with_topis_message(rig: Rig) -> None:
    # bought, but the product has a rent option: topi wants a serial number the hub
    # cannot know it needs (docs/channels/topi.md, assumption 5)
    spec = {
        "lines": [
            {"title": "Tablet", "sku": "TAB-1", "contract_type": "pay_now", "rent_option": True}
        ]
    }
    topi_id = await rig.new_order(spec)
    await rig.accept(topi_id)
    command_id = await rig.ship(topi_id, ("1", 1, ()))

    assert await rig.dispatch_queued() == [Dispatched.FAILED]

    failed = rig.command(command_id)
    assert failed.attempts == 1
    assert failed.result == {"status": 400, "decision_undone": False}  # a fact: it stands
    assert failed.last_error is not None
    assert failed.last_error.startswith("topi: asset ")
    assert failed.last_error.endswith("has a rent option and requires a serial number")
    (event,) = [e for e in rig.uow.db.feed if e.type == "command.failed"]
    assert event.order_id == rig.order(topi_id).id
    assert event.data["command_id"] == command_id
    assert event.data["error"] == failed.last_error


async def test_a_revoked_token_is_refreshed_once(rig: Rig, topi: TopiClient) -> None:
    topi_id = await rig.new_order(SIMPLE_ORDER)
    tokens_before = len(rig.calls("/oauth/token"))
    assert tokens_before == 1  # one token served the intake and the acknowledgement

    assert rig.sim.revoke_tokens() >= 1
    await rig.accept(topi_id)

    assert [c["status_code"] for c in rig.calls(f"/v1/orders/{topi_id}/accept")] == [401, 200]
    assert len(rig.calls("/oauth/token")) == tokens_before + 1
    assert (await topi.get_order(topi_id)).status == "confirmed"


# ---------------------------------------------------------------------------------------
# lost webhooks and lost answers
# ---------------------------------------------------------------------------------------


async def test_reconciliation_recovers_a_lost_webhook_once(rig: Rig) -> None:
    known = await rig.new_order(SIMPLE_ORDER)
    rig.sim.drop_webhooks(1)
    lost: str = rig.sim.create_order(**BUNDLE_ORDER)["id"]
    assert [w["dropped"] for w in rig.sim.webhooks(lost)] == [True]
    assert rig.webhooks.for_order(lost) == []

    submitted: list[IntakeMessage] = []
    await rig.account.reconcile(rig.job_context(submitted))
    await rig.process_inbox()

    assert sorted(json.loads(m.body)["id"] for m in submitted) == sorted([known, lost])
    order = rig.order(lost)  # exactly one hub order for it
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert len(rig.uow.db.orders) == 2
    assert len(rig.commands(order, CommandKind.ACKNOWLEDGE)) == 1
    assert len(rig.commands(rig.order(known), CommandKind.ACKNOWLEDGE)) == 1
    assert await rig.dispatch_queued() == [Dispatched.SUCCEEDED]

    inbox_before = len(rig.uow.db.inbox)
    submitted.clear()
    await rig.account.reconcile(rig.job_context(submitted))

    assert len(submitted) == 2  # the walk overlaps the last one: both seen again...
    # ...the known one unchanged (a duplicate), the recovered one now acknowledged (news)
    assert len(rig.uow.db.inbox) == inbox_before + 1
    version = rig.order(lost).version
    assert await rig.process_inbox() == [intake.Processed.PROCESSED]
    assert rig.order(lost).version == version  # it told the hub nothing new
    assert len(rig.uow.db.orders) == 2


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((("1.0", 2, ("SN-L1", "SN-L2")),), {"LAP-1": ["SN-L1", "SN-L2"]}),
        ((("2", 1, ()),), {"CBL-1": [""]}),
    ],
    ids=["with-serial-numbers", "without-serial-numbers"],
)
async def test_a_shipment_whose_answer_was_lost_is_not_sent_twice(
    make_rig: RigFactory,
    topi: TopiClient,
    items: tuple[tuple[str, int, tuple[str, ...]], ...],
    expected: dict[str, list[str]],
) -> None:
    rig = await make_rig(timeout_seconds=0.5)
    topi_id = await rig.new_order(BUNDLE_ORDER)
    await rig.accept(topi_id)
    # topi applies the shipment, but only after the hub gave up waiting for the answer
    rig.sim.add_fault("/v1/shipment", method="POST", delay=1.5)
    command_id = await rig.ship(topi_id, *items)

    assert await rig.dispatch_queued() == [Dispatched.RETRY]
    assert "timeout" in (rig.command(command_id).last_error or "")

    async def applied() -> bool:
        return shipped_serials(await topi.get_order(topi_id)) == expected

    await eventually(applied)
    next_attempt = rig.command(command_id).next_attempt_at
    assert next_attempt is not None
    rig.clock.current = next_attempt

    assert await dispatch_command(rig.hub, command_id) is Dispatched.SUCCEEDED

    retried = rig.command(command_id)
    assert retried.attempts == 2
    assert retried.result["replayed"] is True
    assert len(rig.calls("/v1/shipment")) == 1
    assert shipped_serials(await topi.get_order(topi_id)) == expected
