"""Every refusal is an RFC 9457 problem with the right status and a stable type, and a
refused command leaves the database and the queue exactly as they were."""

from __future__ import annotations

import socket
from typing import Any, cast

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeout
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from orderhub.adapters.persistence.intake import IntakeUnavailable, NotCommitted
from orderhub.application.ports import UnitOfWorkFactory
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.entrypoints.web.problems import unreachable
from orderhub.testing.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory

from .support import Harness, assert_problem, auth, commanding

SERIAL_LINE = {"id": "s", "quantity": 1, "serial": True}


async def refused(
    harness: Harness,
    path: str,
    status: int,
    rule: str,
    *,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST, expect the problem, and check that nothing was applied or queued."""
    before = harness.state()
    response = await harness.client.post(
        path,
        json=json,
        content=content,
        headers={**commanding(), "Content-Type": "application/json", **(headers or {})},
    )
    body = assert_problem(response, status, rule)
    assert harness.state() == before
    return body


async def accepted(harness: Harness, order_id: str) -> None:
    response = await harness.client.post(
        f"/api/v1/orders/{order_id}/accept", json={}, headers=commanding()
    )
    assert response.status_code == 202, response.text


async def test_malformed_json_is_400(harness: Harness) -> None:
    order = await harness.seed()
    body = await refused(
        harness,
        f"/api/v1/orders/{order.id}/reject",
        400,
        "malformed-json",
        content=b'{"reason": "out_of_stock",',
    )
    assert "not valid JSON" in body["detail"]


async def test_an_unknown_order_is_404(harness: Harness) -> None:
    await harness.seed()
    await refused(harness, "/api/v1/orders/no-such-order/accept", 404, "order-not-found", json={})
    response = await harness.client.get("/api/v1/orders/no-such-order", headers=auth("reader"))
    assert_problem(response, 404, "order-not-found")


async def test_an_unknown_line_is_422(harness: Harness) -> None:
    order = await harness.seed()
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/accept",
        422,
        "unknown-line",
        json={"lines": [{"line_id": "nope", "quantity": 1}]},
    )


async def test_too_many_units_is_422(harness: Harness) -> None:
    order = await harness.seed()
    line = order.lines[0]
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/accept",
        422,
        "too-many-units",
        json={"lines": [{"line_id": line.id, "quantity": line.quantity + 1}]},
    )


async def test_a_missing_serial_number_is_422(harness: Harness) -> None:
    order = await harness.seed(lines=[SERIAL_LINE])
    await accepted(harness, order.id)
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        422,
        "serial-number-required",
        json={
            "carrier": "DHL",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 1}],
        },
    )


async def test_a_serial_number_twice_is_422(harness: Harness) -> None:
    order = await harness.seed(lines=[{"id": "s", "quantity": 2, "serial": True}])
    await accepted(harness, order.id)
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        422,
        "duplicate-serial-number",
        json={
            "carrier": "DHL",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 2, "serial_numbers": ["X", "X"]}],
        },
    )


async def test_the_wrong_state_is_409(harness: Harness) -> None:
    order = await harness.seed()
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        409,
        "ship-before-acceptance",
        json={
            "carrier": "DHL",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 1}],
        },
    )


async def test_a_terminal_order_is_409(harness: Harness) -> None:
    order = await harness.seed()
    response = await harness.client.post(
        f"/api/v1/orders/{order.id}/reject", json={"reason": "out_of_stock"}, headers=commanding()
    )
    assert response.status_code == 202
    await refused(harness, f"/api/v1/orders/{order.id}/accept", 409, "order-terminal", json={})


async def test_nothing_left_to_accept_is_409(harness: Harness) -> None:
    order = await harness.seed()
    await accepted(harness, order.id)
    await refused(harness, f"/api/v1/orders/{order.id}/accept", 409, "nothing-to-accept", json={})


@pytest.mark.parametrize(
    ("command", "payload", "rule"),
    [
        ("accept", {}, "acceptance-not-supported"),
        ("reject", {"reason": "out_of_stock"}, "rejection-not-supported"),
        ("cancellations", {"reason": "out_of_stock"}, "seller-cancellation-not-supported"),
        ("cancellations", {"decision": "accept"}, "cancellation-decision-not-supported"),
        ("deliveries", {}, "delivery-confirmation-not-supported"),
    ],
)
async def test_what_the_channel_cannot_do_is_409(
    harness: Harness, command: str, payload: dict[str, Any], rule: str
) -> None:
    order = await harness.seed(account="plain")
    body = await refused(harness, f"/api/v1/orders/{order.id}/{command}", 409, rule, json=payload)
    if command == "cancellations" and "reason" in payload:
        assert "return" in body["detail"]  # the channel's own explanation


async def test_a_partial_shipment_where_the_channel_ships_whole_orders_is_409(
    harness: Harness,
) -> None:
    order = await harness.seed(account="plain", lines=[{"id": "a", "quantity": 2}])
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/shipments",
        409,
        "shipment-whole-order-only",
        json={
            "carrier": "DHL",
            "tracking_number": "T1",
            "items": [{"line_id": order.lines[0].id, "quantity": 1}],
        },
    )


async def test_a_wrong_api_key_is_401(harness: Harness) -> None:
    order = await harness.seed()
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/accept",
        401,
        "unauthorized",
        json={},
        headers={"Authorization": "Bearer wrong"},
    )


@pytest.mark.parametrize(
    ("command", "payload", "field"),
    [
        ("accept", {"lines": [{"line_id": "a", "quantity": 0}]}, "lines[0].quantity"),
        ("accept", {"lines": [{"line_id": "a", "quantity": "lots"}]}, "lines[0].quantity"),
        ("accept", {"lines": [{"line_id": "a"}]}, "lines[0].quantity"),
        ("accept", {"line": [{"line_id": "a", "quantity": 1}]}, "line"),
        ("accept", [], "body"),
        ("reject", {}, "reason"),
        ("reject", {"reason": "bored"}, "reason"),
        ("shipments", {"carrier": "DHL", "tracking_number": "T", "items": []}, "items"),
        (
            "shipments",
            {"tracking_number": "T", "items": [{"line_id": "a", "quantity": 1}]},
            "carrier",
        ),
        ("cancellations", {"decision": "maybe"}, "decision"),
    ],
)
async def test_a_body_that_breaks_the_schema_is_422_naming_the_field(
    harness: Harness, command: str, payload: Any, field: str
) -> None:
    order = await harness.seed()
    body = await refused(
        harness, f"/api/v1/orders/{order.id}/{command}", 422, "validation-error", json=payload
    )
    assert [e["field"] for e in body["errors"]] == [field], body
    assert body["errors"][0]["source"] == "body"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "reason"),
        ({"decision": "accept", "reason": "out_of_stock"}, "decision"),
        ({"reason": "out_of_stock", "cancellation_id": "c"}, "cancellation_id"),
    ],
)
async def test_a_cancellation_is_either_a_cancel_or_a_decision(
    harness: Harness, payload: dict[str, Any], field: str
) -> None:
    order = await harness.seed()
    body = await refused(
        harness, f"/api/v1/orders/{order.id}/cancellations", 422, "validation-error", json=payload
    )
    assert body["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "status=lost",
        "updated_after=yesterday",
        "updated_after=2026-01-01T00:00:00",  # no time zone
    ],
)
async def test_bad_query_parameters_are_422(harness: Harness, query: str) -> None:
    response = await harness.client.get(f"/api/v1/orders?{query}", headers=auth("reader"))
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == query.split("=")[0]


async def test_an_invalid_cursor_is_422(harness: Harness) -> None:
    for cursor in ["garbage", "eyJ4IjoxfQ", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiYSJd"]:
        response = await harness.client.get(
            f"/api/v1/orders?cursor={cursor}", headers=auth("reader")
        )
        body = assert_problem(response, 422, "invalid-cursor")
        assert body["errors"][0]["field"] == "cursor"


async def test_an_unknown_route_is_404(harness: Harness) -> None:
    assert_problem(await harness.client.get("/api/v1/nothing-here"), 404, "not-found")
    assert_problem(await harness.client.get("/nothing"), 404, "not-found")


async def test_a_wrong_method_is_405(harness: Harness) -> None:
    response = await harness.client.delete("/api/v1/orders", headers=auth("writer"))
    assert_problem(response, 405, "method-not-allowed")
    assert_problem(await harness.client.get("/webhooks/stub/main"), 405, "method-not-allowed")


async def test_a_body_over_the_limit_is_413(harness: Harness) -> None:
    order = await harness.seed()
    await refused(
        harness,
        f"/api/v1/orders/{order.id}/accept",
        413,
        "payload-too-large",
        content=b'{"lines": [' + b" " * (65 * 1024) + b"]}",
    )


class ConflictingUnitOfWork(FakeUnitOfWork):
    async def commit(self) -> None:
        raise ConcurrencyConflict("someone else changed the order")


class ConflictingFactory(FakeUnitOfWorkFactory):
    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return ConflictingUnitOfWork(self.db, self.clock)


async def test_a_conflict_that_outlasts_the_retries_is_409(harness: Harness) -> None:
    order = await harness.seed()
    harness.hub.uow = cast(UnitOfWorkFactory, ConflictingFactory(harness.db, harness.clock))
    await refused(harness, f"/api/v1/orders/{order.id}/accept", 409, "concurrent-update", json={})


class BrokenFactory(FakeUnitOfWorkFactory):
    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        raise RuntimeError("connection to postgres://admin:hunter2@db failed")


async def test_an_internal_error_is_500_and_leaks_nothing(harness: Harness) -> None:
    harness.hub.uow = cast(UnitOfWorkFactory, BrokenFactory(harness.db, harness.clock))
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await harness.client.get("/api/v1/orders", headers=auth("reader"))
    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    errors = [log for log in logs if log["log_level"] == "error"]
    assert errors
    assert errors[0]["request_id"] == body["request_id"]


class UnreachableFactory(FakeUnitOfWorkFactory):
    def __init__(self, error: Exception, *args: Any) -> None:
        super().__init__(*args)
        self.error = error

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, OSError("connection refused")),
        InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        SqlTimeout("QueuePool limit reached"),
        ConnectionResetError("reset by peer"),
        # a webhook's insert on a connection found inside a transaction: not stored
        NotCommitted("the connection was inside a transaction: the insert is not committed"),
        # a webhook's insert whose connection failed under it: the outcome unknown
        IntakeUnavailable("the database connection failed under the insert (OSError)"),
    ],
)
async def test_a_database_that_cannot_be_reached_is_503_with_retry_after(
    harness: Harness, error: Exception
) -> None:
    """A database restarting, a connection cut, the pool exhausted: sending again may work,
    so the client is told to (a WMS retries with its Idempotency-Key); never a 500."""
    harness.hub.uow = cast(UnitOfWorkFactory, UnreachableFactory(error, harness.db, harness.clock))
    response = await harness.client.get("/api/v1/orders", headers=auth("reader"))
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == "5"
    assert "connection refused" not in response.text


class _DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter raises: the server's SQLSTATE on ``sqlstate``."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("53300", True),  # too_many_connections, at connect
        ("57P03", True),  # cannot_connect_now: starting up
        ("57P01", True),  # admin_shutdown
        ("08006", True),  # connection_failure
        ("53200", False),  # out_of_memory: one oversized request can cause it
        ("23505", False),  # unique_violation: the request's own, a 409 or a defect
        ("42P01", False),  # undefined_table: a defect, a 500
        (None, False),
    ],
)
def test_a_server_that_cannot_take_a_session_now_is_a_503(
    sqlstate: str | None, unavailable: bool
) -> None:
    wrapped = sa_exc.DBAPIError(None, None, _DriverError(sqlstate))
    assert unreachable(wrapped) is unavailable


def test_a_database_host_that_does_not_resolve_is_a_503() -> None:
    assert unreachable(socket.gaierror(-2, "Name or service not known"))


async def test_an_unavailable_database_is_logged_with_what_the_server_said(
    harness: Harness,
) -> None:
    """A 503 for a refused connect tells the operator why (a missing database or role is
    a configuration error, not an outage), while the client sees none of it."""
    refused_connect = IntakeUnavailable("no database connection to store the message (Error)")
    refused_connect.__cause__ = _DriverError("3D000")
    factory = UnreachableFactory(refused_connect, harness.db, harness.clock)
    harness.hub.uow = cast(UnitOfWorkFactory, factory)
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await harness.client.get("/api/v1/orders", headers=auth("reader"))
    assert_problem(response, 503, "service-unavailable")
    (logged,) = [log for log in logs if log["event"] == "dependency unavailable"]
    assert "SQLSTATE 3D000" in logged["reason"]
    assert "3D000" not in response.text


async def test_the_log_of_an_unavailable_database_carries_no_statement_or_parameters(
    harness: Harness,
) -> None:
    cut = OperationalError("INSERT INTO orders VALUES ($1)", ("Jane Doe",), OSError("reset"))
    harness.hub.uow = cast(UnitOfWorkFactory, UnreachableFactory(cut, harness.db, harness.clock))
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await harness.client.get("/api/v1/orders", headers=auth("reader"))
    assert_problem(response, 503, "service-unavailable")
    (logged,) = [log for log in logs if log["event"] == "dependency unavailable"]
    assert logged["reason"] == "OperationalError: reset"
