"""An in-memory topi for tests and demos.

``create_app()``, or from a shell ``python -m orderhub_topi.simulator``. Part of the
``simulator`` extra (``pip install 'orderhub-topi[simulator]'``): the runtime plugin never
imports it, and production installs need not have its dependencies.
"""

import importlib.util

_MISSING = [name for name in ("litestar", "uvicorn") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - the workspace always has the extra
    raise ModuleNotFoundError(
        f"the topi simulator needs {', '.join(_MISSING)}: install 'orderhub-topi[simulator]'",
        name=_MISSING[0],
    )

from orderhub.testing.servers import ThreadedServer  # noqa: E402
from orderhub_topi.simulator.app import Simulator, SimulatorConfig, create_app  # noqa: E402
from orderhub_topi.simulator.control import SimulatorControl  # noqa: E402
from orderhub_topi.simulator.webhooks import sign as sign_webhook  # noqa: E402

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorControl",
    "ThreadedServer",
    "create_app",
    "sign_webhook",
]
