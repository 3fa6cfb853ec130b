"""``python -m orderhub_octopia.demo`` (what ``make demo-octopia`` runs) as a real process:
it passes (within a generous bound), exits 130 on Ctrl-C, and stops the simulator and the hub
it started; a step that does not happen in time fails it with exit code 1, naming the step."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from octopia_e2e_support import DEMO_BOUND_SECONDS

from orderhub.testing.processes import ManagedProcess, NotYet, eventually, pid_gone
from orderhub_octopia import demo as demo_module
from orderhub_octopia.demo import Demo, StoryResult, story_delivered

STARTED = re.compile(r"started (\w+)\s+pid (\d+)")


def started_pids(output: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in STARTED.findall(output)}


@pytest.fixture
def run_octopia_demo(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Start the demo CLI; whatever happens, it is stopped (with its whole session)."""
    started: list[ManagedProcess] = []

    def start(*args: str) -> ManagedProcess:
        process = ManagedProcess(
            f"octopia-demo{len(started)}",
            [sys.executable, "-m", "orderhub_octopia.demo", *args],
            tmp_path / f"octopia-demo{len(started)}.out",
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop(timeout=30)


def test_the_demo_plays_both_stories_and_exits_0(
    run_octopia_demo: Callable[..., ManagedProcess],
) -> None:
    process = run_octopia_demo()
    # bounded, not timed: a loaded machine may be slow, a hung demo still fails
    code = process.wait(timeout=DEMO_BOUND_SECONDS)
    output = process.text()
    assert code == 0, output
    for step in ("[A1]", "[A5]", "[B1]", "[B5]"):
        assert step in output, output
    assert "the hub says delivered" in output
    assert "the hub says cancelled: initiator customer" in output
    assert "The hub's feed (GET /api/v1/feed)" in output
    assert re.search(r"^\s+1\s+order\.received\s+A\s+awaiting_acceptance", output, re.M), output
    assert re.search(r"^\s+\d+\s+order\.delivered\s+A\s+delivered", output, re.M), output
    assert re.search(r"^\s+\d+\s+order\.cancelled\s+B\s+cancelled\s+by the customer", output, re.M)
    assert "Both stories checked" in output
    assert "stopped: serve (exit 0), simulator (ended by SIGTERM)" in output, output
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())


def test_ctrl_c_stops_the_demo_and_both_processes(
    run_octopia_demo: Callable[..., ManagedProcess],
) -> None:
    process = run_octopia_demo("--hold")  # still running at the interrupt, however fast

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
    assert process.wait(timeout=60) == 130, process.text()
    output = process.text()
    assert "interrupted" in output
    assert "stopped: serve (exit 0)" in output
    assert all(pid_gone(pid) for pid in pids.values()), output


def test_a_step_that_does_not_happen_in_time_fails_the_demo_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The in-process ``main``: Octopia answers 503 to every order list, so the hub's
    polls never find the new order and story A's first step does not happen; the demo
    says which step and what it saw, exits 1 and stops both processes."""

    def octopia_unavailable(demo: Demo) -> list[StoryResult]:
        demo.octopia.add_fault("/orders", method="GET", status=503, times=1_000_000)
        return [story_delivered(demo)]

    monkeypatch.setattr(demo_module, "run_stories", octopia_unavailable)
    code = demo_module.main(["--timeout", "3"])
    output = capsys.readouterr().out

    assert code == 1, output
    assert re.search(
        r"DEMO FAILED: timed out after 3 s waiting for the hub's order for Octopia \S+ "
        r"\(status awaiting_acceptance, channel_status WaitingAcceptance\) "
        r"\(seen: the hub has no such order\)",
        output,
    ), output
    for name in ("simulator", "serve"):
        heads = re.findall(
            rf"^--- {name} \(pid \d+, running\): last lines of .+ ---$", output, re.M
        )
        assert len(heads) == 1, output
    assert "stopped: serve (exit 0)" in output
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())
