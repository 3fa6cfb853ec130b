"""The adapter SPI. A channel package exposes one :class:`ChannelPlugin` through the
``orderhub.channels`` entry-point group; the core opens one :class:`ChannelAccount` per
configured seller account."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol
from urllib.parse import quote

from orderhub.channels.budget import LocalRateBudget, RateBudget
from orderhub.channels.health import AccountHealth, LocalAccountHealth
from orderhub.channels.invoicing import CommandDocument as CommandDocument
from orderhub.channels.invoicing import InvoiceVerdict as InvoiceVerdict
from orderhub.channels.provisioning import CheckItem as CheckItem
from orderhub.channels.provisioning import CheckReport as CheckReport
from orderhub.channels.provisioning import CheckStatus as CheckStatus
from orderhub.channels.provisioning import SetupAction as SetupAction
from orderhub.channels.provisioning import SetupReport as SetupReport
from orderhub.channels.provisioning import SetupStep as SetupStep
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import DomainError
from orderhub.domain.model import ChannelSnapshot, Fulfilment, Invoice, Order

ENTRY_POINT_GROUP = "orderhub.channels"

WEBHOOK_TOPIC_HEADER = "x-orderhub-webhook-topic"
"""The event type a webhook's URL names: a channel that sends one event per URL is given
``/webhooks/{channel}/{account}/{topic}``, and the hub hands ``topic`` to the adapter as
this header (``dedupe_key``, ``order_key``, ``verify_webhook``, ``snapshots``), stored
with the message's headers. Only the path sets it: the same header sent by the caller is
dropped. Absent when the URL names no topic."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class IdGenerator(Protocol):
    def __call__(self) -> str: ...


class CommandKind(StrEnum):
    """What the hub asks a channel to do."""

    ACKNOWLEDGE = "acknowledge"
    ACCEPT = "accept"
    REJECT = "reject"
    SHIP = "ship"
    DELIVER = "deliver"
    CANCEL = "cancel"
    DECIDE_CANCELLATION = "decide_cancellation"
    CLOSE_FULFILMENT = "close_fulfilment"  # asked for by an adapter when a fulfilment is done
    INVOICE = "invoice"


class CommandState(StrEnum):
    PENDING = "pending"  # to be sent (or being sent, or held behind a failed command)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up; an operator retries or abandons it
    ABANDONED = "abandoned"  # an operator decided it will never be sent

    @property
    def is_final(self) -> bool:
        """Ended for good: later commands of the order may go."""
        return self in (CommandState.SUCCEEDED, CommandState.ABANDONED)


@dataclass(kw_only=True, slots=True)
class ChannelCommand:
    """One outbound call to a channel, written in the same transaction as the state change.

    ``seq`` orders the commands of one order: a command is sent only once every earlier
    one has succeeded or been abandoned (unless the adapter declares the two independent).
    ``fence`` counts the claims ever made on it and never goes back: a worker writes its
    outcome only if the fence is still the one it claimed with. ``attempts`` counts the
    calls since the command was created or last retried by an operator."""

    id: str
    order_id: str
    channel: str
    account: str
    kind: CommandKind
    payload: dict[str, Any]
    created_at: datetime
    seq: int = 0
    state: CommandState = CommandState.PENDING
    attempts: int = 0
    fence: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    lease_until: datetime | None = None  # a worker holds it until then
    queued_at: datetime | None = None  # last handed to the queue (the sweeper waits after)
    held_by: str | None = None  # the earlier command of the order it waits for, failed
    finished_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


class CursorStore(Protocol):
    """Per-account cursors of polling and reconciliation jobs."""

    async def get(self, channel: str, account: str, name: str) -> str | None: ...

    async def set(self, channel: str, account: str, name: str, value: str) -> None: ...


class ChannelError(Exception):
    """Base of the errors a gateway raises; adapters translate HTTP errors into these."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TransientChannelError(ChannelError):
    """Try again later (timeout, 429, 5xx). ``retry_after`` in seconds when the channel said."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentChannelError(ChannelError):
    """The channel refused the call for good; its message is kept on the command."""


class ChannelConfigurationError(PermanentChannelError):
    """Credentials or settings are wrong (a 401 after a token refresh)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAuth:
    """How webhooks of one account are authenticated. Several secrets/tokens: key rotation."""

    hmac_secrets: tuple[str, ...] = ()
    bearer_tokens: tuple[str, ...] = ()
    path_tokens: tuple[str, ...] = ()
    tolerance_seconds: int = 300

    @property
    def configured(self) -> bool:
        return bool(self.hmac_secrets or self.bearer_tokens or self.path_tokens)


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountConfig:
    channel: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    webhook: WebhookAuth = field(default_factory=WebhookAuth)


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeMessage:
    """A message a job found, to be stored in the inbox like a webhook."""

    dedupe_key: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class JobContext:
    account: AccountConfig
    cursors: CursorStore
    clock: Clock
    submit: Callable[[IntakeMessage], Awaitable[bool]]
    """Store a message in the inbox (deduplicated); True when it was new."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduledJob:
    name: str
    interval_seconds: float
    run: Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandOutcome:
    """What the channel answered; ``data`` is kept on the command and shown on the feed.

    ``snapshot``: the order as the channel shows it after the call, for channels that send
    no webhook for the state the call produced (topi: acknowledged, confirmed). It is
    merged like any channel snapshot, so an answer that arrives late changes nothing."""

    data: Mapping[str, Any] = field(default_factory=dict)
    snapshot: ChannelSnapshot | None = None
    """Stored in the inbox with the outcome and applied like any channel message."""
    channel_ids: Mapping[str, str] = field(default_factory=dict)
    """The ids the channel gave what the command created, by what: ``shipment`` (a
    shipment command), ``cancellation`` (a cancellation or a decision on a request),
    ``invoice``. Stored on that entity, so the channel's later echo of it is merged, not
    recorded twice."""
    invoice: InvoiceVerdict | None = None
    """An ``invoice`` command's verdict: accepted (also when None), rejected, or sent
    (the channel decides later: :meth:`ChannelAccount.invoice_status`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandView:
    """A command as an adapter sees it: what was decided, frozen (no lease or retry
    fields). ``fence`` counts every claim ever made (it never restarts); ``attempts`` those
    since the last operator retry; ``id`` is the channel's idempotency key."""

    id: str
    order_id: str
    kind: CommandKind
    payload: Mapping[str, Any]
    created_at: datetime
    seq: int
    attempts: int
    fence: int
    document: CommandDocument | None = None
    """The document the command carries (an ``invoice``'s PDF), read when it was claimed."""

    @classmethod
    def of(cls, command: ChannelCommand) -> CommandView:
        return cls(
            id=command.id,
            order_id=command.order_id,
            kind=command.kind,
            payload=copy.deepcopy(command.payload),  # a copy: changing it changes nothing
            created_at=command.created_at,
            seq=command.seq,
            attempts=command.attempts,
            fence=command.fence,
        )


class CommandRefused(DomainError):
    """An adapter's pre-flight check refuses a command before anything is queued: a rule
    of the channel that :class:`Capabilities` cannot say (a reason code in the wrong
    state, an unknown carrier, one parcel per order). ``status``: 409 (the order's state
    or the channel's rules) or 422 (the request names something the channel does not
    know)."""

    rule = "refused-by-channel"

    def __init__(self, detail: str, *, rule: str, status: int = 409) -> None:
        super().__init__(detail, rule=rule)
        self.status = status


@dataclass(frozen=True, kw_only=True, slots=True)
class FollowUp:
    """A command the hub issues by itself after an intake (topi: acknowledge on receipt)."""

    kind: CommandKind
    payload: Mapping[str, Any] = field(default_factory=dict)


WebhookAckStatus = Literal[200, 202]
"""What a stored webhook is answered with: 202 (the default) or 200 (a duplicate: always 200)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookVerdict:
    """What an adapter's own webhook signature check found.

    ``scheme`` and ``variant`` name what matched (``"spresso-hmac"``; ``"raw"`` or
    ``"compact"``): constants of the adapter, counted as metric labels, never ids.
    ``reason`` says why a request is refused, without any secret."""

    accepted: bool
    scheme: str
    variant: str = "default"
    reason: str = ""

    @classmethod
    def accept(cls, scheme: str, variant: str = "default") -> WebhookVerdict:
        return cls(accepted=True, scheme=scheme, variant=variant)

    @classmethod
    def refuse(cls, scheme: str, reason: str) -> WebhookVerdict:
        return cls(accepted=False, scheme=scheme, reason=reason)


@dataclass(frozen=True, kw_only=True)
class AccountServices:
    """What the hub lends an open account (:meth:`ChannelAccount.bind`): ``budget``, a
    :class:`RateBudget` shared by every process of the hub (its database), for a channel
    that limits how often it is asked; ``health``, where to note how its token or a job
    fared (shown to operators)."""

    budget: RateBudget = field(default_factory=LocalRateBudget)
    health: AccountHealth = field(default_factory=LocalAccountHealth)


class ChannelAccount:
    """One seller account on one channel. Override what the channel needs; the optional
    hooks do nothing by default."""

    def __init__(self, config: AccountConfig, capabilities: Capabilities) -> None:
        self.config = config
        self.capabilities = capabilities
        self.services = AccountServices()  # this process's own until the hub binds its own

    def bind(self, services: AccountServices) -> None:
        """The hub's services, given once the account is opened (before any other call)."""
        self.services = services

    async def warm(self) -> None:
        """Load what :meth:`preflight` needs from the channel (reference lists): awaited
        once in the background by each API process at start. Errors are logged; the
        adapter retries on its own schedule."""

    @property
    def channel(self) -> str:
        return self.config.channel

    @property
    def name(self) -> str:
        return self.config.name

    def dedupe_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """The sender's message id, if the channel has one (else the hub hashes the body)."""
        return headers.get("webhook-id")

    def order_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """The channel's order id of a raw message, if it can be read cheaply (it must equal
        the ``channel_order_id`` of the snapshots the message maps to). Messages of one
        order are then applied one at a time, in the order they arrived; None (the
        default) leaves them unordered, protected only by the snapshots' own stamps."""
        return None

    def independent(self, earlier: CommandKind, later: CommandKind) -> bool:
        """True when ``later`` need not wait for ``earlier`` (both of one order). By default
        every command of an order waits for the earlier ones to succeed or be abandoned."""
        return False

    async def refresh(self, order: Order) -> IntakeMessage | None:
        """Read one order again from the channel, as a message for the inbox (healing a
        lost webhook). None: the channel cannot be asked (the default)."""
        return None

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        """Map one stored inbox message to canonical snapshots (may call the channel)."""
        raise NotImplementedError

    def capabilities_for(self, snapshot: ChannelSnapshot) -> Capabilities:
        """What the channel allows for this order (a sales channel's rules; Octopia's
        line-level management, manual acceptance...), from its snapshot and the account's
        settings. Stored with the order; every refusal uses it. Default: the account's."""
        return self.capabilities

    def preflight(
        self, kind: CommandKind, payload: Mapping[str, Any], order: Order, caps: Capabilities
    ) -> None:
        """Refuse a command the channel would refuse, before anything is queued: raise
        :class:`CommandRefused` naming the rule. Runs in the command's transaction, after
        the domain's own checks, with the order as the command leaves it. Default: none."""

    def fulfilment_done(self, order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
        """Commands to issue when a fulfilment is done (shipped whole or closed short,
        delivered, or cancelled): Spresso's ``in_transit`` with each variant's fulfilled
        quantity. They are queued after the order's other commands of that moment, with
        the quantities as they stand then. Default: none."""
        return ()

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        """Carry one command out at the channel; raise a :class:`ChannelError` on failure.

        ``order`` is a copy of the order as it was when the command was claimed: changing
        it changes nothing. ``command.id`` is the channel's idempotency key."""
        raise NotImplementedError

    async def invoice_status(self, order: Order, invoice: Invoice) -> InvoiceVerdict | None:
        """The channel's verdict on an invoice it took for processing (``sent``: its
        ``channel_invoice_id`` names the import); None or ``processing``: not yet.
        Default: None (the hub stops asking after its checks and a person looks)."""
        return None

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        """Commands to issue after an order was received or updated."""
        return ()

    def jobs(self) -> Sequence[ScheduledJob]:
        """Scheduled jobs: polling, reconciliation."""
        return ()

    async def aclose(self) -> None:
        """Release connections."""

    @property
    def webhook_ack_status(self) -> WebhookAckStatus:
        """The status a new webhook is answered with once stored; a duplicate gets 200."""
        return 202

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> WebhookVerdict | None:
        """The channel's own signature check; None: not its scheme, ``config.webhook`` decides."""
        return None

    def webhook_url(self, public_url: str, topic: str | None = None) -> str:
        """Where the channel must send this account's webhooks (with the path token, if any);
        with ``topic``, the URL of that event type only (:data:`WEBHOOK_TOPIC_HEADER`)."""
        url = f"{public_url.rstrip('/')}/webhooks/{quote(self.channel)}/{quote(self.name)}"
        if topic is not None:
            url = f"{url}/{quote(topic, safe='')}"
        tokens = self.config.webhook.path_tokens
        return f"{url}?token={quote(tokens[0], safe='')}" if tokens else url

    async def setup(self, public_url: str) -> SetupReport:
        """Set the account up at the channel (webhooks to :meth:`webhook_url`), idempotently."""
        return SetupReport()

    async def check(self) -> CheckReport:
        """Verify credentials and reachability without changing anything at the channel."""
        return CheckReport(
            items=(
                CheckItem(
                    what="account",
                    status=CheckStatus.SKIPPED,
                    detail=f"the {self.channel} adapter does not check its accounts",
                ),
            )
        )


class ChannelPlugin(Protocol):
    """What the ``orderhub.channels`` entry point points at."""

    name: str

    def capabilities(self, config: AccountConfig) -> Capabilities: ...

    def open_account(self, config: AccountConfig) -> ChannelAccount: ...
