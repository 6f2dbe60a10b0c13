"""``layer_graph(mod)``: the mapper's layer graph of an imported Relax module, quantization attached.

Nodes carry a ``mapper.Layer`` (attribute ``layer``, with ``Layer.quant`` a ``QuantParams``), edges
the tensor name (attribute ``tensor``) and which input of the consumer it feeds (``input``: 0, or 1
for the second operand of an add) — the format of ``mapper.layer_graph``. Layer names are
``<kind>_<index>`` with the index counting recognised layers in the module's binding order
(the TFLite operator order for imported .tflite files), so they are stable and deterministic.

Everything the bridge does not recognise as a layer (reshape, softmax and its QDQ, ops of unknown
kind, chains it cannot run bit-exactly) stays in TVM: it is listed in ``graph.graph["host_ops"]``
and logged, and data flowing through it still yields an edge between the layers on either side.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Optional

import networkx as nx
import tvm
from tvm import relax

from mapper.graph import layer_graph as _mapper_layer_graph
from mapper.workload import Layer
from tvm_bridge import _compat as compat
from tvm_bridge.patterns import Unsupported, extract_from_function, layer_patterns
from tvm_bridge.relax_import import BridgeError, main_function, semantics_of

log = logging.getLogger(__name__)

#: data-movement / QDQ / output ops that are expected to stay in TVM (logged at INFO); any other op
#: left in ``main`` is an op the bridge does not know as a layer (logged at WARNING, by name)
GLUE_OPS = frozenset({
    "relax.reshape", "relax.permute_dims", "relax.quantize", "relax.dequantize", "relax.astype", "relax.clip",
    "relax.nn.softmax", "relax.nn.log_softmax", "relax.squeeze", "relax.expand_dims", "relax.flatten",
})


@dataclass(frozen=True)
class HostOp:
    """A Relax binding that stays on TVM's host code: its operator, output var and shape."""

    op: str
    var: str
    shape: Optional[tuple[int, ...]]
    dtype: str


def recognise(mod: tvm.IRModule) -> tvm.IRModule:
    """``FuseOpsByPattern`` with every layer pattern (constants bound, no codegen annotation)."""
    patterns = layer_patterns(semantics=semantics_of(mod))
    return relax.transform.FuseOpsByPattern(patterns, bind_constants=True, annotate_codegen=False)(mod)


def _callee(mod: tvm.IRModule, call: Any) -> Any:
    if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.GlobalVar):
        return mod[call.op]
    return None


def _vars_in(expr: Any) -> list:
    if isinstance(expr, relax.Var):
        return [expr]
    if isinstance(expr, relax.Tuple):
        return [v for f in expr.fields for v in _vars_in(f)]
    if isinstance(expr, relax.TupleGetItem):
        return _vars_in(expr.tuple_value)
    if isinstance(expr, relax.Call):
        return [v for a in expr.args for v in _vars_in(a)]
    return []


def layer_graph(mod: tvm.IRModule, name: str = "") -> nx.DiGraph:
    """The layer graph of ``mod``'s ``main`` (see the module docstring for the format).

    Graph attributes: ``name``, ``host_ops`` (list of ``HostOp``), ``inputs`` (main's parameter
    names) and ``outputs`` (layers whose output reaches main's result, directly or through host ops).
    """
    fused = recognise(mod)
    semantics = semantics_of(mod)
    main = main_function(fused)
    layers: list[Layer] = []
    edges: list[tuple[str, str, str, int]] = []
    host_ops: list[HostOp] = []
    producers: dict[Any, set[str]] = {p: set() for p in main.params}
    for block in main.body.blocks:
        for binding in block.bindings:
            value = binding.value
            callee = _callee(fused, value)
            layer = None
            if callee is not None and compat.function_attr(callee, "Composite") is not None:
                try:
                    layer = extract_from_function(callee, semantics=semantics)
                except Unsupported as exc:  # pragma: no cover - the pattern check already rejected it
                    log.warning("composite %s not extracted: %s", compat.function_attr(callee, "Composite"), exc)
            inputs = _vars_in(value)
            if layer is None:
                producers[binding.var] = set().union(*(producers.get(v, set()) for v in inputs))
                op = compat.op_name(value) or type(value).__name__
                var = binding.var
                host_ops.append(HostOp(op, compat.var_name(var), compat.tensor_shape(var), compat.tensor_dtype(var)))
                continue
            layer = replace(layer, name=f"{layer.kind}_{len(layers)}")
            layers.append(layer)
            for index, var in enumerate(_ordered_inputs(callee, value)):
                for src in sorted(producers.get(var, set())):
                    edges.append((src, layer.name, f"{src}:out", index))
            producers[binding.var] = {layer.name}
    count = Counter(h.op for h in host_ops)
    if host_ops:
        log.info("ops that stay in TVM's host code: %s", ", ".join(f"{op} x{n}" for op, n in sorted(count.items())))
    for op, n in sorted(count.items()):
        if op not in GLUE_OPS:
            first = next(h for h in host_ops if h.op == op)
            # TFLite imports already named their inexact ops (relax_import.from_tflite): the Relax view is detail
            log.log(logging.INFO if mod.attrs is not None and "match.tflite" in mod.attrs else logging.WARNING,
                    "op %s x%d (first: output %s, shape %s, %s) is not a layer the bridge knows: it stays on TVM's host code",
                    op, n, first.var, first.shape, first.dtype)
    graph = _mapper_layer_graph(layers, [(a, b, t) for a, b, t, _ in edges], name=name)
    for src, dst, _, index in edges:
        graph.edges[src, dst]["input"] = index
    graph.graph.update(host_ops=host_ops, inputs=[compat.var_name(p) for p in main.params],
                       outputs=sorted(set().union(*(producers.get(v, set()) for v in _vars_in(main.body.body)))))
    return graph


def _ordered_inputs(callee: Any, call: Any) -> list:
    """The call's arguments in the layer's input order (add: the add's left operand first)."""
    args = list(call.args)
    if len(args) < 2:
        return args
    order = input_order(callee)
    return [args[i] for i in order]


def input_order(func: Any) -> list[int]:
    """Parameter indices of ``func`` (a composite function, or an outer codegen function wrapping one)
    in the layer's input order: for an add, the parameter feeding the left operand comes first."""
    inner = composite_function(func)
    params = list(inner.params)
    bindings = {b.var: b.value for block in inner.body.blocks for b in block.bindings}
    order: list[int] = []
    for binding in (b for block in inner.body.blocks for b in block.bindings):
        if compat.op_name(binding.value) == "relax.add":
            for arg in binding.value.args:
                value = bindings.get(arg, arg)
                if compat.op_name(value) == "relax.dequantize" and value.args[0] in params:
                    order.append(params.index(value.args[0]))
            if len(order) == len(params):
                return order
            order = []
    return list(range(len(params)))


def composite_function(func: Any) -> Any:
    """The composite (``Composite`` attribute) function of an outer ``Codegen`` function, or ``func``."""
    if compat.function_attr(func, "Composite") is not None:
        return func
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding.value, relax.Function) and compat.function_attr(binding.value, "Composite") is not None:
                return binding.value
    raise BridgeError("function holds no composite function")


def total_macs(graph: nx.DiGraph, kinds: tuple[str, ...] = ("conv2d", "depthwise", "dense")) -> tuple[int, int]:
    """(number of MAC layers, total MACs) of the layers of ``kinds`` in ``graph``."""
    layers = [graph.nodes[n]["layer"] for n in graph.nodes if graph.nodes[n]["layer"].kind in kinds]
    return len(layers), sum(layer.macs for layer in layers)
