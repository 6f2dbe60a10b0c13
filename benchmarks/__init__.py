"""Benchmarks: ``python -m benchmarks.mlperf_tiny``, ``python -m benchmarks.mapper_speed`` and
``python -m benchmarks.zigzag_compare``; ``benchmarks.zigzag_latency`` re-implements ZigZag 3.9.1's
latency of one mapping (the ZigZag-compatible semantics the comparison uses)."""
