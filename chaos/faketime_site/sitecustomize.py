"""Loaded (through ``PYTHONPATH``) by the hub processes a chaos run starts under
libfaketime. libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` makes Python's
``time.sleep`` (an absolute ``clock_nanosleep`` on the monotonic clock) fail with
``EINVAL``, and without that setting every lock wait with a timeout hangs; so the
monotonic clock is left alone and ``time.sleep`` waits on an event instead (the same
length, the same clock). Nothing else of the process changes."""

import os
import threading
import time
from typing import SupportsIndex

if os.environ.get("FAKETIME") and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":

    def _sleep(secs: float | SupportsIndex) -> None:
        seconds = float(secs)
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(seconds)

    time.sleep = _sleep
