"""The e2e harness itself (``support.py``), with small real processes and no services: a
wait on a process that times out, or finds it gone, says which process, its exit code and
the end of its log; children start with default SIGINT / SIGTERM handling and no signal
blocked, whatever pytest has (``make test &`` and nohup start it with SIGINT ignored)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .support import (
    TAIL_LINES,
    ChannelServer,
    Hub,
    ManagedProcess,
    ProcessDied,
    ProcessSet,
    WaitTimedOut,
    Watch,
    wait_until,
)

#: Prints, then never becomes ready.
STUCK = "print('booting the widget', flush=True); import time; time.sleep(60)"


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    started = ProcessSet()
    yield started
    started.stop_all()


class PythonStarter:
    """``python(name, code)``: ``python -c code`` as a managed process, stopped at the end."""

    def __init__(self, processes: ProcessSet, workdir: Path) -> None:
        self.processes = processes
        self.workdir = workdir

    def __call__(self, name: str, code: str) -> ManagedProcess:
        process = ManagedProcess(
            name=name, argv=[sys.executable, "-c", code], log_path=self.workdir / f"{name}.log"
        )
        return self.processes.add(process).start()


@pytest.fixture
def python(processes: ProcessSet, tmp_path: Path) -> PythonStarter:
    return PythonStarter(processes, tmp_path)


def logged(process: ManagedProcess, text: str) -> None:
    wait_until(lambda: text in process.text(), f"{text!r} in the log", timeout=20)


def test_a_wait_that_times_out_shows_the_name_state_and_log_of_its_process(
    python: PythonStarter,
) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        wait_until(lambda: None, "the widget to answer", timeout=0.5, alive=Watch(widget))

    message = str(failure.value)
    assert message.startswith("timed out after 0.5s waiting for the widget to answer")
    assert f"--- widget (pid {widget.pid}, running): last lines of {widget.log_path}" in message
    assert "booting the widget" in message
    assert failure.value.processes == (widget,)


def test_a_wait_for_a_log_event_that_never_comes_shows_the_log(python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        widget.wait_for_event("widget.ready", timeout=0.5)

    message = str(failure.value)
    assert "waiting for widget to log 'widget.ready'" in message
    assert "booting the widget" in message


def test_the_log_in_a_failure_is_its_last_lines(python: PythonStarter) -> None:
    count = TAIL_LINES + 50
    chatty = python(
        "chatty",
        f"for i in range(1, {count + 1}): print(f'line {{i:04d}}', flush=True)\n"
        "import time; time.sleep(60)",
    )
    logged(chatty, f"line {count:04d}")

    with pytest.raises(WaitTimedOut) as failure:
        wait_until(lambda: None, "chatty to answer", timeout=0.2, processes=[chatty])

    message = str(failure.value)
    assert f"line {count:04d}" in message
    assert f"line {count - TAIL_LINES + 1:04d}" in message
    assert f"line {count - TAIL_LINES:04d}" not in message


def test_a_process_that_exits_while_waited_for_fails_the_wait_with_its_exit_code_and_log(
    python: PythonStarter,
) -> None:
    crash = python("serve", "print('cannot bind: address in use', flush=True); exit(3)")
    assert crash.wait(20) == 3

    with pytest.raises(ProcessDied) as failure:
        wait_until(lambda: None, "GET /readyz to answer 200", timeout=10, alive=Watch(crash))

    message = str(failure.value)
    assert message.startswith("serve exited (exit code 3)\n")
    assert f"--- serve (pid {crash.pid}, exit code 3): last lines of" in message
    assert "cannot bind: address in use" in message


def test_a_process_that_does_not_exit_in_time_fails_with_its_log(python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        widget.wait(0.2)

    message = str(failure.value)
    assert message.startswith("widget did not exit within 0.2s\n")
    assert f"(pid {widget.pid}, running)" in message
    assert "booting the widget" in message


def test_waits_on_the_hub_show_the_logs_of_all_its_processes(
    processes: ProcessSet, tmp_path: Path
) -> None:
    """``alive=hub.check_alive`` (as the e2e tests write it) is enough: nothing started
    here, so the timeout lists the processes as not started."""
    server = ChannelServer(processes, tmp_path)
    hub = Hub(
        mode="embedded",
        processes=processes,
        workdir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        channel_server=server,
    )
    try:
        with pytest.raises(WaitTimedOut) as failure:
            wait_until(lambda: None, "an order", timeout=0.2, alive=hub.check_alive)
    finally:
        hub.close()
        server.close()

    message = str(failure.value)
    assert f"--- serve (not started): last lines of {tmp_path / 'serve.log'}" in message
    assert "--- channel-server (not started)" in message


SIGNALS_PROBE = (
    "import signal; print("
    "signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
    " signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,"
    " sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)"
)


def test_a_child_gets_default_signal_handling_whatever_pytest_has(
    python: PythonStarter,
) -> None:
    """SIGINT ignored (a background job of a shell), SIGTERM blocked in the starting
    thread: the child still stops on SIGINT and SIGTERM."""

    def start_blocked() -> ManagedProcess:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # this thread only
        return python("probe", SIGNALS_PROBE)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            probe = pool.submit(start_blocked).result()
    finally:
        signal.signal(signal.SIGINT, previous)

    assert probe.wait(20) == 0, probe.text()
    # SIGINT: Python's KeyboardInterrupt (so not ignored), SIGTERM default, none blocked
    assert probe.text().splitlines()[-1] == "True True []"
