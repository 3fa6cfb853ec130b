"""Faults at moments drawn from the run's seeded RNG: SIGKILLs of hub processes (each
started again after a random delay), some aimed right after the warehouse got a 202
(mid-dispatch) or a customer placed an order (mid-intake); and simulator faults (5xx,
429 with Retry-After, answers that come after the hub stopped waiting, dropped and
duplicated webhooks); and network faults between the hub and its shared servers
(:mod:`chaos.netfaults`): PostgreSQL paused, restarted (immediate or fast shutdown), the
broker restarted or unreachable for a while."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from chaos.channels import Channel, Record
from chaos.stack import Stack

RESTART_DELAY: Final = (0.3, 4.0)
AIMED_SHARE: Final = 0.4
"""Share of kills that wait for a dispatch or an intake to hit."""
AIM_WAIT: Final = 2.0
AIM_DELAY: Final = (0.0, 0.4)
DB_PAUSE: Final = (2.0, 5.0)
DB_IMMEDIATE_REFUSE: Final = (1.0, 4.0)
DB_FAST_REFUSE: Final = (1.0, 3.0)
BROKER_RESTART_REFUSE: Final = (1.0, 4.0)
BROKER_UNREACHABLE: Final = (5.0, 15.0)


@dataclass
class Faults:
    stack: Stack
    channels: Sequence[Channel]
    rng: random.Random
    record: Record
    kills: int
    duration: float
    sim_fault_interval: float
    db_faults: int = 0
    broker_faults: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    _aims: queue.Queue[str] = field(default_factory=queue.Queue)
    _pending: list[tuple[float, str]] = field(default_factory=list)

    def dispatched(self, _command_id: str) -> None:
        """The warehouse got a 202: a worker is about to dispatch."""
        self._aims.put("dispatch")

    def intake(self, channel: str) -> None:
        """A customer placed an order: a webhook is on its way (or a poll will find it)."""
        self._aims.put(f"intake:{channel}")

    def run(self, stop: threading.Event) -> None:
        start = time.monotonic()
        gap = self.duration / max(self.kills, 1)
        moments = sorted(start + (i + self.rng.random()) * gap for i in range(self.kills))
        next_sim = start + self.rng.uniform(0, self.sim_fault_interval)
        net = sorted(
            [
                (start + self.rng.uniform(0.05, 0.95) * self.duration, "db")
                for _ in range(self.db_faults)
            ]
            + [
                (start + self.rng.uniform(0.05, 0.95) * self.duration, "broker")
                for _ in range(self.broker_faults)
            ]
        )
        while not stop.is_set():
            now = time.monotonic()
            self._restart_due(now)
            if moments and now >= moments[0]:
                moments.pop(0)
                self._kill()
            if self.sim_fault_interval > 0 and now >= next_sim and self.channels:
                next_sim = now + self.rng.expovariate(1 / self.sim_fault_interval)
                channel = self.rng.choice(list(self.channels))
                try:
                    kind = channel.inject_fault(self.rng)
                except Exception as exc:  # a simulator fault must not end the run
                    kind = f"{channel.name} fault-not-injected ({type(exc).__name__})"
                self.counts[kind] += 1
                self.record("fault.simulator", fault=kind)
            if net and now >= net[0][0]:
                self._network_fault(net.pop(0)[1])
            if not moments and not net and now - start > self.duration:
                break
            stop.wait(0.05)
        for _, name in self._pending:
            self.stack.restart(name)
            self.restarts += 1
            self.record("restart", process=name)
        self._pending.clear()

    def _network_fault(self, target: str) -> None:
        if target == "db":
            proxy = self.stack.db_proxy
            kind = self.rng.choice(("pause", "restart (immediate)", "restart (fast)"))
        else:
            proxy = self.stack.broker_proxy
            kind = self.rng.choice(("restart", "unreachable"))
        if proxy is None:
            return
        if kind == "pause":
            seconds = self.rng.uniform(*DB_PAUSE)
            proxy.pause(seconds)
        elif kind == "unreachable":
            seconds = self.rng.uniform(*BROKER_UNREACHABLE)
            proxy.pause(seconds)
        elif kind == "restart (fast)":
            seconds = self.rng.uniform(*DB_FAST_REFUSE)
            proxy.close_all(seconds)
        else:
            span = DB_IMMEDIATE_REFUSE if target == "db" else BROKER_RESTART_REFUSE
            seconds = self.rng.uniform(*span)
            proxy.reset(seconds)
        name = f"{target} {kind}"
        self.counts[name] += 1
        self.record("fault.network", fault=name, seconds=round(seconds, 2))

    def _restart_due(self, now: float) -> None:
        due = [p for p in self._pending if p[0] <= now]
        for item in due:
            self._pending.remove(item)
            self.stack.restart(item[1])
            self.restarts += 1
            self.record("restart", process=item[1])

    def _kill(self) -> None:
        names = list(self.stack.hub)
        aim = "random"
        if self.rng.random() < AIMED_SHARE:
            while not self._aims.empty():  # only what happens from now on
                self._aims.get_nowait()
            try:
                aim = self._aims.get(timeout=AIM_WAIT)
            except queue.Empty:
                aim = "random"
            time.sleep(self.rng.uniform(*AIM_DELAY))
        if aim == "dispatch":
            names = [n for n in names if n.startswith("worker")]
        elif aim.startswith("intake:"):
            names = [n for n in names if n.startswith(("serve", "worker"))]
        running = [n for n in names if n not in self.stack.down()] or names
        name = self.rng.choice(running)
        if not self.stack.kill(name):
            return
        kind = f"kill {name.rsplit('-', 1)[0]}" + ("" if aim == "random" else f" ({aim})")
        self.counts[kind] += 1
        self.record("kill", process=name, aim=aim)
        self._pending.append((time.monotonic() + self.rng.uniform(*RESTART_DELAY), name))
