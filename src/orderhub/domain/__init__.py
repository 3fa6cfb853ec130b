"""The canonical order model: plain Python, no framework, no I/O."""
