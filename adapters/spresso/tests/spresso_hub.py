"""The hub on its fakes (the conformance kit's rig) with the real Spresso plugin, talking
HTTP to the simulator: the integration tests' stories, step by step, no sleeping."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from orderhub.application.services import seller_commands
from orderhub.application.services.common import CommandReceipt
from orderhub.domain.model import Order
from orderhub.domain.values import LineQuantity
from orderhub.testing.conformance import HubRig

sys.path.insert(0, str(Path(__file__).parent / "conformance"))
from spresso_conformance_driver import SpressoDriver

__all__ = ["SpressoDriver", "Story"]


class Story:
    """One hub, one Spresso account, one order at a time."""

    def __init__(self, driver: SpressoDriver) -> None:
        self.driver = driver
        self.rig = HubRig(driver)

    async def aclose(self) -> None:
        await self.rig.aclose()

    async def place(self, spec: dict[str, Any] | None = None) -> str:
        spresso_id = await self.driver.create_order(spec)
        await self.rig.settle(spresso_id)
        return spresso_id

    def order(self, spresso_id: str) -> Order:
        return self.rig.order(spresso_id)

    def lines(self, spresso_id: str, fulfilment: int) -> list[Any]:
        order = self.order(spresso_id)
        f = order.fulfilments[fulfilment]
        return [line for line in order.leaf_lines if line.fulfilment_id == f.id]

    async def ship(
        self,
        spresso_id: str,
        fulfilment: int,
        items: list[tuple[int, int]],
        tracking: str,
        *,
        carrier: str = "UPS",
        final: bool = False,
        settle: bool = True,
    ) -> CommandReceipt:
        order = self.order(spresso_id)
        lines = self.lines(spresso_id, fulfilment)
        receipt = await seller_commands.record_shipment(
            self.rig.hub,
            order_id=order.id,
            fulfilment_id=order.fulfilments[fulfilment].id,
            items=[LineQuantity(line_id=lines[i].id, quantity=q) for i, q in items],
            carrier=carrier,
            tracking_number=tracking,
            tracking_url=f"https://www.ups.com/track?tracknum={tracking}",
            final=final,
        )
        if settle:
            await self.rig.settle(spresso_id)
        return receipt

    async def deliver(self, spresso_id: str, fulfilment: int | None = None) -> CommandReceipt:
        order = self.order(spresso_id)
        receipt = await seller_commands.confirm_delivery(
            self.rig.hub,
            order_id=order.id,
            fulfilment_id=None if fulfilment is None else order.fulfilments[fulfilment].id,
        )
        await self.rig.settle(spresso_id)
        return receipt

    async def close(self, spresso_id: str, fulfilment: int) -> CommandReceipt:
        order = self.order(spresso_id)
        receipt = await seller_commands.close_fulfilment(
            self.rig.hub, order_id=order.id, fulfilment_id=order.fulfilments[fulfilment].id
        )
        await self.rig.settle(spresso_id)
        return receipt

    async def spresso_calls(self, spresso_id: str) -> list[tuple[str, str, str]]:
        """(what, fulfilment id, status or tracking number) of the hub's writes."""
        found = []
        for call in await self.driver.calls(spresso_id):
            if call.kind is None:
                continue
            _method, path, rest = call.what.split(" ", 2)
            fid = path.split("/")[3]
            found.append((call.kind.value, fid, rest.rsplit(" -> ", 1)[1]))
        return found
