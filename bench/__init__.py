"""Benchmarks.  Run all with ``python -m bench``; one with ``python -m bench.bench_engine``."""
