"""RSS and CPU of the benchmark's processes, read from /proc (Linux; no psutil).

A :class:`Sampler` thread polls each named process tree (``orderhub worker`` forks its
dramatiq processes) and keeps each process's largest RSS; :meth:`Sampler.cpu` gives the
CPU seconds a tree has used so far, so a phase's CPU is the difference of two readings.
It also reads the CPU of the services the hub shares the machine with (``postgres``,
``redis``: every process of that name) and the machine's busy CPU (``machine``, from
``/proc/stat``): whether a phase had any core left to use."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

TICKS: Final = os.sysconf("SC_CLK_TCK")
PAGE: Final = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ")"
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (a scan of /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """user + system CPU of ``pid`` itself (its children are sampled on their own)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # after the name: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / TICKS


def named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (``postgres``: the server's backends)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if comm == name:
            found.append(int(entry))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent neither idle nor waiting for I/O, since boot."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    # cpu user nice system idle iowait irq softirq steal (guest time is inside user)
    ticks = [int(value) for value in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


SERVICES: Final = {"postgres": "postgres", "redis": "redis-server"}
"""The shared services whose CPU :meth:`Sampler.cpu` reports, by command name."""


def rss_mb(pid: int) -> float | None:
    fields = _stat(pid)
    if fields is None:
        return None
    return int(fields[21]) * PAGE / 2**20  # rss(23rd field) in pages


class Sampler:
    """Polls named process trees every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._roots: dict[str, Callable[[], int | None]] = {}
        self._rss: dict[str, float] = {}
        self._last_cpu: dict[str, dict[int, float]] = {}
        self._service_cpu: dict[str, dict[int, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def track(self, name: str, pid: int | Callable[[], int | None]) -> None:
        """Track a process (its pid, or a callable giving the current one) and its tree."""
        with self._lock:
            self._roots[name] = pid if callable(pid) else (lambda: pid)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _tree(self, name: str) -> list[tuple[str, int]]:
        pid = self._roots[name]()
        if pid is None:
            return []
        return [(name, pid)] + [(f"{name}/{child}", child) for child in children(pid)]

    def sample(self) -> None:
        with self._lock:
            names = list(self._roots)
        for name in names:
            cpus: dict[int, float] = {}
            for label, pid in self._tree(name):
                rss = rss_mb(pid)
                if rss is not None:
                    key = name if label == name else f"{name} (child)"
                    with self._lock:
                        self._rss[key] = max(rss, self._rss.get(key, 0.0))
                cpus[pid] = cpu_seconds(pid)
            with self._lock:
                # a child that exited keeps the CPU it had when last seen
                self._last_cpu[name] = {**self._last_cpu.get(name, {}), **cpus}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def cpu(self) -> dict[str, float]:
        """CPU seconds of each tree so far (a fresh reading), of each shared service
        (``postgres``, ``redis``) and the machine's busy seconds (``machine``)."""
        self.sample()
        services = {}
        for label, command in SERVICES.items():
            pids = {pid: cpu_seconds(pid) for pid in named(command)}
            with self._lock:  # a backend that exited keeps the CPU it had when last seen
                self._service_cpu[label] = {**self._service_cpu.get(label, {}), **pids}
                services[label] = sum(self._service_cpu[label].values())
        with self._lock:
            trees = {name: sum(pids.values()) for name, pids in self._last_cpu.items()}
        return {**trees, **services, "machine": machine_busy_seconds()}

    def rss(self) -> dict[str, Any]:
        """The largest RSS seen of each process (a tree's children under ``name (child)``:
        the largest of them)."""
        with self._lock:
            return {name: {"rss_max_mb": round(mb, 1)} for name, mb in sorted(self._rss.items())}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
