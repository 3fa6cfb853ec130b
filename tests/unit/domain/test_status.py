"""The canonical status is derived from the leaf lines' counters (lifecycle.md table)."""

from __future__ import annotations

import pytest

from orderhub.domain.model import Line, derive_status
from orderhub.domain.values import TERMINAL_STATUSES, OrderStatus


def line(quantity: int, **counters: int) -> Line:
    return Line(id="l", channel_line_id="c", sku="s", title="t", quantity=quantity, **counters)


A = OrderStatus

# (lines, acceptance_required, released, expected)
TABLE = [
    pytest.param([line(2)], True, False, A.AWAITING_ACCEPTANCE, id="nothing-accepted"),
    pytest.param([line(2, accepted=1)], True, True, A.AWAITING_ACCEPTANCE, id="part-accepted"),
    pytest.param(
        [line(2, accepted=2), line(1)], True, True, A.AWAITING_ACCEPTANCE, id="one-line-pending"
    ),
    pytest.param([line(2, accepted=2)], True, False, A.ACCEPTED, id="accepted-not-released"),
    pytest.param([line(2, accepted=2)], True, True, A.READY_TO_SHIP, id="accepted-released"),
    pytest.param(
        [line(2, accepted=1, rejected=1)], True, True, A.READY_TO_SHIP, id="rest-rejected"
    ),
    pytest.param([line(2, accepted=1, cancelled=1)], True, False, A.ACCEPTED, id="rest-cancelled"),
    pytest.param([line(2)], False, True, A.READY_TO_SHIP, id="no-acceptance-step"),
    pytest.param([line(2)], False, False, A.ACCEPTED, id="no-acceptance-not-released"),
    pytest.param(
        [line(2, accepted=2, shipped=1)], True, True, A.PARTIALLY_SHIPPED, id="one-of-two"
    ),
    pytest.param(
        [line(2, shipped=2), line(1)], False, True, A.PARTIALLY_SHIPPED, id="one-line-of-two"
    ),
    pytest.param(
        [line(2, accepted=1, shipped=1), line(1)],
        True,
        True,
        A.PARTIALLY_SHIPPED,
        id="shipped-while-a-line-awaits-acceptance",
    ),
    pytest.param([line(2, accepted=2, shipped=2)], True, True, A.SHIPPED, id="all-shipped"),
    pytest.param(
        [line(3, accepted=2, shipped=2, cancelled=1)],
        True,
        True,
        A.SHIPPED,
        id="shipped-rest-cancelled",
    ),
    pytest.param(
        [line(2, accepted=2, shipped=2, delivered=1)], True, True, A.SHIPPED, id="part-delivered"
    ),
    pytest.param(
        [line(2, shipped=1, delivered=1), line(1)],
        False,
        True,
        A.PARTIALLY_SHIPPED,
        id="delivered-but-not-all-shipped",
    ),
    pytest.param(
        [line(2, accepted=2, shipped=2, delivered=2)], True, True, A.DELIVERED, id="delivered"
    ),
    pytest.param([line(2, rejected=2)], True, False, A.REJECTED, id="all-rejected"),
    pytest.param([line(2, cancelled=2)], True, True, A.CANCELLED, id="all-cancelled"),
    pytest.param(
        [line(2, rejected=1, cancelled=1)], True, True, A.CANCELLED, id="rejected-and-cancelled"
    ),
    pytest.param(
        [line(1, rejected=1), line(1, cancelled=1)], True, True, A.CANCELLED, id="mixed-lines"
    ),
]


@pytest.mark.parametrize(("lines", "acceptance_required", "released", "expected"), TABLE)
def test_status_is_derived_from_counters(
    lines: list[Line], acceptance_required: bool, released: bool, expected: OrderStatus
) -> None:
    status = derive_status(lines, acceptance_required=acceptance_required, released=released)
    assert status is expected


def test_only_rejected_and_cancelled_are_terminal() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == TERMINAL_STATUSES
    assert {OrderStatus.REJECTED, OrderStatus.CANCELLED} == TERMINAL_STATUSES


def test_status_names_are_the_contract() -> None:
    assert [s.value for s in OrderStatus] == [
        "awaiting_acceptance",
        "accepted",
        "ready_to_ship",
        "partially_shipped",
        "shipped",
        "delivered",
        "rejected",
        "cancelled",
    ]
