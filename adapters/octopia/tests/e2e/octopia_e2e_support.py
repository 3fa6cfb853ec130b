"""Constants shared by the Octopia end-to-end tests (conftest and test modules)."""

from __future__ import annotations

from typing import Final

#: Seconds a step may take. Generous (CI machines are small and busy); a passing step
#: takes a poll interval or two, so this only bounds how long a failure takes to report.
STEP_TIMEOUT: Final = 45.0
#: The Octopia poll's interval in the test stacks, seconds.
POLL_INTERVAL: Final = 1.0
#: ``make demo-octopia`` must stay watchable: the whole run, startup and shutdown included.
DEMO_BUDGET_SECONDS: Final = 90.0
