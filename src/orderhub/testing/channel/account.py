"""A test channel account: intake, the channel's rules, and calls (in memory or HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx

from orderhub.channels.spi import (
    AccountConfig,
    ChannelAccount,
    CommandKind,
    CommandOutcome,
    CommandView,
    FollowUp,
    IntakeMessage,
    InvoiceVerdict,
    PermanentChannelError,
    TransientChannelError,
    WebhookAckStatus,
    WebhookVerdict,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import (
    ChannelSnapshot,
    Fulfilment,
    Invoice,
    Order,
)
from orderhub.domain.values import (
    Reason,
)
from orderhub.testing.channel import octopia, spresso
from orderhub.testing.channel.documents import (
    InvalidTestOrder,
    TestOrderDocument,
    decode_orders,
    encode_order,
    to_snapshot,
)
from orderhub.testing.channel.http_errors import error_for
from orderhub.testing.channel.invoices import InvoiceImports
from orderhub.testing.channel.profiles import (
    NAME,
    OCTOPIA_CODE_FOR_REASON,
    Profile,
    capabilities_for,
    profile_of,
)

DEFAULT_TIMEOUT_SECONDS: Final = 5.0

# --- outbound -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedCall:
    """One call an in-memory account received (every attempt, retries included)."""

    command_id: str
    kind: str
    order: str
    payload: dict[str, Any]


@dataclass(kw_only=True, slots=True)
class _Fault:
    error: BaseException  # not an Exception: the worker dies there, nothing recorded
    times: int


@dataclass(kw_only=True)
class _MemoryChannel:
    calls: list[RecordedCall] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    intake_faults: list[_Fault] = field(default_factory=list)
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    orders: dict[str, bytes] = field(default_factory=dict)  # what refresh reads


def _play(faults: list[_Fault]) -> None:
    """Raise the first planned fault, if any, and count it down."""
    if not faults:
        return
    fault = faults[0]
    fault.times -= 1
    if fault.times <= 0:
        faults.pop(0)
    raise fault.error


class TestChannelAccount(ChannelAccount):
    """One account of the test channel."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        config: AccountConfig,
        capabilities: Capabilities,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, capabilities)
        self.profile = profile_of(config)
        self.base_url: str | None = config.settings.get("base_url")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._memory = _MemoryChannel()
        self.sales_channels = octopia.sales_channels(config)
        self.carriers = octopia.carriers(config)
        self.invoice_imports = InvoiceImports.of(config)
        self.client_secrets = spresso.client_secrets(config)

    # in-memory channel (no base_url): what unit tests look at and steer

    @property
    def calls(self) -> list[RecordedCall]:
        return self._memory.calls

    def fail_next(self, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` in-memory calls raise ``error`` (recorded all the same)."""
        self._memory.faults.append(_Fault(error=error, times=times))

    def fail_next_intake(self, error: BaseException, *, times: int = 1) -> None:
        """The next ``times`` messages mapped by ``snapshots`` raise ``error`` (as a channel
        that must be asked for the full order and does not answer)."""
        self._memory.intake_faults.append(_Fault(error=error, times=times))

    async def wait_for_calls(self, count: int = 1) -> None:
        """Until ``count`` in-memory calls have arrived (a held one counts on arrival)."""
        while len(self._memory.calls) < count:
            self._memory.arrived.clear()
            await self._memory.arrived.wait()

    def hold_calls(self) -> asyncio.Event:
        """In-memory calls wait (after being recorded) until the returned event is set."""
        self._memory.gate = asyncio.Event()
        return self._memory.gate

    def channel_shows(self, doc: TestOrderDocument | Mapping[str, Any]) -> None:
        """What the in-memory channel answers when asked for this order (``refresh``)."""
        body = encode_order(doc)
        [decoded] = decode_orders(body)
        self._memory.orders[decoded.id] = body

    # ChannelAccount

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        _play(self._memory.intake_faults)
        if self._spresso_body(body):
            return [spresso.to_snapshot(spresso.decode(body))]
        docs = decode_orders(body)
        if self.profile is Profile.OCTOPIA and self.sales_channels:
            for doc in docs:
                if doc.sales_channel not in self.sales_channels:
                    raise InvalidTestOrder(
                        f"order {doc.id}: sales channel {doc.sales_channel!r} is not set up "
                        f"for account {self.name} ({', '.join(self.sales_channels)})"
                    )
        return [to_snapshot(doc) for doc in docs]

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        if self._spresso_body(body):
            return spresso.decode(body).id
        ids = {doc.id for doc in decode_orders(body)}
        return ids.pop() if len(ids) == 1 else None

    def dedupe_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        if self._spresso_body(body):  # Spresso sends no message id: a natural key
            return spresso.dedupe_key(spresso.decode(body))
        return super().dedupe_key(body, headers)

    def capabilities_for(self, snapshot: ChannelSnapshot) -> Capabilities:
        """Octopia: the rules of the order's sales channel (``sales_channels``)."""
        sc = self.sales_channels.get(snapshot.extras.get(octopia.SALES_CHANNEL_EXTRA) or "")
        if self.profile is not Profile.OCTOPIA or sc is None:
            return self.capabilities
        return octopia.sales_channel_caps(self.capabilities, sc)

    def preflight(
        self, kind: CommandKind, payload: Mapping[str, Any], order: Order, caps: Capabilities
    ) -> None:
        if kind is CommandKind.SHIP:
            octopia.check_carrier(payload, self.carriers)
        if self.profile is Profile.OCTOPIA:
            sc = octopia.sales_channel_of(order, self.sales_channels)
            octopia.preflight(kind, payload, order, caps, sc)

    def fulfilment_done(self, order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
        if self.profile is Profile.SPRESSO:
            return spresso.close_fulfilment(order, fulfilment)
        return ()

    @property
    def webhook_ack_status(self) -> WebhookAckStatus:
        return 200 if self.profile is Profile.SPRESSO else 202

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> WebhookVerdict | None:
        if self.profile is not Profile.SPRESSO:
            return None
        return spresso.verify(headers, body, self.client_secrets)

    def _spresso_body(self, body: bytes) -> bool:
        return self.profile is Profile.SPRESSO and spresso.is_spresso(body)

    def independent(self, earlier: CommandKind, later: CommandKind) -> bool:
        """topi: the acknowledgement and the decision that follows need not wait for each
        other (an acknowledge that loses the race is moot)."""
        pair = {earlier, later}
        return (
            self.profile is Profile.TOPI
            and CommandKind.ACKNOWLEDGE in pair
            and bool(pair & {CommandKind.ACCEPT, CommandKind.REJECT})
        )

    async def refresh(self, order: Order) -> IntakeMessage | None:
        if self.base_url is None:
            _play(self._memory.intake_faults)
            body = self._memory.orders.get(order.channel_order_id)
        else:
            body = await self._fetch(order.channel_order_id)
        if body is None:
            raise PermanentChannelError(f"the test channel has no order {order.channel_order_id}")
        digest = hashlib.sha256(body).hexdigest()[:32]
        return IntakeMessage(
            dedupe_key=f"refresh:{order.channel_order_id}:{digest}",
            body=body,
            headers={"x-orderhub-source": "refresh"},
        )

    async def _fetch(self, channel_order_id: str) -> bytes | None:
        try:
            response = await self._http().get(f"/orders/{channel_order_id}")
        except httpx.HTTPError as exc:
            raise TransientChannelError(f"test channel unreachable: {exc!r}") from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise error_for(response)
        return response.content

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        if new and self.config.settings.get("acknowledge_on_receipt"):
            return [FollowUp(kind=CommandKind.ACKNOWLEDGE)]
        return ()

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        payload = self._wire_payload(command, order)
        if self.profile is Profile.SPRESSO and payload.get("closes_fulfilment"):
            # Spresso takes no cancellation: the in_transit that follows carries the short
            return CommandOutcome(data={"sent": False, "carried_by": "in_transit"})
        if self.base_url is None:
            outcome = await self._execute_in_memory(command, order, payload)
        else:
            outcome = await self._execute_http(command, order, payload)
        if command.kind is CommandKind.INVOICE:
            return self.invoice_imports.taken(command, outcome)
        if self.profile is Profile.OCTOPIA and command.kind is CommandKind.SHIP:
            # Octopia's parcel number is the tracking number: its echo of the parcel merges
            number = payload.get("tracking_number")
            if number:
                return CommandOutcome(data=outcome.data, channel_ids={"shipment": str(number)})
        return outcome

    async def invoice_status(self, order: Order, invoice: Invoice) -> InvoiceVerdict | None:
        return self.invoice_imports.status(invoice)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # internals

    def _wire_payload(self, command: CommandView, order: Order) -> dict[str, Any]:
        """The command's payload as the channel needs it: its own line ids and codes."""
        channel_ids = {line.id: line.channel_line_id for line in order.lines}
        payload = json.loads(json.dumps(command.payload, default=str))
        for key in ("items", "lines"):
            for item in payload.get(key) or ():
                if isinstance(item, dict) and "line_id" in item:
                    item["channel_line_id"] = channel_ids.get(item["line_id"])
        if self.profile is Profile.SPRESSO:
            wire = spresso.request(command.kind, payload, order)
            if wire is not None:
                payload["request"] = wire
        if self.profile is Profile.OCTOPIA and command.kind is CommandKind.CANCEL:
            try:
                payload["reason_code"] = OCTOPIA_CODE_FOR_REASON[Reason(payload["reason"])]
            except (KeyError, ValueError):
                raise PermanentChannelError(
                    f"no Octopia reason code for {payload.get('reason')!r}"
                ) from None
        return dict(payload)

    async def _execute_in_memory(
        self, command: CommandView, order: Order, payload: dict[str, Any]
    ) -> CommandOutcome:
        memory = self._memory
        memory.calls.append(
            RecordedCall(
                command_id=command.id,
                kind=command.kind.value,
                order=order.channel_order_id,
                payload=payload,
            )
        )
        memory.arrived.set()
        if memory.gate is not None:
            await memory.gate.wait()
        _play(memory.faults)
        return CommandOutcome(data={"recorded": len(memory.calls)})

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {}
            if token := self.config.settings.get("token"):
                headers["Authorization"] = f"Bearer {token}"
            self._client = httpx.AsyncClient(
                base_url=str(self.base_url),
                timeout=float(self.config.settings.get("timeout", DEFAULT_TIMEOUT_SECONDS)),
                headers=headers,
                transport=self._transport,
            )
        return self._client

    async def _execute_http(
        self, command: CommandView, order: Order, payload: dict[str, Any]
    ) -> CommandOutcome:
        body = {
            "command_id": command.id,
            "kind": command.kind.value,
            "order": order.channel_order_id,
            "payload": payload,
        }
        try:
            response = await self._http().post(
                "/calls", json=body, headers={"Idempotency-Key": command.id}
            )
        except httpx.TimeoutException as exc:
            raise TransientChannelError(f"test channel timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TransientChannelError(f"test channel unreachable: {exc!r}") from exc
        if response.is_success:
            data = response.json() if response.content else {}
            return CommandOutcome(data=data if isinstance(data, dict) else {"answer": data})
        raise error_for(response)


# --- the plugin ---------------------------------------------------------------------------


class TestChannelPlugin:
    """What the ``testchannel`` entry point points at."""

    __test__ = False  # not a pytest class

    name = NAME

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return capabilities_for(config)

    def open_account(
        self, config: AccountConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> TestChannelAccount:
        return TestChannelAccount(config, capabilities_for(config), transport=transport)


plugin: Final = TestChannelPlugin()
