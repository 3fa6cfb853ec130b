"""TopiPlugin/TopiAccount against httpx.MockTransport: registration, follow-ups, commands,
error translation into the SPI's errors, the shipment retry check, reconciliation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from topi_orders import (
    ALL_SHIPPED,
    ORDER_ID,
    by_channel_id,
    encode_order,
    item,
    receive,
    ship_command,
    snapshot,
)

from orderhub.channels.registry import discover
from orderhub.channels.spi import (
    AccountConfig,
    ChannelCommand,
    ChannelConfigurationError,
    CommandKind,
    CommandView,
    IntakeMessage,
    JobContext,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.model import Order
from orderhub.testing.fakes import FixedClock
from orderhub_topi import plugin as plugin_module
from orderhub_topi import wire
from orderhub_topi.client import ClientCredentials, TopiClient
from orderhub_topi.plugin import CAPABILITIES, TopiAccount, TopiPlugin

BASE = "https://topi.test"
TOKEN_URL = "https://identity.test/oauth2/token"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers from a route table."""

    def __init__(self, routes: dict[tuple[str, str], Handler | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return httpx.Response(404, json={"name": "not_found", "message": "no route"})
        return route(request) if callable(route) else route

    @property
    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


def goa(status: int, message: str, name: str = "bad_request", **headers: str) -> httpx.Response:
    body = {"name": name, "id": "e1", "message": message, "temporary": False}
    return httpx.Response(
        status, json=body, headers={"content-type": "application/vnd.goa.error", **headers}
    )


def order_result(status: str) -> httpx.Response:
    return httpx.Response(200, json={"id": ORDER_ID, "status": status, "assets": []})


def account(recorder: Recorder, **settings: Any) -> TopiAccount:
    client = TopiClient(
        base_url=BASE, access_token="static", transport=httpx.MockTransport(recorder)
    )
    config = AccountConfig(channel="topi", name="default", settings=settings)
    return TopiAccount(config, client=client)


def command(order: Order, kind: CommandKind, payload: dict[str, Any] | None = None) -> CommandView:
    return CommandView.of(
        ChannelCommand(
            id=f"cmd-{kind.value}",
            order_id=order.id,
            channel="topi",
            account="default",
            kind=kind,
            payload=payload or {},
            created_at=dt.datetime(2026, 2, 3, tzinfo=dt.UTC),
            attempts=1,
            fence=1,
        )
    )


@pytest.fixture
def confirmed() -> Order:
    return receive(snapshot("confirmed"))


# ---------------------------------------------------------------------------------------
# registration, capabilities, follow-ups
# ---------------------------------------------------------------------------------------


def test_the_entry_point_loads_the_plugin_from_its_distribution() -> None:
    loaded = discover(enabled=["topi"])["topi"]

    assert loaded.plugin is plugin_module.plugin
    assert loaded.distribution == "orderhub-topi"


def test_an_opened_account_declares_topi_capabilities_and_its_reconciliation_job() -> None:
    config = AccountConfig(
        channel="topi",
        name="eu",
        settings={"access_token": "t", "reconcile_interval_seconds": 60},
    )

    opened = TopiPlugin().open_account(config)

    assert TopiPlugin().capabilities(config) is CAPABILITIES
    assert opened.capabilities is CAPABILITIES
    assert CAPABILITIES.intake == frozenset({"webhook", "reconciliation"})
    assert [(job.name, job.interval_seconds) for job in opened.jobs()] == [("topi-reconcile", 60)]


def test_an_account_without_credentials_is_refused() -> None:
    config = AccountConfig(channel="topi", name="eu", settings={"client_id": "only-the-id"})

    with pytest.raises(ValueError, match="client_id and client_secret"):
        TopiPlugin().open_account(config)


@pytest.mark.parametrize(
    ("status", "new", "expected"),
    [
        ("created", True, [CommandKind.ACKNOWLEDGE]),
        ("created", False, []),  # an update of a known order: acknowledged already
        ("acknowledged", True, []),
        ("confirmed", True, []),
        ("canceled", True, []),
    ],
)
def test_follow_ups_acknowledge_only_new_created_orders(
    status: str, new: bool, expected: list[CommandKind]
) -> None:
    acct = account(Recorder({}))
    order = receive(snapshot(status))

    assert [f.kind for f in acct.follow_ups(order, new=new)] == expected


# ---------------------------------------------------------------------------------------
# intake
# ---------------------------------------------------------------------------------------


async def test_a_thin_webhook_is_completed_with_the_full_order() -> None:
    recorder = Recorder(
        {("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(200, content=encode_order("created"))}
    )
    body = json.dumps({"id": ORDER_ID, "status": "created", "assets": []}).encode()

    (snap,) = await account(recorder).snapshots(body, {})

    assert recorder.calls == [("GET", f"/v1/orders/{ORDER_ID}")]
    assert snap.channel_order_id == ORDER_ID
    assert [ls.channel_line_id for ls in snap.lines] == ["1", "1.0", "1.1", "2"]
    assert snap.customer is not None
    assert snap.customer.email == "alice@example.com"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (goa(404, f"order {ORDER_ID} not found", "not_found"), PermanentChannelError),
        (goa(503, "down for maintenance", "internal_error"), TransientChannelError),
    ],
)
async def test_intake_translates_errors(
    response: httpx.Response, expected: type[Exception]
) -> None:
    recorder = Recorder({("GET", f"/v1/orders/{ORDER_ID}"): response})

    with pytest.raises(expected):
        await account(recorder).snapshots(json.dumps({"id": ORDER_ID, "status": "x"}).encode(), {})


async def test_refresh_reads_the_order_and_its_message_maps_without_another_call() -> None:
    """A lost status webhook is healed: the hub asks topi for the order (GET) and stores
    what it answered; mapping that message does not ask again."""
    recorder = Recorder(
        {("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(200, content=encode_order("canceled"))}
    )
    acct = account(recorder)
    order = receive(snapshot("created"))

    message = await acct.refresh(order)

    assert message is not None
    assert recorder.calls == [("GET", f"/v1/orders/{ORDER_ID}")]
    assert message.dedupe_key.startswith(f"refresh:{ORDER_ID}:canceled:")
    again = await acct.refresh(order)  # topi shows the same: the same key, stored once
    assert again is not None
    assert again.dedupe_key == message.dedupe_key
    (snap,) = await acct.snapshots(message.body, message.headers)
    assert snap.channel_status == "canceled"
    assert len(recorder.calls) == 2  # the two refreshes; mapping asked nothing
    assert acct.order_key(message.body, message.headers) == ORDER_ID


def test_the_order_key_of_a_webhook_is_topis_order_id() -> None:
    acct = account(Recorder({}))
    body = json.dumps({"id": ORDER_ID, "status": "created", "assets": []}).encode()
    assert acct.order_key(body, {}) == ORDER_ID


@pytest.mark.parametrize(
    ("earlier", "later", "independent"),
    [
        (CommandKind.ACKNOWLEDGE, CommandKind.ACCEPT, True),
        (CommandKind.ACKNOWLEDGE, CommandKind.REJECT, True),
        (CommandKind.ACCEPT, CommandKind.SHIP, False),  # topi ships confirmed orders only
        (CommandKind.ACKNOWLEDGE, CommandKind.SHIP, False),
        (CommandKind.SHIP, CommandKind.SHIP, False),
    ],
)
def test_only_the_acknowledgement_and_the_decision_may_overtake_each_other(
    earlier: CommandKind, later: CommandKind, independent: bool
) -> None:
    assert account(Recorder({})).independent(earlier, later) is independent


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "action", "answer"),
    [
        (CommandKind.ACKNOWLEDGE, "acknowledge", "acknowledged"),
        (CommandKind.ACCEPT, "accept", "confirmed"),
        (CommandKind.REJECT, "reject", "rejected"),
    ],
)
async def test_order_commands_post_to_their_endpoint_without_a_body(
    kind: CommandKind, action: str, answer: str
) -> None:
    recorder = Recorder(
        {
            ("POST", f"/v1/orders/{ORDER_ID}/{action}"): order_result(answer),
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(200, content=encode_order(answer)),
        }
    )
    order = receive(snapshot("created"))

    outcome = await account(recorder).execute(command(order, kind, {"reason": "x"}), order)

    # the command, then a read-back: topi sends no webhook for acknowledged and confirmed
    assert recorder.calls == [
        ("POST", f"/v1/orders/{ORDER_ID}/{action}"),
        ("GET", f"/v1/orders/{ORDER_ID}"),
    ]
    assert recorder.requests[0].content == b""  # topi's reject takes no reason
    assert outcome.data == {"topi_status": answer}
    assert outcome.snapshot is not None
    assert outcome.snapshot.channel_status == answer


async def test_a_failed_read_back_does_not_fail_the_command() -> None:
    recorder = Recorder(
        {
            ("POST", f"/v1/orders/{ORDER_ID}/accept"): order_result("confirmed"),
            ("GET", f"/v1/orders/{ORDER_ID}"): goa(503, "down", "internal_error"),
        }
    )
    order = receive(snapshot("created"))

    outcome = await account(recorder).execute(command(order, CommandKind.ACCEPT), order)

    assert outcome.data == {"topi_status": "confirmed"}
    assert outcome.snapshot is None


def _shipment_answer(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    return httpx.Response(
        201,
        json={"serial_numbers": sent["serial_numbers"], "tracking_url": sent.get("tracking_url")},
    )


async def test_a_shipment_posts_one_entry_per_unit(confirmed: Order) -> None:
    recorder = Recorder({("POST", "/v1/shipment"): _shipment_answer})
    payload = {
        "shipment_id": "hub-s1",
        "tracking_url": "https://track.example/9",
        "items": [item(confirmed, "1.1", 2, "SN-C1", "SN-C2"), item(confirmed, "2", 1)],
    }

    outcome = await account(recorder).execute(ship_command(confirmed, payload), confirmed)

    assert recorder.calls == [("POST", "/v1/shipment")]  # a first attempt does not look first
    sent = json.loads(recorder.requests[0].content)
    assert sent == {
        "order_id": ORDER_ID,
        "serial_numbers": [
            {
                "seller_product_reference": {"source": "sku", "reference": "CHG-1"},
                "serial_number": "SN-C1",
            },
            {
                "seller_product_reference": {"source": "sku", "reference": "CHG-1"},
                "serial_number": "SN-C2",
            },
            {
                "seller_product_reference": {"source": "sku", "reference": "CBL-1"},
                "serial_number": "",
            },
        ],
        "tracking_url": "https://track.example/9",
        "metadata": {"hub_shipment_id": "hub-s1"},
    }
    assert outcome.data == {"units": 3, "tracking_url": "https://track.example/9"}


async def test_after_an_operators_retry_topi_is_checked_before_shipping(confirmed: Order) -> None:
    """An operator's retry starts the attempts again, but claims were made before: topi
    may already have the parcel, so it is asked first (the fence counts every claim)."""
    shipped = {"a-lap-1": "SN-L1", "a-lap-2": "SN-L2"}
    recorder = Recorder(
        {
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(
                200, content=encode_order("partially_fulfilled", shipped=shipped)
            ),
            ("POST", "/v1/shipment"): _shipment_answer,
        }
    )
    payload = {"shipment_id": "s1", "items": [item(confirmed, "1.0", 2, "SN-L1", "SN-L2")]}
    retried = dataclasses.replace(ship_command(confirmed, payload, attempts=1), fence=4)

    outcome = await account(recorder).execute(retried, confirmed)

    assert recorder.calls == [("GET", f"/v1/orders/{ORDER_ID}")]
    assert outcome.data["replayed"] is True


async def test_a_retried_shipment_topi_already_has_is_not_sent_again(confirmed: Order) -> None:
    shipped = {"a-lap-1": "SN-L1", "a-lap-2": "SN-L2"}
    recorder = Recorder(
        {
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(
                200, content=encode_order("partially_fulfilled", shipped=shipped)
            ),
            ("POST", "/v1/shipment"): _shipment_answer,
        }
    )
    payload = {"shipment_id": "s1", "items": [item(confirmed, "1.0", 2, "SN-L1", "SN-L2")]}

    outcome = await account(recorder).execute(
        ship_command(confirmed, payload, attempts=2), confirmed
    )

    assert recorder.calls == [("GET", f"/v1/orders/{ORDER_ID}")]
    assert outcome.data == {"topi_status": "partially_fulfilled", "replayed": True}


async def test_a_retried_shipment_topi_does_not_have_is_sent(confirmed: Order) -> None:
    recorder = Recorder(
        {
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(
                200, content=encode_order("confirmed")
            ),
            ("POST", "/v1/shipment"): _shipment_answer,
        }
    )
    payload = {"shipment_id": "s1", "items": [item(confirmed, "1.0", 2, "SN-L1", "SN-L2")]}

    outcome = await account(recorder).execute(
        ship_command(confirmed, payload, attempts=3), confirmed
    )

    assert recorder.calls == [("GET", f"/v1/orders/{ORDER_ID}"), ("POST", "/v1/shipment")]
    assert outcome.data["units"] == 2


async def test_a_line_without_product_reference_fails_for_good_without_a_call(
    confirmed: Order,
) -> None:
    recorder = Recorder({})
    cable = by_channel_id(confirmed, "2")
    cable.extras["seller_product_references"] = []
    payload = {"shipment_id": "s1", "items": [item(confirmed, "2", 1)]}

    with pytest.raises(PermanentChannelError, match="no seller product reference"):
        await account(recorder).execute(ship_command(confirmed, payload), confirmed)
    assert recorder.calls == []


@pytest.mark.parametrize("kind", [CommandKind.CANCEL, CommandKind.DELIVER])
async def test_commands_topi_does_not_have_fail_with_the_explanation(
    confirmed: Order, kind: CommandKind
) -> None:
    recorder = Recorder({})

    with pytest.raises(PermanentChannelError) as caught:
        await account(recorder).execute(command(confirmed, kind), confirmed)

    assert caught.value.message == CAPABILITIES.refusals[kind.value]
    assert recorder.calls == []


# ---------------------------------------------------------------------------------------
# error translation
# ---------------------------------------------------------------------------------------

ACCEPT_PATH = f"/v1/orders/{ORDER_ID}/accept"


@pytest.mark.parametrize(
    ("response", "status", "retry_after"),
    [
        (goa(503, "maintenance", "internal_error", **{"Retry-After": "7"}), 503, 7.0),
        (goa(429, "slow down", "too_many_requests", **{"Retry-After": "30"}), 429, 30.0),
        (goa(500, "boom", "internal_error"), 500, None),
        (goa(408, "request timeout", "request_timeout"), 408, None),
    ],
)
async def test_transient_answers_become_transient_errors_with_retry_after(
    confirmed: Order, response: httpx.Response, status: int, retry_after: float | None
) -> None:
    recorder = Recorder({("POST", ACCEPT_PATH): response})

    with pytest.raises(TransientChannelError) as caught:
        await account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)

    assert caught.value.status == status
    assert caught.value.retry_after == retry_after


async def test_a_timeout_is_transient(confirmed: Order) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    with pytest.raises(TransientChannelError) as caught:
        await account(Recorder({("POST", ACCEPT_PATH): timeout})).execute(
            command(confirmed, CommandKind.ACCEPT), confirmed
        )
    assert caught.value.status is None
    assert "timeout" in caught.value.message


async def test_a_refusal_is_permanent_and_keeps_topis_message(confirmed: Order) -> None:
    message = 'asset a-lap-1 ("Pro Laptop 64GB", sku:LAP-1) has a rent option and requires a serial'
    recorder = Recorder({("POST", "/v1/shipment"): goa(400, message)})
    payload = {"shipment_id": "s1", "items": [item(confirmed, "2", 1)]}

    with pytest.raises(PermanentChannelError) as caught:
        await account(recorder).execute(ship_command(confirmed, payload), confirmed)

    assert not isinstance(caught.value, ChannelConfigurationError)
    assert caught.value.status == 400
    assert caught.value.message == f"topi: {message}"


async def test_a_repeated_command_refused_for_another_status_is_permanent(
    confirmed: Order,
) -> None:
    refusal = 'order is in status "rejected": you can only accept orders that have been in ...'
    recorder = Recorder(
        {
            ("POST", ACCEPT_PATH): goa(422, refusal, "invalid_status"),
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(
                200, content=encode_order("rejected")
            ),
        }
    )

    with pytest.raises(PermanentChannelError) as caught:
        await account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)

    assert caught.value.status == 422
    assert refusal in caught.value.message


async def test_a_repeated_command_topi_already_applied_succeeds(confirmed: Order) -> None:
    recorder = Recorder(
        {
            ("POST", ACCEPT_PATH): goa(422, "already confirmed", "invalid_status"),
            ("GET", f"/v1/orders/{ORDER_ID}"): httpx.Response(
                200, content=encode_order("completed", shipped=ALL_SHIPPED)
            ),
        }
    )

    outcome = await account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)

    assert outcome.data == {"topi_status": "completed"}


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, json="invalid or expired access token"),
        httpx.Response(403, json="missing scope seller-order:edit"),
    ],
)
async def test_refused_credentials_are_a_configuration_error(
    confirmed: Order, response: httpx.Response
) -> None:
    recorder = Recorder({("POST", ACCEPT_PATH): response})

    with pytest.raises(ChannelConfigurationError) as caught:
        await account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)

    assert caught.value.status == response.status_code
    assert caught.value.message.startswith("topi refused the credentials: ")
    assert response.json() in caught.value.message


async def test_an_unreadable_answer_is_retried(confirmed: Order) -> None:
    recorder = Recorder({("POST", ACCEPT_PATH): httpx.Response(200, content=b"<html>proxy</html>")})

    with pytest.raises(TransientChannelError):
        await account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)


def _oauth_account(recorder: Recorder) -> TopiAccount:
    client = TopiClient(
        base_url=BASE,
        credentials=ClientCredentials(client_id="c", client_secret="s", token_url=TOKEN_URL),
        transport=httpx.MockTransport(recorder),
    )
    return TopiAccount(AccountConfig(channel="topi", name="default"), client=client)


class Tokens:
    def __init__(self) -> None:
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.issued += 1
        return httpx.Response(200, json={"access_token": f"tok-{self.issued}", "expires_in": 3600})


async def test_a_refused_token_is_refreshed_once(confirmed: Order) -> None:
    def accept(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer tok-1":
            return httpx.Response(401, json="token revoked")
        return order_result("confirmed")

    tokens = Tokens()
    recorder = Recorder({("POST", "/oauth2/token"): tokens, ("POST", ACCEPT_PATH): accept})

    outcome = await _oauth_account(recorder).execute(
        command(confirmed, CommandKind.ACCEPT), confirmed
    )

    assert outcome.data == {"topi_status": "confirmed"}
    assert tokens.issued == 2
    assert recorder.calls.count(("POST", ACCEPT_PATH)) == 2


async def test_a_token_refused_after_the_refresh_is_a_configuration_error(
    confirmed: Order,
) -> None:
    tokens = Tokens()
    recorder = Recorder(
        {
            ("POST", "/oauth2/token"): tokens,
            ("POST", ACCEPT_PATH): httpx.Response(401, json="nope"),
        }
    )

    with pytest.raises(ChannelConfigurationError):
        await _oauth_account(recorder).execute(command(confirmed, CommandKind.ACCEPT), confirmed)
    assert tokens.issued == 2


# ---------------------------------------------------------------------------------------
# reconciliation
# ---------------------------------------------------------------------------------------


class MemoryCursors:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], str] = {}

    async def get(self, channel: str, account: str, name: str) -> str | None:
        return self.values.get((channel, account, name))

    async def set(self, channel: str, account: str, name: str, value: str) -> None:
        self.values[(channel, account, name)] = value


class OrderList:
    """``GET /v1/orders/paginated`` over a list of (id, created_at): created_at_gte filter,
    ascending by (created_at, id), 1-based pages."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, dt.datetime]] = []
        self.statuses: dict[str, str] = {}  # "created" unless said otherwise
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        self.queries.append(query)
        since = dt.datetime.fromisoformat(query["created_at_gte"].replace("Z", "+00:00"))
        limit, page = int(query["limit"]), int(query.get("page", "1"))
        rows = sorted((o for o in self.orders if o[1] >= since), key=lambda o: (o[1], o[0]))
        chosen = rows[(page - 1) * limit : page * limit]
        return httpx.Response(
            200,
            json={
                "orders": [
                    {
                        "id": oid,
                        "status": self.statuses.get(oid, "created"),
                        "created_at": at.isoformat(),
                    }
                    for oid, at in chosen
                ],
                "pagination": {
                    "page": page,
                    "page_size": limit,
                    "total_count": len(rows),
                    "total_pages": (len(rows) + limit - 1) // limit,
                },
            },
        )


@pytest.fixture
def listing() -> OrderList:
    return OrderList()


class Inbox:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.messages: list[IntakeMessage] = []

    async def submit(self, message: IntakeMessage) -> bool:
        self.messages.append(message)
        new = message.dedupe_key not in self.keys
        self.keys.append(message.dedupe_key)
        return new


class Job:
    """What a reconciliation run gets: cursors, a clock, the inbox."""

    def __init__(self) -> None:
        self.cursors = MemoryCursors()
        self.clock = FixedClock(dt.datetime(2026, 2, 3, 12, 0, tzinfo=dt.UTC))
        self.inbox = Inbox()

    def context(self, acct: TopiAccount) -> JobContext:
        return JobContext(
            account=acct.config, cursors=self.cursors, clock=self.clock, submit=self.inbox.submit
        )

    def cursor(self) -> Any:
        return json.loads(self.cursors.values[("topi", "default", "reconcile")])


@pytest.fixture
def job() -> Job:
    return Job()


T0 = dt.datetime(2026, 2, 3, 9, 0, tzinfo=dt.UTC)


async def test_reconciliation_submits_every_order_since_the_lookback(
    listing: OrderList, job: Job
) -> None:
    listing.orders = [("o-1", T0), ("o-2", T0 + dt.timedelta(minutes=1))]
    acct = account(Recorder({("GET", "/v1/orders/paginated"): listing}), reconcile_lookback_hours=6)

    await acct.reconcile(job.context(acct))

    assert listing.queries[0]["created_at_gte"] == "2026-02-03T06:00:00Z"  # now - 6 h
    inbox = job.inbox
    assert inbox.keys == ["reconcile:o-1:created", "reconcile:o-2:created"]
    assert [wire.decode_webhook(m.body).id for m in inbox.messages] == ["o-1", "o-2"]
    cursor = job.cursor()
    assert cursor == {"created_at": (T0 + dt.timedelta(minutes=1)).isoformat(), "id": "o-2"}


async def test_the_next_reconciliation_overlaps_the_last_and_submits_only_what_changed(
    listing: OrderList, job: Job
) -> None:
    listing.orders = [("o-1", T0), ("o-2", T0)]
    acct = account(Recorder({("GET", "/v1/orders/paginated"): listing}))
    await acct.reconcile(job.context(acct))
    inbox = job.inbox
    assert job.cursor() == {"created_at": T0.isoformat(), "id": "o-2"}

    await acct.reconcile(job.context(acct))
    # the walk starts ten minutes (reconcile_overlap_minutes) before the cursor
    assert listing.queries[-1]["created_at_gte"] == "2026-02-03T08:50:00Z"
    assert inbox.keys.count("reconcile:o-1:created") == 2  # seen again: the inbox dedupes

    # an order topi committed late (created before the cursor), a later one, and a status
    # the hub's webhook never brought
    listing.orders += [("o-0", T0 - dt.timedelta(minutes=3)), ("o-4", T0 + dt.timedelta(seconds=1))]
    listing.statuses["o-1"] = "canceled"
    new_keys = len(set(inbox.keys))
    await acct.reconcile(job.context(acct))

    assert sorted(set(inbox.keys))[:] == sorted(
        {
            "reconcile:o-0:created",
            "reconcile:o-1:created",
            "reconcile:o-1:canceled",
            "reconcile:o-2:created",
            "reconcile:o-4:created",
        }
    )
    assert len(set(inbox.keys)) == new_keys + 3
    assert job.cursor()["id"] == "o-4"


async def test_reconciliation_without_orders_keeps_no_cursor(listing: OrderList, job: Job) -> None:
    acct = account(Recorder({("GET", "/v1/orders/paginated"): listing}))

    await acct.reconcile(job.context(acct))

    assert job.cursors.values == {}
    assert job.inbox.messages == []
