"""Keep what a process holds for its whole life out of the garbage collector's way.

A started ``serve`` tracks some 120,000 container objects (modules, classes, the app, the
hub, SQLAlchemy's and litestar's tables) that live as long as the process. CPython's
oldest-generation collection walks them all each time it runs: 60-70 ms on this machine,
during which every request in flight waits, which is what a latency tail (p99) is made
of. :func:`freeze_startup_objects`, called once the process is ready, collects what is
already garbage, then moves everything alive into the permanent generation
(:func:`gc.freeze`), which later collections skip: they walk only what requests and jobs
allocate. What is frozen is still freed by reference counting when dropped; only a cycle
among frozen objects would stay, and startup builds none that it later drops."""

from __future__ import annotations

import gc

from orderhub.logging import get_logger

log = get_logger(__name__)


def freeze_startup_objects(process: str) -> int:
    """Collect, then freeze every object alive now; how many are frozen (logged)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc.frozen", process=process, objects=frozen)
    return frozen
