"""deploy/prometheus/alerts.yaml and deploy/grafana/orderhub.json name only metrics the
hub serves on /metrics (the web app over fakes, scraped); the overview gauges show the
database's state, are read again when a scrape finds them due, and are shown once per
scrape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.entrypoints.web.overview_metrics import OverviewMetrics
from orderhub.metrics import MULTIPROC_ENV, render
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue
from tests.unit.web.support import (
    API_KEYS,
    CHANNEL,
    Harness,
    StubAccount,
    commanding,
    fake_hub,
    stub_registry,
)

from .promql import metric_names, syntax_problems
from .support import DEPLOY, load_yaml

ALERTS: Final = load_yaml(DEPLOY / "prometheus" / "alerts.yaml")
DASHBOARD: Final = json.loads((DEPLOY / "grafana" / "orderhub.json").read_text(encoding="utf-8"))
SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock, db, queue = FixedClock(), FakeDatabase(), RecordingQueue()
    hub = fake_hub(stub_registry(), db=db, clock=clock, queue=queue)
    settings = WebSettings(
        api_keys=API_KEYS, metrics_renderer=lambda: render()[0], overview_metrics_seconds=0.05
    )
    app = create_app(hub, settings)
    async with AsyncTestClient(app=app) as client:
        yield Harness(hub=hub, db=db, clock=clock, queue=queue, client=client, app=app)


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _served_names(text: str) -> set[str]:
    """Every series name the exposition has or may have (a labelled counter that nothing
    incremented yet has its family, and no sample)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def _scrape_when(harness: Harness, shows: Callable[[str], bool], what: str) -> str:
    """/metrics once a scrape's refresh shows what is expected (at most 5 s)."""
    text = ""
    for _ in range(100):
        text = (await harness.client.get("/metrics")).text
        if shows(text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}:\n{text}")


async def _scrape_until(harness: Harness, name: str, value: float, **labels: str) -> str:
    return await _scrape_when(
        harness, lambda text: _value(text, name, **labels) == value, f"{name}{labels} == {value}"
    )


async def _command(harness: Harness, order_id: str, action: str, body: Any = None) -> str:
    response = await harness.client.post(
        f"/api/v1/orders/{order_id}/{action}", json=body, headers=commanding()
    )
    assert response.status_code == 202, response.text
    command_id: str = response.json()["command_id"]
    return command_id


async def _a_day_that_needs_a_person(harness: Harness) -> None:
    """A refused accept (failed, the order needs attention, its shipment held), one webhook
    applied, one that cannot be, and one waiting."""
    order = await harness.seed()
    accept_id = await _command(harness, order.id, "accept")
    items = [{"line_id": order.lines[0].id, "quantity": 1}]
    ship = {"carrier": "dhl", "tracking_number": "T1", "items": items}
    ship_id = await _command(harness, order.id, "shipments", ship)
    account = harness.hub.channels.account(CHANNEL, "main")
    assert isinstance(account, StubAccount)
    account.refuse_next = "the order was cancelled"
    assert await dispatch_command(harness.hub, accept_id) is Dispatched.FAILED
    assert await dispatch_command(harness.hub, ship_id) is Dispatched.HELD
    good = b'{"id": "CH-9", "lines": [{"id": "a", "quantity": 1}]}'
    for message_id, body, outcome in (
        ("m-ok", good, Processed.PROCESSED),
        ("m-bad", b"not json", Processed.FAILED),
    ):
        headers = harness.signed(body, message_id=message_id)
        stored = await harness.client.post("/webhooks/stub/main", content=body, headers=headers)
        assert stored.status_code < 300, stored.text
        assert await process_message(harness.hub, stored.json()["message_id"]) is outcome
    waiting = b'{"id": "CH-10", "lines": [{"id": "a", "quantity": 1}]}'
    stored = await harness.client.post(
        "/webhooks/stub/main", content=waiting, headers=harness.signed(waiting, message_id="m-3")
    )
    assert stored.status_code < 300, stored.text


async def test_the_overview_gauges_show_what_the_database_holds(harness: Harness) -> None:
    await _a_day_that_needs_a_person(harness)
    harness.clock.advance(120)
    text = await _scrape_until(harness, "orderhub_inbox_backlog_oldest_age_seconds", 120.0)

    stub = {"channel": CHANNEL}
    assert _value(text, "orderhub_commands_failed", **stub) == 1
    assert _value(text, "orderhub_commands_held", **stub) == 1
    assert _value(text, "orderhub_orders_attention", **stub) == 1
    assert _value(text, "orderhub_inbox_failed", **stub) == 1
    assert _value(text, "orderhub_inbox_backlog") == 1
    assert _value(text, "orderhub_command_backlog") == 1  # the held shipment
    assert _value(text, "orderhub_command_backlog_oldest_age_seconds") == 120
    assert _value(text, "orderhub_feed_head_sequence") == len(harness.db.feed)
    assert (
        _value(
            text,
            "orderhub_channel_last_applied_age_seconds",
            channel=CHANNEL,
            account="main",
            source="webhook",
        )
        == 120
    )
    assert _value(text, "orderhub_overview_age_seconds") == 0
    assert _value(text, "orderhub_overview_refresh_failures_total") == 0
    counted = sum(
        s.value
        for s in _families(text)["orderhub_orders"].samples
        if s.labels["channel"] == CHANNEL
    )
    assert counted == len(harness.db.orders)


async def test_a_failed_refresh_keeps_the_last_values_and_is_counted(harness: Harness) -> None:
    await _scrape_until(harness, "orderhub_inbox_backlog", 0)

    def broken() -> Any:
        raise ConnectionError("database down")

    harness.hub.uow = broken
    harness.clock.advance(60)
    text = await _scrape_when(
        harness,
        lambda text: (_value(text, "orderhub_overview_refresh_failures_total") or 0) >= 2,
        "two failed refreshes",
    )
    assert _value(text, "orderhub_overview_age_seconds") == 60
    assert _value(text, "orderhub_inbox_backlog") == 0


async def test_several_api_processes_show_the_gauges_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``serve --workers``: the counters of every process are added up from the shared
    directory; the gauges read from the database come from the answering process only."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    await _a_day_that_needs_a_person(harness)
    text = await _scrape_until(harness, "orderhub_commands_failed", 1, channel=CHANNEL)
    assert text.count("# TYPE orderhub_commands_failed gauge") == 1
    assert text.count("# TYPE orderhub_inbox_backlog gauge") == 1


async def test_the_database_is_read_only_when_scraped_and_once_per_interval() -> None:
    reads = 0
    hub = fake_hub(stub_registry(), db=FakeDatabase(), clock=FixedClock(), queue=RecordingQueue())
    unit_of_work = hub.uow

    def counting() -> Any:
        nonlocal reads
        reads += 1
        return unit_of_work()

    hub.uow = counting
    gauges = OverviewMetrics(hub, interval_seconds=3600)
    assert b"orderhub_inbox_backlog" not in gauges.render()
    assert reads == 0, "nothing is read before a scrape"
    await asyncio.gather(gauges.fresh(), gauges.fresh(), gauges.fresh())
    assert reads == 1, "concurrent scrapes share one read"
    await gauges.fresh()
    assert reads == 1, "the next read waits for the interval"
    assert b"orderhub_inbox_backlog 0.0" in gauges.render()


def _rules() -> Iterator[dict[str, Any]]:
    for group in ALERTS["groups"]:
        yield from group["rules"]


def _panel_exprs() -> Iterator[tuple[str, str]]:
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


async def test_every_metric_the_alerts_and_the_dashboard_name_is_served(
    harness: Harness,
) -> None:
    text = await _scrape_until(harness, "orderhub_inbox_backlog", 0)
    served = _served_names(text)
    named = {
        name: where
        for where, expr in [*((r["alert"], r["expr"]) for r in _rules()), *_panel_exprs()]
        for name in metric_names(str(expr))
    }
    assert len(named) > 20
    missing = {name: where for name, where in named.items() if name not in served}
    assert not missing, f"not on /metrics: {missing}"


def test_every_expression_is_plausible_promql() -> None:
    expressions = [(r["alert"], str(r["expr"])) for r in _rules()] + list(_panel_exprs())
    problems = {where: syntax_problems(expr) for where, expr in expressions}
    assert not {where: p for where, p in problems.items() if p}
    for wrong in ("rat(x[5m])", "sum(rate(x[5m])", 'max(x{a="b"}[5q])'):
        assert syntax_problems(wrong), wrong


def test_the_alert_rules_cover_what_an_operator_must_hear_of() -> None:
    rules = list(_rules())
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert str(rule["for"])[-1] in "smh"
    read = {r["alert"]: metric_names(str(r["expr"])) for r in rules}
    covered = set().union(*read.values())
    for topic in (
        "orderhub_inbox_backlog_oldest_age_seconds",  # feed lag
        "orderhub_command_backlog_oldest_age_seconds",  # backlog age
        "orderhub_feed_head_sequence",
        "orderhub_feed_unnumbered_events",
        "orderhub_commands_failed",
        "orderhub_orders_attention",
        "orderhub_channel_last_applied_age_seconds",  # stale polling
    ):
        assert topic in covered, topic
    polling = [r for r in rules if 'source="polling"' in r["expr"]]
    assert polling, "a rule on stale polling"


def test_the_dashboard_is_one_grafana_can_import() -> None:
    assert DASHBOARD["uid"] == "orderhub"
    assert DASHBOARD["schemaVersion"] >= 36
    (variable,) = DASHBOARD["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in DASHBOARD["panels"]]
    cells = [
        (x, y)
        for p in DASHBOARD["panels"]
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "no panel covers another"
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
