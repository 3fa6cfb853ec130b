"""An in-memory topi for tests and demos.

``create_app()``, or from a shell ``python -m orderhub_topi.simulator``.
"""

from orderhub_topi.simulator.app import Simulator, SimulatorConfig, create_app
from orderhub_topi.simulator.control import SimulatorControl
from orderhub_topi.simulator.server import ThreadedServer
from orderhub_topi.simulator.webhooks import sign as sign_webhook

__all__ = [
    "Simulator",
    "SimulatorConfig",
    "SimulatorControl",
    "ThreadedServer",
    "create_app",
    "sign_webhook",
]
