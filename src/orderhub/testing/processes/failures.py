"""What a failed wait on processes says: the message, then the name, state and log tail of
each process it concerns (as they were at that moment)."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import Protocol

__all__ = [
    "NotYet",
    "ProcessDied",
    "ProcessFailure",
    "Reported",
    "WaitTimedOut",
    "describe_returncode",
]


class Reported(Protocol):
    """Something a failure can show: a process with a log
    (:class:`~orderhub.testing.processes.ManagedProcess` is one)."""

    def log_report(self) -> str:
        """Its name and state, then the last lines of its log."""
        ...


def describe_returncode(code: int | None) -> str:
    """``running``, ``exit code 1``, ``ended by SIGKILL (exit code -9)``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"ended by {name} (exit code {code})"
    return f"exit code {code}"


class NotYet(Exception):
    """Raised by a probe of :func:`~orderhub.testing.processes.wait_until` or
    :func:`~orderhub.testing.processes.eventually`: not there yet; its text says what the
    probe sees, and a timeout repeats it."""


class ProcessFailure(AssertionError):
    """Something about processes failed: ``reason``, then the report of each of
    ``processes`` (an :class:`AssertionError`, so a test fails rather than errors)."""

    def __init__(self, message: str, processes: Iterable[Reported] = ()) -> None:
        self.reason = message
        self.processes = tuple(processes)
        super().__init__("\n\n".join([message, *(p.log_report() for p in self.processes)]))


class ProcessDied(ProcessFailure):
    """A process a wait depended on has exited."""


class WaitTimedOut(ProcessFailure):
    """A wait reached its deadline."""
