"""Constants shared by the Octopia end-to-end tests (conftest and test modules)."""

from __future__ import annotations

from typing import Final

#: Seconds a step may take. Generous (CI machines are small and busy); a passing step
#: takes a poll interval or two, so this only bounds how long a failure takes to report.
STEP_TIMEOUT: Final = 45.0
#: The Octopia poll's interval in the test stacks, seconds.
POLL_INTERVAL: Final = 1.0
#: How long the demo CLI may run before its test fails (it takes about 15 s on a quiet
#: machine): a bound for a hung demo, not a measure of its speed.
DEMO_BOUND_SECONDS: Final = 240.0
