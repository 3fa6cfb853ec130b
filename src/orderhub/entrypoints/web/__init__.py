"""The HTTP door: warehouse API, channel webhooks, health and metrics (Litestar)."""

from orderhub.entrypoints.web.app import create_app
from orderhub.entrypoints.web.settings import ApiKey, ReadyCheck, WebSettings

__all__ = ["ApiKey", "ReadyCheck", "WebSettings", "create_app"]
