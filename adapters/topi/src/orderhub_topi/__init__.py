"""topi channel for Orderhub: wire format, API client and simulator."""
