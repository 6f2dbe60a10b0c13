"""Benchmarks: `python -m benchmarks.mlperf_tiny` and the mapper speed benchmark (not written yet)."""
