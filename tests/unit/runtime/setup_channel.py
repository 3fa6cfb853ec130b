"""A stub channel with provisioning hooks, loaded by the real CLI through the
``orderhub.channels`` entry-point group (see ``register`` in the CLI tests).

Its "channel" is :data:`REMOTE`: the webhooks registered per account, by topic, which
``setup`` creates, updates or leaves as they are, and ``check`` only reads. Account
settings steer it: ``refused_topic`` (that webhook's step fails), ``explode`` (the hook
raises), ``credentials = "bad"`` (``check`` finds them misconfigured)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from orderhub.channels.spi import (
    AccountConfig,
    ChannelAccount,
    ChannelConfigurationError,
    CheckItem,
    CheckReport,
    CheckStatus,
    SetupAction,
    SetupReport,
    SetupStep,
)
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.model import ChannelSnapshot

NAME: Final = "setupstub"
TOPICS: Final = ("order_fulfillable", "order_cancelled")
ALLOW_LIST: Final = "Ask the channel's support to allow\n  the hub's outbound address."


@dataclass
class Remote:
    """The channel's side, and what the CLI did with the accounts."""

    webhooks: dict[str, dict[str, str]] = field(default_factory=dict)  # account -> topic -> url
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.webhooks.clear()
        self.opened.clear()
        self.closed.clear()


REMOTE: Final = Remote()


class SetupAccount(ChannelAccount):
    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        return ()

    def _explode(self) -> None:
        if self.config.settings.get("explode"):
            raise ChannelConfigurationError("the client secret was refused", status=401)

    async def setup(self, public_url: str) -> SetupReport:
        self._explode()
        hooks = REMOTE.webhooks.setdefault(self.name, {})
        url = self.webhook_url(public_url)
        steps: list[SetupStep] = []
        for topic in TOPICS:
            what = f"webhook {topic}"
            if topic == self.config.settings.get("refused_topic"):
                steps.append(SetupStep(what=what, action=SetupAction.FAILED, detail="422: bad url"))
                continue
            current = hooks.get(topic)
            if current == url:
                action = SetupAction.UNCHANGED
            else:
                action = SetupAction.CREATED if current is None else SetupAction.UPDATED
                hooks[topic] = url
            steps.append(SetupStep(what=what, action=action))
        steps.append(SetupStep(what="ip allow-list", action=SetupAction.MANUAL, detail=ALLOW_LIST))
        return SetupReport(steps=tuple(steps))

    async def check(self) -> CheckReport:
        self._explode()
        if self.config.settings.get("credentials") == "bad":
            credentials = CheckItem(
                what="credentials", status=CheckStatus.MISCONFIGURED, detail="401 from /token"
            )
        else:
            credentials = CheckItem(what="credentials", status=CheckStatus.OK)
        hooks = REMOTE.webhooks.get(self.name, {})
        webhooks = tuple(
            CheckItem(what=f"webhook {topic}", status=CheckStatus.OK, detail=hooks[topic])
            if topic in hooks
            else CheckItem(
                what=f"webhook {topic}", status=CheckStatus.FAILED, detail="not registered"
            )
            for topic in TOPICS
        )
        return CheckReport(items=(credentials, *webhooks))

    async def aclose(self) -> None:
        REMOTE.closed.append(self.name)


class SetupPlugin:
    name = NAME

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return Capabilities(acceptance=Scope.NONE, rejection=Scope.NONE, shipment=Scope.ORDER)

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        REMOTE.opened.append(config.name)
        return SetupAccount(config, self.capabilities(config))


plugin: Final = SetupPlugin()
