"""Benchmark and measurement scripts: run by hand, they print figures."""
