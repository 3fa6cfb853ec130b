"""Settings: one TOML file (optional) plus ``ORDERHUB_<SECTION>__<KEY>`` environment overrides.

Load order: embedded defaults, then the file named by ``--config`` or ``ORDERHUB_CONFIG``,
then the environment. Everything is validated at once; a :class:`ConfigError` says which
setting is wrong and where it came from. Secrets never appear in :meth:`Settings.redacted`
nor in the ``repr`` of the structs that hold them."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec

from orderhub.application.access import AccountLimit, split_account
from orderhub.application.hub import InvoicePolicy, RetryPolicy
from orderhub.application.services.retention import RetentionPolicy
from orderhub.channels.spi import AccountConfig, WebhookAuth

__all__ = [
    "API_SCOPES",
    "ENV_CONFIG",
    "ENV_PREFIX",
    "AccountSettings",
    "ApiKey",
    "ApiSettings",
    "BrokerSettings",
    "ChannelsSettings",
    "ConfigError",
    "DatabaseSettings",
    "DocumentSettings",
    "InvoiceSettings",
    "LoggingSettings",
    "RetentionSettings",
    "RetrySettings",
    "SchedulerSettings",
    "Settings",
    "WebhookSettings",
    "load_settings",
    "redact_url",
]

ENV_PREFIX: Final = "ORDERHUB_"
ENV_CONFIG: Final = "ORDERHUB_CONFIG"
API_SCOPES: Final = frozenset({"orders:read", "orders:write", "ops"})
REDACTED: Final = "***"
SECRET_NAME = re.compile(r"secret|token|password|passwd|key", re.IGNORECASE)

BrokerKind = Literal["embedded", "redis", "rabbitmq"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
Scope = Literal["orders:read", "orders:write", "ops", "console:read"]
NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
Name = Annotated[str, msgspec.Meta(min_length=1, pattern=f"^{NAME_PATTERN}$")]
AccountRef = Annotated[str, msgspec.Meta(pattern=f"^{NAME_PATTERN}/{NAME_PATTERN}$")]
"""An account as ``channel/account``."""
Positive = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class ConfigError(Exception):
    """The configuration cannot be loaded or is invalid; the message says what and where."""


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class DatabaseSettings(_Section, frozen=True):
    url: Annotated[str, msgspec.Meta(min_length=1)] = "sqlite+aiosqlite:///./var/orderhub.db"
    pool_size: PositiveInt = 20
    """PostgreSQL: connections each process keeps open (every in-flight request or job
    holds one for its unit of work)."""
    max_overflow: Annotated[int, msgspec.Meta(ge=0)] = 10
    """PostgreSQL: connections opened beyond ``pool_size`` under a burst, closed after."""
    pool_pre_ping: bool = False
    """PostgreSQL: test each connection at checkout (three round trips each time). Off: a
    connection the server dropped fails its statement once, SQLAlchemy then invalidates
    every older pooled connection, and the job or request is retried."""
    pool_recycle_seconds: Positive = 1800.0
    """PostgreSQL: a pooled connection older than this is replaced at its next checkout."""
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    """PostgreSQL: how long opening a connection may take (asyncpg's own default is 60 s).
    A server that takes the connection and never answers holds a request or job this
    long; then it is a 503 (a webhook's sender sends again) or a retried job."""

    def __repr__(self) -> str:
        return (
            f"DatabaseSettings(url={redact_url(self.url)!r}, pool_size={self.pool_size}, "
            f"max_overflow={self.max_overflow}, pool_pre_ping={self.pool_pre_ping}, "
            f"pool_recycle_seconds={self.pool_recycle_seconds}, "
            f"connect_timeout_seconds={self.connect_timeout_seconds})"
        )

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class BrokerSettings(_Section, frozen=True):
    kind: BrokerKind = "embedded"
    url: str | None = None
    queue_prefix: Name = "orderhub"
    """Dramatiq queues are ``<prefix>.commands`` and ``<prefix>.inbox``."""
    concurrency: PositiveInt = 4
    """Embedded mode: how many in-process jobs run at once."""
    publish_linger_ms: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 5.0
    """Redis: how long ids gather before one pipeline sends them (0: send at once). More
    ids per round trip, less CPU per id (the API's event loop gets the GIL back), at most
    this much later on the queue."""
    publish_on_loop: bool = True
    """Redis: send from the event loop that enqueued, with an asyncio client (no publisher
    thread taking the GIL from it). false: a publisher thread sends, as RabbitMQ's does."""

    def __repr__(self) -> str:
        url = redact_url(self.url) if self.url is not None else None
        return (
            f"BrokerSettings(kind={self.kind!r}, url={url!r}, "
            f"queue_prefix={self.queue_prefix!r}, concurrency={self.concurrency}, "
            f"publish_linger_ms={self.publish_linger_ms}, "
            f"publish_on_loop={self.publish_on_loop})"
        )


class ApiKey(_Section, frozen=True):
    name: Name
    key: Annotated[str, msgspec.Meta(min_length=16)]
    scopes: tuple[Scope, ...] = ("orders:read",)
    channels: tuple[Name, ...] = ()
    """Limit the key to these channels (every account of each) and ``accounts``."""
    accounts: tuple[AccountRef, ...] = ()
    """Limit the key to these accounts, as ``channel/account``. With neither ``channels``
    nor ``accounts`` the key sees every channel and account; with either, only those: its
    lists and feed leave the others out, and their orders are "not found"."""

    def __repr__(self) -> str:
        limited = ""
        if self.channels or self.accounts:
            limited = f", channels={self.channels!r}, accounts={self.accounts!r}"
        return f"ApiKey(name={self.name!r}, key={REDACTED!r}, scopes={self.scopes!r}{limited})"

    def account_limit(self) -> AccountLimit | None:
        """What the key is limited to (None: nothing, it sees everything)."""
        if not self.channels and not self.accounts:
            return None
        return AccountLimit.of(channels=self.channels, accounts=self.accounts)


class ApiSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8000
    keys: tuple[ApiKey, ...] = ()
    console_log_sign_in: bool = False
    """Development only: log the console's address and the keys that may sign in at start."""
    max_body_bytes: PositiveInt = 1_048_576
    """The largest request body (API and webhooks; invoices have documents.max_bytes)."""
    max_long_polls_per_key: PositiveInt = 4
    """Feed reads with ``wait`` held open at once per API key and process."""


class WebhookSettings(_Section, frozen=True):
    hmac_secrets: tuple[str, ...] = ()
    bearer_tokens: tuple[str, ...] = ()
    path_tokens: tuple[str, ...] = ()
    tolerance_seconds: PositiveInt = 300

    def __repr__(self) -> str:
        return (
            f"WebhookSettings(hmac_secrets={len(self.hmac_secrets)}, "
            f"bearer_tokens={len(self.bearer_tokens)}, path_tokens={len(self.path_tokens)}, "
            f"tolerance_seconds={self.tolerance_seconds})"
        )

    def auth(self) -> WebhookAuth:
        return WebhookAuth(
            hmac_secrets=self.hmac_secrets,
            bearer_tokens=self.bearer_tokens,
            path_tokens=self.path_tokens,
            tolerance_seconds=self.tolerance_seconds,
        )


class AccountSettings(_Section, frozen=True):
    channel: Name
    name: Name
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    webhook: WebhookSettings = msgspec.field(default_factory=WebhookSettings)

    def __repr__(self) -> str:
        return f"AccountSettings(channel={self.channel!r}, name={self.name!r}, settings=<redacted>)"

    def account_config(self) -> AccountConfig:
        return AccountConfig(
            channel=self.channel,
            name=self.name,
            settings=dict(self.settings),
            webhook=self.webhook.auth(),
        )


class ChannelsSettings(_Section, frozen=True):
    enabled: tuple[Name, ...] | Literal["all"] = "all"
    accounts: tuple[AccountSettings, ...] = ()

    @property
    def enabled_names(self) -> tuple[str, ...] | None:
        """For :func:`orderhub.channels.registry.discover`: None means every installed plugin."""
        return None if self.enabled == "all" else self.enabled

    def account_configs(self) -> tuple[AccountConfig, ...]:
        return tuple(account.account_config() for account in self.accounts)


class RetrySettings(_Section, frozen=True):
    base_seconds: Positive = 2.0
    max_seconds: Positive = 600.0
    max_attempts: PositiveInt = 10
    lease_seconds: Positive = 120.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.base_seconds,
            max_seconds=self.max_seconds,
            max_attempts=self.max_attempts,
            lease_seconds=self.lease_seconds,
        )


class SchedulerSettings(_Section, frozen=True):
    sweep_interval_seconds: Positive = 30.0
    grace_seconds: Annotated[float, msgspec.Meta(ge=0)] = 120.0
    """The sweeper queues a due command or message again only if it was last handed to the
    queue at least this long ago (a crash, a lost broker message): longer than a job
    usually waits in the queue, or busy queues get duplicates (harmless, but wasted)."""
    sweep_limit: PositiveInt = 500
    """At most this many commands, and as many messages, per sweep (taken in pages)."""
    refresh_interval_seconds: Positive = 300.0
    refresh_after_seconds: Positive = 3600.0
    """Open orders the channel has said nothing of for this long are read again from it
    (a lost status webhook is healed), at most ``refresh_limit`` per run."""
    refresh_limit: PositiveInt = 50
    retention_interval_seconds: Positive = 3600.0
    first_run_jitter_seconds: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    """Each job's first run waits a random time up to this (or its interval, if shorter)."""
    leadership_check_seconds: Positive = 5.0
    """PostgreSQL: how often the leading scheduler checks that it still holds its lock (it
    stops every job within this long of losing it), and a standby tries to take it. A new
    leader waits this long before starting its jobs, so that one that lost the lock has
    noticed and stopped."""


class RetentionSettings(_Section, frozen=True):
    """How long the hub keeps what it no longer needs (days)."""

    inbox_body_days: Positive = 30.0
    inbox_days: Positive = 90.0
    """The dedupe window: a message's key is kept this long (at least 7 days, and longer
    than its body), so a late duplicate is still recognised."""
    command_days: Positive = 90.0
    idempotency_days: Positive = 7.0
    feed_days: Positive = 90.0

    def __post_init__(self) -> None:
        if self.inbox_days < max(self.inbox_body_days, 7.0):
            raise msgspec.ValidationError(
                "inbox_days must be at least 7 and at least inbox_body_days - at `$.retention`"
            )

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            inbox_body_days=self.inbox_body_days,
            inbox_days=self.inbox_days,
            command_days=self.command_days,
            idempotency_days=self.idempotency_days,
            feed_days=self.feed_days,
        )


class DocumentSettings(_Section, frozen=True):
    """Where invoice documents are kept: in the database (default) or in ``directory``."""

    directory: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    max_bytes: PositiveInt = 10 * 1024 * 1024
    """The largest invoice document the API takes (413 beyond)."""


class InvoiceSettings(_Section, frozen=True):
    """How the hub asks a channel that decides on an invoice later."""

    check_seconds: Positive = 300.0
    max_checks: PositiveInt = 12
    """After this many checks without a verdict: ``invoice_unconfirmed``, a person looks."""
    check_lease_seconds: Positive = 120.0
    check_limit: PositiveInt = 50
    job_interval_seconds: Positive = 60.0

    def policy(self, documents: DocumentSettings) -> InvoicePolicy:
        return InvoicePolicy(
            max_document_bytes=documents.max_bytes,
            check_seconds=self.check_seconds,
            max_checks=self.max_checks,
            check_lease_seconds=self.check_lease_seconds,
            check_limit=self.check_limit,
        )


class LoggingSettings(_Section, frozen=True):
    level: LogLevel = "INFO"
    json: bool | None = None
    """None: JSON unless standard error is a terminal."""


class RuntimeSettings(_Section, frozen=True):
    event_loop: EventLoop = "auto"
    """auto: uvloop where it is installed (it is a dependency off Windows), else asyncio's."""


class Settings(_Section, frozen=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    broker: BrokerSettings = msgspec.field(default_factory=BrokerSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    channels: ChannelsSettings = msgspec.field(default_factory=ChannelsSettings)
    retry: RetrySettings = msgspec.field(default_factory=RetrySettings)
    scheduler: SchedulerSettings = msgspec.field(default_factory=SchedulerSettings)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    documents: DocumentSettings = msgspec.field(default_factory=DocumentSettings)
    invoices: InvoiceSettings = msgspec.field(default_factory=InvoiceSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    runtime: RuntimeSettings = msgspec.field(default_factory=RuntimeSettings)

    def redacted(self) -> dict[str, Any]:
        """Every setting, safe to log: keys, secrets, tokens and URL passwords masked."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["database"]["url"] = redact_url(self.database.url)
        if self.broker.url is not None:
            data["broker"]["url"] = redact_url(self.broker.url)
        for key in data["api"]["keys"]:
            key["key"] = REDACTED
            if not key["channels"] and not key["accounts"]:  # unlimited: shown as before
                del key["channels"], key["accounts"]
        for account in data["channels"]["accounts"]:
            account["settings"] = _redact_mapping(account["settings"])
            webhook = account["webhook"]
            for name in ("hmac_secrets", "bearer_tokens", "path_tokens"):
                webhook[name] = [REDACTED] * len(webhook[name])
        return data


def _redact_mapping(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED if SECRET_NAME.search(str(k)) else _redact_mapping(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_mapping(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_url(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


# --- loading -----------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file (``path``, else ``$ORDERHUB_CONFIG``), then the environment."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get(ENV_CONFIG) or None
    raw: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    where = f"config file {path}" if path is not None else "embedded defaults"
    overridden = _apply_env(raw, env)
    if overridden:
        where += " + environment (" + ", ".join(sorted(overridden)) + ")"
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration ({where}): {exc}") from exc
    problems = _check(settings)
    if problems:
        raise ConfigError(f"invalid configuration ({where}):\n  - " + "\n  - ".join(problems))
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """Write every ``ORDERHUB_A__B[__C]`` variable into ``raw``; return the names applied."""
    applied = []
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        path = [part.lower() for part in var[len(ENV_PREFIX) :].split("__")]
        if len(path) < 2 or not all(path):
            raise ConfigError(f"{var}: expected ORDERHUB_<SECTION>__<KEY>")
        kind = _kind_at(path)
        if kind is None:
            raise ConfigError(f"{var}: there is no setting {'.'.join(path)}")
        target = raw
        for part in path[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ConfigError(f"{var}: {'.'.join(path)} is not inside a table")
            target = nested
        target[path[-1]] = _parse_env_value(var, value, kind)
        applied.append(var)
    return applied


def _kind_at(path: list[str]) -> msgspec.inspect.Type | None:
    """The declared type of the setting at ``path`` (None when there is no such setting);
    inside a free-form table (account settings) anything goes."""
    node: msgspec.inspect.Type = msgspec.inspect.type_info(Settings)
    for part in path:
        if isinstance(node, msgspec.inspect.DictType):
            node = node.value_type
            continue
        if not isinstance(node, msgspec.inspect.StructType):
            return None
        fields = {f.name: f.type for f in node.fields}
        if part not in fields:
            return None
        node = fields[part]
    return node


def _parse_env_value(var: str, value: str, kind: msgspec.inspect.Type) -> Any:
    options = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
    if any(isinstance(t, msgspec.inspect.LiteralType) and value in t.values for t in options):
        return value
    if any(isinstance(t, msgspec.inspect.StrType) for t in options):
        return value
    stripped = value.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var}: not valid JSON: {exc}") from exc
    if any(isinstance(t, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) for t in options):
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if any(isinstance(t, msgspec.inspect.BoolType) for t in options):
        lowered = stripped.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        if lowered in {"", "auto", "none"} and any(
            isinstance(t, msgspec.inspect.NoneType) for t in options
        ):
            return None
        raise ConfigError(f"{var}: expected true or false, got {value!r}")
    return stripped


def _check(settings: Settings) -> list[str]:
    """The rules a type cannot say."""
    problems = []
    broker = settings.broker
    if broker.kind == "embedded" and broker.url:
        problems.append("broker.url is set but broker.kind is 'embedded' (set kind or drop url)")
    if broker.kind == "redis" and not (broker.url or "").startswith(("redis://", "rediss://")):
        problems.append("broker.kind 'redis' needs broker.url = 'redis://host:port/db'")
    if broker.kind == "rabbitmq" and not (broker.url or "").startswith(("amqp://", "amqps://")):
        problems.append("broker.kind 'rabbitmq' needs broker.url = 'amqp://user:pass@host:port/'")
    names = [key.name for key in settings.api.keys]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"api.keys: the name {dup!r} is used twice")
    secrets = [key.key for key in settings.api.keys]
    if len(set(secrets)) != len(secrets):
        problems.append("api.keys: two keys share the same secret")
    problems.extend(_check_key_limits(settings))
    seen: set[tuple[str, str]] = set()
    enabled = settings.channels.enabled_names
    for account in settings.channels.accounts:
        ident = (account.channel, account.name)
        if ident in seen:
            problems.append(f"channels.accounts: {account.channel}/{account.name} appears twice")
        seen.add(ident)
        if enabled is not None and account.channel not in enabled:
            problems.append(
                f"channels.accounts: {account.channel}/{account.name} is for channel "
                f"{account.channel!r}, which is not in channels.enabled"
            )
    if settings.retry.base_seconds > settings.retry.max_seconds:
        problems.append("retry.base_seconds must not exceed retry.max_seconds")
    return problems


def _check_key_limits(settings: Settings) -> list[str]:
    """A key's limit names only configured channels and accounts: a typo would otherwise
    be a key that sees nothing."""
    problems = []
    configured = {(account.channel, account.name) for account in settings.channels.accounts}
    channels = {channel for channel, _ in configured}
    for key in settings.api.keys:
        for channel in key.channels:
            if channel not in channels:
                problems.append(
                    f"api.keys: {key.name!r} is limited to channel {channel!r}, which has no "
                    "account in channels.accounts"
                )
        for account in key.accounts:
            if split_account(account) not in configured:
                problems.append(
                    f"api.keys: {key.name!r} is limited to account {account!r}, which is not "
                    "in channels.accounts"
                )
    return problems
