"""``make demo-spresso`` / ``python -m orderhub_spresso.demo``: Spresso and the hub, end
to end, watchable.

Starts the Spresso simulator and ``orderhub serve`` (embedded mode: SQLite in a temporary
directory, in-process queue and scheduler) as real processes on free loopback ports,
registers the two webhooks with ``orderhub channels setup spresso`` (one URL per event),
then plays three stories. The warehouse (WMS) acts only through the hub's HTTP API; the
customer and Foxtrot (Spresso's admin console) only through the simulator's ``/_sim``
control API, which also shows Spresso's side of every order: its fulfilments, parcels and
what it charged. Every expected state is checked; a step that does not happen within the
timeout ends the demo with exit code 1 and says which step and what it saw.

A. Beans and a mug in two fulfilments (the beans in both), shipped in three parcels:
   each fulfilment goes ``in_transit`` after its own parcels, once, with what shipped;
   Spresso charges at settlement; the WMS then confirms delivery.
B. A short ship: one bag of two ships and the WMS closes the fulfilment; Spresso charges
   one bag, the other is cancelled ``out_of_stock`` by the seller.
C. The WMS may not cancel (409, and what to do instead); Foxtrot cancels the order and
   the hub follows (``order_cancelled``, initiator channel).

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
from orderhub_spresso.demo_support import (
    DemoFailure,
    HubApi,
    Narrator,
    NotYet,
    SpressoView,
    Stack,
    StackOptions,
    eventually,
    temporary_workdir,
)

__all__ = [
    "BEANS_AND_MUG",
    "TWO_BAGS",
    "Demo",
    "StoryResult",
    "main",
    "print_feed",
    "run_stories",
    "story_cancelled_in_foxtrot",
    "story_short_ship",
    "story_three_parcels",
]

T = TypeVar("T")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
DEFAULT_TIMEOUT: Final = 20.0
HOLD_SECONDS: Final = 3600.0

BEANS_PRICE: Final = 2400
MUG_PRICE: Final = 1200
#: What the customer orders (``POST /_sim/orders``): the beans in both fulfilments.
BEANS_AND_MUG: Final[dict[str, Any]] = {
    "variants": [
        {"sku": "BEANS-1KG", "name": "Espresso beans 1 kg", "upc": "012345678905",
         "price": BEANS_PRICE},
        {"sku": "MUG-DW", "name": "Double-wall mug", "price": MUG_PRICE},
    ],
    "fulfillments": [
        [{"variant": 0, "quantity": 2}, {"variant": 1, "quantity": 1}],
        [{"variant": 0, "quantity": 1}],
    ],
}  # fmt: skip
TWO_BAGS: Final[dict[str, Any]] = {
    "variants": [{"sku": "BEANS-1KG", "name": "Espresso beans 1 kg", "price": BEANS_PRICE}],
    "fulfillments": [[{"variant": 0, "quantity": 2}]],
}


@dataclass
class StoryResult:
    """What a story produced, for the feed printout and the tests."""

    label: str
    spresso_id: str
    order_id: str
    commands: dict[str, str] = field(default_factory=dict)


@dataclass
class Demo:
    """A running stack seen from both sides, with the checks the stories share."""

    stack: Stack
    hub: HubApi
    spresso: SpressoView
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
            spresso=SpressoView(stack.sim_url),
            say=say or Narrator(quiet=True),
            timeout=timeout,
        )

    def close(self) -> None:
        self.hub.close()
        self.spresso.close()

    def wait(self, what: str, probe: Callable[[], T], timeout: float | None = None) -> T:
        return eventually(
            what,
            probe,
            timeout=timeout or self.timeout,
            alive=self.stack.check_alive,
            processes=self.stack.services,
        )

    # --- the hub -----------------------------------------------------------------------

    def hub_order(
        self,
        spresso_id: str,
        *,
        status: str | None = None,
        channel_status: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait until the hub has Spresso's order (in ``status`` / ``channel_status``)."""

        def probe() -> dict[str, Any]:
            found = self.hub.find_order(spresso_id)
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

        wanted = ", ".join(
            f"{k} {v}" for k, v in (("status", status), ("channel", channel_status)) if v
        )
        return self.wait(f"the hub's order for Spresso {spresso_id} ({wanted})", probe, timeout)

    def command_outcome(
        self, command_id: str, *, state: str = "succeeded", timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait for the command's ``command.*`` feed event; it must say ``state``."""

        def probe() -> dict[str, Any]:
            event = self.hub.command_event(command_id)
            if event is None:
                order_id = self.hub.command_orders.get(command_id)
                pending = self.hub.order(order_id)["pending_commands"] if order_id else []
                raise NotYet(f"no command event yet; pending {pending}")
            return event

        event = self.wait(f"command {command_id} to finish", probe, timeout)
        if event["data"]["state"] != state:
            raise DemoFailure(
                f"command {command_id} ({event['data']['kind']}) ended {event['data']['state']}"
                f", expected {state}: {event['data'].get('error')}"
            )
        return event

    def hub_commands(self, order_id: str, kind: str) -> list[dict[str, Any]]:
        """The order's ``command.*`` events of one kind, in feed order."""
        return [
            e
            for e in self.hub.events_for(order_id)
            if e["type"].startswith("command.") and e["data"].get("kind") == kind
        ]

    # --- Spresso -----------------------------------------------------------------------

    def place(self, label: str, spec: dict[str, Any], what: str) -> StoryResult:
        """Step 1 of every story: the customer orders and pays; after the grace period
        Spresso sends ``order_fulfillable`` and the hub has the order, ready to ship."""
        say = self.say
        say.step(1, f"the customer orders in Spresso and pays: {what}")
        spresso_id: str = self.spresso.control.place_order(spec)["id"]
        say.check(f"Spresso order {spresso_id} queued for its grace period")
        self.webhook_delivered(spresso_id, "order_fulfillable")
        order = self.hub_order(spresso_id, status="ready_to_ship")
        self.labels[order["id"]] = label
        say.check(
            f"order_fulfillable signed and acknowledged 200; hub order {order['id']} "
            f"(Spresso order no {order['order_number']}) ready_to_ship: "
            f"{_count(len(order['lines']), 'line')} in "
            f"{_count(len(order['fulfilments']), 'fulfilment')}"
        )
        return StoryResult(label=label, spresso_id=spresso_id, order_id=order["id"])

    def webhook_delivered(self, spresso_id: str, event: str) -> dict[str, Any]:
        """Wait until the simulator delivered the order's ``event`` webhook (200)."""

        def probe() -> dict[str, Any]:
            records = self.spresso.control.webhooks(spresso_id)
            for record in records:
                if record["event"] == event and record["delivered"]:
                    return record
            raise NotYet(f"webhooks: {records}")

        return self.wait(f"Spresso's {event} webhook for {spresso_id} to reach the hub", probe)

    def fulfilment(
        self, spresso_id: str, index: int, status: str, timeout: float | None = None
    ) -> dict[str, Any]:
        """Wait until Spresso shows the order's ``index``-th fulfilment in ``status``."""

        def probe() -> dict[str, Any]:
            found: dict[str, Any] = self.spresso.order(spresso_id)["fulfillments"][index]
            if found["status"] != status:
                raise NotYet(f"fulfilment {found['id']} is {found['status']}")
            return found

        return self.wait(f"Spresso's fulfilment {index + 1} to be {status}", probe, timeout)

    def ship(
        self,
        result: StoryResult,
        fulfilment: int,
        items: Sequence[tuple[str, int]],
        tracking: str,
        *,
        carrier: str = "UPS",
        final: bool = False,
    ) -> dict[str, Any]:
        """The WMS records a parcel of one fulfilment: ``items`` (SKU, quantity)."""
        order = self.hub.order(result.order_id)
        target = order["fulfilments"][fulfilment]["id"]
        lines = {
            line["sku"]: line["id"] for line in order["lines"] if line["fulfilment_id"] == target
        }
        receipt = self.hub.command(
            result.order_id,
            "shipments",
            {
                "fulfilment_id": target,
                "carrier": carrier,
                "tracking_number": tracking,
                "tracking_url": f"https://tracking.example/{carrier.lower()}/{tracking}",
                "items": [{"line_id": lines[sku], "quantity": q} for sku, q in items],
                "final": final,
            },
        )
        result.commands[tracking] = receipt["command_id"]
        return receipt


def _count(number: int, what: str) -> str:
    return f"{number} {what}" if number == 1 else f"{number} {what}s"


def _charged(demo: Demo, spresso_id: str, expected: int) -> dict[str, Any]:
    settlement: dict[str, Any] = demo.spresso.order(spresso_id)["_settlement"]
    if settlement["charged"] != expected:
        raise DemoFailure(f"Spresso charged {settlement}, expected {expected} cents")
    return settlement


def _fulfilled(fulfilment: dict[str, Any]) -> dict[str, int]:
    """Variant id -> the quantity Spresso settled for it."""
    return {v["variant"]: v.get("fulfilledQuantity", 0) for v in fulfilment["fulfillmentVariants"]}


def _by_sku(demo: Demo, spresso_id: str, fulfilled: dict[str, int]) -> str:
    skus = {
        v["variant"]["id"]: v["variant"].get("sku")
        for v in demo.spresso.order(spresso_id)["orderVariants"]
    }
    return ", ".join(f"{skus.get(k, k)} x{q}" for k, q in fulfilled.items())


def story_three_parcels(demo: Demo) -> StoryResult:
    """A: two fulfilments, three parcels, the beans in both; in_transit, then delivered."""
    say = demo.say
    say.story("A", "beans and a mug in two fulfilments, shipped in three parcels")
    result = demo.place(
        "A", BEANS_AND_MUG, "2 bags of beans + a mug (fulfilment 1), 1 bag (fulfilment 2)"
    )
    f1, f2 = demo.spresso.fulfilment_ids(result.spresso_id)

    say.step(2, "the WMS ships parcel 1: one bag from fulfilment 1 (UPS 1ZDEMO0001)")
    receipt = demo.ship(result, 0, [("BEANS-1KG", 1)], "1ZDEMO0001")
    demo.command_outcome(receipt["command_id"])
    demo.hub_order(result.spresso_id, status="partially_shipped")
    still = demo.spresso.order(result.spresso_id)["fulfillments"][0]["status"]
    if still != "order_placed" or demo.spresso.status_calls(f1):
        raise DemoFailure(f"fulfilment 1 moved before all its parcels left: {still}")
    say.check("Spresso has the parcel; fulfilment 1 is not in_transit yet (a bag and the mug wait)")

    say.step(3, "parcel 2: the other bag and the mug (UPS 1ZDEMO0002): fulfilment 1 is done")
    receipt = demo.ship(result, 0, [("BEANS-1KG", 1), ("MUG-DW", 1)], "1ZDEMO0002")
    demo.command_outcome(receipt["command_id"])
    shown = demo.fulfilment(result.spresso_id, 0, "in_transit")
    fulfilled = _by_sku(demo, result.spresso_id, _fulfilled(shown))
    say.check(f"Spresso: fulfilment 1 in_transit (sent once, after its parcels): {fulfilled}")

    say.step(4, "parcel 3: one bag from fulfilment 2 (DHL JDDEMO0003)")
    receipt = demo.ship(result, 1, [("BEANS-1KG", 1)], "JDDEMO0003", carrier="DHL")
    demo.command_outcome(receipt["command_id"])
    demo.fulfilment(result.spresso_id, 1, "in_transit")
    order = demo.hub_order(result.spresso_id, status="shipped", channel_status="in_transit")
    for fid in (f1, f2):
        last_parcel = max(c["seq"] for c in demo.spresso.shipment_calls(fid))
        (in_transit,) = demo.spresso.status_calls(fid, "in_transit")
        if in_transit["seq"] < last_parcel:
            raise DemoFailure(f"in_transit of {fid} before its last parcel")
    settlement = _charged(demo, result.spresso_id, 3 * BEANS_PRICE + MUG_PRICE)
    say.check(
        f"each fulfilment in_transit once, after its parcels; hub {order['status']} with "
        f"{len(order['shipments'])} shipments; Spresso charged {settlement['charged'] / 100:.2f}"
    )

    say.step(5, "the carrier delivers; the WMS confirms (POST /api/v1/orders/{id}/deliveries)")
    receipt = demo.hub.command(result.order_id, "deliveries", {})
    demo.command_outcome(receipt["command_id"])
    demo.fulfilment(result.spresso_id, 0, "delivered")
    demo.fulfilment(result.spresso_id, 1, "delivered")
    demo.hub_order(result.spresso_id, status="delivered", channel_status="delivered")
    say.check("Spresso shows both fulfilments delivered; the hub too (its answer recorded)")
    return result


def story_short_ship(demo: Demo) -> StoryResult:
    """B: one bag of two ships and the fulfilment is closed short."""
    say = demo.say
    say.story("B", "a short ship: one bag of two")
    result = demo.place("B", TWO_BAGS, "2 bags of beans")
    say.step(2, "only one bag is in stock: the WMS ships it and closes the fulfilment (final)")
    receipt = demo.ship(result, 0, [("BEANS-1KG", 1)], "1ZDEMO0010", final=True)
    demo.command_outcome(receipt["command_id"])
    shown = demo.fulfilment(result.spresso_id, 0, "in_transit")
    if list(_fulfilled(shown).values()) != [1]:
        raise DemoFailure(f"Spresso settled {shown['fulfillmentVariants']}, expected 1 bag")
    settlement = _charged(demo, result.spresso_id, BEANS_PRICE)
    order = demo.hub_order(result.spresso_id, status="shipped")
    (line,) = order["lines"]
    (short,) = order["cancellations"]
    if (line["shipped"], line["cancelled"], short["initiator"], short["reason"]) != (
        1,
        1,
        "seller",
        "out_of_stock",
    ):
        raise DemoFailure(f"expected 1 shipped, 1 cancelled out_of_stock: {line} {short}")
    say.check(
        f"Spresso: in_transit with fulfilledQuantity 1, charged {settlement['charged'] / 100:.2f}"
    )
    say.check("hub: 1 shipped, 1 cancelled by the seller (out_of_stock); status shipped")
    return result


def story_cancelled_in_foxtrot(demo: Demo) -> StoryResult:
    """C: the WMS may not cancel; Foxtrot does, and the hub follows."""
    say = demo.say
    say.story("C", "an order the WMS may not cancel, cancelled in Foxtrot")
    result = demo.place("C", TWO_BAGS, "2 bags of beans")
    say.step(2, "the WMS tries to cancel it (POST /api/v1/orders/{id}/cancellations)")
    resp = demo.hub.post(f"/orders/{result.order_id}/cancellations", {"reason": "out_of_stock"})
    if resp.status_code != 409 or "admin console" not in resp.text:
        raise DemoFailure(
            f"expected a 409 naming the admin console: {resp.status_code} {resp.text}"
        )
    say.check(f"409 {problem_text(resp)}")

    say.step(3, "the seller cancels it in Foxtrot, Spresso's admin console")
    demo.spresso.control.cancel(result.spresso_id)
    demo.webhook_delivered(result.spresso_id, "order_cancelled")
    order = demo.hub_order(result.spresso_id, status="cancelled", channel_status="cancelled")
    (cancellation,) = order["cancellations"]
    if cancellation["initiator"] != "channel":
        raise DemoFailure(f"expected a cancellation by the channel: {cancellation}")
    say.check(
        "order_cancelled reached the hub: status cancelled, initiator channel, "
        f"reason {cancellation['reason']}"
    )
    return result


STORIES: Final = (story_three_parcels, story_short_ship, story_cancelled_in_foxtrot)


def run_stories(demo: Demo) -> list[StoryResult]:
    return [story(demo) for story in STORIES]


def describe_event(event: dict[str, Any]) -> str:
    """A short detail for a feed event."""
    data = event["data"]
    if event["type"].startswith("command."):
        detail = f"{data.get('kind')} {data.get('state')} (attempt {data.get('attempts')})"
        return detail + (f": {data['error']}" if data.get("error") else "")
    if event["type"] == "order.shipment_recorded":
        return f"{data.get('carrier')} {data.get('tracking_number')}"
    if "initiator" in data:
        return f"by the {data['initiator']} ({data.get('reason')})"
    return str(data.get("status") or data.get("channel_status") or "")


def print_feed(demo: Demo) -> list[dict[str, Any]]:
    """Print every feed event in order: seq, type, order, detail."""
    events = demo.hub.feed()
    say = demo.say
    say.title(f"The hub's feed (GET /api/v1/feed): {len(events)} events")
    say.line(f"{'seq':>4}  {'type':<28} {'order':<5} detail")
    for event in events:
        order = demo.labels.get(event["order_id"] or "", (event["order_id"] or "-")[:8])
        say.line(f"{event['seq']:>4}  {event['type']:<28} {order:<5} {describe_event(event)}")
    return events


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orderhub_spresso.demo",
        description="Run the Spresso simulator and the hub as real processes and play three "
        "order stories through the hub's API and the simulator's control API.",
    )
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per step")
    p.add_argument("--database-url", help="a database instead of SQLite (migrated first)")
    p.add_argument(
        "--broker-url", help="production mode: redis:// or amqp://; worker and scheduler too"
    )
    p.add_argument("--pace", type=float, default=0.0, metavar="SECONDS", help="pause per step")
    p.add_argument("--keep", action="store_true", help="keep the work directory and its logs")
    p.add_argument(
        "--hold",
        type=float,
        nargs="?",
        const=HOLD_SECONDS,
        default=None,
        metavar="SECONDS",
        help="after the stories, keep everything running until Ctrl-C, to look around "
        f"(at most SECONDS, default {HOLD_SECONDS:g})",
    )
    return p


STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM interrupt the demo (which then stops its processes), whatever
    it inherited; the handlers from before are back afterwards."""
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
            say.title(f"orderhub x Spresso demo ({options.describe()})")
            say.line(f"work directory {workdir}" + ("" if args.keep else " (removed at the end)"))
            stack.start()
            for process in stack.services:
                say.line(f"  started {process.name:<10} pid {process.pid}")
            say.line(f"  Spresso simulator  {stack.sim_url}  (control API under /_sim)")
            say.line(f"  orderhub           {stack.hub_url}  (/api/v1, webhooks)")
            say.line(f"  webhooks           {stack.webhook_url('<event>')} (one URL per event)")
            demo = Demo.attach(stack, say=say, timeout=args.timeout)
            run_stories(demo)
            print_feed(demo)
            say.line()
            say.line(f"All three stories checked in {time.monotonic() - started:.1f} s.")
            if args.hold is not None:
                say.line(
                    f"\nHolding for up to {args.hold:g} s (Ctrl-C to stop). Try:\n  curl -H "
                    f"'Authorization: Bearer {stack.api_key}' {stack.hub_url}/api/v1/orders"
                )
                until = time.monotonic() + args.hold
                while time.monotonic() < until:
                    stack.check_alive()
                    time.sleep(0.5)
        except DemoFailure as exc:
            say.line()
            say.line(f"DEMO FAILED: {exc}")
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
                    "stopped: "
                    + ", ".join(
                        f"{p.name} ({p.describe_exit()})"
                        for p in stopped
                        if p.name not in ("migrate", "setup")
                    )
                )
        unclean = [p.name for p in stack.unclean(stopped)]
        if unclean and code == EXIT_OK:
            say.line(f"DEMO FAILED: did not stop cleanly: {', '.join(unclean)}")
            code = EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
