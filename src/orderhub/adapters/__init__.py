"""Driven and driving adapters: the outside world, behind the core's ports."""
