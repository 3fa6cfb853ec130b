"""``python -m orderhub_topi.demo`` (what ``make demo`` runs) as a real process: it passes
within its time budget, exits 130 on Ctrl-C (also when started with SIGINT ignored, as a
shell starts background jobs) and 1 when a step fails, and in every case stops the
simulator and the hub it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from topi_e2e_support import DEMO_BUDGET_SECONDS

from orderhub.testing.processes import ManagedProcess, NotYet, eventually, pid_gone
from orderhub_topi import demo as demo_module
from orderhub_topi.demo import Demo, story_bundle

STARTED = re.compile(r"started (\w+)\s+pid (\d+)")
#: Runs the command after it with SIGINT ignored, as ``make test &`` or nohup from a
#: non-interactive shell does (an ignored signal stays ignored across exec).
SIGINT_IGNORED = ["sh", "-c", "trap '' INT; exec \"$@\"", "sh"]


def started_pids(output: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in STARTED.findall(output)}


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Start the demo CLI; whatever happens, it is stopped (with its whole session)."""
    started: list[ManagedProcess] = []

    def start(*args: str, prefix: Sequence[str] = ()) -> ManagedProcess:
        """ManagedProcess starts it with default SIGINT handling, whatever pytest has, and
        without ORDERHUB_* variables; ``prefix`` runs it through a wrapper
        (:data:`SIGINT_IGNORED`)."""
        process = ManagedProcess(
            f"demo{len(started)}",
            [*prefix, sys.executable, "-m", "orderhub_topi.demo", *args],
            tmp_path / f"demo{len(started)}.out",
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop(timeout=30)


def test_demo_runs_every_story_and_exits_0_within_its_budget(
    run_demo: Callable[..., ManagedProcess],
) -> None:
    began = time.monotonic()
    process = run_demo()
    code = process.wait(timeout=DEMO_BUDGET_SECONDS * 2)
    took = time.monotonic() - began
    output = process.text()
    assert code == 0, output
    assert took < DEMO_BUDGET_SECONDS, f"the demo took {took:.1f} s\n{output}"
    for story in ("Story A", "Story B", "Story C"):
        assert story in output
    assert "The hub's feed (GET /api/v1/feed)" in output
    assert re.search(r"^\s+1\s+order\.received\s+A\s+awaiting_acceptance", output, re.M), output
    assert "All three stories checked" in output
    assert "stopped: serve (exit 0), simulator (ended by SIGTERM)" in output, output
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())


def test_the_sigint_ignored_wrapper_starts_a_program_with_sigint_ignored() -> None:
    """The premise of the ``ignored`` case below."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    out = subprocess.run(
        [*SIGINT_IGNORED, sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        # the child's SIGINT is SIG_DFL before the wrapper, whatever pytest has
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_ctrl_c_stops_the_demo_and_both_processes(
    run_demo: Callable[..., ManagedProcess], inherited: str
) -> None:
    # --hold: still running at the interrupt, however fast it is
    process = run_demo("--hold", prefix=SIGINT_IGNORED if inherited == "ignored" else ())

    def story_started() -> str:
        if process.returncode is not None:
            raise AssertionError(f"the demo ended early:\n{process.text()}")
        output = process.text()
        if "[A1]" not in output:
            raise NotYet(output[-300:])
        return output

    output = eventually("the demo to begin story A", story_started, timeout=60, processes=[process])
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}

    os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=40) == 130, process.text()
    output = process.text()
    assert "interrupted" in output
    assert "stopped: serve (exit 0)" in output
    assert all(pid_gone(pid) for pid in pids.values()), output


def test_a_step_that_does_not_happen_in_time_fails_the_demo_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The in-process ``main``: topi answers 503 to every order read, so the hub can
    never fetch the new order and story A's first step does not happen; the demo says
    which step and what it saw, exits 1 and stops both processes."""

    def topi_unavailable(demo: Demo) -> list[object]:
        demo.topi.control.add_fault("/v1/orders/*", method="GET", status=503, count=100_000)
        return [story_bundle(demo)]

    monkeypatch.setattr(demo_module, "run_stories", topi_unavailable)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    began = time.monotonic()
    code = demo_module.main(["--timeout", "3"])
    output = capsys.readouterr().out
    # main takes SIGINT and SIGTERM while it runs, and gives them back
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers

    assert code == 1, output
    assert re.search(
        r"DEMO FAILED: timed out after 3 s waiting for the hub's order for topi \S+ "
        r"\(status awaiting_acceptance\) \(seen: the hub has no such order\)",
        output,
    ), output
    # the logs of the processes it waited for, to see why; each once
    for name in ("simulator", "serve"):
        head = rf"^--- {name} \(pid \d+, running\): last lines of .+ ---$"
        heads = re.findall(head, output, re.M)
        assert len(heads) == 1, output
    assert "stopped: serve (exit 0)" in output
    assert time.monotonic() - began < DEMO_BUDGET_SECONDS
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())
