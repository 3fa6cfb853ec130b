"""What the web tests share: a stub channel plugin, API keys, the harness, problem checks.

The stub channel reads a tiny JSON format (see :func:`snapshot_from`); its capabilities
come from the account's settings (the ``capabilities`` fixture for account ``main``)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from urllib.parse import unquote

from litestar import Litestar
from litestar.testing import AsyncTestClient

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, UnitOfWorkFactory
from orderhub.application.services.intake import apply_snapshot
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import (
    AccountConfig,
    ChannelAccount,
    CommandOutcome,
    IntakeMessage,
    PermanentChannelError,
    WebhookAuth,
)
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
    Order,
    Unit,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    Money,
    Price,
    Reason,
    RequestState,
)
from orderhub.entrypoints.web import ApiKey
from orderhub.entrypoints.web.webhook_auth import sign
from orderhub.testing.fakes import (
    FakeDatabase,
    FakeUnitOfWorkFactory,
    FixedClock,
    RecordingQueue,
    SequentialIds,
)

CHANNEL = "stub"
SECRET = "whsec_" + base64.b64encode(b"current-secret-0123456789abcdef").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"previous-secret-0123456789abcde").decode()
BEARER_TOKEN = "bearer-token-for-stub"
PATH_TOKEN = "path-token-for-stub"

KEYS = {
    "reader": "key-reader-0000000000000000",
    "writer": "key-writer-1111111111111111",
    "operator": "key-operator-22222222222222",
    "other-wms": "key-other-wms-333333333333333",
}
API_KEYS = (
    ApiKey("reader", KEYS["reader"], frozenset({"orders:read"})),
    ApiKey("writer", KEYS["writer"], frozenset({"orders:read", "orders:write"})),
    ApiKey("operator", KEYS["operator"], frozenset({"ops"})),
    ApiKey("other-wms", KEYS["other-wms"], frozenset({"orders:read", "orders:write"})),
)

FULL = Capabilities(
    acceptance=Scope.LINE,
    rejection=Scope.LINE,
    shipment=Scope.LINE,
    serial_numbers=True,
    delivery_confirmation=DeliveryConfirmation.SELLER,
    seller_cancellation=Scope.LINE,
    cancellation_requests=True,
    cancellation_decision=Scope.LINE,
    refusal_ships=True,
    short_ship=True,
)
# Orders arrive ready to ship; nothing can be accepted, rejected, cancelled or delivered.
PLAIN = Capabilities(
    acceptance=Scope.NONE,
    rejection=Scope.NONE,
    shipment=Scope.ORDER,
    refusals={"cancel": "plain has no seller cancellation: ask the customer to return it"},
)


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def commanding(name: str = "writer") -> dict[str, str]:
    """Headers for one command: the API key and an Idempotency-Key of its own."""
    return {**auth(name), "Idempotency-Key": f"key-{uuid.uuid4().hex}"}


def snapshot_from(data: Mapping[str, Any]) -> ChannelSnapshot:
    """The stub channel's format::

    {"id": "CH-1", "status": "created", "released": false, "ship_by": "<iso>",
     "order_number": "N-1", "currency": "EUR",
     "lines": [{"id": "a", "sku": "SKU-A", "quantity": 2, "price": 1999,
                "serial": true, "parent": null, "units": ["u1", "u2"]}],
     "cancellation": {"id": "c1", "state": "requested", "lines": [["a", 1]]},
     "fulfilments": {"F1": "channel"},  (a line names its own with "fulfilment": "F1")
     "customer": {"name": "Ada"}, "address": {"line1": "1 Main St", "city": "Paris"}}
    """
    currency = data.get("currency", "EUR")
    lines = tuple(
        LineSnapshot(
            channel_line_id=line["id"],
            sku=line.get("sku", f"SKU-{line['id']}"),
            title=line.get("title", f"Item {line['id']}"),
            quantity=line["quantity"],
            unit_price=Price(gross=Money(amount=line["price"], currency=currency))
            if "price" in line
            else None,
            parent_channel_line_id=line.get("parent"),
            requires_serial_number=line.get("serial", False),
            units=tuple(Unit(channel_unit_id=u) for u in line.get("units", ())),
            channel_fulfilment_id=line.get("fulfilment"),
        )
        for line in data["lines"]
    )
    cancellations: tuple[CancellationSnapshot, ...] = ()
    if cancellation := data.get("cancellation"):
        cancellations = (
            CancellationSnapshot(
                channel_cancellation_id=cancellation["id"],
                initiator=Initiator.CUSTOMER,
                reason=Reason.CUSTOMER_REQUEST,
                state=RequestState(cancellation.get("state", "requested")),
                lines=tuple((cid, q) for cid, q in cancellation.get("lines", ())),
            ),
        )
    return ChannelSnapshot(
        channel_order_id=data["id"],
        channel_status=data.get("status", "created"),
        lines=lines,
        order_number=data.get("order_number"),
        currency=currency,
        ship_by=datetime.fromisoformat(data["ship_by"]) if data.get("ship_by") else None,
        released=data.get("released", False),
        customer=Customer(**data["customer"]) if data.get("customer") else None,
        shipping_address=Address(**data["address"]) if data.get("address") else None,
        cancellations=cancellations,
        fulfilments=tuple(
            FulfilmentSnapshot(channel_fulfilment_id=fid, fulfilled_by=FulfilledBy(by))
            for fid, by in data.get("fulfilments", {}).items()
        ),
    )


class StubAccount(ChannelAccount):
    """Answers every call, unless told to refuse the next; ``refresh`` shows what the test
    set in ``shows`` (by channel order id)."""

    def __init__(self, config: AccountConfig, capabilities: Capabilities) -> None:
        super().__init__(config, capabilities)
        self.refuse_next: str | None = None
        self.shows: dict[str, dict[str, Any]] = {}

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        return [snapshot_from(json.loads(body))]

    async def execute(self, command: ChannelCommand, order: Order) -> CommandOutcome:
        refusal, self.refuse_next = self.refuse_next, None
        if refusal is not None:
            raise PermanentChannelError(refusal, status=409)
        return CommandOutcome(data={"echo": command.kind.value})

    async def refresh(self, order: Order) -> IntakeMessage | None:
        shown = self.shows.get(order.channel_order_id)
        if shown is None:
            return None
        body = json.dumps(shown).encode()
        return IntakeMessage(dedupe_key=f"refresh:{hash(body)}", body=body)


@dataclass
class StubPlugin:
    name: str = CHANNEL

    def capabilities(self, config: AccountConfig) -> Capabilities:
        caps = config.settings.get("capabilities", FULL)
        assert isinstance(caps, Capabilities)
        return caps

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return StubAccount(config, self.capabilities(config))


def fake_uow(db: FakeDatabase, clock: FixedClock) -> UnitOfWorkFactory:
    # FakeUnitOfWork satisfies each repository port but not UnitOfWork as a whole for mypy:
    # the protocol's repository attributes are mutable, hence invariant (reported upstream).
    return cast(UnitOfWorkFactory, FakeUnitOfWorkFactory(db, clock))


def stub_registry(capabilities: Capabilities = FULL) -> ChannelRegistry:
    """The stub channel with one account per way of authenticating webhooks, and ``idle``."""
    plugins = {
        CHANNEL: LoadedPlugin(plugin=StubPlugin(), distribution="orderhub-stub", version="0.1.0"),
        "idle": LoadedPlugin(plugin=StubPlugin("idle"), distribution="idle-dist", version="2.0"),
    }
    accounts = [
        AccountConfig(
            channel=CHANNEL,
            name="main",
            settings={"capabilities": capabilities},
            webhook=WebhookAuth(hmac_secrets=(SECRET, OLD_SECRET)),
        ),
        AccountConfig(
            channel=CHANNEL,
            name="plain",
            settings={"capabilities": PLAIN},
            webhook=WebhookAuth(bearer_tokens=(BEARER_TOKEN,)),
        ),
        AccountConfig(
            channel=CHANNEL, name="pathtoken", webhook=WebhookAuth(path_tokens=(PATH_TOKEN,))
        ),
        AccountConfig(channel=CHANNEL, name="closed"),
    ]
    return ChannelRegistry(plugins, accounts)


def fake_hub(
    registry: ChannelRegistry,
    *,
    db: FakeDatabase,
    clock: FixedClock,
    queue: RecordingQueue,
    uow: UnitOfWorkFactory | None = None,
) -> Hub:
    return Hub(
        uow=uow if uow is not None else fake_uow(db, clock),
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
    )


@dataclass
class Harness:
    hub: Hub
    db: FakeDatabase
    clock: FixedClock
    queue: RecordingQueue
    client: AsyncTestClient[Any]
    app: Litestar
    seeded: int = field(default=0)

    async def seed(
        self,
        *,
        account: str = "main",
        channel_order_id: str | None = None,
        lines: Sequence[Mapping[str, Any]] = ({"id": "a", "quantity": 2, "price": 1999},),
        **extra: Any,
    ) -> Order:
        """An order as if the channel had sent it."""
        self.seeded += 1
        data = {"id": channel_order_id or f"CH-{self.seeded}", "lines": list(lines), **extra}
        order = await apply_snapshot(
            self.hub, self.hub.channels.account(CHANNEL, account), snapshot_from(data)
        )
        self.queue.commands.clear()
        return order

    def state(self) -> tuple[FakeDatabase, RecordingQueue]:
        """Everything a refused request must leave as it was."""
        return copy.deepcopy(self.db), copy.deepcopy(self.queue)

    def signed(
        self,
        body: bytes,
        *,
        message_id: str = "msg-1",
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> dict[str, str]:
        stamp = int(self.clock.now().timestamp()) if timestamp is None else timestamp
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, message_id=message_id, timestamp=stamp, body=body),
            "content-type": "application/json",
        }


def assert_problem(response: Any, status: int, rule: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and rule; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://orderhub.dev/problems/{rule}", body
    assert body["status"] == status
    assert body["rule"] == rule
    assert body["title"]
    assert body["detail"]
    assert unquote(body["instance"]) == response.request.url.path  # percent-encoded
    assert body["request_id"] == response.headers["x-request-id"]
    return body
