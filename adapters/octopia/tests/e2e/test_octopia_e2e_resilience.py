"""What goes wrong between Octopia and the hub, end to end, in embedded and production
mode: a 5xx answer to a command, then success; Octopia unreachable for many polls while
its orders change, then caught up (the stacks poll with no overlap between windows, so
only the cursor staying put can find those changes again); the simulator's process frozen
(SIGSTOP: no answer at all, every call times out), then caught up."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from typing import Any, Final

from octopia_e2e_support import POLL_INTERVAL, STEP_TIMEOUT

from orderhub_octopia.demo import Demo
from orderhub_octopia.demo_support import NotYet
from orderhub_octopia.simulator import TOKEN_PATH

ONE_LINE: Final[dict[str, Any]] = {
    "sales_channel": "OCTOBE",
    "lines": [{"title": "Headphones", "sku": "HEAD-E2E"}],
}
AUTO_ACCEPTED: Final[dict[str, Any]] = {
    "sales_channel": "AUTOFR",
    "lines": [{"title": "Blender", "sku": "BLEND-E2E"}],
}
#: Octopia down: every Seller API call, the token endpoint included, answers 503.
EVERYTHING: Final = "*"
OUTAGE_CALLS: Final = 1_000_000


def counts(demo: Demo, order_id: str) -> Counter[str]:
    return Counter(e["type"] for e in demo.hub.events_for(order_id))


def failed_polls(demo: Demo) -> int:
    return sum(1 for c in demo.octopia.calls(method="GET", path="/orders") if c.get("fault"))


def test_a_5xx_then_success(octopia_demo: Demo) -> None:
    demo = octopia_demo
    result = demo.receive("E", ONE_LINE, "an order whose approval first meets a 503")
    demo.octopia.add_fault("/orders/*/approval-status", status=503, retry_after="1")

    receipt = demo.hub.command(result.order_id, "accept")
    event = demo.command_outcome(receipt["command_id"], state="succeeded")
    assert event["data"]["attempts"] == 2

    calls = demo.octopia.calls(method="POST", path=f"/orders/{result.octopia_id}/approval")
    assert [(c["status_code"], c.get("fault", False)) for c in calls] == [
        (503, True),
        (204, False),
    ]
    assert demo.octopia.order(result.octopia_id)["status"] == "Accepted"
    order = demo.hub_order(result.octopia_id, status="accepted", channel_status="Accepted")
    assert order["pending_commands"] == order["failed_commands"] == []
    outcomes = [
        e["type"]
        for e in demo.hub.events_for(result.order_id)
        if e["data"].get("command_id") == receipt["command_id"]
    ]
    assert outcomes == ["command.succeeded"]


def test_polling_catches_up_after_octopia_was_down(octopia_demo: Demo) -> None:
    demo = octopia_demo
    # an order the hub has, before the outage
    known = demo.place_order(AUTO_ACCEPTED)
    before = demo.hub_order(known, status="accepted", channel_status="Accepted")

    demo.octopia.add_fault(EVERYTHING, status=503, times=OUTAGE_CALLS)
    # while Octopia is unreachable, the marketplace goes on
    demo.octopia.move(known, "pay")
    new = [demo.place_order(ONE_LINE) for _ in range(3)]
    cancelled = demo.place_order(ONE_LINE)
    demo.octopia.move(cancelled, "cancel")
    failed_before = failed_polls(demo)

    def polls_failed() -> int:
        failed = failed_polls(demo) - failed_before
        if failed < 3:
            raise NotYet(f"{failed} failed list calls since the changes")
        return failed

    # several poll runs meet the outage after the changes (each tries its page twice)
    demo.wait("the hub's polls to meet the outage", polls_failed, STEP_TIMEOUT)
    assert all(demo.hub.find_order(o) is None for o in [*new, cancelled])
    assert demo.hub.order(before["id"])["status"] == "accepted"

    demo.octopia.clear_faults()
    timeout = STEP_TIMEOUT + 10 * POLL_INTERVAL
    caught_up = demo.hub_order(
        known, status="ready_to_ship", channel_status="InPreparation", timeout=timeout
    )
    for octopia_id in new:
        demo.hub_order(octopia_id, status="awaiting_acceptance", timeout=timeout)
    gone = demo.hub_order(cancelled, status="cancelled", channel_status="Cancelled")

    # one more complete poll after the catch-up: nothing is applied twice
    seen = len(demo.octopia.calls(method="GET", path="/orders/count"))

    def polled_again() -> bool:
        if len(demo.octopia.calls(method="GET", path="/orders/count")) < seen + 2:
            raise NotYet("no complete poll since")
        return True

    demo.wait("two more complete polls", polled_again)
    assert counts(demo, caught_up["id"])["order.ready_to_ship"] == 1
    for octopia_id in [known, *new, cancelled]:
        found = demo.hub.find_order(octopia_id)
        assert found is not None
        assert counts(demo, found["id"])["order.received"] == 1, octopia_id
    assert counts(demo, gone["id"])["order.cancelled"] == 1
    same = [o for o in demo.hub.orders(channel="octopia") if o["channel_order_id"] in new]
    assert len(same) == len(new)


def timed_out_polls(demo: Demo) -> int:
    """Poll runs the hub's scheduler logged as failed because Octopia did not answer."""
    names = {p.name: p for p in demo.stack.services}
    scheduler = names.get("scheduler") or names["serve"]  # embedded: serve runs it
    return sum(
        1
        for e in scheduler.events()
        if e.get("event") == "job.failed"
        and e.get("job") == "octopia-poll"
        and "did not answer in time" in json.dumps(e)
    )


def test_polling_catches_up_after_the_simulator_process_was_stopped(octopia_demo: Demo) -> None:
    """The simulator's process frozen (SIGSTOP): the hub's calls get no answer at all and
    time out; the orders that changed meanwhile are found once it answers again."""
    demo = octopia_demo
    known = demo.place_order(AUTO_ACCEPTED)
    demo.hub_order(known, status="accepted", channel_status="Accepted")

    # the marketplace changes orders while its API refuses the hub (the control API works)
    demo.octopia.add_fault(EVERYTHING, status=503, times=OUTAGE_CALLS)
    demo.octopia.move(known, "pay")
    new = demo.place_order(ONE_LINE)
    failed_before = failed_polls(demo)
    demo.wait(
        "a poll to meet the 503s",
        lambda: failed_polls(demo) > failed_before or _not_yet("no failed poll yet"),
    )

    # then the process stops answering altogether
    simulator = demo.stack.process("simulator")
    timed_out_before = timed_out_polls(demo)
    os.killpg(simulator.pid, signal.SIGSTOP)
    try:
        demo.wait(
            "a poll run to fail on timeouts",
            lambda: timed_out_polls(demo) > timed_out_before or _not_yet("no timed-out run yet"),
            STEP_TIMEOUT + 30,
        )
    finally:
        os.killpg(simulator.pid, signal.SIGCONT)
    demo.octopia.clear_faults()

    timeout = STEP_TIMEOUT + 10 * POLL_INTERVAL
    order = demo.hub_order(
        known, status="ready_to_ship", channel_status="InPreparation", timeout=timeout
    )
    fresh = demo.hub_order(new, status="awaiting_acceptance", timeout=timeout)
    assert counts(demo, order["id"])["order.ready_to_ship"] == 1
    assert counts(demo, fresh["id"])["order.received"] == 1
    # and it works as before: the new order is accepted at Octopia
    receipt = demo.hub.command(fresh["id"], "accept")
    demo.command_outcome(receipt["command_id"])
    demo.octopia_order(new, "Accepted")


def _not_yet(seen: str) -> bool:
    raise NotYet(seen)


OCTOPIA_DETAIL: Final = "the order is under review by Cdiscount's fraud team"
OCTOPIA_FIELD: Final = "approval is locked until the review ends"


def test_a_4xx_fails_the_command_and_keeps_octopias_whole_message(octopia_demo: Demo) -> None:
    demo = octopia_demo
    result = demo.receive("E", ONE_LINE, "an order Octopia refuses to approve")
    demo.octopia.add_fault(
        "/orders/*/approval-status",
        status=400,
        body={
            "type": "about:blank",
            "title": "Validation Failed",
            "status": 400,
            "detail": OCTOPIA_DETAIL,
            "errors": {"approval_status": [OCTOPIA_FIELD]},
            "traceId": "e2e-trace-400",
        },
    )
    receipt = demo.hub.command(result.order_id, "accept")

    event = demo.command_outcome(receipt["command_id"], state="failed")
    assert event["type"] == "command.failed"
    assert event["data"]["attempts"] == 1  # a 4xx is not retried
    for said in (OCTOPIA_DETAIL, OCTOPIA_FIELD):
        assert said in event["data"]["error"], event["data"]["error"]
    order = demo.hub.order(result.order_id)
    (failed,) = order["failed_commands"]
    assert (failed["id"], failed["kind"]) == (receipt["command_id"], "accept")
    for said in (OCTOPIA_DETAIL, OCTOPIA_FIELD):
        assert said in failed["last_error"], failed["last_error"]
    calls = demo.octopia.calls(method="POST", path=f"/orders/{result.octopia_id}/approval")
    assert [c["status_code"] for c in calls] == [400]
    assert demo.octopia.order(result.octopia_id)["status"] == "WaitingAcceptance"


def test_revoked_tokens_are_replaced_and_the_command_goes_through(octopia_demo: Demo) -> None:
    demo = octopia_demo
    result = demo.receive("E", ONE_LINE, "an order accepted after the tokens were revoked")
    before = len(demo.octopia.calls())
    assert demo.octopia.revoke_tokens() >= 1  # every process's token is gone

    receipt = demo.hub.command(result.order_id, "accept")
    event = demo.command_outcome(receipt["command_id"])
    assert event["data"]["attempts"] == 1  # a 401 buys a fresh token within the call
    demo.octopia_order(result.octopia_id, "Accepted")
    # the polls go on with fresh tokens too
    demo.octopia.move(result.octopia_id, "pay")
    demo.hub_order(result.octopia_id, status="ready_to_ship", channel_status="InPreparation")

    since = demo.octopia.calls()[before:]
    approvals = [c["status_code"] for c in since if c["path"].endswith("/approval-status")]
    # 401 first unless a poll in the same process met the revoked token before it
    assert approvals in ([401, 204], [204]), approvals
    refused = [c for c in since if c["status_code"] == 401]
    tokens = [c for c in since if c["path"] == TOKEN_PATH and c["status_code"] == 200]
    assert refused, "no call met a revoked token"
    # a fresh token per hub process at most (one that made no call yet fetches its first),
    # never one per call
    assert 1 <= len(tokens) <= len(demo.stack.services) - 1, [c["path"] for c in since]
