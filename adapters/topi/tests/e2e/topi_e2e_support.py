"""Constants shared by the topi end-to-end tests (conftest and test modules)."""

from __future__ import annotations

from typing import Final

#: Seconds a step may take. Generous (CI machines are small and busy); a passing step
#: takes well under a second, so this only bounds how long a failure takes to report.
STEP_TIMEOUT: Final = 30.0
#: The reconciliation walk's interval in the test stacks, seconds.
RECONCILE_INTERVAL: Final = 2.0
#: ``make demo`` must stay watchable: the whole run, startup and shutdown included.
DEMO_BUDGET_SECONDS: Final = 60.0
