"""Prometheus metrics of the hub, on a registry of our own, rendered by :func:`render`.

Multi-process: the API, the dramatiq worker processes and the scheduler are separate
processes, and each only counts what it does itself. Two ways to see them all:

* Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by every process of one
  host (the deploy examples do, and wipe it at start). prometheus-client then keeps the
  values in memory-mapped files there, and :func:`render` (served by the API at
  ``/metrics``) aggregates every process's files: one scrape shows the whole host.
  Counters and histograms aggregate by summing, so a worker process that exits leaves
  correct totals behind; the one gauge, requests in progress, sums live processes only
  (``serve --workers`` drops a dead child's files).
* Without it (the default, and embedded mode where everything is one process),
  :func:`render` shows this process only.

The hub's state (backlogs, failed commands, orders needing attention, feed head, the
last message applied per account) is not counted here: an API process reads it from the
database when scraped (at most every 30 s) and appends it to its ``/metrics`` once, never
summed across processes (:mod:`orderhub.entrypoints.web.overview_metrics`).

Labels are bounded: channel and kind names come from configuration and enums, outcomes
from a small fixed set. Never put ids in a label.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

__all__ = [
    "COMMANDS_DISPATCHED",
    "CONTENT_TYPE",
    "DISPATCH_SECONDS",
    "ENQUEUE_FAILURES",
    "ENQUEUE_GIVEN_UP",
    "ENQUEUE_PUBLISH_SECONDS",
    "FEED_EVENTS",
    "HTTP_REQUESTS_IN_PROGRESS",
    "INBOX_PROCESSED",
    "REGISTRY",
    "RETENTION_PRUNED",
    "SCHEDULED_JOBS",
    "SCHEDULER_LEADERSHIP_LOST",
    "STALE_OUTCOMES",
    "SWEEP_REQUEUED",
    "WEBHOOKS_RECEIVED",
    "WEBHOOK_SIGNATURES",
    "render",
]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY: Final = CollectorRegistry(auto_describe=True)

WEBHOOKS_RECEIVED: Final = Counter(
    "orderhub_webhooks_received",
    "Webhook requests, by channel and outcome (stored, duplicate, unauthorized, rejected).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_SIGNATURES: Final = Counter(
    "orderhub_webhook_signatures_matched",
    "Webhooks accepted by an adapter's own signature scheme, by channel, scheme and the "
    "variant that matched (raw body, or the compact re-serialisation fallback).",
    ["channel", "scheme", "variant"],
    registry=REGISTRY,
)
INBOX_PROCESSED: Final = Counter(
    "orderhub_inbox_processed",
    "Inbox messages worked on, by channel and outcome (processed, failed, retry, waiting, "
    "not_due, leased, stale, ended, missing, error).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
COMMANDS_DISPATCHED: Final = Counter(
    "orderhub_commands_dispatched",
    "Channel command dispatches, by channel, kind and outcome "
    "(succeeded, failed, retry, waiting, held, not_due, leased, stale, ended, missing, error).",
    ["channel", "kind", "outcome"],
    registry=REGISTRY,
)
DISPATCH_SECONDS: Final = Histogram(
    "orderhub_command_dispatch_seconds",
    "Time to dispatch one channel command, channel call included.",
    ["channel", "kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
FEED_EVENTS: Final = Counter(
    "orderhub_feed_events_written",
    "Events written to the warehouse feed, by type.",
    ["type"],
    registry=REGISTRY,
)
ENQUEUE_FAILURES: Final = Counter(
    "orderhub_enqueue_failures",
    "Hand-offs to the broker that failed (the sweeper requeues them), by what (command, inbox).",
    ["what"],
    registry=REGISTRY,
)
ENQUEUE_GIVEN_UP: Final = Counter(
    "orderhub_enqueue_given_up",
    "Hand-offs to the broker given up, by what (command, inbox) and reason (buffer_full, "
    "error, timeout, broker_unavailable, closed); each is also in orderhub_enqueue_failures.",
    ["what", "reason"],
    registry=REGISTRY,
)
ENQUEUE_PUBLISH_SECONDS: Final = Histogram(
    "orderhub_enqueue_publish_seconds",
    "Time from the hand-over (after the commit) until the broker accepted the message, "
    "by what (command, inbox): the wait in the publish buffer, its linger included.",
    ["what"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
STALE_OUTCOMES: Final = Counter(
    "orderhub_stale_outcomes",
    "Outcomes a worker reached after its claim had been taken over (its lease ran out): "
    "logged, never written",
    ["what"],
    registry=REGISTRY,
)
RETENTION_PRUNED: Final = Counter(
    "orderhub_retention_pruned",
    "Rows removed (or inbox bodies emptied) by the retention job",
    ["what"],
    registry=REGISTRY,
)
SCHEDULED_JOBS: Final = Counter(
    "orderhub_scheduled_job_runs",
    "Scheduled job runs (polling, reconciliation, sweep), by channel, job and outcome.",
    ["channel", "job", "outcome"],
    registry=REGISTRY,
)
SWEEP_REQUEUED: Final = Counter(
    "orderhub_sweep_requeued",
    "Commands and inbox messages the sweeper queued again, by what (command, inbox).",
    ["what"],
    registry=REGISTRY,
)
SCHEDULER_LEADERSHIP_LOST: Final = Counter(
    "orderhub_scheduler_leadership_lost",
    "Times the scheduler lost its leadership lock and stopped its jobs, by reason "
    "(error = the check failed, timeout = no answer in time, not_held = the lock is gone).",
    ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS_IN_PROGRESS: Final = Gauge(
    "orderhub_http_requests_in_progress",
    "API requests being answered (probes and /metrics left out), long polls included.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` and its content type."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE
