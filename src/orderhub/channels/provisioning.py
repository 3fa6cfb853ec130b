"""What ``orderhub channels setup|check`` report: :meth:`ChannelAccount.setup`'s steps and
:meth:`ChannelAccount.check`'s items (re-exported by :mod:`orderhub.channels.spi`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SetupAction(StrEnum):
    """What :meth:`ChannelAccount.setup` did about one thing at the channel."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"  # already as wanted
    MANUAL = "manual"  # an operator must do it; the step's detail says how
    FAILED = "failed"  # the channel refused or could not be reached; the detail says why

    @property
    def changes(self) -> bool:
        return self in (SetupAction.CREATED, SetupAction.UPDATED, SetupAction.DELETED)


@dataclass(frozen=True, kw_only=True, slots=True)
class SetupStep:
    """One thing set up at the channel (``what``: "webhook order_fulfillable")."""

    what: str
    action: SetupAction
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class SetupReport:
    """What setting an account up did, step by step; no steps: nothing to set up."""

    steps: tuple[SetupStep, ...] = ()

    @property
    def changed(self) -> bool:
        """Something at the channel was changed (a second run of an idempotent setup: no)."""
        return any(step.action.changes for step in self.steps)

    @property
    def failed(self) -> bool:
        """A step failed (the steps before it may have changed things: run it again)."""
        return any(step.action is SetupAction.FAILED for step in self.steps)


class CheckStatus(StrEnum):
    """The result of one check, from best to worst: skipped, ok, failed, misconfigured."""

    SKIPPED = "skipped"  # not checked
    OK = "ok"
    FAILED = "failed"  # the channel could not be reached, or answered wrongly
    MISCONFIGURED = "misconfigured"  # the account's settings or credentials are wrong


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckItem:
    """One check (``what``: "credentials", "api", "webhook order_fulfillable")."""

    what: str
    status: CheckStatus
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckReport:
    """What checking an account found; changes nothing at the channel."""

    items: tuple[CheckItem, ...] = ()

    @property
    def status(self) -> CheckStatus:
        """The worst item's status (no item: skipped)."""
        order = list(CheckStatus)
        return max(
            (item.status for item in self.items), key=order.index, default=CheckStatus.SKIPPED
        )
