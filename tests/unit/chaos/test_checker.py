"""The chaos checker fails when it should: fabricated simulator logs, hub orders and feeds
with one fault each (a lost order, a second parcel, a gap in the feed...) each give the
violation they must, and a clean observation gives none."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from chaos.checker import check

T0 = 1_700_000_000.0
ORDER = "topi-1"
HUB = "hub-1"
ACCEPT = "cmd-accept"
SHIP = "cmd-ship"


def _call(seq: int, path: str, status: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "method": "POST",
        "path": path,
        "query": "",
        "body": json.dumps(body) if body else "",
        "at": f"2023-11-14T22:13:{20 + seq:02d}Z",
        "status_code": status,
        "fault": False,
    }


def _ship_call(seq: int, tracking: str, status: int = 200) -> dict[str, Any]:
    body = {"order_id": ORDER, "metadata": {"tracking_number": tracking}}
    return _call(seq, "/v1/shipment", status, body)


def _event(seq: int, type_: str, **data: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "order_id": HUB,
        "channel": "topi",
        "occurred_at": f"2023-11-14T22:13:{20 + seq:02d}Z",
        "data": data,
    }


def _clean() -> dict[str, Any]:
    """One topi order: received, accepted, shipped in one parcel; everything agrees."""
    return {
        "max_attempts": 3,
        "retry_horizon": 60.0,
        "observed_at": T0 + 100,
        "channels": {
            "topi": {
                "orders": [{"id": ORDER, "status": "completed"}],
                "calls": [
                    _call(1, f"/v1/orders/{ORDER}/acknowledge", 200),
                    _call(2, f"/v1/orders/{ORDER}/accept", 200),
                    _ship_call(3, "TRK1"),
                ],
                "webhooks": [
                    {"id": "msg-1", "order_id": ORDER, "status": "created", "delivered": True},
                    {"id": "msg-2", "order_id": ORDER, "status": "completed", "delivered": True},
                ],
            }
        },
        "hub_orders": [
            {
                "id": HUB,
                "channel": "topi",
                "channel_order_id": ORDER,
                "status": "shipped",
                "channel_status": "completed",
                "attention": [],
                "pending_commands": [],
            }
        ],
        "feed": [
            _event(1, "order.received", channel_order_id=ORDER),
            _event(2, "order.accepted"),
            _event(3, "command.succeeded", command_id=ACCEPT, kind="accept", attempts=1),
            _event(4, "order.shipment_recorded", tracking_number="TRK1"),
            _event(5, "command.succeeded", command_id=SHIP, kind="ship", attempts=1),
        ],
        "wms": [
            {
                "at": T0 + 2,
                "key": "k1",
                "order_id": HUB,
                "channel": "topi",
                "channel_order_id": ORDER,
                "action": "accept",
                "body": None,
                "status": 202,
                "command_id": ACCEPT,
            },
            {
                "at": T0 + 3,
                "key": "k2",
                "order_id": HUB,
                "channel": "topi",
                "channel_order_id": ORDER,
                "action": "shipments",
                "body": {"tracking_number": "TRK1", "carrier": "DHL", "items": []},
                "status": 202,
                "command_id": SHIP,
            },
        ],
        "failed_messages": [],
        "timeline": [{"at": T0 + 1, "kind": "customer.order", "channel": "topi", "order": ORDER}],
    }


def kinds(observation: dict[str, Any]) -> list[str]:
    return [v.kind for v in check(observation)]


def test_a_clean_run_has_no_violation() -> None:
    assert check(_clean()) == []


def test_a_lost_order_is_reported_with_its_timeline() -> None:
    obs = _clean()
    obs["hub_orders"] = []
    violations = check(obs)
    lost = [v for v in violations if v.kind == "order-missing"]
    assert len(lost) == 1
    assert lost[0].order == ORDER
    assert any("customer.order" in line for line in lost[0].timeline)
    # the webhooks the hub answered 2xx for are lost with it
    assert "webhook-lost" in kinds(obs)


def test_an_order_stored_twice_is_reported() -> None:
    obs = _clean()
    twin = copy.deepcopy(obs["hub_orders"][0])
    twin["id"] = "hub-2"
    obs["hub_orders"].append(twin)
    assert "order-duplicated" in kinds(obs)


def test_an_order_no_marketplace_created_is_reported() -> None:
    obs = _clean()
    ghost = copy.deepcopy(obs["hub_orders"][0])
    ghost.update(id="hub-9", channel_order_id="topi-9")
    obs["hub_orders"].append(ghost)
    assert kinds(obs) == ["order-unknown"]


def test_a_state_the_marketplace_does_not_show_is_reported_unless_flagged() -> None:
    obs = _clean()
    obs["channels"]["topi"]["orders"][0]["status"] = "canceled"
    assert "state-disagrees" in kinds(obs)
    obs["hub_orders"][0]["attention"] = [{"code": "channel_conflict", "detail": "..."}]
    assert kinds(obs) == []


def test_a_webhook_answered_2xx_but_not_applied_is_lost() -> None:
    obs = _clean()
    obs["hub_orders"][0]["channel_status"] = "confirmed"
    found = kinds(obs)
    assert "webhook-lost" in found
    assert "state-disagrees" in found


def test_a_second_parcel_is_reported() -> None:
    obs = _clean()
    obs["channels"]["topi"]["calls"].append(_ship_call(4, "TRK1"))
    assert kinds(obs) == ["effect-duplicated"]


def test_a_second_acceptance_is_reported() -> None:
    obs = _clean()
    obs["channels"]["topi"]["calls"].append(_call(5, f"/v1/orders/{ORDER}/accept", 200))
    assert kinds(obs) == ["effect-duplicated"]


def test_a_refused_repeat_is_not_a_second_effect() -> None:
    obs = _clean()
    obs["channels"]["topi"]["calls"].append(_ship_call(4, "TRK1", status=400))
    assert kinds(obs) == []


def test_a_succeeded_command_the_marketplace_never_took_is_reported() -> None:
    obs = _clean()
    calls = obs["channels"]["topi"]["calls"]
    obs["channels"]["topi"]["calls"] = [c for c in calls if c["path"] != "/v1/shipment"]
    assert kinds(obs) == ["effect-missing"]


def test_effects_in_another_order_than_the_commands_are_reported() -> None:
    obs = _clean()
    calls = obs["channels"]["topi"]["calls"]
    calls[1]["seq"], calls[2]["seq"] = 3, 2  # the parcel reached topi before the acceptance
    assert kinds(obs) == ["effects-out-of-order"]


def test_a_command_without_a_terminal_event_is_reported() -> None:
    obs = _clean()
    obs["feed"] = obs["feed"][:4]
    assert "terminal-events" in kinds(obs)


def test_a_command_with_two_terminal_events_is_reported() -> None:
    obs = _clean()
    obs["feed"].append(_event(6, "command.succeeded", command_id=SHIP, kind="ship", attempts=1))
    found = kinds(obs)
    assert "terminal-events" in found
    assert "feed-duplicate" in found


def test_more_calls_than_max_attempts_are_reported() -> None:
    obs = _clean()
    calls = obs["channels"]["topi"]["calls"]
    calls[2:2] = [_ship_call(10 + i, "TRK1", status=503) for i in range(3)]
    for i, call in enumerate(calls):
        call["seq"] = i + 1
    assert kinds(obs) == ["too-many-attempts"]


def test_an_attempt_count_over_max_attempts_is_reported() -> None:
    obs = _clean()
    obs["feed"][4]["data"]["attempts"] = 4
    assert kinds(obs) == ["too-many-attempts"]


def test_a_gap_in_the_feed_is_reported() -> None:
    obs = _clean()
    del obs["feed"][1]
    violations = check(obs)
    assert [v.kind for v in violations] == ["feed-gap"]
    assert "seq 3 follows 1" in violations[0].detail


def test_a_feed_not_starting_at_one_is_reported() -> None:
    obs = _clean()
    del obs["feed"][0]
    assert kinds(obs) == ["feed-gap"]


def test_a_command_pending_past_the_horizon_is_stuck() -> None:
    obs = _clean()
    obs["hub_orders"][0]["pending_commands"] = [
        {"id": "cmd-x", "kind": "ship", "state": "pending", "attempts": 2, "created_at": T0}
    ]
    assert kinds(obs) == ["command-stuck"]
    obs["hub_orders"][0]["pending_commands"][0]["created_at"] = T0 + 90
    assert kinds(obs) == []


def test_a_failed_inbox_message_is_reported() -> None:
    obs = _clean()
    obs["failed_messages"] = [{"id": "m1", "channel": "topi", "order_key": ORDER, "error": "x"}]
    assert kinds(obs) == ["message-failed"]


def test_a_failed_command_the_marketplace_took_anyway_needs_attention() -> None:
    obs = _clean()
    obs["feed"][4]["type"] = "command.failed"
    assert kinds(obs) == ["failed-but-done"]
    obs["hub_orders"][0]["attention"] = [{"code": "command_failed", "ref": SHIP}]
    assert kinds(obs) == []


@pytest.mark.parametrize("status", [None, 409, 422])
def test_commands_without_a_2xx_promise_nothing(status: int | None) -> None:
    obs = _clean()
    obs["wms"].append(
        {
            "at": T0 + 4,
            "order_id": HUB,
            "channel": "topi",
            "channel_order_id": ORDER,
            "action": "shipments",
            "body": {"tracking_number": "TRK2"},
            "status": status,
            "command_id": None,
        }
    )
    assert kinds(obs) == []


def _failed_ship_and_a_later_one() -> dict[str, Any]:
    """The ship the channel refused (409: command.failed, the order flagged) and a ship the
    WMS sent after it (``cmd-later``); the tests say what became of the later one."""
    obs = _clean()
    obs["feed"][4]["type"] = "command.failed"
    obs["channels"]["topi"]["calls"][2]["status_code"] = 409
    obs["wms"].append(
        {**obs["wms"][1], "command_id": "cmd-later", "body": {"tracking_number": "T2"}}
    )
    obs["hub_orders"][0]["attention"] = [{"code": "command_failed", "ref": SHIP}]
    return obs


def test_a_command_held_behind_a_failed_one_waits_for_an_operator() -> None:
    obs = _failed_ship_and_a_later_one()
    later = {"id": "cmd-later", "kind": "ship", "state": "pending", "created_at": T0}
    obs["hub_orders"][0]["pending_commands"] = [{**later, "held_by": SHIP}]
    assert kinds(obs) == []
    # held by a command that did not fail: stuck, and never ended
    obs["hub_orders"][0]["pending_commands"] = [{**later, "held_by": ACCEPT}]
    assert sorted(kinds(obs)) == ["command-stuck", "terminal-events"]


def test_a_command_sent_after_a_failure_waits_behind_the_held_one() -> None:
    """make chaos seed 41 (Redis): a ship failed (the fulfilment cancelled), its order's
    close_fulfilment was held by it, and a ship the WMS sent afterwards for the other
    fulfilment waited behind that held one with an empty ``held_by``."""
    obs = _failed_ship_and_a_later_one()
    pending = {"kind": "ship", "state": "pending", "created_at": T0}
    obs["hub_orders"][0]["pending_commands"] = [
        {**pending, "id": "cmd-later", "seq": 3, "held_by": None},
        {**pending, "id": "cmd-held", "seq": 2, "held_by": SHIP},
    ]
    assert kinds(obs) == []
    # with nothing held before it, the same command is stuck
    obs["hub_orders"][0]["pending_commands"] = [
        {**pending, "id": "cmd-later", "seq": 3, "held_by": None}
    ]
    assert sorted(kinds(obs)) == ["command-stuck", "terminal-events"]


def test_a_channel_message_left_unapplied_past_the_horizon_is_stuck() -> None:
    obs = _clean()
    obs["gauges"] = {"inbox_backlog": 1.0, "inbox_backlog_oldest_age_seconds": 30.0}
    assert kinds(obs) == []
    obs["gauges"]["inbox_backlog_oldest_age_seconds"] = 61.0
    assert kinds(obs) == ["message-stuck"]


def _octopia_cancelled_line_by_line() -> dict[str, Any]:
    """make chaos-short seed 526186: the customer asked to cancel each of OCT00002's three
    lines, the warehouse accepted the three requests, and the hub made three calls: two
    partial cancellations, then the whole order's for the last line."""
    obs = _clean()
    lines = [{"id": f"h{n}", "channel_line_id": f"L{n}", "quantity": 1} for n in (1, 2, 3)]
    requests = [{"id": f"c{n}", "lines": [{"line_id": f"h{n}", "quantity": 1}]} for n in (1, 2, 3)]

    def cancel(seq: int, *line_ids: str) -> dict[str, Any]:
        body: dict[str, Any] = {"orderSellerId": "OCT00002", "reason": "customer-claim"}
        if not line_ids:
            return _call(seq, "/order-cancellation-requests", 201, body)
        body["lines"] = [{"lineId": line} for line in line_ids]
        return _call(seq, "/order-partial-cancellation-requests", 201, body)

    obs["channels"]["octopia"] = {
        "orders": [{"id": "OCT00002", "status": "Cancelled"}],
        "calls": [cancel(10, "L1"), cancel(11, "L2"), cancel(12)],
    }
    obs["hub_orders"].append(
        {
            "id": "hub-2",
            "channel": "octopia",
            "channel_order_id": "OCT00002",
            "status": "cancelled",
            "channel_status": "Cancelled",
            "attention": [],
            "pending_commands": [],
            "lines": lines,
            "cancellations": requests,
        }
    )
    for n in (1, 2, 3):
        obs["wms"].append(
            {
                "at": T0 + 10 + n,
                "key": f"kc{n}",
                "order_id": "hub-2",
                "channel": "octopia",
                "channel_order_id": "OCT00002",
                "action": "cancellations",
                "body": {"decision": "accept", "cancellation_id": f"c{n}"},
                "status": 202,
                "command_id": f"cmd-cancel-{n}",
            }
        )
        obs["feed"].append(
            _event(5 + n, "command.succeeded", command_id=f"cmd-cancel-{n}", attempts=1)
        )
    return obs


def test_each_line_cancelled_on_its_own_request_is_one_effect_each() -> None:
    obs = _octopia_cancelled_line_by_line()
    assert kinds(obs) == []
    # the first line's cancellation taken twice is a duplicate
    calls = obs["channels"]["octopia"]["calls"]
    calls.append({**calls[0], "seq": 13})
    assert kinds(obs) == ["effect-duplicated"]
    # a request whose line the channel never took is missing; another line's
    # cancellation does not stand in for it
    obs = _octopia_cancelled_line_by_line()
    calls = obs["channels"]["octopia"]["calls"]
    calls[2] = {**calls[1], "seq": 12}  # the second line's again, for the third's request
    assert sorted(kinds(obs)) == ["effect-duplicated", "effect-missing"]


def test_a_cancellation_call_does_the_requests_it_covers_and_no_more() -> None:
    """The reviews' cases. One whole-order call may do several requests (the warehouse
    accepted them all before the first call went: the adapter cancels what is left in
    one call); a whole-order call for a request of one line cancels lines the customer
    kept; a line cancelled by two calls naming different lines is cancelled twice."""
    obs = _octopia_cancelled_line_by_line()
    calls = obs["channels"]["octopia"]["calls"]
    del calls[1]  # the second request's call cancelled what was left: L2 and L3
    assert kinds(obs) == []
    obs = _octopia_cancelled_line_by_line()
    obs["channels"]["octopia"]["calls"] = [obs["channels"]["octopia"]["calls"][2]]
    assert kinds(obs) == []  # one call for the three requests
    obs = _octopia_cancelled_line_by_line()
    obs["wms"] = obs["wms"][:-2]  # only the first line's request was accepted
    obs["feed"] = obs["feed"][:-2]
    obs["channels"]["octopia"]["calls"] = [obs["channels"]["octopia"]["calls"][2]]
    assert kinds(obs) == ["effect-unasked"]  # L2 and L3 cancelled with it
    obs = _octopia_cancelled_line_by_line()
    calls = obs["channels"]["octopia"]["calls"]
    lines = [{"lineId": "L1"}, {"lineId": "L2"}]
    calls[1]["body"] = json.dumps({"orderSellerId": "OCT00002", "lines": lines})
    assert kinds(obs) == ["effect-duplicated"]  # L1 again
    # a line wholly rejected at acceptance is not left for the whole order's call
    obs = _octopia_cancelled_line_by_line()
    obs["hub_orders"][-1]["lines"].append(
        {"id": "h4", "channel_line_id": "L4", "quantity": 1, "rejected": 1}
    )
    assert kinds(obs) == []
    obs["hub_orders"][-1]["lines"][-1]["rejected"] = 0  # live: cancelled unasked
    assert kinds(obs) == ["effect-unasked"]


def test_a_request_is_read_as_the_marketplace_lists_it_not_as_the_hub_does() -> None:
    """The hub read the first request as L2's and cancelled L2 (then L1 with the rest):
    judged by its own view it did what it was asked; the marketplace's request names L1."""
    obs = _octopia_cancelled_line_by_line()
    hub = obs["hub_orders"][-1]
    for n, request in enumerate(hub["cancellations"], start=1):
        request["channel_cancellation_id"] = f"CR{n}"
    hub["cancellations"][0]["lines"] = [{"line_id": "h2", "quantity": 1}]
    hub["cancellations"][1]["lines"] = [{"line_id": "h1", "quantity": 1}]
    calls = obs["channels"]["octopia"]["calls"]
    calls[0]["body"] = json.dumps({"orderSellerId": "OCT00002", "lines": [{"lineId": "L2"}]})
    calls[1]["body"] = json.dumps({"orderSellerId": "OCT00002", "lines": [{"lineId": "L1"}]})
    assert kinds(obs) == []  # the hub's view agrees with itself
    marketplace = obs["channels"]["octopia"]["orders"][0]
    marketplace["requests"] = {"CR1": ["L1"], "CR2": ["L2"], "CR3": ["L3"]}
    assert kinds(obs) == ["effects-out-of-order"]  # each request's line, in the other's turn
    marketplace["requests"] = {"CR1": ["L1"], "CR2": ["L1"], "CR3": ["L3"]}
    assert kinds(obs) == ["effect-unasked"]  # L2 cancelled; no request named it
