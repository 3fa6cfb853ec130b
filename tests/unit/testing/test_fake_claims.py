"""The fake units of work claim as the SQL ones do (tests/integration/persistence/
test_sql_inbox_claim.py and test_sql_command_claim.py): the unit tests of the services
run on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderhub.application.ports import (
    ChannelCommand,
    CommandKind,
    CommandState,
    InboxMessage,
    InboxState,
)
from orderhub.testing.fakes import FakeUnitOfWorkFactory

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
LEASE = timedelta(seconds=30)
CAP = 3
CLAIMABLE = {"claimable", "an earlier one of another account", "an earlier one processed"}


def _message(key: str, order_key: str | None = "CO-1", **changes: object) -> InboxMessage:
    message = InboxMessage(
        id=f"msg-{key}",
        channel="testchannel",
        account="main",
        dedupe_key=key,
        body=b"{}",
        headers={},
        received_at=T0,
        order_key=order_key,
        next_attempt_at=T0,
    )
    for name, value in changes.items():
        setattr(message, name, value)
    return message


def _command(seq: int, **changes: object) -> ChannelCommand:
    command = ChannelCommand(
        id=f"cmd-{seq}",
        order_id="order-1",
        channel="testchannel",
        account="main",
        kind=CommandKind.ACCEPT,
        payload={},
        created_at=T0,
        seq=seq,
        next_attempt_at=T0,
    )
    for name, value in changes.items():
        setattr(command, name, value)
    return command


async def _claim_message(factory: FakeUnitOfWorkFactory, message_id: str) -> InboxMessage | None:
    async with factory() as uow:
        claimed = await uow.inbox.claim(
            message_id, now=T0, lease_until=T0 + LEASE, max_attempts=CAP
        )
        await uow.commit()
    return claimed


@pytest.mark.parametrize(
    ("why", "earlier", "changes"),
    [
        ("claimable", None, {}),
        ("not due", None, {"next_attempt_at": T0 + timedelta(seconds=1)}),
        ("leased", None, {"lease_until": T0 + timedelta(seconds=1)}),
        ("at the cap", None, {"attempts": CAP}),
        ("processed", None, {"state": InboxState.PROCESSED}),
        ("an earlier one of its order", {}, {}),
        ("an earlier one of another account", {"account": "other"}, {}),
        ("an earlier one processed", {"state": InboxState.PROCESSED}, {}),
    ],
)
async def test_the_fake_inbox_claims_as_the_sql_one(
    why: str, earlier: dict[str, object] | None, changes: dict[str, object]
) -> None:
    factory = FakeUnitOfWorkFactory()
    async with factory() as uow:
        if earlier is not None:
            assert await uow.inbox.add(_message("m-0", **earlier))
        assert await uow.inbox.add(_message("m-1", **changes))
        await uow.commit()
    claimable = why in (
        "claimable",
        "an earlier one of another account",
        "an earlier one processed",
    )

    claimed = await _claim_message(factory, "msg-m-1")
    stored = factory.db.inbox["msg-m-1"]
    if claimable:
        assert claimed is not None
        assert (stored.attempts, stored.fence, stored.lease_until) == (1, 1, T0 + LEASE)
        assert await _claim_message(factory, "msg-m-1") is None  # leased now
        async with factory() as uow:
            assert not await uow.inbox.finish("msg-m-1", fence=0, at=T0)
            assert await uow.inbox.finish("msg-m-1", fence=1, at=T0)
            await uow.commit()
        assert factory.db.inbox["msg-m-1"].state is InboxState.PROCESSED
    else:
        assert claimed is None
        assert stored.fence == 0


@pytest.mark.parametrize(
    ("earlier", "claimable"),
    [
        (None, True),
        (CommandState.SUCCEEDED, True),
        (CommandState.ABANDONED, True),
        (CommandState.PENDING, False),
        (CommandState.FAILED, False),
    ],
)
async def test_the_fake_command_claim_waits_for_every_earlier_command(
    earlier: CommandState | None, claimable: bool
) -> None:
    factory = FakeUnitOfWorkFactory()
    for command in [_command(2, held_by="cmd-1")] + (
        [] if earlier is None else [_command(1, state=earlier)]
    ):
        factory.db.commands[command.id] = command
    async with factory() as uow:
        claimed = await uow.commands.claim(
            "cmd-2", now=T0, lease_until=T0 + LEASE, max_attempts=CAP
        )
        await uow.commit()
    stored = factory.db.commands["cmd-2"]
    if claimable:
        assert claimed is not None
        assert (stored.fence, stored.held_by, stored.lease_until) == (1, None, T0 + LEASE)
    else:
        assert claimed is None
        assert (stored.fence, stored.held_by) == (0, "cmd-1")
