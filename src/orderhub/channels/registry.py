"""Loads channel plugins through one entry-point group and opens the configured accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import structlog

from orderhub.channels.spi import (
    ENTRY_POINT_GROUP,
    AccountConfig,
    AccountServices,
    ChannelAccount,
    ChannelPlugin,
)
from orderhub.domain.errors import DomainError

log = structlog.get_logger(__name__)


class ChannelNotFound(DomainError):
    rule = "unknown-channel"


class PluginLoadError(Exception):
    """A plugin could not be loaded, or two plugins claim one name."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedPlugin:
    plugin: ChannelPlugin
    distribution: str
    version: str


def discover(*, enabled: Iterable[str] | None = None) -> dict[str, LoadedPlugin]:
    """Every installed channel plugin (or only ``enabled`` ones), first-party or not."""
    wanted = set(enabled) if enabled is not None else None
    found: dict[str, LoadedPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        loaded = _load(ep)
        if loaded.plugin.name in found:
            other = found[loaded.plugin.name]
            raise PluginLoadError(
                f"channel {loaded.plugin.name!r} is provided by both {other.distribution} "
                f"and {loaded.distribution}"
            )
        found[loaded.plugin.name] = loaded
    if wanted is not None and (missing := wanted - found.keys()):
        raise PluginLoadError(f"enabled channels not installed: {', '.join(sorted(missing))}")
    return found


def _load(ep: EntryPoint) -> LoadedPlugin:
    try:
        plugin = ep.load()
    except Exception as exc:
        raise PluginLoadError(f"channel plugin {ep.name!r} failed to load: {exc}") from exc
    if getattr(plugin, "name", None) != ep.name:
        raise PluginLoadError(f"entry point {ep.name!r} names plugin {plugin.name!r}")
    dist = ep.dist
    return LoadedPlugin(
        plugin=plugin,
        distribution=dist.name if dist else "unknown",
        version=dist.version if dist else "unknown",
    )


class ChannelRegistry:
    """The installed plugins and the open accounts, by (channel, account)."""

    def __init__(
        self, plugins: Mapping[str, LoadedPlugin], accounts: Iterable[AccountConfig]
    ) -> None:
        self.plugins = dict(plugins)
        self._accounts: dict[tuple[str, str], ChannelAccount] = {}
        for config in accounts:
            loaded = self.plugins.get(config.channel)
            if loaded is None:
                raise PluginLoadError(
                    f"account {config.name!r} is configured for channel {config.channel!r}, "
                    "which is not installed"
                )
            key = (config.channel, config.name)
            if key in self._accounts:
                raise PluginLoadError(f"account {config.channel}/{config.name} is configured twice")
            self._accounts[key] = loaded.plugin.open_account(config)

    def account(self, channel: str, name: str) -> ChannelAccount:
        try:
            return self._accounts[(channel, name)]
        except KeyError:
            raise ChannelNotFound(
                f"no account {name!r} is configured for channel {channel!r}"
            ) from None

    def accounts(self) -> Iterator[ChannelAccount]:
        return iter(self._accounts.values())

    def bind(self, services: AccountServices) -> None:
        """Lend every open account the hub's services (its shared rate budget)."""
        for account in self._accounts.values():
            account.bind(services)

    async def warm(self) -> None:
        """Every account's :meth:`~ChannelAccount.warm`, together; a failure is logged."""
        accounts = list(self._accounts.values())
        results = await asyncio.gather(*(a.warm() for a in accounts), return_exceptions=True)
        for account, result in zip(accounts, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.warning(
                    "channel.warm_failed",
                    channel=account.channel,
                    account=account.name,
                    error=f"{type(result).__name__}: {result}",
                )

    async def aclose(self) -> None:
        for account in self._accounts.values():
            await account.aclose()
