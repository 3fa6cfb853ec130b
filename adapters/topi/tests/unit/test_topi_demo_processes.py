"""The demo's process harness (``orderhub_topi.demo_support``) with small real processes:
a wait that times out, or finds its process gone, says which process, its exit code and
the end of its log; children start with default SIGINT / SIGTERM handling and no signal
blocked, whatever the process starting them has (``make test &`` ignores SIGINT)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orderhub_topi.demo_support import (
    LOG_TAIL_LINES,
    DemoFailure,
    ManagedProcess,
    NotYet,
    Stack,
    eventually,
)

#: Prints, then never becomes ready.
STUCK = "print('booting the widget', flush=True); import time; time.sleep(60)"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ManagedProcess]]:
    processes: list[ManagedProcess] = []
    yield processes
    for process in processes:
        process.stop(timeout=5)


def python(started: list[ManagedProcess], tmp_path: Path, name: str, code: str) -> ManagedProcess:
    process = ManagedProcess(
        name, [sys.executable, "-c", code], log_path=tmp_path / f"{name}.log"
    ).start()
    started.append(process)
    return process


def logged(process: ManagedProcess, text: str) -> None:
    eventually(f"{text!r} in the log", lambda: _contains(process, text), timeout=20)


def _contains(process: ManagedProcess, text: str) -> None:
    if text not in process.log_text():
        raise NotYet(process.log_text()[-200:])


def never() -> None:
    raise NotYet("not listening")


def test_a_wait_that_times_out_shows_the_name_state_and_log_of_its_process(
    started: list[ManagedProcess], tmp_path: Path
) -> None:
    widget = python(started, tmp_path, "widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(DemoFailure) as failure:
        eventually("the widget to answer", never, timeout=0.5, processes=[widget])

    message = str(failure.value)
    assert message.startswith(
        "timed out after 0.5 s waiting for the widget to answer (seen: not listening)\n"
    )
    assert f"--- widget (pid {widget.pid}, running): last lines of {widget.log_path}" in message
    assert "booting the widget" in message
    assert failure.value.processes == (widget,)


def test_the_log_in_a_failure_is_its_last_lines(
    started: list[ManagedProcess], tmp_path: Path
) -> None:
    count = LOG_TAIL_LINES + 50
    chatty = python(
        started,
        tmp_path,
        "chatty",
        f"for i in range(1, {count + 1}): print(f'line {{i:04d}}', flush=True)\n"
        "import time; time.sleep(60)",
    )
    logged(chatty, f"line {count:04d}")

    with pytest.raises(DemoFailure) as failure:
        eventually("chatty to answer", never, timeout=0.2, processes=[chatty])

    message = str(failure.value)
    assert f"line {count:04d}" in message
    assert f"line {count - LOG_TAIL_LINES + 1:04d}" in message
    assert f"line {count - LOG_TAIL_LINES:04d}" not in message


def test_a_process_that_exits_while_waited_for_fails_the_wait_with_its_exit_code_and_log(
    started: list[ManagedProcess], tmp_path: Path
) -> None:
    stack = Stack(tmp_path)
    crash = python(
        started, tmp_path, "serve", "print('cannot bind: address in use', flush=True); exit(3)"
    )
    stack.processes.append(crash)
    assert crash.wait(timeout=20) == 3

    with pytest.raises(DemoFailure) as failure:
        eventually("the hub's /readyz", never, timeout=10, alive=stack.check_alive)

    message = str(failure.value)
    assert message.startswith("serve exited unexpectedly (exit code 3)\n")
    assert f"--- serve (pid {crash.pid}, exit code 3): last lines of" in message
    assert "cannot bind: address in use" in message


def test_a_process_that_does_not_exit_in_time_fails_with_its_log(
    started: list[ManagedProcess], tmp_path: Path
) -> None:
    widget = python(started, tmp_path, "widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(DemoFailure) as failure:
        widget.wait(timeout=0.2)

    message = str(failure.value)
    assert message.startswith("widget did not exit within 0.2 s\n")
    assert "(pid" in message
    assert "running" in message
    assert "booting the widget" in message


def test_a_one_shot_command_that_does_not_finish_is_stopped_and_fails_with_its_log(
    tmp_path: Path,
) -> None:
    migrate = ManagedProcess(
        "migrate",
        [sys.executable, "-c", "print('migrating', flush=True); import time; time.sleep(60)"],
        log_path=tmp_path / "migrate.log",
    )
    began = time.monotonic()

    with pytest.raises(DemoFailure) as failure:
        migrate.run_to_end(timeout=3)

    assert time.monotonic() - began < 30
    assert not migrate.running()
    message = str(failure.value)
    assert message.startswith("migrate did not finish within 3 s\n")
    assert "migrating" in message


SIGNALS_PROBE = (
    "import signal; print("
    "signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
    " signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,"
    " sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)"
)


def test_a_child_gets_default_signal_handling_whatever_its_parent_has(
    started: list[ManagedProcess], tmp_path: Path
) -> None:
    """SIGINT ignored (a background job of a shell), SIGTERM blocked in the starting
    thread: the child still stops on SIGINT and SIGTERM."""

    def run_blocked() -> tuple[ManagedProcess, int]:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # this thread only
        probe = python(started, tmp_path, "probe", SIGNALS_PROBE)
        # waited for here: the child gets SIGTERM when the thread that started it ends
        return probe, probe.wait(timeout=20)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            probe, code = pool.submit(run_blocked).result()
    finally:
        signal.signal(signal.SIGINT, previous)

    assert code == 0, probe.log_text()
    # SIGINT: Python's KeyboardInterrupt (so not ignored), SIGTERM default, none blocked
    assert probe.log_text().strip() == "True True []"
