"""Explicit parameter markers (inferred kinds stop working in Litestar 3)."""

from __future__ import annotations

from litestar.di import NamedDependency

from orderhub.application.hub import Hub

HubDep = NamedDependency[Hub]
