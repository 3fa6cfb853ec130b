"""The test channel: a stand-in marketplace whose abilities switch per account.

Plugin name ``testchannel`` (entry point ``orderhub.testing.channel:plugin``). Each account
picks a **profile** that mimics one real channel's capabilities:

``topi``
    acceptance and rejection of the whole order (rejection only before acceptance),
    shipment per line with partial shipments and serial numbers for flagged lines, no
    delivery step, no seller cancellation, webhook intake.
``octopia``
    acceptance, rejection and shipment per line; acceptance does not release the order (the
    channel releases it: ``released``), delivery reported by the channel, seller cancellation
    with Octopia's reason codes (each allowed only in some statuses), decidable cancellation
    requests, lines fulfilled by the channel, polling intake.
``spresso``
    no acceptance or rejection (orders arrive ready), several fulfilments, shipment per
    fulfilment, short ships (``final``) cancel the rest as ``out_of_stock``, the seller
    reports delivery, no cancellation, webhook intake.

Account settings (``AccountConfig.settings``):

``profile``
    ``topi`` (default), ``octopia`` or ``spresso``.
``base_url``
    the test channel server (:mod:`orderhub.testing.channel_server`). Without it, calls are
    recorded in memory on the account (``account.calls``) for unit tests.
``token``
    optional bearer token sent to the server.
``timeout``
    seconds per call (default 5).
``acknowledge_on_receipt``
    ``true``: a new order gets an ``acknowledge`` follow-up command (mimics topi).
``capabilities``
    optional overrides of the profile's :class:`Capabilities` fields, e.g.
    ``{"shipment": "order", "short_ship": true}`` (scopes by value, booleans, ``intake`` list).

Intake document (one JSON object, or a JSON array of them, per message)::

    {
      "id": "T-1001",                      # channel order id               (required)
      "status": "created",                 # channel status, free text      (required)
      "lines": [                           #                                (required)
        {"id": "L1", "title": "Phone", "quantity": 2,     # required per line
         "sku": "SKU-1", "price": 19900,                  # unit price in minor units
         "requires_serial": false, "parent": null,        # parent: bundle line id
         "fulfilment": "F1"}                              # fulfilment id
      ],
      "fulfilments": [{"id": "F1", "fulfilled_by": "seller"}],   # or "channel"
      "counters": {"L1": {"accepted": 2, "rejected": 0, "shipped": 1, "delivered": 0}},
      "released": false,                   # the channel allows dispatch
      "cancellations": [
        {"id": "C1", "initiator": "customer", "reason": "customer_request",
         "state": "requested",             # requested | accepted | refused
         "lines": [{"line": "L1", "quantity": 1}]}        # empty or absent: whole order
      ],
      "number": "1001", "currency": "EUR", "placed_at": "2026-01-01T12:00:00Z",
      "ship_by": null, "customer": {"name": "...", "email": "..."},
      "shipping_address": {"name": "...", "line1": "...", "postal_code": "...",
                           "city": "...", "country_code": "DE"}
    }

``reason`` is a canonical reason (``customer_request``...) or an Octopia reason code
(``seller-refusal``...); the raw value is kept as the channel reason. Counters not given
are zero. Invalid JSON, a missing required field, a wrong type or a counter for an unknown
line raise :class:`InvalidTestOrder` (the inbox marks the message failed with that text).

Outbound, ``execute`` sends ``POST {base_url}/calls`` with the JSON body ``{command_id,
kind, order, payload}`` (``order``: the channel order id; ``payload``: the command's
payload, each line item also carrying its ``channel_line_id``; an Octopia-profile
cancellation also carries ``reason_code``) and the header ``Idempotency-Key: <command
id>``. A 2xx answer becomes the command's result. 429 (with ``Retry-After``), 408, 409, 5xx,
timeouts and connection errors are transient; 401 is a configuration error; any other 4xx
fails the command at once with the server's ``message``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final

import httpx
import msgspec

from orderhub.channels.spi import (
    AccountConfig,
    ChannelAccount,
    ChannelConfigurationError,
    ChannelError,
    CommandKind,
    CommandOutcome,
    CommandView,
    FollowUp,
    IntakeMessage,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
    Order,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    Money,
    OrderStatus,
    Price,
    Reason,
    RequestState,
)

NAME: Final = "testchannel"
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
TRANSIENT_STATUSES: Final = frozenset({408, 409, 429})

# --- profiles ---------------------------------------------------------------------------


class Profile(StrEnum):
    TOPI = "topi"
    OCTOPIA = "octopia"
    SPRESSO = "spresso"


_ACCEPTED: Final = frozenset({OrderStatus.ACCEPTED})
_IN_PREPARATION: Final = frozenset({OrderStatus.READY_TO_SHIP, OrderStatus.PARTIALLY_SHIPPED})
_SHIPPED_OR_DELIVERED: Final = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})

#: Octopia's seller cancellation codes: canonical reason and the canonical statuses that
#: stand for the Octopia states the code is allowed in (Accepted; InPreparation, which
#: covers a partly shipped order; Shipped; Delivered).
OCTOPIA_REASON_CODES: Final[Mapping[str, tuple[Reason, frozenset[OrderStatus]]]] = MappingProxyType(
    {
        "seller-refusal": (Reason.SELLER_REFUSAL, _ACCEPTED | _IN_PREPARATION),
        "customer-cancellation": (Reason.CUSTOMER_REQUEST, _SHIPPED_OR_DELIVERED),
        "customer-claim": (
            Reason.CUSTOMER_CLAIM,
            _ACCEPTED | _IN_PREPARATION | _SHIPPED_OR_DELIVERED,
        ),
        "refund-from-seller": (Reason.SELLER_REFUND, _SHIPPED_OR_DELIVERED),
        "customer-withdrawal": (Reason.CUSTOMER_WITHDRAWAL, _SHIPPED_OR_DELIVERED),
        "no-customer-withdrawal-in-store": (
            Reason.NOT_COLLECTED_IN_STORE,
            _SHIPPED_OR_DELIVERED,
        ),
        "reference-mistake": (Reason.WRONG_REFERENCE, _SHIPPED_OR_DELIVERED),
        "damaged": (Reason.DAMAGED, _SHIPPED_OR_DELIVERED),
        "multiple-shipping": (Reason.DUPLICATE_SHIPMENT, _SHIPPED_OR_DELIVERED),
        "missing-product": (Reason.MISSING_ITEM, _SHIPPED_OR_DELIVERED),
        "breakdown-during-unpacking": (Reason.DEFECTIVE_ON_ARRIVAL, _SHIPPED_OR_DELIVERED),
        "delivery-impossible": (Reason.DELIVERY_IMPOSSIBLE, _SHIPPED_OR_DELIVERED),
        "customer-refusal": (Reason.REFUSED_BY_CUSTOMER, _SHIPPED_OR_DELIVERED),
        "transport-damage": (Reason.TRANSPORT_DAMAGE, _SHIPPED_OR_DELIVERED),
        "not-collected-at-the-collection-point": (
            Reason.NOT_COLLECTED_AT_PICKUP_POINT,
            _SHIPPED_OR_DELIVERED,
        ),
    }
)
#: canonical reason -> Octopia code (the table is one to one)
OCTOPIA_CODE_FOR_REASON: Final[Mapping[Reason, str]] = MappingProxyType(
    {reason: code for code, (reason, _) in OCTOPIA_REASON_CODES.items()}
)


def topi_like() -> Capabilities:
    return Capabilities(
        acceptance=Scope.ORDER,
        rejection=Scope.ORDER,
        shipment=Scope.LINE,
        partial_shipment=True,
        serial_numbers=True,
        delivery_confirmation=DeliveryConfirmation.NONE,
        seller_cancellation=Scope.NONE,
        cancellation_requests=False,
        release_on_accept=True,
        multiple_fulfilments=False,
        short_ship=False,
        intake=frozenset({"webhook"}),
        refusals=MappingProxyType(
            {
                "reject": "a topi order can be rejected only before it is accepted (confirmed)",
                "cancel": "topi has no seller cancellation: reject the order before "
                "confirmation; after shipment it is a return",
                "deliver": "topi has no delivery step: an order is complete once all shipped",
            }
        ),
    )


def octopia_like() -> Capabilities:
    return Capabilities(
        acceptance=Scope.LINE,
        rejection=Scope.LINE,
        shipment=Scope.LINE,
        partial_shipment=True,
        serial_numbers=False,
        delivery_confirmation=DeliveryConfirmation.CHANNEL,
        seller_cancellation=Scope.LINE,
        cancellation_reasons=MappingProxyType(dict(OCTOPIA_REASON_CODES.values())),
        cancellation_requests=True,
        release_on_accept=False,
        multiple_fulfilments=False,
        short_ship=False,
        intake=frozenset({"polling"}),
        refusals=MappingProxyType(
            {"deliver": "Octopia reports delivery itself: the seller does not confirm it"}
        ),
    )


def spresso_like() -> Capabilities:
    return Capabilities(
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
        intake=frozenset({"webhook"}),
        refusals=MappingProxyType(
            {
                "accept": "Spresso orders arrive ready to ship: there is nothing to accept",
                "reject": "Spresso has no rejection: ship short (final) to cancel what "
                "cannot be sent",
                "cancel": "Spresso takes no cancellation by API: ship short (final), or "
                "cancel in Spresso's admin console",
            }
        ),
    )


PROFILES: Final[Mapping[Profile, Any]] = MappingProxyType(
    {Profile.TOPI: topi_like, Profile.OCTOPIA: octopia_like, Profile.SPRESSO: spresso_like}
)


def profile_of(config: AccountConfig) -> Profile:
    value = config.settings.get("profile", Profile.TOPI.value)
    try:
        return Profile(value)
    except ValueError:
        known = ", ".join(p.value for p in Profile)
        raise ValueError(
            f"{NAME} account {config.name!r}: unknown profile {value!r} (one of {known})"
        ) from None


def capabilities_for(config: AccountConfig) -> Capabilities:
    """The profile's capabilities with the account's ``capabilities`` overrides."""
    caps: Capabilities = PROFILES[profile_of(config)]()
    overrides = config.settings.get("capabilities") or {}
    if not overrides:
        return caps
    fields = {f.name: f for f in dataclasses.fields(Capabilities)}
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in fields or name in ("cancellation_reasons", "refusals"):
            raise ValueError(f"{NAME} account {config.name!r}: cannot override {name!r}")
        current = getattr(caps, name)
        if isinstance(current, StrEnum):
            changes[name] = type(current)(value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{NAME} account {config.name!r}: {name} must be true or false")
            changes[name] = value
        else:  # intake
            changes[name] = frozenset(value)
    return dataclasses.replace(caps, **changes)


# --- intake -------------------------------------------------------------------------------


class InvalidTestOrder(ValueError):
    """A test channel message that cannot be read as an order document."""


NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class _Line(msgspec.Struct, kw_only=True):
    id: str
    title: str
    quantity: Positive
    sku: str | None = None
    price: NonNegative | None = None
    requires_serial: bool = False
    parent: str | None = None
    fulfilment: str | None = None


class _Fulfilment(msgspec.Struct, kw_only=True):
    id: str
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER


class _Counters(msgspec.Struct, kw_only=True):
    accepted: NonNegative = 0
    rejected: NonNegative = 0
    shipped: NonNegative = 0
    delivered: NonNegative = 0


class _CancelledLine(msgspec.Struct, kw_only=True):
    line: str
    quantity: Positive


class _Cancellation(msgspec.Struct, kw_only=True):
    id: str
    initiator: Initiator
    reason: str
    state: RequestState = RequestState.REQUESTED
    lines: list[_CancelledLine] = msgspec.field(default_factory=list)


class _Customer(msgspec.Struct, kw_only=True):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None


class _Address(msgspec.Struct, kw_only=True):
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country_code: str | None = None
    phone: str | None = None


class TestOrderDocument(msgspec.Struct, kw_only=True):
    """The intake document (see the module docstring)."""

    __test__ = False  # not a pytest class

    id: str
    status: str
    lines: list[_Line]
    fulfilments: list[_Fulfilment] = msgspec.field(default_factory=list)
    counters: dict[str, _Counters] = msgspec.field(default_factory=dict)
    released: bool = False
    cancellations: list[_Cancellation] = msgspec.field(default_factory=list)
    number: str | None = None
    seller_reference: str | None = None
    currency: str = "EUR"
    placed_at: datetime | None = None
    ship_by: datetime | None = None
    customer: _Customer | None = None
    shipping_address: _Address | None = None
    updated_at: datetime | None = None
    """The channel's update stamp, if it gives one: the newer stamp wins."""


_decoder: Final = msgspec.json.Decoder(TestOrderDocument | list[TestOrderDocument])


def decode_orders(body: bytes) -> list[TestOrderDocument]:
    try:
        decoded = _decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise InvalidTestOrder(f"not a test channel order document: {exc}") from exc
    return decoded if isinstance(decoded, list) else [decoded]


def to_snapshot(doc: TestOrderDocument) -> ChannelSnapshot:
    line_ids = {line.id for line in doc.lines}
    if len(line_ids) != len(doc.lines):
        raise InvalidTestOrder(f"order {doc.id}: line ids repeat")
    for line_id in doc.counters:
        if line_id not in line_ids:
            raise InvalidTestOrder(f"order {doc.id}: counters for unknown line {line_id!r}")
    for cancellation in doc.cancellations:
        for item in cancellation.lines:
            if item.line not in line_ids:
                raise InvalidTestOrder(
                    f"order {doc.id}: cancellation {cancellation.id} names unknown line "
                    f"{item.line!r}"
                )
    lines = tuple(_line_snapshot(doc, line) for line in doc.lines)
    return ChannelSnapshot(
        channel_order_id=doc.id,
        channel_status=doc.status,
        lines=lines,
        order_number=doc.number,
        seller_reference=doc.seller_reference,
        customer=Customer(**msgspec.structs.asdict(doc.customer)) if doc.customer else None,
        shipping_address=(
            Address(**msgspec.structs.asdict(doc.shipping_address))
            if doc.shipping_address
            else None
        ),
        currency=doc.currency,
        placed_at=doc.placed_at,
        ship_by=doc.ship_by,
        updated_at=doc.updated_at,
        fulfilments=tuple(
            FulfilmentSnapshot(channel_fulfilment_id=f.id, fulfilled_by=f.fulfilled_by)
            for f in doc.fulfilments
        ),
        released=doc.released,
        cancellations=tuple(_cancellation_snapshot(doc, c) for c in doc.cancellations),
    )


def _line_snapshot(doc: TestOrderDocument, line: _Line) -> LineSnapshot:
    counters = doc.counters.get(line.id, _Counters())
    price = (
        Price(gross=Money(amount=line.price, currency=doc.currency))
        if line.price is not None
        else None
    )
    return LineSnapshot(
        channel_line_id=line.id,
        sku=line.sku,
        title=line.title,
        quantity=line.quantity,
        unit_price=price,
        parent_channel_line_id=line.parent,
        channel_fulfilment_id=line.fulfilment,
        requires_serial_number=line.requires_serial,
        accepted=counters.accepted,
        rejected=counters.rejected,
        shipped=counters.shipped,
        delivered=counters.delivered,
    )


def _cancellation_snapshot(
    doc: TestOrderDocument, cancellation: _Cancellation
) -> CancellationSnapshot:
    return CancellationSnapshot(
        channel_cancellation_id=cancellation.id,
        initiator=cancellation.initiator,
        reason=_reason(doc, cancellation.reason),
        state=cancellation.state,
        channel_reason=cancellation.reason,
        lines=tuple((item.line, item.quantity) for item in cancellation.lines),
    )


def _reason(doc: TestOrderDocument, value: str) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        pass
    if value in OCTOPIA_REASON_CODES:
        return OCTOPIA_REASON_CODES[value][0]
    raise InvalidTestOrder(f"order {doc.id}: unknown cancellation reason {value!r}")


def encode_order(doc: TestOrderDocument | Mapping[str, Any]) -> bytes:
    """The wire form of an order document (tests build them as dicts or structs)."""
    return msgspec.json.encode(doc)


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
    error: Exception
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

    # in-memory channel (no base_url): what unit tests look at and steer

    @property
    def calls(self) -> list[RecordedCall]:
        return self._memory.calls

    def fail_next(self, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` in-memory calls raise ``error`` (recorded all the same)."""
        self._memory.faults.append(_Fault(error=error, times=times))

    def fail_next_intake(self, error: Exception, *, times: int = 1) -> None:
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
        return [to_snapshot(doc) for doc in decode_orders(body)]

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        ids = {doc.id for doc in decode_orders(body)}
        return ids.pop() if len(ids) == 1 else None

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
            raise _error_for(response)
        return response.content

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        if new and self.config.settings.get("acknowledge_on_receipt"):
            return [FollowUp(kind=CommandKind.ACKNOWLEDGE)]
        return ()

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        payload = self._wire_payload(command, order)
        if self.base_url is None:
            return await self._execute_in_memory(command, order, payload)
        return await self._execute_http(command, order, payload)

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
        raise _error_for(response)


def _error_for(response: httpx.Response) -> ChannelError:
    status = response.status_code
    message = f"test channel answered {status}: {_message(response)}"
    if status == 401:
        return ChannelConfigurationError(message, status=status)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientChannelError(
            message, status=status, retry_after=_retry_after(response.headers.get("Retry-After"))
        )
    return PermanentChannelError(message, status=status)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:500]


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


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
