"""Benchmarks (`make bench`): speed of the hot paths, measured, never asserted by timed tests."""
