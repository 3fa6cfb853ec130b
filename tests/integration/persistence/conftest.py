"""Builders for the persistence tests: real orders, made the way intake makes them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils import uuid7

from orderhub.adapters.persistence import create_engine
from orderhub.application.ports import ChannelCommand, CommandKind, InboxMessage
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import ChannelSnapshot, LineSnapshot, Order, Unit
from orderhub.domain.values import Address, Customer, Money, Price

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

CAPS = Capabilities(
    acceptance=Scope.ORDER,
    rejection=Scope.ORDER,
    shipment=Scope.LINE,
    serial_numbers=True,
    delivery_confirmation=DeliveryConfirmation.SELLER,
    seller_cancellation=Scope.LINE,
    cancellation_requests=True,
)


def new_id() -> str:
    return str(uuid7())


def snapshot(
    channel_order_id: str,
    *,
    quantity: int = 2,
    ship_by: datetime | None = None,
    placed_at: datetime | None = None,
    channel_status: str = "created",
) -> ChannelSnapshot:
    return ChannelSnapshot(
        channel_order_id=channel_order_id,
        channel_status=channel_status,
        order_number=f"N-{channel_order_id}",
        seller_reference="offer-7",
        customer=Customer(name="Ada Lovelace", email="ada@example.com", vat_number="DE123"),
        shipping_address=Address(
            name="Ada Lovelace",
            line1="Hauptstr. 1",
            postal_code="10115",
            city="Berlin",
            country_code="DE",
        ),
        billing_address=Address(name="Ada Lovelace", company="Engines Ltd", country_code="GB"),
        currency="EUR",
        placed_at=placed_at or NOW - timedelta(hours=1),
        ship_by=ship_by,
        lines=(
            LineSnapshot(
                channel_line_id="L1",
                sku="SKU-LAPTOP",
                title="Laptop",
                quantity=quantity,
                unit_price=Price(
                    gross=Money(amount=119_000, currency="EUR"),
                    net=Money(amount=100_000, currency="EUR"),
                    tax_rate="0.19",
                ),
                requires_serial_number=True,
                units=tuple(Unit(channel_unit_id=f"A{i}") for i in range(quantity)),
                extras={"asset_type": "rental", "nested": {"months": [12, 24]}},
            ),
            LineSnapshot(
                channel_line_id="L2",
                sku=None,
                title="Charger",
                quantity=1,
                unit_price=Price(gross=Money(amount=2_500, currency="EUR")),
            ),
        ),
        extras={"offer_id": "offer-7", "metadata": {"source": "test"}},
    )


@dataclass
class OrderMaker:
    """``make_order("CO-1")``: a new order as ``Order.receive`` builds it (not stored)."""

    made: list[Order] = field(default_factory=list)

    def __call__(
        self,
        channel_order_id: str | None = None,
        *,
        channel: str = "testchannel",
        account: str = "main",
        now: datetime = NOW,
        caps: Capabilities = CAPS,
        **snapshot_options: Any,
    ) -> Order:
        order = Order.receive(
            snapshot(channel_order_id or f"CO-{len(self.made) + 1}", **snapshot_options),
            order_id=new_id(),
            channel=channel,
            account=account,
            caps=caps,
            now=now,
            new_id=new_id,
        )
        self.made.append(order)
        return order


@pytest.fixture
def make_order() -> OrderMaker:
    return OrderMaker()


@pytest.fixture
def caps() -> Capabilities:
    return CAPS


_COMMAND_SEQ = itertools.count(1)


def command_for(order: Order, *, created_at: datetime = NOW, **changes: Any) -> ChannelCommand:
    command = ChannelCommand(
        seq=next(_COMMAND_SEQ),
        id=new_id(),
        order_id=order.id,
        channel=order.channel,
        account=order.account,
        kind=CommandKind.ACCEPT,
        payload={"lines": [{"line_id": order.lines[0].id, "quantity": 1}], "whole_order": True},
        created_at=created_at,
    )
    for name, value in changes.items():
        setattr(command, name, value)
    return command


def inbox_message(
    dedupe_key: str, *, received_at: datetime = NOW, body: bytes = b'{"id": "CO-1"}'
) -> InboxMessage:
    return InboxMessage(
        id=new_id(),
        channel="testchannel",
        account="main",
        dedupe_key=dedupe_key,
        body=body,
        headers={"webhook-id": dedupe_key, "content-type": "application/json"},
        received_at=received_at,
        next_attempt_at=received_at,
        queued_at=received_at,
    )


@pytest.fixture
def make_command() -> Callable[..., ChannelCommand]:
    return command_for


@pytest.fixture
def make_message() -> Callable[..., InboxMessage]:
    return inbox_message


@pytest.fixture
async def pg_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated, emptied PostgreSQL database, with the production
    defaults (pool, no pre-ping)."""
    engine = create_engine(postgres_url)
    try:
        yield engine
    finally:
        await engine.dispose()
