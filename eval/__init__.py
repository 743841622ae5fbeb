"""Benchmark runners and benchmarks (scripts; the library never imports this package)."""
