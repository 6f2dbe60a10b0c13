"""Bridge to TVM (Relax): import, partition, external codegen.

``tvm_bridge.quant`` (integer semantics and the numpy reference) imports without TVM.
"""
