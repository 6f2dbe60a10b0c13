"""Bridge to TVM (Relax): import, pattern partitioning, external C codegen, compiled models.

``tvm_bridge.quant`` (integer semantics and the numpy reference) imports without TVM; everything
else imports TVM on first use (``tvm_bridge.from_tflite`` etc. are resolved lazily).

Public API::

    mod = tvm_bridge.from_tflite("model.tflite")          # or from_onnx(...), or your Relax IRModule
    graph = tvm_bridge.layer_graph(mod)                    # mapper Layers with QuantParams attached
    seq = tvm.transform.Sequential([tvm_bridge.partition_for(soc), relax.transform.RunCodegen()])
    model = tvm_bridge.compile("model.tflite", soc)        # -> CompiledModel: run / schedules / counters / export
    print(model.memory_plan())                             # static L2 plan: peak bytes, fits, per-layer bytes
    ref = tvm_bridge.LiteRTReference("model.tflite")       # LiteRT reference kernels in a child process
    ref.invoke(x)                                          # LiteRTError if LiteRT fails or aborts
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BridgeError": "tvm_bridge.relax_import",
    "from_tflite": "tvm_bridge.relax_import",
    "from_onnx": "tvm_bridge.relax_import",
    "load_model": "tvm_bridge.relax_import",
    "layer_graph": "tvm_bridge.relax_graph",
    "soc_patterns": "tvm_bridge.patterns",
    "partition_for": "tvm_bridge.partition",
    "compile": "tvm_bridge.compiled",
    "CompiledModel": "tvm_bridge.compiled",
    "MemoryOverflowError": "tvm_bridge.memory",
    "plan_memory": "tvm_bridge.memory",
    "LiteRTReference": "tvm_bridge.litert_ref",
    "LiteRTError": "tvm_bridge.litert_ref",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tvm_bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
