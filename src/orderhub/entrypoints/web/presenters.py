"""Domain objects -> response schemas, by msgspec: the schemas name the fields the API shows
and :func:`msgspec.convert` reads them off the domain's dataclasses (enums by value)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from orderhub.application.access import AccountLimit, admitted
from orderhub.application.ports import ChannelCommand, CommandState, FeedEntry, InboxMessage
from orderhub.application.services.common import CommandReceipt
from orderhub.channels.registry import ChannelRegistry
from orderhub.domain.model import Order
from orderhub.entrypoints.web.schemas import (
    AccountOut,
    ChannelCommandOut,
    ChannelList,
    ChannelOut,
    CommandReceiptOut,
    FeedEventOut,
    InboxMessageOut,
    OpsCommandOut,
    OrderDetailOut,
    OrderOut,
)

T = TypeVar("T")


def _shown(value: Any, schema: type[T]) -> T:
    return msgspec.convert(value, schema, from_attributes=True)


def receipt_out(receipt: CommandReceipt) -> CommandReceiptOut:
    return _shown(receipt, CommandReceiptOut)


class _OrderShown:
    """The order as the schemas read it: its capabilities as the table ``GET /channels``
    shows (everything else as it is)."""

    def __init__(self, order: Order) -> None:
        self._order = order

    def __getattr__(self, name: str) -> Any:
        if name == "capabilities":
            caps = self._order.capabilities
            return caps.as_dict() if caps is not None else None
        return getattr(self._order, name)


def order_out(order: Order) -> OrderOut:
    return _shown(_OrderShown(order), OrderOut)


def order_detail_out(order: Order, commands: Sequence[ChannelCommand]) -> OrderDetailOut:
    return msgspec.structs.replace(
        _shown(_OrderShown(order), OrderDetailOut),
        pending_commands=[
            _shown(c, ChannelCommandOut) for c in commands if c.state is CommandState.PENDING
        ],
        failed_commands=[
            _shown(c, ChannelCommandOut) for c in commands if c.state is CommandState.FAILED
        ],
    )


def ops_command_out(command: ChannelCommand) -> OpsCommandOut:
    return _shown(command, OpsCommandOut)


def inbox_message_out(message: InboxMessage) -> InboxMessageOut:
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    fields["body"] = message.body.decode("utf-8", errors="replace")
    return msgspec.convert(fields, InboxMessageOut)


def feed_event_out(entry: FeedEntry) -> FeedEventOut:
    return _shown(entry, FeedEventOut)


def channel_list(registry: ChannelRegistry, *, within: AccountLimit | None = None) -> ChannelList:
    """Every installed channel and account; with ``within``, only the channels it names
    or names an account of, and only those accounts."""
    accounts: dict[str, list[AccountOut]] = {}
    for account in registry.accounts():
        if not admitted(within, account.channel, account.name):
            continue
        accounts.setdefault(account.channel, []).append(
            AccountOut(name=account.name, capabilities=account.capabilities.as_dict())
        )
    return ChannelList(
        channels=[
            ChannelOut(
                name=name,
                distribution=loaded.distribution,
                version=loaded.version,
                accounts=sorted(accounts.get(name, []), key=lambda a: a.name),
            )
            for name, loaded in sorted(registry.plugins.items())
            if within is None or name in within.channels or name in accounts
        ]
    )
