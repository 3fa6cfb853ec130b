"""Domain errors. Each names the rule that was broken; only the web layer maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """A command or update broke a rule of the canonical lifecycle."""

    rule: str = "domain-rule"

    def __init__(self, detail: str, *, rule: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if rule is not None:
            self.rule = rule


class InvalidInput(DomainError):
    """The command names something that does not exist or asks for impossible quantities (422)."""

    rule = "invalid-input"


class UnknownLine(InvalidInput):
    rule = "unknown-line"


class UnknownFulfilment(InvalidInput):
    rule = "unknown-fulfilment"


class TooManyUnits(InvalidInput):
    rule = "too-many-units"


class SerialNumberRequired(InvalidInput):
    rule = "serial-number-required"


class DuplicateSerialNumber(InvalidInput):
    rule = "duplicate-serial-number"


class InvalidTransition(DomainError):
    """The order's state does not allow this command now (409)."""

    rule = "invalid-transition"


class OrderIsTerminal(InvalidTransition):
    rule = "order-terminal"


class NotSupportedByChannel(DomainError):
    """The channel cannot carry this command out (409), whatever the order's state."""

    rule = "not-supported-by-channel"


class UnknownCancellation(InvalidInput):
    rule = "unknown-cancellation"


class OrderNotFound(DomainError):
    rule = "order-not-found"


class ConcurrencyConflict(DomainError):
    """Someone else changed the order since it was read (the caller may retry)."""

    rule = "concurrent-update"


class AmbiguousSnapshot(InvalidInput):
    """A channel snapshot names one line (or fulfilment) twice: the hub cannot tell which
    is which, so it applies nothing of it."""

    rule = "ambiguous-snapshot"
