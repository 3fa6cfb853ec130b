"""The Spresso channel plugin: webhooks in, fulfilment calls out.

Account settings (``[[channels.accounts]] settings``; see ``docs/channels/spresso.md``):

| key | meaning | default |
|---|---|---|
| ``base_url`` | Spresso's API, per environment (no public default) | required |
| ``client_id``, ``client_secret`` | OAuth2 client credentials; the secret also signs webhooks | — |
| ``token_url`` | token endpoint | ``{base_url}/identity/v1/public/token`` |
| ``audience``, ``scope`` | what the token is asked for | ``https://spresso-api``, none |
| ``access_token`` | a static bearer token instead of client credentials | — |
| ``client_secrets`` | webhook secrets during a rotation | ``[client_secret]`` |
| ``carriers`` | WMS carrier code -> Spresso carrier code | Spresso's own codes only |
| ``progress`` | also send ``received_by_fulfiller`` and ``preparing_items`` (best effort) | false |
| ``registration`` | ``rest``, ``manual`` or ``package.module:factory`` | ``rest`` |
| ``timeout_seconds`` | HTTP timeout per call | 10 |
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import httpx
import structlog

from orderhub.channels.health import reporter
from orderhub.channels.signatures import verify_body_signature
from orderhub.channels.spi import (
    WEBHOOK_TOPIC_HEADER,
    AccountConfig,
    AccountServices,
    ChannelAccount,
    ChannelConfigurationError,
    CheckItem,
    CheckReport,
    CheckStatus,
    CommandKind,
    CommandOutcome,
    CommandRefused,
    CommandView,
    FollowUp,
    PermanentChannelError,
    SetupReport,
    TransientChannelError,
    WebhookVerdict,
)
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import ChannelSnapshot, Fulfilment, Order
from orderhub.domain.values import FulfilmentStatus
from orderhub_spresso import mapping, wire
from orderhub_spresso.client import (
    ClientCredentials,
    SpressoAuthError,
    SpressoClient,
    SpressoError,
    SpressoRejectedError,
    SpressoTransientError,
    StaticToken,
    TokenProvider,
)
from orderhub_spresso.registration import Registrar, registrar

log = structlog.get_logger("orderhub.spresso")
T = TypeVar("T")

NAME: Final = "spresso"
PROGRESS: Final = "progress"  # the payload key of a best-effort progress command

CAPABILITIES: Final = Capabilities(
    acceptance=Scope.NONE,
    rejection=Scope.NONE,
    shipment=Scope.LINE,
    partial_shipment=True,
    serial_numbers=False,
    delivery_confirmation=DeliveryConfirmation.SELLER,
    seller_cancellation=Scope.NONE,
    cancellation_requests=False,
    release_on_accept=True,
    multiple_fulfilments=True,
    short_ship=True,
    # order_cancelled after in_transit: recorded, nothing undone, a person looks (issue 9)
    attention_on_late_cancellation=True,
    intake=frozenset({"webhook"}),
    refusals={
        "accept": "Spresso orders arrive ready to ship (paid, past the grace period): "
        "there is nothing to accept",
        "reject": "Spresso has no rejection: ship what you can and close the fulfilment "
        "short, or cancel the order in Spresso's admin console (Foxtrot)",
        "cancel": "Spresso takes no cancellation by API: cancel the order in Spresso's "
        "admin console (Foxtrot); to ship less, close the fulfilment short",
    },
)


class SpressoAccount(ChannelAccount):
    def __init__(self, config: AccountConfig, client: SpressoClient | None = None) -> None:
        super().__init__(config, CAPABILITIES)
        settings = config.settings
        self.carriers: Mapping[str, str] = {
            str(k): str(v) for k, v in dict(settings.get("carriers") or {}).items()
        }
        self.progress = bool(settings.get("progress", False))
        self.secrets = _secrets(settings)
        self.registrar: Registrar = registrar(settings)
        self.client = client or _client(settings)

    def bind(self, services: AccountServices) -> None:
        super().bind(services)
        tokens = self.client.tokens
        if isinstance(tokens, ClientCredentials):  # a static token has no fetch to note
            tokens.report = reporter(services.health, self.channel, self.name, "token")

    # --- the webhook door -----------------------------------------------------------------

    @property
    def webhook_ack_status(self) -> Literal[200]:
        return 200  # [doc] only 200 is named as the acknowledgement

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> WebhookVerdict | None:
        wanted = wire.SIGNATURE_HEADER.lower()
        presented = next((v for k, v in headers.items() if k.lower() == wanted), None)
        return verify_body_signature(presented, body, self.secrets, scheme=wire.SIGNATURE_SCHEME)

    def dedupe_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        try:
            return wire.dedupe_key(wire.decode_webhook(body, _topic(headers)))
        except wire.WireError:
            return None  # the hub hashes the body; mapping will fail it, visibly

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        return wire.order_id_of(body)

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        return [mapping.to_snapshot(wire.decode_webhook(body, _topic(headers)))]

    # --- commands -------------------------------------------------------------------------

    def independent(self, earlier: CommandKind, later: CommandKind) -> bool:
        """Progress updates (best effort) never hold shipping up."""
        return earlier is CommandKind.ACKNOWLEDGE

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        if not (new and self.progress) or order.status.is_terminal:
            return ()
        fulfilments = [
            f.channel_fulfilment_id for f in order.fulfilments if f.channel_fulfilment_id
        ]
        payload = {PROGRESS: wire.RECEIVED_BY_FULFILLER, "fulfillments": fulfilments}
        return [FollowUp(kind=CommandKind.ACKNOWLEDGE, payload=payload)]

    def fulfilment_done(self, order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
        return mapping.close_follow_up(order, fulfilment)

    def preflight(
        self, kind: CommandKind, payload: Mapping[str, Any], order: Order, caps: Capabilities
    ) -> None:
        if kind is not CommandKind.SHIP:
            return
        try:
            mapping.carrier_code(payload.get("carrier"), self.carriers)
        except mapping.MappingError as exc:
            raise CommandRefused(str(exc), rule="unknown-carrier", status=422) from exc
        if not payload.get("tracking_number"):
            raise CommandRefused(
                "Spresso needs a tracking number for each shipment",
                rule="tracking-number-required",
                status=422,
            )

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        try:
            match command.kind:
                case CommandKind.SHIP:
                    return await self._ship(command, order)
                case CommandKind.CLOSE_FULFILMENT:
                    return await self._in_transit(command)
                case CommandKind.DELIVER:
                    return await self._deliver(command, order)
                case CommandKind.ACKNOWLEDGE:
                    return await self._progress(command.payload, command.id, _moved_on(order))
                case CommandKind.CANCEL if command.payload.get("closes_fulfilment"):
                    # the in_transit that follows carries the short close (lower quantities)
                    return CommandOutcome(data={"sent": False, "carried_by": wire.IN_TRANSIT})
        except mapping.MappingError as exc:
            raise PermanentChannelError(f"spresso: {exc}") from exc
        raise PermanentChannelError(  # the domain refuses these first; a safety net
            CAPABILITIES.explain(command.kind.value, f"Spresso cannot {command.kind.value}")
        )

    async def _ship(self, command: CommandView, order: Order) -> CommandOutcome:
        fulfillment_id, request = mapping.shipment_request(command.payload, order, self.carriers)
        if self.progress and _first_parcel(order, command.payload.get("shipment_id")):
            # the hub has no "picking started": the first parcel is the nearest sign of it
            await self._progress(
                {PROGRESS: wire.PREPARING_ITEMS, "fulfillments": [fulfillment_id]},
                f"{command.id}:progress",
            )
        await self._call(
            self.client.put_shipment(fulfillment_id, request, idempotency_key=command.id)
        )
        return CommandOutcome(
            data={"fulfillment": fulfillment_id, "tracking_number": request.tracking_number},
            channel_ids={"shipment": request.tracking_number},
        )

    async def _in_transit(self, command: CommandView) -> CommandOutcome:
        wanted = mapping.in_transit_request(command.payload)
        response = await self._call(
            self.client.update_fulfillment(
                wanted.fulfillment_id, wanted.update, idempotency_key=command.id
            )
        )
        variants = {
            v.variant: v.fulfilled_quantity for v in wanted.update.fulfillment_variants or ()
        }
        return CommandOutcome(
            data={"fulfillment": wanted.fulfillment_id, "fulfilled": variants},
            snapshot=_answer(response),
        )

    async def _deliver(self, command: CommandView, order: Order) -> CommandOutcome:
        snapshot = None
        done = mapping.delivered_fulfilments(command.payload, order)
        for number, fulfillment_id in enumerate(done):
            update = wire.FulfillmentUpdate(status=wire.DELIVERED)
            key = command.id if number == 0 else f"{command.id}:{number}"
            response = await self._call(
                self.client.update_fulfillment(fulfillment_id, update, idempotency_key=key)
            )
            snapshot = _answer(response) or snapshot
        return CommandOutcome(data={"fulfillments": done}, snapshot=snapshot)

    async def _progress(
        self, payload: Mapping[str, Any], key: str, skip: frozenset[str] = frozenset()
    ) -> CommandOutcome:
        """Best effort: a refusal or an outage is noted, never retried, never blocking;
        nothing for a fulfilment in ``skip`` (the hub has it shipped or ended: a late
        progress update would step it back)."""
        status = str(payload.get(PROGRESS))
        sent, failed, skipped = [], {}, []
        for number, fulfillment_id in enumerate(payload.get("fulfillments") or ()):
            if str(fulfillment_id) in skip:
                skipped.append(fulfillment_id)
                continue
            update = wire.FulfillmentUpdate(status=status)
            try:
                await self.client.update_fulfillment(
                    str(fulfillment_id), update, idempotency_key=f"{key}:{number}"
                )
                sent.append(fulfillment_id)
            except SpressoError as exc:
                failed[str(fulfillment_id)] = exc.message
                log.warning("spresso.progress_not_sent", status=status, error=exc.message)
        data = {"status": status, "sent": sent, "not_sent": failed}
        if skipped:
            data["moved_on"] = skipped
        return CommandOutcome(data=data)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """Spresso's errors as the SPI's, with Spresso's own text kept."""
        try:
            return await awaitable
        except SpressoTransientError as exc:
            raise TransientChannelError(
                f"spresso: {exc.message}", status=exc.status, retry_after=exc.retry_after
            ) from exc
        except SpressoAuthError as exc:
            raise ChannelConfigurationError(
                f"spresso refused the credentials: {exc.message}", status=exc.status
            ) from exc
        except SpressoRejectedError as exc:
            raise PermanentChannelError(f"spresso: {exc.message}", status=exc.status) from exc

    # --- provisioning ---------------------------------------------------------------------

    async def setup(self, public_url: str) -> SetupReport:
        # one URL per event: its path names the event when the body does not
        urls = {event: self.webhook_url(public_url, event) for event in wire.EVENTS}
        steps = await self.registrar.register(self.client, urls)
        return SetupReport(steps=tuple(steps))

    async def check(self) -> CheckReport:
        items: list[CheckItem] = []
        if not self.secrets:
            items.append(
                CheckItem(
                    what="webhook secret",
                    status=CheckStatus.MISCONFIGURED,
                    detail="no client_secret/client_secrets: every webhook would be refused",
                )
            )
        items.extend(await self.registrar.check(self.client, {}))
        return CheckReport(items=tuple(items))

    async def aclose(self) -> None:
        await self.client.aclose()


def _topic(headers: Mapping[str, str]) -> str | None:
    """The event the webhook's URL names (``/webhooks/spresso/{account}/{event}``)."""
    return headers.get(WEBHOOK_TOPIC_HEADER)


def _moved_on(order: Order) -> frozenset[str]:
    """Spresso's ids of the fulfilments the hub no longer has open."""
    return frozenset(
        f.channel_fulfilment_id
        for f in order.fulfilments
        if f.channel_fulfilment_id and f.status is not FulfilmentStatus.OPEN
    )


def _first_parcel(order: Order, shipment_id: str | None) -> bool:
    """The command's parcel is the first of its fulfilment (shipments are kept in order)."""
    shipment = next((s for s in order.shipments if s.id == shipment_id), None)
    if shipment is None:
        return False
    first = next(s for s in order.shipments if s.fulfilment_id == shipment.fulfilment_id)
    return first.id == shipment.id


def _answer(response: httpx.Response) -> ChannelSnapshot | None:
    """[inferred] Spresso answers with the Order (its Data Model is "used in the Order
    Fulfillment API"): the hub then records what Spresso shows. Anything else: nothing."""
    order = wire.decode_order(response.content) if response.content else None
    if order is None:
        return None
    try:
        return mapping.to_snapshot(wire.Webhook(event=wire.ORDER_FULFILLABLE, order=order))
    except mapping.MappingError:
        return None


def _secrets(settings: Mapping[str, Any]) -> tuple[str, ...]:
    raw = settings.get("client_secrets") or settings.get("client_secret") or ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(secret) for secret in raw if secret)


def _client(settings: Mapping[str, Any]) -> SpressoClient:
    base_url = settings.get("base_url")
    if not base_url:
        raise ValueError("spresso account needs base_url (Spresso gives it, per environment)")
    base_url = str(base_url).rstrip("/")
    tokens: TokenProvider
    if settings.get("access_token"):
        tokens = StaticToken(str(settings["access_token"]))
    elif settings.get("client_id") and settings.get("client_secret"):
        tokens = ClientCredentials(
            token_url=str(settings.get("token_url") or f"{base_url}{wire.TOKEN_PATH}"),
            client_id=str(settings["client_id"]),
            client_secret=str(settings["client_secret"]),
            audience=str(settings.get("audience") or wire.DEFAULT_AUDIENCE),
            scope=settings.get("scope"),
        )
    else:
        raise ValueError("spresso account needs client_id and client_secret, or access_token")
    timeout = float(settings.get("timeout_seconds", 10))
    return SpressoClient(base_url=base_url, tokens=tokens, timeout=timeout)


class SpressoPlugin:
    name = NAME

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return CAPABILITIES

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return SpressoAccount(config)


plugin = SpressoPlugin()
