"""The topi channel plugin: capabilities, intake, commands and reconciliation.

Account settings (``[[channels.accounts]] settings``):

| key | meaning | default |
|---|---|---|
| ``base_url`` | topi Seller API | production URL |
| ``client_id``, ``client_secret`` | OAuth2 client credentials | — |
| ``token_url`` | OAuth2 token endpoint | topi's identity URL |
| ``access_token`` | a static bearer token instead (sandbox) | — |
| ``reference_source`` | reference source of the SKU | the order's ``seller_info``, else first |
| ``reconcile_interval_seconds`` | how often the reconciliation walk runs | 300 |
| ``reconcile_lookback_hours`` | where the first walk starts | 24 |
| ``reconcile_overlap_minutes`` | each walk starts this long before the last one ended | 10 |
| ``timeout_seconds`` | HTTP timeout per call | 10 |
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Final, TypeVar

import structlog

from orderhub.application.ports import CommandKind
from orderhub.channels.health import reporter
from orderhub.channels.spi import (
    AccountConfig,
    AccountServices,
    ChannelAccount,
    ChannelConfigurationError,
    CommandOutcome,
    CommandView,
    FollowUp,
    IntakeMessage,
    JobContext,
    PermanentChannelError,
    ScheduledJob,
    TransientChannelError,
)
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import ChannelSnapshot, Order
from orderhub_topi import wire
from orderhub_topi.client import (
    DEFAULT_TOKEN_URL,
    PRODUCTION_BASE_URL,
    ClientCredentials,
    TopiAuthError,
    TopiClient,
    TopiError,
    TopiRejectedError,
    TopiTransientError,
)
from orderhub_topi.mapping import already_shipped, shipment_request, to_snapshot

log = structlog.get_logger("orderhub.topi")

T = TypeVar("T")

NAME: Final = "topi"
RECONCILE_CURSOR: Final = "reconcile"
SOURCE_HEADER: Final = "x-orderhub-source"
REFRESH_SOURCE: Final = "topi-refresh"
READ_AT_HEADER: Final = "x-orderhub-read-at"
"""When a refresh read topi (a stored refresh is mapped later): its snapshot's stamp."""


def _now() -> dt.datetime:
    """The time of a read of topi, taken just before the request: topi sends no update
    stamp, so a snapshot is as new as the read that produced it."""
    return dt.datetime.now(dt.UTC)


def _read_at(headers: Mapping[str, str]) -> dt.datetime | None:
    """A stored refresh's read time (None for one stored before it was kept)."""
    raw = headers.get(READ_AT_HEADER)
    try:
        read_at = dt.datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None
    return read_at if read_at is not None and read_at.tzinfo is not None else None


CAPABILITIES: Final = Capabilities(
    acceptance=Scope.ORDER,
    rejection=Scope.ORDER,
    shipment=Scope.LINE,
    serial_numbers=True,
    delivery_confirmation=DeliveryConfirmation.NONE,
    seller_cancellation=Scope.NONE,
    cancellation_requests=False,
    release_on_accept=True,
    intake=frozenset({"webhook", "reconciliation"}),
    refusals={
        "cancel": (
            "topi has no seller cancellation: reject the order while it is awaiting "
            "acceptance (POST /reject); after shipment the customer returns it through topi"
        ),
        "reject": "topi takes a rejection only before the order is confirmed (accepted)",
        "deliver": "topi has no delivery step: a completed order is final",
    },
)


class TopiAccount(ChannelAccount):
    def __init__(self, config: AccountConfig, client: TopiClient | None = None) -> None:
        super().__init__(config, CAPABILITIES)
        settings = config.settings
        self.reference_source: str | None = settings.get("reference_source")
        self.client = client or _client(settings)

    def bind(self, services: AccountServices) -> None:
        super().bind(services)
        self.client.token_report = reporter(services.health, self.channel, self.name, "token")

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        """The webhook is thin: fetch the whole order and map it. A refresh message already
        holds the whole order, as topi showed it when the hub asked."""
        if headers.get(SOURCE_HEADER) == REFRESH_SOURCE:
            full = wire.decode_full_order(body)
            read_at = _read_at(headers)
        else:
            webhook = wire.decode_webhook(body)
            read_at = _now()
            full = await self._call(self.client.get_order(webhook.id))
        return [to_snapshot(full, reference_source=self.reference_source, read_at=read_at)]

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """topi's order id, read from the webhook (or refresh) body."""
        if headers.get(SOURCE_HEADER) == REFRESH_SOURCE:
            return wire.decode_full_order(body).id
        return wire.decode_webhook(body).id

    def independent(self, earlier: CommandKind, later: CommandKind) -> bool:
        """The acknowledgement and the decision need not wait for each other: an acknowledge
        that loses the race to an accept or reject is moot (see ``execute``)."""
        pair = {earlier, later}
        return CommandKind.ACKNOWLEDGE in pair and bool(
            pair & {CommandKind.ACCEPT, CommandKind.REJECT}
        )

    async def refresh(self, order: Order) -> IntakeMessage | None:
        """``GET /v1/orders/{id}``: topi's current truth about one order, for the inbox
        (a lost status webhook is healed). The dedupe key carries topi's status and a hash
        of what it showed, so the same state read twice is stored once."""
        read_at = _now()
        full = await self._call(self.client.get_order(order.channel_order_id))
        body = wire.encode(full)
        digest = hashlib.sha256(body).hexdigest()[:24]
        return IntakeMessage(
            dedupe_key=f"refresh:{full.id}:{full.status}:{digest}",
            body=body,
            headers={SOURCE_HEADER: REFRESH_SOURCE, READ_AT_HEADER: read_at.isoformat()},
        )

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        if new and order.channel_status == wire.ORDER_CREATED:
            return [FollowUp(kind=CommandKind.ACKNOWLEDGE)]
        return ()

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        topi_id = order.channel_order_id
        match command.kind:
            case CommandKind.ACKNOWLEDGE:
                result = await self._call(self.client.acknowledge(topi_id))
                return await self._reporting(topi_id, {"topi_status": result.status})
            case CommandKind.ACCEPT:
                result = await self._call(self.client.accept(topi_id))
                return await self._reporting(topi_id, {"topi_status": result.status})
            case CommandKind.REJECT:
                result = await self._call(self.client.reject(topi_id))
                return await self._reporting(topi_id, {"topi_status": result.status})
            case CommandKind.SHIP:
                return await self._ship(command, order)
            case _:
                # the domain refuses these before a command exists; kept as a safety net
                raise PermanentChannelError(
                    CAPABILITIES.explain(
                        command.kind.value, f"topi cannot carry out {command.kind.value}"
                    )
                )

    async def _reporting(self, topi_id: str, data: dict[str, Any]) -> CommandOutcome:
        """topi sends no webhook for acknowledged or confirmed: read the order back so the
        hub shows topi's status. Best effort: the call itself succeeded either way."""
        read_at = _now()
        try:
            full = await self._call(self.client.get_order(topi_id))
        except (TransientChannelError, PermanentChannelError) as exc:
            log.warning("topi.read_back_failed", order=topi_id, error=str(exc))
            return CommandOutcome(data=data)
        snapshot = to_snapshot(full, reference_source=self.reference_source, read_at=read_at)
        return CommandOutcome(data=data, snapshot=snapshot)

    async def _ship(self, command: CommandView, order: Order) -> CommandOutcome:
        try:
            request = shipment_request(command, order, reference_source=self.reference_source)
        except ValueError as exc:  # no reference to ship by: no retry will fix it
            raise PermanentChannelError(str(exc)) from exc
        if command.fence > 1:  # claims ever made (attempts restart at an operator's retry)
            # The first attempt may have reached topi before its answer was lost.
            current = await self._call(self.client.get_order(order.channel_order_id))
            if already_shipped(current, request, command, order):
                return CommandOutcome(data={"topi_status": current.status, "replayed": True})
        shipment = await self._call(self.client.create_shipment(request))
        return CommandOutcome(
            data={"units": len(shipment.serial_numbers), "tracking_url": shipment.tracking_url}
        )

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Translate topi's errors into the SPI's, keeping topi's message."""
        try:
            return await awaitable
        except TopiTransientError as exc:
            raise TransientChannelError(
                str(exc), status=exc.status_code, retry_after=exc.retry_after
            ) from exc
        except TopiAuthError as exc:
            raise ChannelConfigurationError(
                f"topi refused the credentials: {exc.message}", status=exc.status_code
            ) from exc
        except TopiRejectedError as exc:
            raise PermanentChannelError(f"topi: {exc.message}", status=exc.status_code) from exc
        except TopiError as exc:  # an answer we cannot read: worth another try
            raise TransientChannelError(str(exc), status=exc.status_code) from exc

    def jobs(self) -> Sequence[ScheduledJob]:
        interval = float(self.config.settings.get("reconcile_interval_seconds", 300))
        return [ScheduledJob(name="topi-reconcile", interval_seconds=interval, run=self.reconcile)]

    async def reconcile(self, context: JobContext) -> None:
        """Walk the orders created since the cursor (less an overlap window); submit each
        order once per status, so an order whose webhook was lost still arrives and a
        recent status the hub missed is caught. The cursor is the newest (created_at, id)
        seen, persisted per account. Older orders are healed by the hub's scheduled
        refresh (:meth:`refresh`)."""
        raw = await context.cursors.get(NAME, self.name, RECONCILE_CURSOR)
        if raw:
            cursor = json.loads(raw)
            overlap = float(self.config.settings.get("reconcile_overlap_minutes", 10))
            # walk again over the last minutes: an order created just before the last walk
            # but committed by topi after it is found now
            since = dt.datetime.fromisoformat(cursor["created_at"]) - dt.timedelta(minutes=overlap)
        else:
            hours = float(self.config.settings.get("reconcile_lookback_hours", 24))
            since = context.clock.now() - dt.timedelta(hours=hours)
        submitted = 0
        newest: tuple[dt.datetime, str] | None = None
        async for summary in self.client.iter_orders(created_at_gte=since):
            # one message per order and status: a status the hub missed is submitted again,
            # an order seen unchanged is not
            new = await context.submit(
                IntakeMessage(
                    dedupe_key=f"reconcile:{summary.id}:{summary.status}",
                    body=wire.encode({"id": summary.id, "status": summary.status}),
                    headers={SOURCE_HEADER: "topi-reconciliation"},
                )
            )
            submitted += int(new)
            newest = max(
                newest or (summary.created_at, summary.id), (summary.created_at, summary.id)
            )
        if newest is not None:
            cursor = {"created_at": newest[0].isoformat(), "id": newest[1]}
            await context.cursors.set(NAME, self.name, RECONCILE_CURSOR, json.dumps(cursor))
        log.info("topi.reconciled", account=self.name, submitted=submitted)

    async def aclose(self) -> None:
        await self.client.aclose()


def _client(settings: Mapping[str, Any]) -> TopiClient:
    base_url = str(settings.get("base_url", PRODUCTION_BASE_URL))
    timeout = float(settings.get("timeout_seconds", 10))
    if settings.get("access_token"):
        return TopiClient(
            base_url=base_url, access_token=str(settings["access_token"]), timeout=timeout
        )
    if not settings.get("client_id") or not settings.get("client_secret"):
        raise ValueError("topi account needs client_id and client_secret, or access_token")
    credentials = ClientCredentials(
        client_id=str(settings["client_id"]),
        client_secret=str(settings["client_secret"]),
        token_url=str(settings.get("token_url", DEFAULT_TOKEN_URL)),
    )
    return TopiClient(base_url=base_url, credentials=credentials, timeout=timeout)


class TopiPlugin:
    name = NAME

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return CAPABILITIES

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return TopiAccount(config)


plugin = TopiPlugin()
