"""Benchmarks: ``python -m benchmarks.mlperf_tiny``, ``python -m benchmarks.mapper_scale``,
``python -m benchmarks.mapper_speed``, ``python -m benchmarks.zigzag_compare``,
``python -m benchmarks.compile_speed``, ``python -m benchmarks.sweep_speed``,
``python -m benchmarks.onnx_exactness`` (ONNX QDQ models vs onnxruntime) and
``python -m benchmarks.host_model`` (the RV32 host cost model, measured under QEMU; ``benchmarks.rv32``
builds and runs bare-metal RV32IMC programs). ``benchmarks.zigzag_latency`` re-implements ZigZag
3.9.1's latency of one mapping (the ZigZag-compatible semantics the comparison uses);
``benchmarks.zoo`` builds ResNet-18 and MobileNetV2 layer graphs."""
