"""What goes wrong between Spresso and the hub, end to end, in embedded and production
mode: the process that calls Spresso is killed (SIGKILL) while Spresso holds its
``in_transit`` call, and forged signatures."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
from spresso_e2e_support import LEASE_SECONDS, STEP_TIMEOUT

from orderhub.channels.signatures import body_signature
from orderhub.testing.processes import NotYet, pid_gone
from orderhub_spresso import wire
from orderhub_spresso.demo import BEANS_AND_MUG, TWO_BAGS, Demo


def in_transit_calls(demo: Demo, fulfilment_id: str) -> list[dict[str, Any]]:
    return demo.spresso.status_calls(fulfilment_id, "in_transit")


def test_in_transit_is_sent_exactly_once_when_its_caller_is_killed_mid_call(
    spresso_demo: Demo,
) -> None:
    """Spresso holds the ``in_transit`` of fulfilment 2; the worker (``serve`` in
    embedded mode) is SIGKILLed meanwhile, then Spresso carries the call out: the answer
    is lost. The command's lease runs out, it is sent again by a new worker under the
    same Idempotency-Key, and Spresso settles once."""
    demo = spresso_demo
    stack = demo.stack
    result = demo.place("K", BEANS_AND_MUG, "an order whose in_transit meets a crash")
    _, f2 = demo.spresso.fulfilment_ids(result.spresso_id)
    path = wire.FULFILLMENT_PATH.format(fulfillment_id=f2)
    demo.spresso.control.add_fault(path, method="PUT", hold=True, hold_seconds=300, count=1)

    receipt = demo.ship(result, 1, [("BEANS-1KG", 1)], "JDKILL0001", carrier="DHL")
    demo.command_outcome(receipt["command_id"])  # the parcel itself went through

    def held() -> dict[str, Any]:
        calls = in_transit_calls(demo, f2)
        if not calls or not calls[0].get("held"):
            raise NotYet(f"in_transit calls: {calls}")
        return calls[0]

    first = demo.wait("Spresso to hold the in_transit call", held)
    runner = stack.kill_command_runner()  # SIGKILL, mid-call
    assert pid_gone(runner.pid)
    assert demo.spresso.control.release_holds() == 1

    def carried_out() -> dict[str, Any]:
        call = in_transit_calls(demo, f2)[0]
        if call["status_code"] is None:
            raise NotYet(f"the held call: {call}")
        return call

    done = demo.wait("Spresso to carry the held call out", carried_out)
    assert (done["status_code"], done.get("held")) == (200, False)
    assert demo.spresso.order(result.spresso_id)["fulfillments"][1]["status"] == "in_transit"

    stack.restart_command_runner()
    close = demo.wait(
        "the close_fulfilment command to finish after the crash",
        lambda: _command_event(demo, result.order_id, "close_fulfilment"),
        timeout=STEP_TIMEOUT + 4 * LEASE_SECONDS,
    )
    assert close["type"] == "command.succeeded", close
    assert close["data"]["attempts"] >= 2  # sent again after the lease ran out

    calls = in_transit_calls(demo, f2)
    assert len(calls) == 2, calls  # the lost one and the retry
    assert calls[0]["idempotency_key"] == calls[1]["idempotency_key"] == first["idempotency_key"]
    assert calls[1].get("replayed") is True  # Spresso answered the retry from its record
    assert json.loads(calls[0]["body"]) == json.loads(calls[1]["body"])
    spresso = demo.spresso.order(result.spresso_id)
    history = [h["status"] for h in spresso["fulfillments"][1]["statusHistory"]]
    assert history.count("in_transit") == 1
    assert spresso["_settlement"] == {"settlements": 1, "charged": 2400}

    events = [
        e["type"]
        for e in demo.hub.events_for(result.order_id)
        if e["data"].get("kind") == "close_fulfilment"
    ]
    assert events == ["command.succeeded"]
    order = demo.hub.order(result.order_id)
    assert order["pending_commands"] == order["failed_commands"] == []
    # and the stack works on: the other fulfilment ships, in_transit once
    receipt = demo.ship(result, 0, [("BEANS-1KG", 2), ("MUG-DW", 1)], "1ZKILL0002")
    demo.command_outcome(receipt["command_id"])
    f1 = demo.spresso.fulfilment_ids(result.spresso_id)[0]
    demo.fulfilment(result.spresso_id, 0, "in_transit")
    assert len(in_transit_calls(demo, f1)) == 1


def _command_event(demo: Demo, order_id: str, kind: str) -> dict[str, Any]:
    for event in demo.hub.events_for(order_id):
        if event["type"].startswith("command.") and event["data"].get("kind") == kind:
            return event
    raise NotYet(f"no {kind} outcome; pending {demo.hub.order(order_id)['pending_commands']}")


def test_a_forged_signature_is_refused_401_and_nothing_is_stored(spresso_demo: Demo) -> None:
    demo = spresso_demo
    result = demo.place("S", TWO_BAGS, "an order whose webhook is then forged")
    (record,) = demo.spresso.control.webhooks(result.spresso_id)
    forged = record["body"].replace('"sent_to_fulfiller"', '"cancelled"').encode()
    url = demo.stack.webhook_url("order_cancelled")
    answers = [
        httpx.post(
            url,
            content=forged,
            headers={"Content-Type": "application/json", wire.SIGNATURE_HEADER: signature},
            timeout=10,
        )
        for signature in (
            body_signature("not-the-client-secret", forged),
            record["signature"],  # Spresso's signature of the other body
            "",
        )
    ]
    for answer in answers:
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    # the genuine message again is a duplicate: the forged ones were never stored
    genuine = httpx.post(
        demo.stack.webhook_url("order_fulfillable"),
        content=record["body"].encode(),
        headers={"Content-Type": "application/json", wire.SIGNATURE_HEADER: record["signature"]},
        timeout=10,
    )
    assert (genuine.status_code, genuine.json()["duplicate"]) == (200, True)
    order = demo.hub.order(result.order_id)
    assert order["status"] == "ready_to_ship"
    assert Counter(e["type"] for e in demo.hub.events_for(result.order_id)) == Counter(
        {"order.received": 1, "order.ready_to_ship": 1}
    )


def test_a_re_serialised_signature_is_accepted(spresso_demo: Demo) -> None:
    """Spresso sends pretty-printed JSON but signs its compact form (its Node sample)."""
    demo = spresso_demo
    demo.spresso.control.configure(signing="compact")
    try:
        result = demo.place("P", TWO_BAGS, "an order signed over its re-serialisation")
    finally:
        demo.spresso.control.configure(signing="raw")
    (record,) = demo.spresso.control.webhooks(result.spresso_id)
    assert record["body"].startswith("{\n")  # pretty-printed on the wire
    assert demo.hub.order(result.order_id)["status"] == "ready_to_ship"
