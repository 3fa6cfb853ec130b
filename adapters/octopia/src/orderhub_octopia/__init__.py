"""Octopia (Cdiscount) channel for Orderhub."""
