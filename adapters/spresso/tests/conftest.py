"""The Spresso adapter's tests: unit (no I/O), integration (the simulator over loopback
HTTP and the hub on its fakes), e2e (the hub and the simulator as real processes),
conformance (the kit against the simulator). Helper modules are ``spresso_*.py``."""
