"""An in-memory Spresso for tests and demos.

``create_app()``, or from a shell ``python -m orderhub_spresso.simulator``. Part of the
``simulator`` extra (``pip install 'orderhub-spresso[simulator]'``): the runtime plugin never
imports it.
"""

import importlib.util

_MISSING = [name for name in ("litestar", "uvicorn") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - the workspace always has the extra
    raise ModuleNotFoundError(
        f"the Spresso simulator needs {', '.join(_MISSING)}: install 'orderhub-spresso[simulator]'",
        name=_MISSING[0],
    )

from orderhub.testing.servers import ThreadedServer  # noqa: E402
from orderhub_spresso.simulator.app import Simulator, SimulatorConfig, create_app  # noqa: E402
from orderhub_spresso.simulator.control import SimulatorControl  # noqa: E402
from orderhub_spresso.simulator.webhooks import sign as sign_webhook  # noqa: E402

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorControl",
    "ThreadedServer",
    "create_app",
    "sign_webhook",
]
