"""Benchmarks: ``python -m benchmarks.mlperf_tiny``, ``python -m benchmarks.mapper_speed`` and
``python -m benchmarks.host_model`` (the RV32 host cost model, measured under QEMU; ``benchmarks.rv32``
builds and runs bare-metal RV32IMC programs)."""
