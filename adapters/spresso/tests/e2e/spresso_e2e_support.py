"""Constants shared by the Spresso end-to-end tests (conftest and test modules)."""

from __future__ import annotations

from typing import Final

#: Seconds a step may take. Generous (CI machines are small and busy); a passing step
#: takes well under a second, so this only bounds how long a failure takes to report.
STEP_TIMEOUT: Final = 40.0
#: How long a worker holds a command in the test stacks: a killed worker's command is
#: swept back after it.
LEASE_SECONDS: Final = 8.0
#: ``make demo-spresso`` must stay watchable: the whole run, startup and shutdown included.
DEMO_BUDGET_SECONDS: Final = 90.0
