"""Startup objects are frozen: the oldest generation's collections no longer walk them."""

from __future__ import annotations

import gc
import weakref

from orderhub.entrypoints.gc_freeze import freeze_startup_objects


def test_what_is_alive_at_startup_is_frozen_and_garbage_is_collected_first() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    gc.unfreeze()
    try:
        garbage = Node()
        gone = weakref.ref(garbage)
        del garbage
        alive = Node()
        frozen = freeze_startup_objects("test")
        assert gone() is None  # collected, not frozen forever
        assert frozen > 1000  # this process's modules and more
        # what is frozen may still be freed by reference counting (a temporary of another
        # thread, alive at the freeze, dropped since): the count only goes down from there
        assert 0 < gc.get_freeze_count() <= frozen
        later = Node()
        walked = {id(o) for o in gc.get_objects()}
        assert id(alive) not in walked  # frozen: out of every collection's walk
        assert id(later) in walked  # what comes after is collected as usual
    finally:
        gc.unfreeze()
