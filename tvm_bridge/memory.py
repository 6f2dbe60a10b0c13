"""``plan_memory``: the static plan of a model's outermost on-chip memory (``mapper.memory_plan.MemoryPlan``).

The steps are the bindings of the imported module's ``main`` after layer recognition
(``tvm_bridge.relax_graph.recognise``), in order: one per layer (named as ``layer_graph`` names it, so
the names match ``CompiledModel.schedules``) and one per op left to the host. Tensors:

- each model input (``input:<name>``, live from step 0) and each step's output (``<layer>:out`` for a
  layer, ``<var>`` for a host op: its static shape x element size); reshape-like ops
  (``VIEW_OPS``) alias their input and allocate nothing; the tensors reaching ``main``'s result stay
  live to the last step;
- scratch of an offloaded layer in the planned memory, live during its step only (``<layer>:scratch``):
  the int32 partial-sum copy of the output (``GeneratedLayer.psum_bytes``) and the zero-point padded
  input copy when the host pads for the module (``Schedule.host_padding``). The host build declares
  both static per layer; a port following this plan places them in the arena.

Weights are counted as a deployment stores them (``QuantParams``): int8 weights plus int32 bias,
multiplier and shift per output channel for layers with weights, and the constants host ops read
(e.g. lookup tables). Host layers are counted with the same tensors as offloaded ones; the wider
intermediates of TVM's integer host lowering (``tvm_bridge.host_int``), which a deployed int8 kernel
does not materialise, are not. The planned memory is the host module's last (outermost) memory,
which every module's last level names in the shipped SoCs (L2 on GAP9 and DIANA).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Optional

import numpy as np
import tvm
from tvm import relax

from archs.dims import LoopDim as D
from archs.model import SoC
from mapper.arena import LiveTensor
from mapper.memory_plan import MemoryPlan, MemoryPlanError, StepMemory, build_plan
from mapper.schedule import Schedule
from mapper.workload import Layer
from tvm_bridge import _compat as compat
from tvm_bridge.patterns import Unsupported, extract_from_function
from tvm_bridge.relax_graph import _vars_in, recognise
from tvm_bridge.relax_import import BridgeError, main_function

#: ops whose output is a view of their input (no copy, no new buffer)
VIEW_OPS = frozenset({"relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten"})
class MemoryOverflowError(BridgeError, MemoryPlanError):
    """``tvm_bridge.compile``: the model does not fit the SoC's outermost memory (the message is
    ``MemoryPlan.overflow_message``: the largest live set, its step and layer, bytes vs capacity)."""


#: offset alignment in the planned memory (bytes): GAP9/DIANA cores and DMAs move words
ALIGNMENT_BYTES = 4


def tensor_bytes(expr: Any, what: str) -> int:
    """Bytes of a statically shaped tensor, or of every field of a tuple of them (``BridgeError`` naming
    ``what`` if a shape is not static)."""
    return _info_bytes(compat.expr_type(expr), what)


_TUPLE_TYPES = tuple(t for t in (getattr(relax, "TupleType", None), getattr(relax, "TupleStructInfo", None)) if isinstance(t, type))


def _info_bytes(info: Any, what: str) -> int:
    if isinstance(info, _TUPLE_TYPES):
        return sum(_info_bytes(field, f"{what}[{i}]") for i, field in enumerate(info.fields))
    shape = getattr(getattr(info, "shape", None), "values", None)
    dtype = str(getattr(info, "dtype", "") or "")
    if shape is None or not dtype or not all(isinstance(getattr(d, "value", None), int) for d in shape):
        raise BridgeError(f"memory plan: tensor {what} has no static shape ({info}); "
                          "the plan needs static shapes (give the model a fixed batch size)")
    kind = tvm.runtime.DataType(dtype)
    return math.prod(int(d.value) for d in shape) * -(-kind.bits * kind.lanes // 8)  # bool: one byte per element


def layer_weight_bytes(layer: Layer) -> int:
    """Bytes of the constants a deployed int8 kernel of ``layer`` keeps: weights, and with them the int32
    bias, multiplier and shift arrays (one entry per output channel)."""
    q = layer.quant
    if q is None or q.weights is None:
        return 0
    return sum(int(np.asarray(a).nbytes) for a in (q.weights, q.bias, q.multiplier, q.shift) if a is not None)


def scratch_bytes(layer: Layer, schedule: Schedule, psum_bytes: int) -> int:
    """Planned-memory scratch of an offloaded layer: its partial-sum copy plus the padded input copy the
    host writes when it pads for the module (``c_emitter._with_host_padding``)."""
    top, bottom, left, right = tuple(getattr(schedule, "host_padding", (0, 0, 0, 0)))
    padded = 0
    if top or bottom or left or right:
        iy, ix = layer.input_size
        s = layer.sizes
        padded = s[D.B] * (iy + top + bottom) * (ix + left + right) * s[D.C] * s[D.G]
    return psum_bytes + padded


def plan_memory(mod: tvm.IRModule, soc: SoC, schedules: Mapping[str, Schedule], offloaded: Mapping[str, bool],
                generated: Optional[Mapping[str, Any]] = None, alignment_bytes: int = ALIGNMENT_BYTES) -> MemoryPlan:
    """The plan of ``soc``'s outermost memory for the imported module ``mod`` (before partitioning).

    ``schedules``/``offloaded``: per layer, as ``CompiledModel`` has them; ``generated``: layer ->
    ``c_emitter.GeneratedLayer`` of the offloaded layers (missing ones are generated here)."""
    from tvm_bridge.c_emitter import emit_layer

    generated = dict(generated or {})
    fused = recognise(mod)
    main = main_function(fused)
    bindings = [b for block in main.body.blocks for b in block.bindings]
    tensors: dict[str, dict[str, Any]] = {}  # name -> size/first/last/kind
    base: dict[Any, tuple[str, ...]] = {}  # Relax var -> the tensors it is (several for a tuple)

    def add(name: str, size: int, step: int, kind: str) -> None:
        tensors[name] = {"size": size, "first": step, "last": step, "kind": kind}

    for param in main.params:
        name = f"input:{compat.var_name(param)}"
        add(name, tensor_bytes(param, name), 0, "input")
        base[param] = (name,)
    seen_constants: list[Any] = []  # Relax constants already counted (compared by identity, same_as)
    steps: list[StepMemory] = []
    layer_count = 0
    for index, binding in enumerate(bindings):
        value, var_name = binding.value, compat.var_name(binding.var)
        layer = _layer_of(fused, value)
        read = tuple(dict.fromkeys(n for v in _vars_in(value) for n in base.get(v, ())))
        for name in read:
            tensors[name]["last"] = index
        if layer is None and (compat.op_name(value) in VIEW_OPS or isinstance(value, (relax.Tuple, relax.TupleGetItem))):
            base[binding.var] = read  # a view, a tuple of existing tensors or one of its fields: no new buffer
            label = compat.op_name(value) or type(value).__name__
            steps.append(StepMemory(index, f"{label} {var_name}", soc.host, False, False, read))
            continue
        if layer is None:
            name = f"{compat.op_name(value) or type(value).__name__} {var_name}"
            out = var_name if var_name not in tensors else f"{var_name}@{index}"
        else:
            name, out = f"{layer.kind}_{layer_count}", f"{layer.kind}_{layer_count}:out"
            layer_count += 1
        add(out, tensor_bytes(binding.var, f"{out} (step {index}, {name})"), index, "activation")
        base[binding.var] = (out,)
        own = read + (out,)
        if layer is None:
            constants = [a for a in getattr(value, "args", [])
                         if compat.is_constant(a) and not any(a.same_as(c) for c in seen_constants)]
            seen_constants.extend(constants)
            weights = sum(int(compat.constant_value(a).nbytes) for a in constants)
            steps.append(StepMemory(index, name, soc.host, False, False, own, weights))
            continue
        schedule = schedules.get(name)
        on_accelerator = bool(offloaded.get(name)) and schedule is not None
        inner: tuple[tuple[str, int], ...] = ()
        if on_accelerator:
            layer = replace(layer, name=name)
            gen = generated.get(name) or emit_layer(layer, schedule, soc, f"{name}_layer")
            inner = tuple(sorted((m, int(b)) for m, b in gen.arena_used.items()))
            scratch = scratch_bytes(layer, schedule, int(gen.psum_bytes))
            if scratch:
                add(f"{name}:scratch", scratch, index, "scratch")
                own += (f"{name}:scratch",)
        module = schedule.module if schedule is not None else soc.host
        steps.append(StepMemory(index, name, module, True, on_accelerator, own, layer_weight_bytes(layer), inner))

    for name in dict.fromkeys(n for v in _vars_in(main.body.body) for n in base.get(v, ())):
        tensors[name]["last"] = max(len(bindings) - 1, 0)
        if tensors[name]["kind"] == "activation":
            tensors[name]["kind"] = "output"
    live = [LiveTensor(n, int(t["size"]), t["first"], t["last"], t["kind"]) for n, t in tensors.items()]
    memory = soc.host_module.memories[-1]
    return build_plan(soc.name, memory.name, memory.size_bytes, live, steps, alignment_bytes)


def _layer_of(fused: tvm.IRModule, value: Any) -> Optional[Layer]:
    """The layer a binding's value calls (a composite function of ``recognise``), else None."""
    if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar)):
        return None
    callee = fused[value.op]
    if compat.function_attr(callee, "Composite") is None:
        return None
    try:
        return extract_from_function(callee)
    except Unsupported:  # pragma: no cover - the pattern check already rejected it
        return None
