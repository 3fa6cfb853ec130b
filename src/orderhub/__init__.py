"""Orderhub: one canonical order lifecycle between marketplaces and one warehouse."""

from __future__ import annotations

__version__ = "0.1.0"
