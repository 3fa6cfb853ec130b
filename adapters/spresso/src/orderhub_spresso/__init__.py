"""Spresso channel for Orderhub."""
