"""Invoices on the real database: the documents table (bytes in the row, or a file in a
directory), the document, invoice and command committed together or not at all, the
sweeper re-queueing a lost enqueue, the checks query, and migration 0004 on stored orders."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.persistence.test_sql_migration_0002 import order_row

from orderhub.adapters.persistence import SqlUnitOfWork, SqlUnitOfWorkFactory, create_engine
from orderhub.adapters.persistence.documents import write_atomically
from orderhub.adapters.persistence.migrate import current_revision, migrate
from orderhub.adapters.persistence.tables import documents
from orderhub.application.hub import Hub, InvoicePolicy
from orderhub.application.ports import CommandState
from orderhub.application.services.common import Idempotency
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import process_message, store_message
from orderhub.application.services.invoices import check_invoices, invoice_document, record_invoice
from orderhub.application.services.operations import sweep
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig
from orderhub.domain.entities import InvoiceState
from orderhub.testing.channel import TestChannelAccount, plugin
from orderhub.testing.fakes import FixedClock, RecordingQueue, SequentialIds

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
DOC = {
    "id": "CO-1",
    "status": "Accepted",
    "lines": [{"id": "L1", "title": "Phone", "quantity": 1, "sku": "SKU-1", "price": 100}],
    "counters": {"L1": {"accepted": 1}},
}
KEY = Idempotency(key="wms:invoice-1", fingerprint="f")


class CrashingUnitOfWork(SqlUnitOfWork):
    """Dies right before COMMIT, after every row of the unit was written."""

    async def _before_commit(self) -> None:
        if self._tx.new_commands:
            raise RuntimeError("the process died")


@dataclass
class World:
    hub: Hub
    clock: FixedClock
    queue: RecordingQueue
    factory: SqlUnitOfWorkFactory

    def account(self) -> TestChannelAccount:
        account = self.hub.channels.account("testchannel", "main")
        assert isinstance(account, TestChannelAccount)
        return account


def make_world(engine: AsyncEngine, directory: Path | None = None) -> World:
    registry = ChannelRegistry(
        {"testchannel": LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        [AccountConfig(channel="testchannel", name="main", settings={"profile": "octopia"})],
    )
    clock = FixedClock()
    queue = RecordingQueue()
    factory = SqlUnitOfWorkFactory(engine, clock=clock, documents_directory=directory)
    hub = Hub(
        uow=factory,
        channels=registry,
        clock=clock,
        ids=SequentialIds(),
        queue=queue,
        invoices=InvoicePolicy(check_seconds=60.0, max_checks=2),
    )
    return World(hub=hub, clock=clock, queue=queue, factory=factory)


async def receive(world: World) -> str:
    stored = await store_message(
        world.hub,
        channel="testchannel",
        account="main",
        body=json.dumps(DOC).encode(),
        headers={"webhook-id": "wh-1"},
    )
    await process_message(world.hub, stored.message_id)
    async with world.hub.uow() as uow:
        order = await uow.orders.get_by_channel_id("testchannel", "main", "CO-1")
    assert order is not None
    world.queue.commands.clear()
    return order.id


async def upload(world: World, order_id: str, number: str = "INV-1") -> dict[str, str]:
    receipt = await record_invoice(
        world.hub,
        order_id=order_id,
        number=number,
        content=PDF,
        content_type="application/pdf",
        filename="inv.pdf",
        idempotency=KEY,
    )
    return {"command_id": receipt.command_id, **receipt.details}


async def document_rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        result = await connection.execute(sa.select(documents))
        return [dict(row) for row in result.mappings()]


async def test_the_document_is_a_row_with_its_bytes(engine: AsyncEngine) -> None:
    world = make_world(engine)
    order_id = await receive(world)
    receipt = await upload(world, order_id)

    [row] = await document_rows(engine)
    assert row["id"] == receipt["document_id"]
    assert (row["storage"], bytes(row["content"])) == ("database", PDF)  # type: ignore[arg-type]
    assert row["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert (row["size"], row["content_type"], row["filename"]) == (
        len(PDF),
        "application/pdf",
        "inv.pdf",
    )
    stored, content = await invoice_document(
        world.hub, order_id=order_id, invoice_id=receipt["invoice_id"]
    )
    assert content == PDF
    assert stored.order_id == order_id


async def test_a_directory_keeps_the_bytes_in_a_file(engine: AsyncEngine, tmp_path: Path) -> None:
    world = make_world(engine, tmp_path / "docs")
    order_id = await receive(world)
    receipt = await upload(world, order_id)

    [row] = await document_rows(engine)
    assert (row["storage"], row["content"]) == ("directory", None)
    assert (tmp_path / "docs" / receipt["document_id"]).read_bytes() == PDF
    assert [p.name for p in (tmp_path / "docs").iterdir()] == [receipt["document_id"]]
    _, content = await invoice_document(
        world.hub, order_id=order_id, invoice_id=receipt["invoice_id"]
    )
    assert content == PDF
    # the adapter gets the file's bytes too
    assert await dispatch_command(world.hub, receipt["command_id"]) is Dispatched.SUCCEEDED


def test_an_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = write_atomically(tmp_path, "doc-1", b"%PDF-1")
    write_atomically(tmp_path, "doc-1", b"%PDF-2")  # replaced whole
    assert path.read_bytes() == b"%PDF-2"
    assert [p.name for p in tmp_path.iterdir()] == ["doc-1"]
    with pytest.raises(ValueError, match="not a document id"):
        write_atomically(tmp_path, "../escape", b"x")


async def test_a_crash_before_the_commit_leaves_nothing_and_the_retry_records_it(
    engine: AsyncEngine,
) -> None:
    world = make_world(engine)
    order_id = await receive(world)
    crashing = make_world(engine)
    crashing.hub.uow = lambda: CrashingUnitOfWork(engine, clock=crashing.clock)

    with pytest.raises(RuntimeError, match="died"):
        await upload(crashing, order_id)

    assert await document_rows(engine) == []
    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        assert order.invoices == []
        assert await uow.commands.for_order(order_id) == []
        assert await uow.idempotency.get(KEY.key) is None
    receipt = await upload(world, order_id)  # the WMS's retry, same key
    assert len(await document_rows(engine)) == 1
    assert world.queue.commands == [(receipt["command_id"], 0)]


async def test_a_crash_after_the_commit_is_swept_and_the_invoice_goes(engine: AsyncEngine) -> None:
    """The document and the command committed together: the lost enqueue is found by the
    sweeper and the adapter gets the stored bytes."""
    world = make_world(engine)
    order_id = await receive(world)
    receipt = await upload(world, order_id)
    world.queue.commands.clear()  # the enqueue died with the process

    world.clock.advance(600)
    assert (await sweep(world.hub, requeue_after_seconds=120)).commands == 1
    assert world.queue.commands == [(receipt["command_id"], 0)]
    assert await dispatch_command(world.hub, receipt["command_id"]) is Dispatched.SUCCEEDED
    [call] = world.account().calls
    assert (call.kind, call.payload["document_id"]) == ("invoice", receipt["document_id"])

    async with world.hub.uow() as uow:
        command = await uow.commands.get(receipt["command_id"])
        assert command is not None
        assert command.state is CommandState.SUCCEEDED
        order = await uow.orders.get(order_id)
        assert order is not None
        [invoice] = order.invoices
        assert invoice.state is InvoiceState.SENT
        due = await uow.orders.invoice_checks_due(now=world.clock.now(), limit=10)
        assert due == []  # asked only from the next check on
        later = await uow.orders.invoice_checks_due(
            now=world.clock.now() + timedelta(seconds=60), limit=10
        )
        assert later == [order_id]

    world.clock.advance(60)
    assert (await check_invoices(world.hub)).decided == 1
    async with world.hub.uow() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        assert order.invoices[0].state is InvoiceState.ACCEPTED
        assert await uow.orders.invoice_checks_due(now=world.clock.now(), limit=10) == []
        types = [e.type for e in await uow.feed.read(after=0, limit=100)]
    assert types.index("invoice.recorded") < types.index("invoice.accepted")
    assert types[-1] == "invoice.accepted"


@pytest.mark.postgres
async def test_two_checkers_never_both_check_one_invoice(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        world = make_world(engine)
        order_id = await receive(world)
        receipt = await upload(world, order_id, number="LATE-1")
        await dispatch_command(world.hub, receipt["command_id"])
        world.clock.advance(60)
        first, second = await asyncio.gather(check_invoices(world.hub), check_invoices(world.hub))
        assert first.checked + second.checked == 1
        async with world.hub.uow() as uow:
            order = await uow.orders.get(order_id)
            assert order is not None
            assert order.invoices[0].checks == 1
    finally:
        await engine.dispose()


async def test_migration_0004_keeps_stored_orders(empty_database_url: str) -> None:
    await migrate(empty_database_url, revision="0003")
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            tables = sa.MetaData()
            await connection.run_sync(tables.reflect)
            row = {**order_row("O-1", "CO-1", 1), "needs_attention": False, "last_seq": 1}
            row["document"]["v"] = 2
            await connection.execute(tables.tables["orders"].insert(), [row])
        await migrate(empty_database_url, revision="0004")
        assert await current_revision(empty_database_url) == "0004"
        async with SqlUnitOfWorkFactory(engine)() as uow:
            order = await uow.orders.get("O-1")
            assert order is not None
            assert order.invoices == []
            assert await uow.orders.invoice_checks_due(now=order.updated_at, limit=5) == []
            assert await uow.documents.get("nope") is None
    finally:
        await engine.dispose()
