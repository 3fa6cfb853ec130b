"""``make demo`` / ``python -m orderhub_topi.demo``: topi and the hub, end to end, watchable.

Starts the topi simulator and ``orderhub serve`` (embedded mode: SQLite in a temporary
directory, in-process queue and scheduler) as real processes on free loopback ports, then
plays three stories. The warehouse (WMS) acts only through the hub's HTTP API, the
customer only through the simulator's ``/_sim`` control API; topi's side of every order is
read from its seller API. Every expected state is checked; a step that does not happen
within the timeout ends the demo with exit code 1 and says which step and what it saw.

A. A bundle order (a rented laptop with a dock and a charger as sub-lines, plus two bought
   mice) arrives by webhook; the hub acknowledges it to topi on its own; the WMS accepts
   it (topi: confirmed), ships the mice (topi: partially_fulfilled), then the bundle with
   serial numbers (topi: completed; the hub: shipped).
B. An order the WMS rejects (topi: rejected; the hub: rejected).
C. An order the customer cancels in topi (the hub: cancelled, initiator customer); before
   that, the WMS tries to cancel it and gets the 409 problem that explains why it cannot.

At the end it prints the hub's feed in order. Options: ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final, TypeVar

from orderhub_topi.demo_support import (
    DemoFailure,
    HubApi,
    Narrator,
    NotYet,
    Stack,
    StackOptions,
    TopiView,
    eventually,
    temporary_workdir,
)

__all__ = [
    "BUNDLE_ORDER",
    "CANCELLED_ORDER",
    "REJECTED_ORDER",
    "Demo",
    "StoryResult",
    "main",
    "print_feed",
    "run_stories",
    "story_bundle",
    "story_customer_cancel",
    "story_rejected",
]

T = TypeVar("T")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
DEFAULT_TIMEOUT: Final = 15.0

# What the customer orders in topi (``POST /_sim/orders``).
BUNDLE_ORDER: Final[dict[str, Any]] = {
    "seller_offer_reference": "DEMO-A-BUNDLE",
    "lines": [
        {
            "title": "ThinkPad X1 Carbon",
            "sku": "LAPTOP-X1",
            "quantity": 1,
            "contract_type": "rent",
            "duration": 24,
            "sublines": [
                {"title": "USB-C dock", "sku": "DOCK-USBC"},
                {"title": "65 W charger", "sku": "CHARGER-65W"},
            ],
        },
        {"title": "Wireless mouse", "sku": "MOUSE-W", "quantity": 2, "contract_type": "pay_now"},
    ],
}
REJECTED_ORDER: Final[dict[str, Any]] = {
    "seller_offer_reference": "DEMO-B-REJECT",
    "lines": [
        {"title": '27" monitor', "sku": "MONITOR-27", "contract_type": "rent", "duration": 12}
    ],
}
CANCELLED_ORDER: Final[dict[str, Any]] = {
    "seller_offer_reference": "DEMO-C-CANCEL",
    "lines": [{"title": "Smartphone", "sku": "PHONE-15", "contract_type": "rent", "duration": 12}],
}

#: Serial numbers of the bundle's units (laptop, dock, charger) for story A.
BUNDLE_SERIALS: Final = {"1.0": "SN-X1-0001", "1.1": "SN-DOCK-0001", "1.2": "SN-CHG-0001"}


@dataclass
class StoryResult:
    """What a story produced, for the feed printout and the tests."""

    label: str
    topi_id: str
    order_id: str
    commands: dict[str, str] = field(default_factory=dict)
    """What the WMS or the hub asked for -> command id."""


@dataclass
class Demo:
    """A running stack seen from both sides, with the checks the stories share."""

    stack: Stack
    hub: HubApi
    topi: TopiView
    say: Narrator
    timeout: float = DEFAULT_TIMEOUT
    labels: dict[str, str] = field(default_factory=dict)
    """Hub order id -> a short name for the feed printout."""

    @classmethod
    def attach(
        cls, stack: Stack, *, say: Narrator | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Demo:
        return cls(
            stack=stack,
            hub=HubApi(stack.hub_url, stack.api_key),
            topi=TopiView(stack.sim_url, stack.observer_token),
            say=say or Narrator(quiet=True),
            timeout=timeout,
        )

    def close(self) -> None:
        self.hub.close()
        self.topi.close()

    def wait(self, what: str, probe: Callable[[], T], timeout: float | None = None) -> T:
        return eventually(
            what,
            probe,
            timeout=timeout or self.timeout,
            alive=self.stack.check_alive,
            processes=self.stack.services,
        )

    # --- the customer ----------------------------------------------------------------

    def place_order(self, spec: dict[str, Any]) -> str:
        """The customer orders in topi; topi's order id."""
        topi_id: str = self.topi.control.create_order(**spec)["id"]
        return topi_id

    # --- checks on the hub -----------------------------------------------------------

    def hub_order(
        self,
        topi_id: str,
        *,
        status: str | None = None,
        channel_status: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait until the hub has topi's order (in ``status`` / ``channel_status``); the
        whole order as ``GET /api/v1/orders/{id}`` shows it."""
        wanted = ", ".join(
            f"{name} {value}"
            for name, value in (("status", status), ("channel_status", channel_status))
            if value
        )

        def probe() -> dict[str, Any]:
            found = self.hub.find_order(topi_id)
            if found is None:
                raise NotYet("the hub has no such order")
            order = self.hub.order(found["id"])
            if (status and order["status"] != status) or (
                channel_status and order["channel_status"] != channel_status
            ):
                raise NotYet(
                    f"status {order['status']}, channel_status {order['channel_status']}, "
                    f"failed commands {[c['last_error'] for c in order['failed_commands']]}"
                )
            return order

        what = f"the hub's order for topi {topi_id}" + (f" ({wanted})" if wanted else "")
        return self.wait(what, probe, timeout)

    def command_outcome(
        self,
        command_id: str,
        *,
        state: str = "succeeded",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait for the command's ``command.*`` feed event; it must say ``state`` (a
        timeout says where the order's pending commands are)."""
        order_id = self.hub.command_orders.get(command_id)

        def probe() -> dict[str, Any]:
            event = self.hub.command_event(command_id)
            if event is None:
                raise NotYet("no command event on the feed yet" + self._pending(order_id))
            return event

        event = self.wait(f"command {command_id} to finish", probe, timeout)
        if event["data"]["state"] != state:
            raise DemoFailure(
                f"command {command_id} ({event['data']['kind']}) ended {event['data']['state']}"
                f", expected {state}: {event['data'].get('error')}"
            )
        return event

    def _pending(self, order_id: str | None) -> str:
        if order_id is None:
            return ""
        pending = self.hub.order(order_id)["pending_commands"]
        keys = ("kind", "seq", "attempts", "last_error", "next_attempt_at", "held_by")
        shown = [{k: c[k] for k in keys} for c in pending]
        return f"; the order's pending commands: {shown}"

    def hub_command(self, order_id: str, kind: str, timeout: float | None = None) -> str:
        """Wait for a command the hub issued by itself (``acknowledge``) to succeed."""

        def probe() -> dict[str, Any]:
            for event in self.hub.events_for(order_id):
                if event["type"].startswith("command.") and event["data"]["kind"] == kind:
                    return event
            raise NotYet(f"no {kind} command event for the order")

        event = self.wait(f"the hub's {kind} command", probe, timeout)
        if event["type"] != "command.succeeded":
            raise DemoFailure(f"the hub's {kind} failed: {event['data'].get('error')}")
        command_id: str = event["data"]["command_id"]
        return command_id

    # --- checks on topi --------------------------------------------------------------

    def topi_order(self, topi_id: str, status: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until topi shows the order in ``status``; topi's whole order."""

        def probe() -> dict[str, Any]:
            order = self.topi.order(topi_id)
            if order["status"] != status:
                raise NotYet(f"topi status {order['status']}")
            return order

        return self.wait(f"topi to show order {topi_id} {status}", probe, timeout)

    def webhook_delivered(self, topi_id: str, status: str) -> dict[str, Any]:
        """Wait until the simulator delivered the order's ``status`` webhook to the hub."""

        def probe() -> dict[str, Any]:
            for record in self.topi.control.webhooks(topi_id):
                if record["status"] == status and record["delivered"]:
                    return record
            raise NotYet(f"webhooks: {self.topi.control.webhooks(topi_id)}")

        return self.wait(f"topi's {status} webhook for {topi_id} to reach the hub", probe)

    # --- steps shared by the stories -------------------------------------------------

    def receive(self, label: str, spec: dict[str, Any], what: str) -> StoryResult:
        """Steps 1 and 2 of every story: the customer orders, the hub receives the
        webhook and acknowledges the order to topi by itself."""
        say = self.say
        say.step(1, f"the customer orders in topi: {what}")
        topi_id = self.place_order(spec)
        say.check(f"topi order {topi_id} created; topi sends the order.created webhook")
        self.webhook_delivered(topi_id, "created")
        order = self.hub_order(topi_id, status="awaiting_acceptance")
        self.labels[order["id"]] = label
        lines = len(order["lines"])
        say.check(
            f"hub order {order['id']} received: status {order['status']}, "
            f"{lines} line{'s' if lines != 1 else ''}"
        )
        say.step(2, "the hub acknowledges the order to topi by itself (no WMS involved)")
        ack = self.hub_command(order["id"], "acknowledge")
        self.topi_order(topi_id, "acknowledged")
        say.check("topi shows the order acknowledged")
        return StoryResult(
            label=label, topi_id=topi_id, order_id=order["id"], commands={"acknowledge": ack}
        )


def _line_ids(order: dict[str, Any]) -> dict[str, str]:
    """topi line position ("1", "1.0", "1.1", "2"...) -> the hub's line id."""
    return {line["channel_line_id"]: line["id"] for line in order["lines"]}


def story_bundle(demo: Demo) -> StoryResult:
    """A: a bundle order, acknowledged, accepted and shipped in two parcels."""
    say = demo.say
    say.story("A", "a bundle order, accepted and shipped in two parcels")
    result = demo.receive(
        "A",
        BUNDLE_ORDER,
        "a rented laptop bundle (laptop + dock + charger, 24 months) and 2 bought mice",
    )
    order = demo.hub.order(result.order_id)
    lines = _line_ids(order)
    bundle = [line for line in order["lines"] if line["channel_line_id"].startswith("1.")]
    say.note(
        "hub lines: "
        + ", ".join(
            f"{line['channel_line_id']} {line['title']} x{line['quantity']}"
            + (" (serial number required)" if line["requires_serial_number"] else "")
            for line in order["lines"]
        )
    )
    if len(bundle) != 3 or not all(line["requires_serial_number"] for line in bundle):
        raise DemoFailure(f"expected 3 bundle units needing serial numbers, got {bundle}")

    say.step(3, "the WMS accepts the order (POST /api/v1/orders/{id}/accept)")
    receipt = demo.hub.command(result.order_id, "accept")
    result.commands["accept"] = receipt["command_id"]
    say.check(f"202: command {receipt['command_id']} queued, hub status {receipt['order_status']}")
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(result.topi_id, "confirmed")
    demo.hub_order(result.topi_id, status="ready_to_ship")
    say.check("command succeeded; topi shows confirmed; hub status ready_to_ship")

    say.step(4, "the WMS ships the 2 mice first (no serial numbers: they are bought)")
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "00340434161234567890",
            "tracking_url": "https://tracking.example/dhl/00340434161234567890",
            "items": [{"line_id": lines["2"], "quantity": 2}],
        },
    )
    result.commands["ship-part"] = receipt["command_id"]
    say.check(f"202: shipment command queued, hub status {receipt['order_status']}")
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(result.topi_id, "partially_fulfilled")
    demo.hub_order(result.topi_id, status="partially_shipped", channel_status="partially_fulfilled")
    say.check("topi shows partially_fulfilled (and said so by webhook); hub partially_shipped")

    say.step(
        5, "the WMS ships the bundle with serial numbers " + ", ".join(BUNDLE_SERIALS.values())
    )
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_url": "https://tracking.example/ups/1Z999AA10123456784",
            "items": [
                {"line_id": lines[line], "quantity": 1, "serial_numbers": [serial]}
                for line, serial in BUNDLE_SERIALS.items()
            ],
        },
    )
    result.commands["ship-rest"] = receipt["command_id"]
    say.check(f"202: shipment command queued, hub status {receipt['order_status']}")
    demo.command_outcome(receipt["command_id"])
    topi = demo.topi_order(result.topi_id, "completed")
    serials = sorted(a["serial_number"] for a in topi["assets"] if a.get("serial_number"))
    if serials != sorted(BUNDLE_SERIALS.values()):
        raise DemoFailure(f"topi has serial numbers {serials}, expected {BUNDLE_SERIALS}")
    if any(a["status"] != "shipped" for a in topi["assets"]):
        raise DemoFailure(f"topi has unshipped assets: {topi['assets']}")
    final = demo.hub_order(result.topi_id, status="shipped", channel_status="completed")
    say.check(f"topi shows completed, every asset shipped, serial numbers {', '.join(serials)}")
    say.check(f"hub status {final['status']}, {len(final['shipments'])} shipments")
    return result


def story_rejected(demo: Demo) -> StoryResult:
    """B: the WMS rejects an order."""
    say = demo.say
    say.story("B", "an order the warehouse rejects")
    result = demo.receive("B", REJECTED_ORDER, 'a rented 27" monitor')
    say.step(3, "the WMS rejects it: out of stock (POST /api/v1/orders/{id}/reject)")
    receipt = demo.hub.command(result.order_id, "reject", {"reason": "out_of_stock"})
    result.commands["reject"] = receipt["command_id"]
    say.check(f"202: command queued, hub status {receipt['order_status']}")
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(result.topi_id, "rejected")
    demo.hub_order(result.topi_id, status="rejected", channel_status="rejected")
    say.check("command succeeded; topi shows rejected (and said so by webhook); hub rejected")
    return result


def story_customer_cancel(demo: Demo) -> StoryResult:
    """C: the WMS may not cancel a topi order; the customer does, in topi."""
    say = demo.say
    say.story("C", "an order the customer cancels in topi")
    result = demo.receive("C", CANCELLED_ORDER, "a rented smartphone")
    say.step(3, "the WMS accepts it")
    receipt = demo.hub.command(result.order_id, "accept")
    result.commands["accept"] = receipt["command_id"]
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(result.topi_id, "confirmed")
    say.check("command succeeded; topi shows confirmed")

    say.step(4, "the WMS tries to cancel it (POST /api/v1/orders/{id}/cancellations)")
    resp = demo.hub.post(f"/orders/{result.order_id}/cancellations", {"reason": "out_of_stock"})
    problem = resp.json() if resp.headers.get("content-type", "").endswith("json") else {}
    if resp.status_code != 409 or problem.get("rule") != "seller-cancellation-not-supported":
        raise DemoFailure(
            f"expected 409 seller-cancellation-not-supported, got {resp.status_code}: {resp.text}"
        )
    if "topi has no seller cancellation" not in problem.get("detail", ""):
        raise DemoFailure(f"the 409 does not explain itself: {problem}")
    say.check(f"409 {resp.headers.get('content-type')}, type {problem['type']}")
    say.note(f"detail: {problem['detail']}")

    say.step(5, "the customer cancels the order in topi (POST /_sim/orders/{id}/cancel)")
    demo.topi.control.cancel(result.topi_id)
    demo.webhook_delivered(result.topi_id, "canceled")
    say.check("topi shows canceled and sends the order.canceled webhook")
    order = demo.hub_order(result.topi_id, status="cancelled", channel_status="canceled")
    initiators = [c["initiator"] for c in order["cancellations"]]
    if initiators != ["customer"]:
        raise DemoFailure(
            f"expected one cancellation by the customer, got {order['cancellations']}"
        )
    cancellation = order["cancellations"][0]
    say.check(
        f"hub status cancelled: initiator {cancellation['initiator']}, "
        f"reason {cancellation['reason']}, state {cancellation['state']}"
    )
    return result


STORIES: Final = (story_bundle, story_rejected, story_customer_cancel)


def run_stories(demo: Demo) -> list[StoryResult]:
    return [story(demo) for story in STORIES]


# --------------------------------------------------------------------------
# The feed
# --------------------------------------------------------------------------

_REACHED: Final = {
    "order.ready_to_ship": "ready_to_ship",
    "order.shipped": "shipped",
    "order.delivered": "delivered",
    "order.rejected": "rejected",
    "order.cancelled": "cancelled",
}


def _units(count: int) -> str:
    return f"{count} unit" if count == 1 else f"{count} units"


def describe_event(event: dict[str, Any]) -> tuple[str, str]:
    """(status column, detail column) of a feed event."""
    data = event["data"]
    type_ = event["type"]
    if type_.startswith("command."):
        attempts = data.get("attempts")
        detail = f"{data.get('kind')} (attempt {attempts})" if attempts else str(data.get("kind"))
        if data.get("error") and type_ == "command.failed":
            detail += f": {data['error']}"
        return data.get("state", ""), detail
    if type_ == "order.received":
        return data.get("status", ""), f"topi {data.get('channel_order_id')}"
    units = sum(int(i.get("quantity", 0)) for i in data.get("lines") or ())
    if type_ in ("order.cancelled", "order.lines_cancelled", "order.return_requested"):
        return _REACHED.get(type_, ""), f"by the {data.get('initiator')} ({data.get('reason')})"
    if type_ in ("order.rejected", "order.lines_rejected"):
        return _REACHED.get(type_, ""), f"{_units(units)}, reason {data.get('reason')}"
    if type_ == "order.accepted":
        return "", _units(units)
    if type_ in _REACHED:
        previous = data.get("previous_status")
        return _REACHED[type_], f"from {previous}" if previous else ""
    if type_ == "order.updated":
        return "", f"topi status {data.get('channel_status')}"
    if type_ == "order.shipment_recorded":
        shipped = sum(int(i.get("quantity", 0)) for i in data.get("items") or ())
        return "", f"{_units(shipped)}, {data.get('carrier')} {data.get('tracking_number')}"
    return "", ""


def print_feed(demo: Demo) -> list[dict[str, Any]]:
    """Print every feed event in order: seq, type, order, status, detail."""
    events = demo.hub.feed()
    say = demo.say
    say.title(f"The hub's feed (GET /api/v1/feed): {len(events)} events")
    say.line(f"{'seq':>4}  {'type':<25} {'order':<5} {'status':<20} detail")
    for event in events:
        order = demo.labels.get(event["order_id"] or "", (event["order_id"] or "-")[:8])
        status, detail = describe_event(event)
        say.line(f"{event['seq']:>4}  {event['type']:<25} {order:<5} {status:<20} {detail}")
    return events


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orderhub_topi.demo",
        description="Run the topi simulator and the hub as real processes and play three "
        "order stories through the hub's API and the simulator's control API.",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each step may take before the demo fails (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--database-url",
        help="run on this database instead of SQLite (e.g. postgresql+asyncpg://...); "
        "it is migrated first",
    )
    p.add_argument(
        "--broker-url",
        help="production mode: redis://... or amqp://...; runs orderhub worker and "
        "orderhub scheduler processes too",
    )
    p.add_argument(
        "--pace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="pause before each step, for a live audience (default 0)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the work directory (config, database, logs)"
    )
    p.add_argument(
        "--hold",
        action="store_true",
        help="after the stories, keep everything running until Ctrl-C (to look around)",
    )
    return p


STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM interrupt the demo, which then stops its processes,
    whatever it inherited: a shell starts background jobs (``make demo &``, nohup, CI
    steps) with SIGINT ignored, and Python then leaves it ignored. The handlers from
    before are back afterwards (``main`` may run inside another program, a test)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _stop_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    say = Narrator(pace=args.pace)
    options = StackOptions(database_url=args.database_url, broker_url=args.broker_url)
    started = time.monotonic()
    with temporary_workdir(keep=args.keep) as workdir:
        stack = Stack(workdir, options)
        demo: Demo | None = None
        code = EXIT_OK
        try:
            say.title(f"orderhub x topi demo ({options.describe()})")
            say.line(f"work directory {workdir}" + ("" if args.keep else " (removed at the end)"))
            stack.start()
            for process in stack.processes:
                if process.running():
                    say.line(f"  started {process.name:<10} pid {process.pid}")
            say.line(f"  topi simulator  {stack.sim_url}  (control API under /_sim)")
            say.line(f"  orderhub        {stack.hub_url}  (/api/v1, webhooks, /readyz: ready)")
            demo = Demo.attach(stack, say=say, timeout=args.timeout)
            run_stories(demo)
            print_feed(demo)
            say.line()
            say.line(f"All three stories checked in {time.monotonic() - started:.1f} s.")
            if args.hold:
                say.line(
                    f"\nHolding (Ctrl-C to stop). Try:\n  curl -H 'Authorization: Bearer "
                    f"{stack.api_key}' {stack.hub_url}/api/v1/orders"
                )
                while True:
                    stack.check_alive()
                    time.sleep(0.5)
        except DemoFailure as exc:
            say.line()
            say.line(f"DEMO FAILED: {exc}")  # with the logs of what it waited for
            for process in stack.processes:
                if process not in exc.processes:
                    say.line(process.log_report())
            code = EXIT_FAILED
        except KeyboardInterrupt:
            say.line()
            say.line("interrupted")
            code = EXIT_INTERRUPTED
        finally:
            if demo is not None:
                demo.close()
            for sig in STOP_SIGNALS:  # let the shutdown finish (main restores them)
                signal.signal(sig, signal.SIG_IGN)
            stopped = stack.stop()
            if stopped:
                say.line(
                    "stopped: " + ", ".join(f"{p.name} ({p.describe_exit()})" for p in stopped)
                )
        unclean = [p.name for p in stopped if p.name != "migrate" and not p.stopped_cleanly]
        if unclean and code == EXIT_OK:
            say.line(f"DEMO FAILED: did not stop cleanly: {', '.join(unclean)}")
            code = EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
