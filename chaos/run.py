"""``python -m chaos``: one chaos run (see :mod:`chaos`). Exits 1 on any violation, 2 when
the run itself could not be made (a service missing, the stack not starting)."""

from __future__ import annotations

import argparse
import random
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from chaos.channels import Channel, all_channels
from chaos.checker import check
from chaos.faults import Faults
from chaos.observe import HubReader, observe, settle
from chaos.report import figures, write
from chaos.stack import OPS_KEY, WMS_KEY, HubTuning, Stack, faketime_library
from chaos.wms import Wms

EXIT_OK: Final = 0
EXIT_VIOLATIONS: Final = 1
EXIT_BROKEN: Final = 2
DEFAULT_CHANNELS: Final = "topi,octopia,spresso"


SKEWS: Final = (0.0, 0.0, -3.0, -2.0, 2.0, 4.0)
"""Clock offsets a hub process may get (seconds), drawn per process."""
HUB_PROCESSES: Final = ("serve-1", "serve-2", "worker-1", "worker-2", "scheduler-1", "scheduler-2")


@dataclass(frozen=True)
class Plan:
    duration: float
    kills: int
    db_faults: int
    broker_faults: int
    rate: float
    sim_interval: float


def clock_skews(rng: random.Random) -> dict[str, float]:
    """Each hub process's clock offset (the ones skewed); at least one skewed."""
    skews = {name: rng.choice(SKEWS) for name in HUB_PROCESSES}
    if not any(skews.values()):
        skews[rng.choice(HUB_PROCESSES)] = rng.choice([s for s in SKEWS if s])
    return {name: s for name, s in skews.items() if s}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--seed", type=int, default=None, help="reproduces a run's decisions")
    p.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    p.add_argument(
        "--short",
        action="store_true",
        help="10 kills, 1 database and 1 broker fault, about 2 minutes",
    )
    p.add_argument("--duration", type=float, help="seconds of workload and faults")
    p.add_argument("--kills", type=int, help="SIGKILLs of hub processes")
    p.add_argument("--db-faults", type=int, help="PostgreSQL pauses and restarts (proxy)")
    p.add_argument("--broker-faults", type=int, help="broker restarts and outages (proxy)")
    p.add_argument(
        "--skew",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run some hub processes with a skewed clock (libfaketime)",
    )
    p.add_argument("--channels", default=DEFAULT_CHANNELS)
    p.add_argument("--orders-per-second", type=float, default=None)
    p.add_argument("--sim-fault-interval", type=float, default=None, help="mean seconds")
    p.add_argument("--settle", type=float, default=240.0, help="longest wait to settle")
    p.add_argument("--out", type=Path, default=None, help="default var/chaos/<seed>-<broker>")
    return p


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Timeline:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, /, **details: Any) -> None:
        with self.lock:
            self.entries.append({**details, "at": time.time(), "kind": kind})


def _loop(stop: threading.Event, interval: float, step: Any, errors: list[str]) -> None:
    while not stop.is_set():
        try:
            step()
        except Exception as exc:  # the hub may be down: a WMS or a customer tries again
            errors.append(f"{type(exc).__name__}: {exc}")
        stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    duration = args.duration or (90.0 if args.short else 480.0)
    kills = args.kills if args.kills is not None else (10 if args.short else 110)
    db_faults = args.db_faults if args.db_faults is not None else (1 if args.short else 16)
    broker_faults = (
        args.broker_faults if args.broker_faults is not None else (1 if args.short else 10)
    )
    skew = args.skew if args.skew is not None else True
    rate = args.orders_per_second or 0.8
    sim_interval = args.sim_fault_interval or 4.0
    out = args.out or Path("var/chaos") / f"{seed}-{args.broker}"
    command = "python -m chaos " + shlex.join(
        [
            "--seed",
            str(seed),
            "--broker",
            args.broker,
            *(["--short"] if args.short else []),
            *(["--channels", args.channels] if args.channels != DEFAULT_CHANNELS else []),
            *(["--db-faults", str(db_faults)] if args.db_faults is not None else []),
            *(["--broker-faults", str(broker_faults)] if args.broker_faults is not None else []),
            *([] if args.skew is None else ["--skew" if skew else "--no-skew"]),
        ]
    )
    print(f"chaos: {command} (results in {out})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    channels = all_channels([c for c in args.channels.split(",") if c])
    tuning = HubTuning()
    shutil.rmtree(out / "processes", ignore_errors=True)
    stack = Stack(out / "processes", channels, args.broker, seed, tuning)
    if skew:
        if faketime_library() is None:
            print("chaos: no libfaketime (apt-get install faketime): no clock skew", flush=True)
        else:
            stack.skews = clock_skews(random.Random(f"{seed}:skew"))
            print(f"chaos: clock skews {stack.skews}", flush=True)
    started = time.monotonic()
    try:
        stack.start()
        print(f"chaos: the stack is up after {time.monotonic() - started:.0f} s", flush=True)
        plan = Plan(duration, kills, db_faults, broker_faults, rate, sim_interval)
        return _run(args, seed, stack, channels, out, command, plan)
    except KeyboardInterrupt:
        print("chaos: interrupted", file=sys.stderr)
        return EXIT_BROKEN
    except Exception:
        traceback.print_exc()
        for process in stack.processes:
            print(process.log_report(30), file=sys.stderr)
        return EXIT_BROKEN
    finally:
        stack.close()
        for channel in channels:
            channel.close()


def _run(
    args: argparse.Namespace,
    seed: int,
    stack: Stack,
    channels: list[Channel],
    out: Path,
    command: str,
    plan: Plan,
) -> int:
    timeline = Timeline()
    by_name = {c.name: c for c in channels}
    faults = Faults(
        stack,
        channels,
        random.Random(f"{seed}:faults"),
        timeline,
        kills=plan.kills,
        duration=plan.duration,
        sim_fault_interval=plan.sim_interval,
        db_faults=plan.db_faults,
        broker_faults=plan.broker_faults,
    )
    wms = Wms(stack.urls, WMS_KEY, by_name, timeline, on_accepted=faults.dispatched)
    customers = random.Random(f"{seed}:customers")
    warehouse = random.Random(f"{seed}:wms")
    errors: list[str] = []

    def customer_step() -> None:
        channel = customers.choice(channels)
        channel.customer_step(customers, timeline)
        faults.intake(channel.name)

    def wms_step() -> None:
        wms.follow_feed()
        for _ in range(3):
            wms.step(warehouse)

    stop = threading.Event()
    threads = [
        threading.Thread(target=_loop, args=(stop, 1 / plan.rate, customer_step, errors)),
        threading.Thread(target=_loop, args=(stop, 0.25, wms_step, errors)),
    ]
    workload_start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        faults.run(stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    workload_seconds = time.monotonic() - workload_start
    print(
        f"chaos: {workload_seconds:.0f} s of workload, {faults.restarts} restarts; settling",
        flush=True,
    )
    for channel in channels:
        channel.clear_faults()
    stack.ensure_all_running()
    reader = HubReader(stack.urls[0], OPS_KEY)
    try:
        settled = settle(reader, channels, args.settle)
        extra = {
            "max_attempts": stack.tuning.max_attempts,
            "retry_horizon": stack.tuning.retry_horizon,
            "wms": wms.ledger,
            "timeline": timeline.entries,
        }
        observation = observe(reader, channels, extra, url=stack.urls[0])
    finally:
        reader.close()
        wms.close()
    violations = check(observation)
    numbers = figures(
        observation,
        {"counts": faults.counts, "restarts": faults.restarts, "skews": stack.skews},
    )
    run = {
        "seed": seed,
        "broker": args.broker,
        "channels": [c.name for c in channels],
        "command": command,
        "workload_seconds": workload_seconds,
        "total_seconds": time.monotonic() - workload_start,
        "settle": settled,
        "tuning": vars(stack.tuning),
        "workload_errors": errors[:100],
        "workload_error_count": len(errors),
    }
    json_path, md_path = write(
        out, run=run, numbers=numbers, violations=violations, observation=observation
    )
    print(md_path.read_text(), flush=True)
    print(f"chaos: report {json_path}", flush=True)
    return EXIT_VIOLATIONS if violations else EXIT_OK
