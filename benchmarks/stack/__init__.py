"""The real-stack benchmark (`make bench-stack`): the production topology over loopback.

``python -m benchmarks.stack --help``; what it measures and how to read it:
docs/performance.md. Pure maths (:mod:`.stats`) and the report writer (:mod:`.report`) are
unit-tested in tests/unit/bench/; the load run itself never runs in ``make test``.
"""
