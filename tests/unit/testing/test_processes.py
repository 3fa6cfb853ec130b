"""``orderhub.testing.processes`` with small real processes and no services: a wait on a
process that times out, or finds it gone, says which process, its pid, state or exit
code and the end of its log; children start with default SIGINT / SIGTERM handling and
no signal blocked, whatever the parent has (``make test &`` and nohup start it with
SIGINT ignored); stopping is SIGTERM, then SIGKILL for the group after a bounded grace."""

from __future__ import annotations

import http.server
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orderhub.testing.processes import (
    TAIL_LINES,
    Launch,
    ManagedProcess,
    NotYet,
    ProcessDied,
    ProcessSet,
    WaitTimedOut,
    Watch,
    eventually,
    free_port,
    pid_gone,
    port_open,
    stop_all,
    wait_for_http,
    wait_for_port,
    wait_until,
)

#: Prints, then never becomes ready.
STUCK = "print('booting the widget', flush=True); import time; time.sleep(60)"
#: Ignores SIGTERM: only SIGKILL ends it.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ignoring SIGTERM', flush=True); time.sleep(60)"
)
#: Forks a grandchild in its group that ignores SIGTERM and outlives it, prints its pid.
LEAVES_A_CHILD = (
    "import os, signal, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60); os._exit(0)\n"
    "print('child', pid, flush=True); time.sleep(60)"
)
SIGNALS_PROBE = (
    "import signal; print("
    "signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
    " signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,"
    " sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)"
)

PythonStarter = Callable[..., ManagedProcess]


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    started = ProcessSet()
    yield started
    started.stop_all(timeout=5)


@pytest.fixture
def python(processes: ProcessSet, tmp_path: Path) -> PythonStarter:
    """``python(name, code, launch=...)``: ``python -c code``, stopped at the end."""

    def start(name: str, code: str, launch: Launch | None = None) -> ManagedProcess:
        process = ManagedProcess(
            name, [sys.executable, "-c", code], tmp_path / f"{name}.log", launch or Launch()
        )
        return processes.add(process).start()

    return start


def output(process: ManagedProcess) -> list[str]:
    """Its log without the ``--- name: command`` lines (the command has the text too)."""
    return [line for line in process.text().splitlines() if not line.startswith("--- ")]


def logged(process: ManagedProcess, text: str) -> None:
    """Until the process printed ``text``."""
    wait_until(
        lambda: any(text in line for line in output(process)), f"{text!r} in the log", timeout=20
    )


# --- failures say which process, its state and its log ------------------------------------


def test_a_wait_that_times_out_shows_the_name_state_and_log_of_its_process(
    python: PythonStarter,
) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        wait_until(lambda: None, "the widget to answer", timeout=0.5, alive=Watch(widget))

    message = str(failure.value)
    assert message.startswith("timed out after 0.5 s waiting for the widget to answer")
    assert f"--- widget (pid {widget.pid}, running): last lines of {widget.log_path}" in message
    assert "booting the widget" in message
    assert failure.value.processes == (widget,)
    assert isinstance(failure.value, AssertionError)


def test_what_the_probe_saw_last_is_in_the_timeout(python: PythonStarter) -> None:
    widget = python("widget", STUCK)

    def never() -> None:
        raise NotYet("not listening")

    with pytest.raises(WaitTimedOut) as failure:
        eventually("the widget to answer", never, timeout=0.3, processes=[widget])

    assert str(failure.value).startswith(
        "timed out after 0.3 s waiting for the widget to answer (seen: not listening)\n"
    )
    assert failure.value.reason.endswith("(seen: not listening)")


def test_a_wait_for_a_log_event_that_never_comes_shows_the_log(python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        widget.wait_for_event("widget.ready", timeout=0.5)

    message = str(failure.value)
    assert "waiting for widget to log 'widget.ready'" in message
    assert "booting the widget" in message


def test_a_logged_json_event_ends_the_wait(python: PythonStarter) -> None:
    widget = python(
        "widget",
        "import json, time; print('plain', flush=True);"
        " print('2026 ' + json.dumps({'event': 'widget.ready', 'port': 1}), flush=True);"
        " time.sleep(60)",
    )
    widget.wait_for_event("widget.ready", timeout=20)
    assert widget.has_event("widget.ready", port=1)
    assert not widget.has_event("widget.ready", port=2)


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

    began = time.monotonic()
    with pytest.raises(ProcessDied) as failure:
        wait_until(lambda: None, "GET /readyz to answer 200", timeout=30, alive=Watch(crash))

    assert time.monotonic() - began < 10  # at once, not at the deadline
    message = str(failure.value)
    assert message.startswith("serve exited unexpectedly (exit code 3)\n")
    assert f"--- serve (pid {crash.pid}, exit code 3): last lines of" in message
    assert "cannot bind: address in use" in message


def test_a_process_that_does_not_exit_in_time_fails_with_its_log(python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    with pytest.raises(WaitTimedOut) as failure:
        widget.wait(0.2)

    message = str(failure.value)
    assert message.startswith("widget did not exit within 0.2 s\n")
    assert f"(pid {widget.pid}, running)" in message
    assert "booting the widget" in message


def test_a_one_shot_command_that_does_not_finish_is_stopped_and_fails_with_its_log(
    tmp_path: Path,
) -> None:
    migrate = ManagedProcess(
        "migrate",
        [sys.executable, "-c", "print('migrating', flush=True); import time; time.sleep(60)"],
        tmp_path / "migrate.log",
    )
    began = time.monotonic()

    with pytest.raises(WaitTimedOut) as failure:
        migrate.run_to_end(timeout=3)

    assert time.monotonic() - began < 30
    assert not migrate.running()
    message = str(failure.value)
    assert message.startswith("migrate did not finish within 3 s\n")
    assert "migrating" in message


# --- starting ------------------------------------------------------------------------------


@pytest.mark.parametrize("die_with_parent", [False, True])
def test_a_child_gets_default_signal_handling_whatever_its_parent_has(
    python: PythonStarter, die_with_parent: bool
) -> None:
    """SIGINT ignored (a background job of a shell), SIGTERM blocked in the starting
    thread: the child still stops on SIGINT and SIGTERM."""

    def run_blocked() -> tuple[ManagedProcess, int]:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])  # this thread only
        probe = python("probe", SIGNALS_PROBE, Launch(die_with_parent=die_with_parent))
        # waited for here: with die_with_parent, it gets SIGTERM when this thread ends
        return probe, probe.wait(20)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            probe, code = pool.submit(run_blocked).result()
    finally:
        signal.signal(signal.SIGINT, previous)

    assert code == 0, probe.text()
    # SIGINT: Python's KeyboardInterrupt (so not ignored), SIGTERM default, none blocked
    assert probe.text().splitlines()[-1] == "True True []"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_that_dies_with_its_parent_gets_sigterm_when_the_starting_thread_ends(
    python: PythonStarter,
) -> None:
    def start() -> ManagedProcess:
        return python("orphan", STUCK, Launch(die_with_parent=True))

    with ThreadPoolExecutor(max_workers=1) as pool:
        orphan = pool.submit(start).result()
    assert orphan.wait(20) == -signal.SIGTERM


def test_the_environment_is_ours_without_orderhub_variables_plus_the_launch(
    python: PythonStarter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORDERHUB_DATABASE__URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("KEPT_VARIABLE", "kept")
    launch = Launch(env={"GIVEN": "given"}, cwd=tmp_path, pycache_prefix=str(tmp_path / "pyc"))
    probe = python(
        "env",
        "import os; print([os.environ.get(k) for k in ('ORDERHUB_DATABASE__URL', 'KEPT_VARIABLE',"
        " 'GIVEN', 'PYTHONUNBUFFERED', 'PYTHONPYCACHEPREFIX')], os.getcwd(), flush=True)",
        launch,
    )
    assert probe.wait(20) == 0, probe.text()
    expected = [None, "kept", "given", "1", str(tmp_path / "pyc")]
    assert probe.text().splitlines()[-1] == f"{expected} {tmp_path}"
    assert probe.text().startswith(f"--- env: {sys.executable} -c ")


# --- stopping ------------------------------------------------------------------------------


def test_stop_is_sigterm_and_a_clean_exit(python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")

    assert widget.stop() == -signal.SIGTERM
    assert widget.stopped_cleanly
    assert widget.describe_exit() == "ended by SIGTERM"
    widget.check_alive()  # it was meant to exit
    assert widget.stop() == -signal.SIGTERM  # again: nothing more happens


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(python: PythonStarter) -> None:
    stubborn = python("stubborn", STUBBORN, Launch(stop_seconds=0.5))
    logged(stubborn, "ignoring SIGTERM")

    began = time.monotonic()
    assert stubborn.stop() == -signal.SIGKILL
    assert time.monotonic() - began < 10
    assert stubborn.killed
    assert not stubborn.stopped_cleanly
    assert stubborn.describe_exit() == "ended by SIGKILL after SIGKILL"


def test_what_a_stopped_process_leaves_in_its_group_is_killed(python: PythonStarter) -> None:
    parent = python("parent", LEAVES_A_CHILD)
    logged(parent, "child ")
    child = int(next(line for line in output(parent) if line.startswith("child ")).split()[1])

    parent.stop()

    wait_until(lambda: pid_gone(child), "the grandchild to be gone", timeout=10)


def test_kill_ends_the_whole_group_at_once_and_is_no_failure(python: PythonStarter) -> None:
    parent = python("parent", LEAVES_A_CHILD)
    logged(parent, "child ")
    child = int(next(line for line in output(parent) if line.startswith("child ")).split()[1])

    parent.kill()

    assert parent.returncode == -signal.SIGKILL
    assert parent.killed
    assert pid_gone(child)
    Watch(parent)()  # expected: a wait on it does not fail


def test_stop_all_gives_them_one_grace_together(python: PythonStarter) -> None:
    stubborn = [python(f"stubborn-{i}", STUBBORN, Launch(stop_seconds=1.0)) for i in range(3)]
    for process in stubborn:
        logged(process, "ignoring SIGTERM")

    began = time.monotonic()
    assert stop_all(stubborn) == stubborn
    took = time.monotonic() - began

    assert all(p.returncode == -signal.SIGKILL for p in stubborn)
    assert took < 2.5, f"{took:.1f} s: the graces ran one after another"


def test_a_process_set_reports_each_log_once(processes: ProcessSet, python: PythonStarter) -> None:
    widget = python("widget", STUCK)
    logged(widget, "booting the widget")
    processes.add(ManagedProcess("again", ["true"], widget.log_path))

    [(title, text)] = processes.report(lines=5)

    assert title == f"log of widget (pid {widget.pid}, running, {widget.log_path})"
    assert "booting the widget" in text
    assert processes.find("again").status() == "not started"


# --- ports and HTTP ------------------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"starting")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, handler
    finally:
        server.shutdown()
        server.server_close()


def test_free_ports_are_free_until_someone_listens(
    health_server: tuple[int, type[_Health]],
) -> None:
    listening, _ = health_server
    port = free_port()

    assert not port_open(port)
    assert port_open(listening)
    wait_for_port(listening, timeout=5)
    with pytest.raises(WaitTimedOut, match=f"127.0.0.1:{port} to accept connections"):
        wait_for_port(port, timeout=0.3)


def test_wait_for_http_waits_for_the_status_and_says_what_it_saw_last(
    health_server: tuple[int, type[_Health]],
) -> None:
    port, handler = health_server
    url = f"http://127.0.0.1:{port}/readyz"

    with pytest.raises(WaitTimedOut) as failure:
        wait_for_http(url, timeout=0.3)
    assert f"waiting for GET {url} to answer 200 (seen: 503: starting)" in str(failure.value)

    handler.status = 200
    assert wait_for_http(url, timeout=5).status_code == 200


def test_a_refused_connection_is_not_yet_and_shown(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"

    with pytest.raises(WaitTimedOut) as failure:
        wait_for_http(url, what="the server to answer", timeout=0.3)

    assert "waiting for the server to answer (seen: ConnectError: " in str(failure.value)


def test_other_errors_of_a_probe_are_not_swallowed() -> None:
    def broken() -> None:
        raise ValueError("a bug in the probe")

    with pytest.raises(ValueError, match="a bug in the probe"):
        eventually("anything", broken, timeout=5)
