"""The hub on the fakes (the conformance kit's rig) with the real Octopia account on the
simulator, and the polling job run by hand: no worker, no scheduler, no sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from octopia_helpers import account_config

from orderhub.application.services import intake
from orderhub.application.services.cursors import UnitOfWorkCursorStore
from orderhub.channels.spi import AccountConfig, ChannelPlugin, IntakeMessage, JobContext
from orderhub.domain.model import Order
from orderhub.testing.conformance import Delivery, HubRig
from orderhub.testing.fakes import FixedClock
from orderhub_octopia.plugin import OctopiaAccount, plugin


class _Driver:
    """What the rig needs of a driver: the plugin and the account (polling is by hand)."""

    def __init__(self, config: AccountConfig) -> None:
        self.plugin: ChannelPlugin = plugin
        self._config = config

    def account_config(self) -> AccountConfig:
        return self._config

    async def messages(self, channel_order_id: str) -> Sequence[Delivery]:
        return ()


class OctopiaRig(HubRig):
    def __init__(self, url: str, **settings: Any) -> None:
        super().__init__(_Driver(account_config(url, **settings)))  # type: ignore[arg-type]
        # the poll's clock: the simulator stamps orders with the time of day
        self.poll_clock = FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
        self.cursors = UnitOfWorkCursorStore(self.uow)
        self.stored: list[IntakeMessage] = []
        # the adapter's clock (token lifetime, pauses) is the hub's: moved by hand
        self.octopia.client.tokens.clock = lambda: self.clock.now().timestamp()

    @property
    def octopia(self) -> OctopiaAccount:
        account = self.account
        assert isinstance(account, OctopiaAccount)
        return account

    async def _submit(self, message: IntakeMessage) -> bool:
        stored = await intake.store_message(
            self.hub,
            channel=self.channel,
            account=self.account_name,
            body=message.body,
            headers=dict(message.headers),
            source="poll",
            key=message.dedupe_key,
        )
        if not stored.duplicate:
            self.stored.append(message)
        return not stored.duplicate

    def context(self) -> JobContext:
        return JobContext(
            account=self.account.config,
            cursors=self.cursors,
            clock=self.poll_clock,
            submit=self._submit,
        )

    async def poll(self) -> int:
        """One run of the polling job, then the inbox processed; new messages stored."""
        before = len(self.stored)
        await self.octopia.poller.run(self.context())
        await self.process_inbox()
        return len(self.stored) - before

    async def cursor(self) -> str | None:
        return await self.cursors.get("octopia", self.account_name, "orders")

    async def polled(self, channel_order_id: str) -> Order:
        await self.poll()
        return self.order(channel_order_id)
