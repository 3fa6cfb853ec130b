"""``python -m orderhub_spresso.demo`` (what ``make demo-spresso`` runs) as a real process:
it passes and stops the simulator and the hub it started; Ctrl-C stops it too; a step that
does not happen in time fails it with exit 1, naming the step."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from spresso_e2e_support import DEMO_BUDGET_SECONDS

from orderhub.testing.processes import ManagedProcess, NotYet, eventually, pid_gone
from orderhub_spresso import demo as demo_module
from orderhub_spresso.demo import Demo, story_three_parcels

STARTED = re.compile(r"started (\w+)\s+pid (\d+)")


def started_pids(output: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in STARTED.findall(output)}


@pytest.fixture
def spresso_demo_cli(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Start the demo CLI; whatever happens, it is stopped (with its whole session)."""
    started: list[ManagedProcess] = []

    def start(*args: str) -> ManagedProcess:
        process = ManagedProcess(
            f"demo{len(started)}",
            [sys.executable, "-m", "orderhub_spresso.demo", *args],
            tmp_path / f"demo{len(started)}.out",
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop(timeout=30)


def test_the_demo_plays_its_stories_and_exits_0(
    spresso_demo_cli: Callable[..., ManagedProcess],
) -> None:
    process = spresso_demo_cli()
    code = process.wait(timeout=DEMO_BUDGET_SECONDS)  # a bound, not a measurement
    output = process.text()
    assert code == 0, output
    for story in ("Story A", "Story B", "Story C"):
        assert story in output
    assert "fulfilment 1 in_transit (sent once, after its parcels)" in output
    assert "409 seller-cancellation-not-supported" in output
    assert "The hub's feed (GET /api/v1/feed)" in output
    assert re.search(r"^\s+1\s+order\.received\s+A\s+ready_to_ship", output, re.M), output
    assert "All three stories checked" in output
    assert "stopped: serve (exit 0), simulator (ended by SIGTERM)" in output, output
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())


def test_a_step_that_does_not_happen_fails_the_demo_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The in-process ``main``: Spresso's webhooks are all dropped, so the hub never
    hears of the order; the demo says which step, exits 1 and stops both processes."""

    def webhooks_lost(demo: Demo) -> list[object]:
        demo.spresso.control.drop_webhooks(1000)
        return [story_three_parcels(demo)]

    monkeypatch.setattr(demo_module, "run_stories", webhooks_lost)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = demo_module.main(["--timeout", "3"])
    output = capsys.readouterr().out
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert code == 1, output
    assert re.search(
        r"DEMO FAILED: timed out after 3 s waiting for Spresso's order_fulfillable webhook",
        output,
    ), output
    assert "stopped: serve (exit 0), simulator (ended by SIGTERM)" in output
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    assert all(pid_gone(pid) for pid in pids.values())


def test_ctrl_c_stops_the_demo_and_both_processes(
    spresso_demo_cli: Callable[..., ManagedProcess],
) -> None:
    process = spresso_demo_cli("--hold", "600")  # still running at the interrupt

    def story_started() -> str:
        if process.returncode is not None:
            raise AssertionError(f"the demo ended early:\n{process.text()}")
        output = process.text()
        if "[A1]" not in output:
            raise NotYet(output[-300:])
        return output

    output = eventually("the demo to begin story A", story_started, timeout=90, processes=[process])
    pids = started_pids(output)
    assert set(pids) == {"simulator", "serve"}
    os.kill(process.pid, signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=60) == 130, process.text()
    output = process.text()
    assert "interrupted" in output
    assert "stopped: serve (exit 0)" in output, output
    assert all(pid_gone(pid) for pid in pids.values()), output
