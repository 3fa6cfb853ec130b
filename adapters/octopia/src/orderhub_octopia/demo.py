"""``make demo-octopia`` / ``python -m orderhub_octopia.demo``: Octopia (Cdiscount) and the
hub, end to end, watchable.

Starts the Octopia simulator and ``orderhub serve`` (embedded mode: SQLite in a temporary
directory, in-process queue and scheduler) as real processes on free loopback ports, then
plays two stories. Octopia sends no webhooks: the hub polls its order list every second.
The warehouse (WMS) acts only through the hub's HTTP API; the marketplace and the customer
act through the simulator's ``/_sim`` control API, which also shows Octopia's record of
each order. Every expected state is checked; a step that does not happen within the
timeout ends the demo with exit code 1 and says which step and what it saw.

A. A Cdiscount order is polled in (WaitingAcceptance); the WMS accepts it (Accepted);
   the marketplace clears the payment (InPreparation: the hub says ready_to_ship); the WMS
   ships it in one parcel, as Cdiscount requires (Shipped); the marketplace reports it
   delivered (Delivered).
B. A second Cdiscount order, accepted and paid; the customer asks to cancel it (its lines
   go to CancelRequest: the hub shows the open request); the WMS accepts the request, the
   hub sends the cancellation to Octopia (Cancelled; the hub: cancelled by the customer).

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

from orderhub.testing.demo import problem_text
from orderhub_octopia.demo_support import (
    DemoFailure,
    HubApi,
    Narrator,
    NotYet,
    Stack,
    StackOptions,
    eventually,
    temporary_workdir,
)
from orderhub_octopia.simulator import SimulatorControl

__all__ = [
    "CANCELLED_ORDER",
    "DELIVERED_ORDER",
    "Demo",
    "StoryResult",
    "describe_event",
    "main",
    "print_feed",
    "run_stories",
    "story_customer_cancels",
    "story_delivered",
]

T = TypeVar("T")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
DEFAULT_TIMEOUT: Final = 20.0

# What the customer orders on Cdiscount (``POST /_sim/orders``).
DELIVERED_ORDER: Final[dict[str, Any]] = {
    "sales_channel": "CDISFR",
    "lines": [
        {"title": "Robot vacuum cleaner", "sku": "VAC-R2", "price": 249.0},
        {"title": "Spare brushes (x2)", "sku": "VAC-BRUSH", "quantity": 2, "price": 12.5},
    ],
}
CANCELLED_ORDER: Final[dict[str, Any]] = {
    "sales_channel": "CDISFR",
    "lines": [{"title": "Espresso machine", "sku": "ESPRESSO-1", "price": 189.9}],
}
CARRIER: Final = "Colissimo"


@dataclass
class StoryResult:
    """What a story produced, for the feed printout and the tests."""

    label: str
    octopia_id: str
    order_id: str
    commands: dict[str, str] = field(default_factory=dict)
    """What the WMS asked for -> command id."""


@dataclass
class Demo:
    """A running stack seen from both sides, with the checks the stories share."""

    stack: Stack
    hub: HubApi
    octopia: SimulatorControl
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
            octopia=SimulatorControl(stack.sim_url),
            say=say or Narrator(quiet=True),
            timeout=timeout,
        )

    def close(self) -> None:
        self.hub.close()
        self.octopia.close()

    def wait(self, what: str, probe: Callable[[], T], timeout: float | None = None) -> T:
        return eventually(
            what,
            probe,
            timeout=timeout or self.timeout,
            alive=self.stack.check_alive,
            processes=self.stack.services,
        )

    # --- the marketplace and the customer ---------------------------------------------

    def place_order(self, spec: dict[str, Any]) -> str:
        """The customer orders; Octopia's order id."""
        order_id: str = self.octopia.create_order(**spec)["orderId"]
        return order_id

    def octopia_order(
        self, octopia_id: str, status: str, timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait until Octopia shows the order in ``status``; Octopia's whole order."""

        def probe() -> dict[str, Any]:
            order = self.octopia.order(octopia_id)
            if order["status"] != status:
                raise NotYet(f"Octopia status {order['status']}")
            return order

        return self.wait(f"Octopia to show order {octopia_id} {status}", probe, timeout)

    def writes(self, octopia_id: str) -> list[str]:
        """The hub's calls that change this order at Octopia: ``"POST <path> <status>"``."""
        return [
            f"{c['method']} {c['path']} {c['status_code']}"
            for c in self.octopia.calls(method="POST")
            if octopia_id in c["path"] or octopia_id in c["body"]
        ]

    # --- checks on the hub -------------------------------------------------------------

    def hub_order(
        self,
        octopia_id: str,
        *,
        status: str | None = None,
        channel_status: str | None = None,
        check: Callable[[dict[str, Any]], str | None] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait until the hub has Octopia's order (in ``status`` / ``channel_status``, and
        ``check`` returns None: else it says what is missing); the whole order as
        ``GET /api/v1/orders/{id}`` shows it."""
        wanted = ", ".join(
            f"{name} {value}"
            for name, value in (("status", status), ("channel_status", channel_status))
            if value
        )

        def probe() -> dict[str, Any]:
            found = self.hub.find_order(octopia_id)
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
            missing = check(order) if check is not None else None
            if missing:
                raise NotYet(missing)
            return order

        what = f"the hub's order for Octopia {octopia_id}" + (f" ({wanted})" if wanted else "")
        return self.wait(what, probe, timeout)

    def command_outcome(
        self, command_id: str, *, state: str = "succeeded", timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait for the command's ``command.*`` feed event; it must say ``state``."""
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
        shown = [{k: c.get(k) for k in keys} for c in pending]
        return f"; the order's pending commands: {shown}"

    def refused(self, order_id: str, action: str, body: Any, *, status: int, rule: str) -> str:
        """A command the hub must refuse before anything is queued; the problem's detail."""
        resp = self.hub.post(f"/orders/{order_id}/{action}", body)
        problem = resp.json() if resp.headers.get("content-type", "").endswith("json") else {}
        if resp.status_code != status or problem.get("rule") != rule:
            raise DemoFailure(
                f"POST /api/v1/orders/{order_id}/{action}: expected {status} {rule}, got "
                f"{resp.status_code}: {problem_text(resp)}"
            )
        detail: str = problem.get("detail", "")
        return detail

    # --- steps shared by the stories ---------------------------------------------------

    def receive(self, label: str, spec: dict[str, Any], what: str) -> StoryResult:
        """Step 1 of every story: the customer orders, the hub's poll brings it in."""
        say = self.say
        say.step(1, f"a customer orders on Cdiscount: {what}")
        octopia_id = self.place_order(spec)
        say.check(f"Octopia order {octopia_id} is WaitingAcceptance (Octopia sends no webhook)")
        order = self.hub_order(
            octopia_id, status="awaiting_acceptance", channel_status="WaitingAcceptance"
        )
        self.labels[order["id"]] = label
        lines = len(order["lines"])
        say.check(
            f"the hub's poll found it: order {order['id']}, status {order['status']}, "
            f"{lines} line{'s' if lines != 1 else ''}, sales channel "
            f"{order['extras'].get('sales_channel')}, ship by {order['ship_by']}"
        )
        return StoryResult(label=label, octopia_id=octopia_id, order_id=order["id"])

    def accept_and_pay(self, result: StoryResult) -> dict[str, Any]:
        """Steps 2 and 3: the WMS accepts; the marketplace clears the payment."""
        say = self.say
        say.step(2, "the WMS accepts it (POST /api/v1/orders/{id}/accept)")
        receipt = self.hub.command(result.order_id, "accept")
        result.commands["accept"] = receipt["command_id"]
        say.check(f"202: command {receipt['command_id']} queued")
        self.command_outcome(receipt["command_id"])
        self.octopia_order(result.octopia_id, "Accepted")
        self.hub_order(result.octopia_id, status="accepted", channel_status="Accepted")
        say.check("approval sent; Octopia shows Accepted; the hub: accepted, not yet to ship")

        say.step(3, "the marketplace clears the customer's payment")
        self.octopia.move(result.octopia_id, "pay")
        say.check("Octopia shows InPreparation")
        order = self.hub_order(
            result.octopia_id, status="ready_to_ship", channel_status="InPreparation"
        )
        say.check("the next poll brought it: the hub says ready_to_ship")
        return order


def seller_items(order: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line the seller ships (supply mode Seller), whole."""
    return [
        {"line_id": line["id"], "quantity": line["quantity"] - line["cancelled"]}
        for line in order["lines"]
        if line["extras"].get("supply_mode") == "Seller"
    ]


def story_delivered(demo: Demo) -> StoryResult:
    """A: polled in, accepted, paid, shipped in one parcel, delivered by the marketplace."""
    say = demo.say
    say.story("A", "a Cdiscount order: polled in, accepted, shipped, delivered")
    result = demo.receive("A", DELIVERED_ORDER, "a robot vacuum cleaner and 2 spare brushes")
    order = demo.accept_and_pay(result)

    tracking = f"6A{result.octopia_id}FR"
    say.step(4, f"the WMS ships both lines in one parcel ({CARRIER} {tracking})")
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": CARRIER,
            "tracking_number": tracking,
            "tracking_url": f"https://track.example/colissimo/{tracking}",
            "items": seller_items(order),
        },
    )
    result.commands["ship"] = receipt["command_id"]
    say.check(f"202: shipment command queued, hub status {receipt['order_status']}")
    demo.command_outcome(receipt["command_id"])
    shipped = demo.octopia_order(result.octopia_id, "Shipped")
    parcels = {p["parcelNumber"] for line in shipped["lines"] for p in line["parcels"]}
    if parcels != {tracking}:
        raise DemoFailure(f"Octopia has parcels {parcels}, expected one: {tracking}")
    demo.hub_order(result.octopia_id, status="shipped", channel_status="Shipped")
    say.check(f"Octopia shows Shipped, one parcel {tracking} on every line; the hub: shipped")

    say.step(5, "the carrier delivers; the marketplace reports it (the seller does not)")
    demo.octopia.move(result.octopia_id, "deliver")
    final = demo.hub_order(result.octopia_id, status="delivered", channel_status="Delivered")
    delivered = sum(line["delivered"] for line in final["lines"])
    say.check(f"the next poll brought it: the hub says delivered ({delivered} units)")
    return result


def story_customer_cancels(demo: Demo) -> StoryResult:
    """B: the customer asks to cancel a paid order; the WMS accepts the request."""
    say = demo.say
    say.story("B", "a Cdiscount order the customer cancels")
    result = demo.receive("B", CANCELLED_ORDER, "an espresso machine")
    demo.accept_and_pay(result)

    say.step(4, "the customer asks Cdiscount to cancel the order")
    (request,) = demo.octopia.move(result.octopia_id, "cancel-request")
    say.check(f"Octopia: request {request['cancellationRequestId']}, the line in CancelRequest")

    def open_request(order: dict[str, Any]) -> str | None:
        if order["cancellation_requested"] and any(
            c["state"] == "requested" and c["initiator"] == "customer"
            for c in order["cancellations"]
        ):
            return None
        return f"no open request by the customer yet: {order['cancellations']}"

    order = demo.hub_order(result.octopia_id, status="ready_to_ship", check=open_request)
    (asked,) = [c for c in order["cancellations"] if c["state"] == "requested"]
    say.check(
        f"the hub shows the open request {asked['id']} (initiator {asked['initiator']}, "
        f"reason {asked['reason']}); the order stays ready_to_ship until it is decided"
    )

    say.step(5, "the WMS accepts the customer's request (POST .../cancellations, decision)")
    receipt = demo.hub.command(
        result.order_id, "cancellations", {"decision": "accept", "cancellation_id": asked["id"]}
    )
    result.commands["decide"] = receipt["command_id"]
    demo.command_outcome(receipt["command_id"])
    cancelled = demo.octopia_order(result.octopia_id, "Cancelled")
    states = [d["status"] for d in cancelled["cancellationDetails"]]
    if states != ["Accepted"]:
        raise DemoFailure(f"Octopia's cancellation requests are {states}, expected [Accepted]")
    say.check("the hub sent the cancellation; Octopia: Cancelled, the request Accepted")

    def by_the_customer(order: dict[str, Any]) -> str | None:
        states = [(c["initiator"], c["state"]) for c in order["cancellations"]]
        return None if states == [("customer", "accepted")] else f"cancellations {states}"

    final = demo.hub_order(
        result.octopia_id, status="cancelled", channel_status="Cancelled", check=by_the_customer
    )
    (cancellation,) = final["cancellations"]
    say.check(
        f"the hub says cancelled: initiator {cancellation['initiator']}, reason "
        f"{cancellation['reason']}, request {cancellation['state']}"
    )
    return result


STORIES: Final = (story_delivered, story_customer_cancels)


def run_stories(demo: Demo) -> list[StoryResult]:
    return [story(demo) for story in STORIES]


# --------------------------------------------------------------------------
# The feed
# --------------------------------------------------------------------------

_REACHED: Final = {
    "order.accepted": "accepted",
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
        return data.get("status", ""), f"Octopia {data.get('channel_order_id')}"
    if type_.startswith("fulfilment."):
        return "", f"fulfilled by the {data.get('fulfilled_by')}"
    units = sum(int(i.get("quantity", 0)) for i in data.get("lines") or ())
    if type_ in ("order.cancelled", "order.lines_cancelled", "order.cancellation_requested"):
        return _REACHED.get(type_, ""), f"by the {data.get('initiator')} ({data.get('reason')})"
    if type_ == "order.accepted":
        return "accepted", _units(units)
    if type_ in _REACHED:
        previous = data.get("previous_status")
        return _REACHED[type_], f"from {previous}" if previous else ""
    if type_ == "order.updated":
        return "", f"Octopia status {data.get('channel_status')}"
    if type_ == "order.shipment_recorded":
        shipped = sum(int(i.get("quantity", 0)) for i in data.get("items") or ())
        return "", f"{_units(shipped)}, {data.get('carrier')} {data.get('tracking_number')}"
    return "", ""


def print_feed(demo: Demo) -> list[dict[str, Any]]:
    """Print every feed event in order: seq, type, order, status, detail."""
    events = demo.hub.feed()
    say = demo.say
    say.title(f"The hub's feed (GET /api/v1/feed): {len(events)} events")
    say.line(f"{'seq':>4}  {'type':<30} {'order':<5} {'status':<20} detail")
    for event in events:
        order = demo.labels.get(event["order_id"] or "", (event["order_id"] or "-")[:8])
        status, detail = describe_event(event)
        say.line(f"{event['seq']:>4}  {event['type']:<30} {order:<5} {status:<20} {detail}")
    return events


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orderhub_octopia.demo",
        description="Run the Octopia simulator and the hub as real processes and play two "
        "Cdiscount order stories through the hub's API and the simulator's control API.",
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
    whatever it inherited (a shell starts background jobs with SIGINT ignored). The
    handlers from before are back afterwards (``main`` may run inside a test)."""
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
    stopped: list[Any] = []
    with temporary_workdir(keep=args.keep) as workdir:
        stack = Stack(workdir, options)
        demo: Demo | None = None
        code = EXIT_OK
        try:
            say.title(f"orderhub x Octopia (Cdiscount) demo ({options.describe()})")
            say.line(f"work directory {workdir}" + ("" if args.keep else " (removed at the end)"))
            stack.start()
            for process in stack.processes:
                if process.running():
                    say.line(f"  started {process.name:<10} pid {process.pid}")
            say.line(f"  Octopia simulator  {stack.sim_url}  (control API under /_sim)")
            say.line(
                f"  orderhub           {stack.hub_url}  (/api/v1; polls Octopia every "
                f"{options.poll_interval_seconds:g} s)"
            )
            demo = Demo.attach(stack, say=say, timeout=args.timeout)
            run_stories(demo)
            print_feed(demo)
            say.line()
            say.line(f"Both stories checked in {time.monotonic() - started:.1f} s.")
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
