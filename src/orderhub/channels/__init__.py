"""The channel plug: what an adapter package implements and how the core loads it."""
