"""An in-memory Octopia Seller API for tests and demos.

``create_app()``, or from a shell ``python -m orderhub_octopia.simulator``. Part of the
``simulator`` extra (``pip install 'orderhub-octopia[simulator]'``): the runtime plugin
never imports it.
"""

import importlib.util

_MISSING = [name for name in ("litestar", "uvicorn") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - the workspace always has the extra
    raise ModuleNotFoundError(
        f"the Octopia simulator needs {', '.join(_MISSING)}: install 'orderhub-octopia[simulator]'",
        name=_MISSING[0],
    )

from orderhub.testing.servers import ThreadedServer  # noqa: E402
from orderhub_octopia.simulator.app import (  # noqa: E402
    TOKEN_PATH,
    Simulator,
    SimulatorConfig,
    create_app,
)
from orderhub_octopia.simulator.control import SimulatorControl  # noqa: E402
from orderhub_octopia.simulator.state import CDISCOUNT, Rules  # noqa: E402

__all__ = [
    "CDISCOUNT",
    "TOKEN_PATH",
    "Rules",
    "Simulator",
    "SimulatorConfig",
    "SimulatorControl",
    "ThreadedServer",
    "create_app",
]
