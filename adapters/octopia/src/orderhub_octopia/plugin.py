"""The Octopia (Cdiscount) channel plugin: polling intake, per-sales-channel capabilities,
pre-flight refusals and commands (approval, shipments, cancellations, decisions on a
customer's cancellation request, invoices). Settings: ``docs/channels/octopia.md``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from orderhub.channels.health import reporter
from orderhub.channels.spi import (
    AccountConfig,
    AccountServices,
    ChannelAccount,
    ChannelConfigurationError,
    ChannelError,
    CheckItem,
    CheckReport,
    CheckStatus,
    CommandKind,
    CommandOutcome,
    CommandView,
    IntakeMessage,
    InvoiceVerdict,
    PermanentChannelError,
    ScheduledJob,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import ChannelSnapshot, Invoice, Order
from orderhub_octopia import wire
from orderhub_octopia.auth import Credentials
from orderhub_octopia.client import OctopiaClient, OctopiaRejected
from orderhub_octopia.commands import Commands
from orderhub_octopia.mapping import SALES_CHANNEL_EXTRA, InvalidOctopiaOrder, to_snapshot
from orderhub_octopia.polling import REFRESH_SOURCE, Poller, Sleep, message_for
from orderhub_octopia.rules import CAPABILITIES, carrier_key, preflight, sales_channel_caps
from orderhub_octopia.settings import NAME, Settings, parse

log = structlog.get_logger("orderhub.octopia")


def make_client(settings: Settings, **kw: Any) -> OctopiaClient:
    return OctopiaClient(
        seller_id=settings.seller_id,
        credentials=Credentials(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            token_url=settings.token_url,
        ),
        base_url=settings.base_url,
        options=settings.wire,
        timeout=settings.timeout_seconds,
        tokens_per_hour=settings.token_requests_per_hour,
        **kw,
    )


class OctopiaAccount(ChannelAccount):
    def __init__(
        self,
        config: AccountConfig,
        *,
        client: OctopiaClient | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, CAPABILITIES)
        self.settings = parse(config.name, config.settings)
        self.client = client or make_client(self.settings, clock=clock)
        self.poller = Poller(config.name, self.client, self.settings, sleep)
        self.commands = Commands(self.client, self.settings, self._read, self.carrier_label)
        self._clock = clock
        self._carriers: dict[str, str] | None = None  # carrier key -> label to send
        self._carriers_at = 0.0
        self._carrier_task: asyncio.Task[None] | None = None

    def bind(self, services: AccountServices) -> None:
        super().bind(services)
        self.client.tokens.share(services.budget)  # one token quota for all the hub's processes
        self.client.tokens.report_to(reporter(services.health, self.channel, self.name, "token"))

    async def warm(self) -> None:
        """The carrier list, for :meth:`preflight` to refuse an unknown carrier at once."""
        if self.settings.carriers is None and self._carriers is None:
            await self.load_carriers()

    # --- intake -----------------------------------------------------------------------

    def _decode(self, body: bytes) -> wire.Order:
        try:
            return wire.decode_order(body, details_key=self.settings.wire.cancellation_details_key)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidOctopiaOrder(f"not an Octopia order: {exc}") from exc

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        order = self._decode(body)
        if order.status == wire.PROCESSING:
            return ()  # not the seller's yet: it comes back when it leaves Processing
        sc_id = order.sales_channel.id if order.sales_channel else None
        if self.settings.sales_channels and self.settings.sales_channel(sc_id) is None:
            raise InvalidOctopiaOrder(
                f"Octopia order {order.order_id}: sales channel {sc_id!r} is not set up for "
                f"account {self.name} ({', '.join(self.settings.sales_channels)}): add it to "
                "sales_channels, then retry this message"
            )
        return [to_snapshot(order)]

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        key = message_for(body, "").dedupe_key
        return key.split(":")[1] if key.startswith("order:") else None

    async def refresh(self, order: Order) -> IntakeMessage | None:
        """``GET /orders/{orderId}``: the order as Octopia shows it now."""
        return message_for(await self.client.get_order(order.channel_order_id), REFRESH_SOURCE)

    async def _read(self, order_id: str) -> tuple[wire.Order, ChannelSnapshot | None]:
        order = self._decode(await self.client.get_order(order_id))
        snapshot = None if order.status == wire.PROCESSING else to_snapshot(order)
        return order, snapshot

    # --- rules ------------------------------------------------------------------------

    def capabilities_for(self, snapshot: ChannelSnapshot) -> Capabilities:
        sc = self.settings.sales_channel(snapshot.extras.get(SALES_CHANNEL_EXTRA))
        return self.capabilities if sc is None else sales_channel_caps(sc)

    def preflight(
        self, kind: CommandKind, payload: Mapping[str, Any], order: Order, caps: Capabilities
    ) -> None:
        sc_id = order.extras.get(SALES_CHANNEL_EXTRA)
        sc = self.settings.sales_channel(sc_id if isinstance(sc_id, str) else None)
        preflight(
            kind,
            payload,
            order,
            sc,
            carriers=self.known_carriers() if kind is CommandKind.SHIP else None,
            accept_code=self.settings.accept_request_reason,
        )

    # --- carriers (GET /carriers, cached, refreshed daily) -----------------------------

    def known_carriers(self) -> Mapping[str, str] | None:
        """Carrier key -> label; None while the list was never read (the command is then
        checked when it is sent). A stale list is refreshed in the background."""
        if self.settings.carriers is not None:
            return {carrier_key(c): c.strip() for c in self.settings.carriers}
        stale = self._clock() - self._carriers_at >= self.settings.carriers_refresh_seconds
        if (self._carriers is None or stale) and self._carrier_task is None:
            # no loop (a synchronous caller): the carrier is checked when sent
            with contextlib.suppress(RuntimeError):
                self._carrier_task = asyncio.get_running_loop().create_task(self._reload())
        return self._carriers

    async def _reload(self) -> None:
        try:
            await self.load_carriers()
        except ChannelError as exc:
            log.warning("octopia.carriers_unavailable", account=self.name, error=str(exc))
        finally:
            self._carrier_task = None

    async def load_carriers(self) -> Mapping[str, str]:
        carriers = await self.client.carriers()
        table: dict[str, str] = {}
        codes: dict[str, set[str]] = {}
        for carrier in carriers:
            label = carrier.label  # sent as Octopia lists it (one has a trailing space)
            table[carrier_key(label)] = label
            codes.setdefault(carrier_key(carrier.code), set()).add(label)
        for code, labels in codes.items():  # a code shared by several carriers is no name
            if len(labels) == 1 and code not in table:
                table[code] = next(iter(labels))
        self._carriers, self._carriers_at = table, self._clock()
        return table

    async def carrier_label(self, carrier: str) -> str:
        table = self.known_carriers()
        if table is None or (
            self._clock() - self._carriers_at >= (self.settings.carriers_refresh_seconds)
            and self.settings.carriers is None
        ):
            table = await self.load_carriers()
        label = table.get(carrier_key(carrier))
        if label is None:
            raise PermanentChannelError(
                f"Octopia knows no carrier {carrier!r}: use one of "
                f"{', '.join(sorted(set(table.values())))}"
            )
        return label

    # --- commands ---------------------------------------------------------------------

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        return await self.commands.execute(command, order)

    async def invoice_status(self, order: Order, invoice: Invoice) -> InvoiceVerdict | None:
        if not invoice.channel_invoice_id:
            return None
        report = await self.client.invoice_import(invoice.channel_invoice_id)
        return self.commands.verdict(order, invoice.channel_invoice_id, report)

    # --- jobs and checks --------------------------------------------------------------

    def jobs(self) -> Sequence[ScheduledJob]:
        jobs = [
            ScheduledJob(
                name="octopia-poll",
                interval_seconds=self.settings.poll_interval_seconds,
                run=self.poller.run,
            )
        ]
        if self.settings.carriers is None:
            jobs.append(
                ScheduledJob(
                    name="octopia-carriers",
                    interval_seconds=self.settings.carriers_refresh_seconds,
                    run=lambda _context: self._reload(),
                )
            )
        return jobs

    async def check(self) -> CheckReport:
        items = [
            await _probe("credentials", self.client.tokens.token()),
            await _probe("orders", self.client.list_orders({"pageIndex": "1", "pageSize": "1"})),
        ]
        if self.settings.carriers is None:
            items.append(await _probe("carriers", self.load_carriers()))
        return CheckReport(items=tuple(items))

    async def aclose(self) -> None:
        if self._carrier_task is not None:
            self._carrier_task.cancel()
        await self.client.aclose()


async def _probe(what: str, call: Awaitable[Any]) -> CheckItem:
    try:
        await call
    except ChannelConfigurationError as exc:
        return CheckItem(what=what, status=CheckStatus.MISCONFIGURED, detail=exc.message)
    except ChannelError as exc:
        return CheckItem(what=what, status=CheckStatus.FAILED, detail=exc.message)
    return CheckItem(what=what, status=CheckStatus.OK)


class OctopiaPlugin:
    name = NAME

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return CAPABILITIES

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return OctopiaAccount(config)


plugin = OctopiaPlugin()
__all__ = ["OctopiaAccount", "OctopiaPlugin", "OctopiaRejected", "plugin"]
