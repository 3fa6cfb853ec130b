"""Constants shared by the Spresso end-to-end tests (conftest and test modules)."""

from __future__ import annotations

from typing import Final

#: Seconds a step may take. Generous (CI machines are small and busy); a passing step
#: takes well under a second, so this only bounds how long a failure takes to report.
STEP_TIMEOUT: Final = 40.0
#: How long a worker holds a command in the test stacks: a killed worker's command is
#: swept back after it.
LEASE_SECONDS: Final = 8.0
#: How long a whole ``make demo-spresso`` run may take before its test gives up (it takes
#: some 15 s on a quiet machine; a bound on a hung demo, not a measurement).
DEMO_BUDGET_SECONDS: Final = 240.0
