"""``orderhub worker --metrics-port`` and ``orderhub scheduler --metrics-port``: where a
worker or the scheduler shares no host with an API process (a container, a pod), its own
``/metrics`` shows what it counted; a worker's adds up all its dramatiq processes."""

from __future__ import annotations

import re

import httpx

from orderhub.testing.processes import NotYet, eventually, free_port

from .conftest import HubFactory
from .support import ChannelServer, order_document

WORKER_PROCESSES = 2
ORDERS = 4


def counted(url: str, metric: str) -> float:
    """The sum of ``metric``'s samples on ``url``; NotYet while there is none."""
    text = httpx.get(url, timeout=10).text
    samples = re.findall(rf"^{metric}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    if not samples:
        raise NotYet(f"no {metric} on {url} yet")
    return sum(float(s) for s in samples)


def test_a_worker_and_the_scheduler_serve_their_own_metrics(
    hub_factory: HubFactory, channel_server: ChannelServer
) -> None:
    worker_port, scheduler_port = free_port(), free_port()
    hub = hub_factory(
        "production",
        worker_processes=WORKER_PROCESSES,
        worker_args=["--metrics-port", str(worker_port)],
        scheduler_args=["--metrics-port", str(scheduler_port)],
    )
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    scheduler_url = f"http://127.0.0.1:{scheduler_port}/metrics"
    for n in range(ORDERS):
        answer = channel_server.send_order(
            hub, "octopia", order_document(f"CO-M{n}", "WaitingAcceptance", [("L1", 1)])
        )
        assert answer["status"] == 202, answer

    def all_processed() -> float:
        done = counted(worker_url, "orderhub_inbox_processed_total")
        if done < ORDERS:
            raise NotYet(f"{done} of {ORDERS} messages processed")
        return done

    # every message once, whichever of the worker's processes took it: they add up
    alive = hub.check_alive
    assert (
        eventually("the worker's metrics to count every message", all_processed, alive=alive)
        == ORDERS
    )
    runs = eventually(
        "the scheduler's metrics to count its job runs",
        lambda: counted(scheduler_url, "orderhub_scheduled_job_runs_total"),
        alive=alive,
    )
    assert runs >= 1
    assert httpx.get(f"http://127.0.0.1:{worker_port}/", timeout=10).status_code == 404
    scheduler_text = httpx.get(scheduler_url, timeout=10).text  # its own counts only
    assert re.search(r"^orderhub_inbox_processed_total\{", scheduler_text, re.M) is None
