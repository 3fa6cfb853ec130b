"""Several managed processes: stopped together, their logs reported."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orderhub.testing.processes.managed import ManagedProcess

__all__ = ["ProcessSet", "stop_all"]


def stop_all(
    processes: Iterable[ManagedProcess], *, timeout: float | None = None
) -> list[ManagedProcess]:
    """Stop them together: SIGTERM to every running one at once, then wait for each
    until its grace (``timeout``, else its :attr:`Launch.stop_seconds`) counted from now
    is over, then SIGKILL what is left of each group. Every one is stopped even when one
    fails; the first failure is raised at the end. Returns them, in the given order."""
    chosen = list(processes)
    for process in chosen:
        process.terminate()
    started = time.monotonic()
    failure: Exception | None = None
    for process in chosen:
        if process.proc is None:
            continue
        grace = process.launch.stop_seconds if timeout is None else timeout
        try:
            process.stop(max(started + grace - time.monotonic(), 0.1))
        except Exception as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return chosen


@dataclass
class ProcessSet:
    """The processes of a test or a demo: stopped together, their logs reported."""

    processes: list[ManagedProcess] = field(default_factory=list)

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self.processes))

    def __len__(self) -> int:
        return len(self.processes)

    def find(self, name: str) -> ManagedProcess:
        """The first process called ``name``; KeyError if there is none."""
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)

    def clear(self) -> None:
        """Forget them (stop them first)."""
        self.processes.clear()

    def stop_all(self, *, timeout: float | None = None) -> list[ManagedProcess]:
        """:func:`stop_all` of every one."""
        return stop_all(self.processes, timeout=timeout)

    def report(self, lines: int = 40) -> list[tuple[str, str]]:
        """``(title, log tail)`` of each log file (for a test report), each once."""
        seen: set[Path] = set()
        sections = []
        for process in self.processes:
            if process.log_path in seen:
                continue
            seen.add(process.log_path)
            title = f"log of {process.name} ({process.status()}, {process.log_path})"
            sections.append((title, process.tail(lines) or "(empty)"))
        return sections
