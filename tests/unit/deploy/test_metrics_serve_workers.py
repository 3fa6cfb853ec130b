"""``orderhub serve --workers 2`` as real processes (SQLite, Redis as the broker): each
API process reads the overview gauges from the database when scraped and answers
them once per scrape, with the database's value, never the sum of its processes'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderhub.testing.processes import NotYet, ProcessSet, eventually
from tests.e2e.test_serve_workers import WEBHOOK, Supervisor

pytestmark = pytest.mark.broker

MAX_SCRAPES: Final = 400
REFRESH_WAIT: Final = 75.0  # read when scraped, at most every 30 s (cli.OVERVIEW_METRICS_SECONDS)


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    started = ProcessSet()
    yield started
    started.stop_all()


def _backlog(text: str) -> float:
    assert text.count("# TYPE orderhub_inbox_backlog gauge") == 1, "shown once per scrape"
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "orderhub_inbox_backlog"
    ]
    (sample,) = family.samples
    return float(sample.value)


def test_each_process_shows_the_databases_backlog_once(
    tmp_path: Path, processes: ProcessSet
) -> None:
    hub = Supervisor(tmp_path, processes).start()
    stored = httpx.post(
        hub.url + WEBHOOK, headers={"Authorization": "Bearer the-right-token"}, content=b"{}"
    )
    assert stored.status_code < 300, stored.text  # stored; no worker runs: it waits

    shown: dict[int, float] = {}
    for scrape in range(MAX_SCRAPES):
        path = f"/metrics?try={scrape}"
        text = httpx.get(hub.url + path, timeout=10).text  # a new connection each time
        value = _backlog(text)
        assert value in (0, 1), f"{value}: one message waits in the database"

        def answered_by(path: str = path) -> int:
            lines = hub.access_log(path)
            if not lines:
                raise NotYet("not logged yet")
            worker: int = lines[0]["worker"]
            return worker

        worker = eventually(f"the access log line of {path}", answered_by, processes=[hub.process])
        shown[worker] = value
        if shown == {1: 1, 2: 1}:
            break
        if scrape > 40:  # both have answered: now wait for their next refresh
            eventually(
                "a refresh",
                lambda: _expect_one(httpx.get(hub.url + "/metrics", timeout=10).text),
                timeout=REFRESH_WAIT,
                processes=[hub.process],
            )
    assert shown == {1: 1, 2: 1}, f"each process's last answer: {shown}"


def _expect_one(text: str) -> None:
    if _backlog(text) != 1:
        raise NotYet("not refreshed yet")
