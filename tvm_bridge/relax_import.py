"""Model import: TFLite and ONNX files (or a user's Relax ``IRModule``) -> Relax ``IRModule``.

Int8 TFLite models come in QDQ form (``tvm_bridge.patterns`` recognises the chains). Bad input raises
``BridgeError`` with the file and the reason: not a model file, a float-only model (nothing to run
in int8 on an accelerator), dynamic shapes (the mapper needs every extent).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Union

import numpy as np
import tvm
from tvm import relax

from tvm_bridge import _compat as compat

log = logging.getLogger(__name__)

ModelLike = Union[str, Path, bytes, tvm.IRModule, Any]
_TFLITE_ID = b"TFL3"  # flatbuffer file identifier at bytes 4..8
SEMANTICS_ATTR = "match.semantics"  # module attribute: whose int8 semantics the layers follow (quant.SEMANTICS)


class BridgeError(ValueError):
    """Input the bridge cannot take; the message names the file/op/layer and the reason."""


def main_function(mod: tvm.IRModule) -> relax.Function:
    """The ``main`` Relax function of ``mod`` (BridgeError if there is none)."""
    names = [compat.var_name(gv) for gv in mod.get_global_vars()]
    if "main" not in names:
        raise BridgeError(f"the Relax module has no 'main' function (functions: {', '.join(sorted(names)) or 'none'})")
    func = mod["main"]
    if not isinstance(func, relax.Function):
        raise BridgeError("'main' is not a Relax function")
    return func


def semantics_of(mod: tvm.IRModule) -> str:
    """Whose integer semantics ``mod``'s quantized layers follow: ``"onnx"`` (or ``"onnx_qlinear"`` /
    ``"onnx_qlinear_uint8"`` for QOperator models) for modules imported by ``from_onnx`` (attribute
    ``match.semantics``), else ``"tflite"``."""
    from tvm_bridge.quant import SEMANTICS

    attrs = mod.attrs
    if attrs is None or SEMANTICS_ATTR not in attrs:
        return "tflite"
    value = str(attrs[SEMANTICS_ATTR])
    if value not in SEMANTICS:
        raise BridgeError(f"module attribute {SEMANTICS_ATTR} is {value!r}; expected one of {', '.join(SEMANTICS)}")
    return value


def check_module(mod: tvm.IRModule, source: str = "<module>", require_int8: bool = True) -> tvm.IRModule:
    """Validate an imported or user-given module (static input shapes, int8 tensors if required) and
    return it with shared dequantize bindings split (``split_shared_dequantize``) and zero-point pads
    folded into the convs they feed (``fold_zero_point_pads``)."""
    main = main_function(mod)
    for param in main.params:
        if compat.tensor_shape(param) is None:
            raise BridgeError(f"{source}: input {compat.var_name(param)!r} has a dynamic shape "
                              f"({compat.expr_type(param)}); give static shapes (e.g. shape_dict for ONNX)")
    if require_int8 and not _has_int8(main):
        raise BridgeError(f"{source}: float-only model (no int8 tensor); the bridge offloads int8-quantized "
                          "layers only: quantize the model to int8 (e.g. TFLite full-integer post-training quantization)")
    return fold_zero_point_pads(split_shared_dequantize(mod))


@relax.expr_functor.mutator
class _SplitDequantize(relax.PyExprMutator):
    """Gives every consumer of a shared ``dequantize`` binding its own copy of it."""

    def __init__(self, mod: tvm.IRModule, shared: dict):
        super().__init__(mod)
        self.shared = shared

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not any(isinstance(a, relax.Var) and a in self.shared for a in call.args):
            return call
        args = [self.builder_.emit(self.shared[a]) if isinstance(a, relax.Var) and a in self.shared else a for a in call.args]
        return compat.call_with_args(call, args)


def split_shared_dequantize(mod: tvm.IRModule) -> tvm.IRModule:
    """``main`` with every ``dequantize`` that feeds several ops duplicated, one per consumer.

    ONNX QDQ graphs share one DequantizeLinear between, e.g., a conv and a residual add; a layer
    pattern that absorbs it would leave the other consumer reading an undefined variable
    (TVM's ``FuseOpsByPattern``). Duplicates are cheap (an int8 -> float32 cast) and never change results.
    """
    main = main_function(mod)
    uses: dict = {}
    values: dict = {}
    for block in main.body.blocks:
        for binding in block.bindings:
            if isinstance(binding.value, relax.Call) and compat.op_name(binding.value) == "relax.dequantize":
                values[binding.var] = binding.value
            relax.analysis.post_order_visit(binding.value, lambda e: uses.__setitem__(e, uses.get(e, 0) + 1)
                                            if isinstance(e, relax.Var) else None)
    shared = {var: value for var, value in values.items() if uses.get(var, 0) > 1}
    if not shared:
        return mod
    gv = mod.get_global_var("main")
    mutator = _SplitDequantize(mod, shared)
    mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    mod[gv] = mutator.visit_expr(main)
    return relax.transform.DeadCodeElimination(["main"])(mod)


@relax.expr_functor.mutator
class _FoldPad(relax.PyExprMutator):
    """``conv2d(dequantize(pad(x, zero point)))`` -> ``conv2d(dequantize(x))`` with the pad in its padding."""

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if compat.op_name(call) != "relax.nn.conv2d" or not isinstance(call.args[0], relax.Var):
            return call
        dq = self.lookup_binding(call.args[0])
        if dq is None or compat.op_name(dq) != "relax.dequantize" or not isinstance(dq.args[0], relax.Var):
            return call
        pad = self.lookup_binding(dq.args[0])
        if pad is None or compat.op_name(pad) != "relax.nn.pad" or str(pad.attrs.pad_mode) != "constant":
            return call
        if not compat.is_constant(dq.args[2]) or compat.constant_value(dq.args[2]).size != 1:
            return call
        if float(pad.attrs.pad_value) != float(compat.constant_value(dq.args[2]).reshape(-1)[0]):
            return call  # not the zero point: an exact int8 pad on the host
        layout, widths = str(call.attrs.data_layout), [int(v) for v in pad.attrs.pad_width]
        if len(widths) != 2 * len(layout) or any(widths[2 * i:2 * i + 2] != [0, 0] for i, axis in enumerate(layout)
                                                  if axis not in "HW") or min(widths) < 0:
            return call
        h, w = layout.index("H"), layout.index("W")
        top, left, bottom, right = (int(v) for v in call.attrs.padding)
        padding = [top + widths[2 * h], left + widths[2 * w], bottom + widths[2 * h + 1], right + widths[2 * w + 1]]
        x = self.builder_.emit(compat.call_with_args(dq, [pad.args[0]] + list(dq.args[1:])))
        a = call.attrs
        out_dtype = str(a.out_dtype) if a.out_dtype is not None else ""
        return relax.op.nn.conv2d(x, call.args[1], strides=a.strides, padding=padding, dilation=a.dilation,
                                  groups=int(a.groups), data_layout=layout, kernel_layout=str(a.kernel_layout),
                                  out_layout=str(a.out_layout), out_dtype=None if out_dtype in ("", "None", "void") else out_dtype)


def fold_zero_point_pads(mod: tvm.IRModule) -> tvm.IRModule:
    """``main`` with every pad by the zero point that feeds a (dequantized) conv2d folded into the conv's
    padding, so the conv keeps its real padding (and can be offloaded with it). Exact: a padded
    zero point dequantizes to 0.0, which is what conv padding adds."""
    pads = []
    relax.analysis.post_order_visit(main_function(mod).body, lambda e: pads.append(e) if isinstance(e, relax.Call)
                                    and compat.op_name(e) == "relax.nn.pad" else None)
    if not pads:
        return mod  # nothing to fold: the module as it is
    gv = mod.get_global_var("main")
    new = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    new[gv] = _FoldPad(mod).visit_expr(mod[gv])
    return relax.transform.DeadCodeElimination(["main"])(new)


def _has_int8(func: relax.Function) -> bool:
    if any(compat.tensor_dtype(p) == "int8" for p in func.params):
        return True
    found = []

    def visit(expr: Any) -> None:
        if isinstance(expr, relax.Call) and compat.op_name(expr) in ("relax.quantize", "relax.dequantize"):
            found.append(expr)

    relax.analysis.post_order_visit(func.body, visit)
    return bool(found)


def _read(path_or_bytes: Union[str, Path, bytes], what: str) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes, f"<{what} bytes>"
    path = Path(path_or_bytes)
    if not path.is_file():
        raise BridgeError(f"{path}: no such model file")
    return path.read_bytes(), str(path)


def _tflite_dynamic_inputs(model: Any) -> list[str]:
    """Names of subgraph-0 inputs whose shape signature has an unknown non-batch dimension."""
    graph = model.Subgraphs(0)
    bad = []
    for i in range(graph.InputsLength()):
        tensor = graph.Tensors(graph.Inputs(i))
        shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.zeros(0, int)
        signature = tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else shape
        if any(int(d) < 1 for d in shape) or any(int(d) < 0 for d in list(signature)[1:]):
            bad.append(f"{tensor.Name().decode()} shape signature {[int(d) for d in signature]}")
    return bad


def _report_inexact_ops(model: Any, source: str) -> None:
    """One warning per TFLite op kind (with a count) that runs in TVM's float QDQ lowering, which may
    differ from LiteRT's integer kernels by an LSB; layers and exactly imported ops are not reported."""
    from collections import Counter

    from tflite.BuiltinOperator import BuiltinOperator

    from tvm_bridge.tflite_convert import EXACT_OPS, LAYER_OPS

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    counts: Counter = Counter()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode())), "CUSTOM")
        counts[name] += 1
    for op, n in sorted(counts.items()):
        if op not in LAYER_OPS and op not in EXACT_OPS:
            log.warning("%s: TFLite %s x%d runs in TVM's float QDQ lowering on the host (may differ from LiteRT's "
                        "integer kernels by 1 LSB)", source, op, n)


def from_tflite(path: Union[str, Path, bytes]) -> tvm.IRModule:
    """Import a .tflite file (path or bytes) into a Relax ``IRModule`` with one ``main``.

    Raises ``BridgeError`` for a file that is not a TFLite flatbuffer, a float-only model, an input
    with a dynamic (non-batch) dimension or an operator nobody can import (the message names the
    TFLite op). A dynamic batch (signature -1) is imported as batch 1, its SHAPE chains resolved.
    Ops TVM's frontend lacks or lowers inexactly are handled by ``tflite_rewrite`` (before TVM reads
    the model) and ``tflite_convert.MatchConverter`` (exact int8 Relax).
    """
    import tflite
    from tvm.relax.frontend.tflite import from_tflite as _from_tflite

    from tvm_bridge.tflite_convert import converter_class
    from tvm_bridge.tflite_rewrite import RewriteError, rewrite_tflite

    data, source = _read(path, "tflite")
    if len(data) < 8 or data[4:8] != _TFLITE_ID:
        raise BridgeError(f"{source}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise BridgeError(f"{source}: TFLite model has no subgraph")
        dynamic = _tflite_dynamic_inputs(model)
    except BridgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer fails in many ways
        raise BridgeError(f"{source}: not a readable TFLite model ({type(exc).__name__}: {exc})") from exc
    if dynamic:
        raise BridgeError(f"{source}: dynamic shapes are not supported (inputs {', '.join(dynamic)})")
    try:
        rewritten = rewrite_tflite(data)
    except RewriteError as exc:
        raise BridgeError(f"{source}: {exc}") from exc
    for note in rewritten.notes:
        log.debug("%s: %s", source, note)
    try:
        if rewritten.data is not data:
            model = tflite.Model.GetRootAsModel(rewritten.data, 0)
        _report_inexact_ops(model, source)
        mod = _from_tflite(model, op_converter=converter_class(rewritten.input_dilations))
    except Exception as exc:  # noqa: BLE001 - TVM raises OpNotImplemented, AssertionError, TVMError...
        raise BridgeError(f"{source}: TVM's TFLite frontend cannot import it: {type(exc).__name__}: {exc}") from exc
    return check_module(mod.with_attr("match.tflite", source), source)


def from_onnx(model: Union[str, Path, bytes, Any], shape_dict: dict | None = None) -> tvm.IRModule:
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) into a Relax ``IRModule``.

    Needs the ``onnx`` package. ``shape_dict`` (input name -> shape) fixes symbolic input dims;
    dynamic shapes left after that raise ``BridgeError``. QDQ (DequantizeLinear/QuantizeLinear)
    models import, and so do QOperator models: ``QLinearConv``, ``QLinearMatMul``, ``QGemm`` and
    ``QLinearAdd``, which TVM's frontend lacks, are rewritten into QDQ chains first
    (``tvm_bridge.onnx_qoperator``) and the module is marked ``"onnx_qlinear"`` (``"onnx_qlinear_uint8"``
    for uint8 tensors): its layers round like onnxruntime's integer kernels. Other QLinear ops and
    ``quantize_dynamic``'s ``ConvInteger`` / ``MatMulInteger`` / ``DynamicQuantizeLinear`` raise
    ``BridgeError`` naming the op. uint8 activations become int8
    (``tvm_bridge.onnx_layout.to_int8``), the NCHW QDQ conv and add chains are turned NHWC between
    int8 transposes (``tvm_bridge.onnx_layout.to_nhwc``) and the
    module is marked ``match.semantics = "onnx"``: its layers round like onnxruntime
    (``tvm_bridge.quant``).
    """
    try:
        import onnx
    except ImportError as exc:
        raise BridgeError("from_onnx needs the 'onnx' package (pip install onnx)") from exc
    from tvm.relax.frontend.onnx import from_onnx as _from_onnx

    from tvm_bridge.onnx_qoperator import QOperatorError, rewrite_qoperator

    source = "<onnx model>"
    if not isinstance(model, onnx.ModelProto):
        data, source = _read(model, "onnx")
        try:
            model = onnx.load_from_string(data)
        except Exception as exc:  # noqa: BLE001 - protobuf decode errors
            raise BridgeError(f"{source}: not an ONNX model ({type(exc).__name__}: {exc})") from exc
        if not model.graph.node:
            raise BridgeError(f"{source}: not an ONNX model (no graph nodes)")
    try:
        rewritten = rewrite_qoperator(model)
    except QOperatorError as exc:
        raise BridgeError(f"{source}: {exc}") from exc
    semantics = "onnx"
    if rewritten.ops:
        model = rewritten.model
        semantics = "onnx_qlinear_uint8" if rewritten.activation_dtype == "uint8" else "onnx_qlinear"
        log.info("%s: QOperator ops rewritten into QDQ chains (%s); layers follow onnxruntime's QLinear kernels",
                 source, ", ".join(f"{op} x{n}" for op, n in sorted(rewritten.ops.items())))
    try:
        mod = _from_onnx(model, shape_dict=shape_dict)
    except Exception as exc:  # noqa: BLE001
        raise BridgeError(f"{source}: TVM's ONNX frontend cannot import it: {type(exc).__name__}: {exc}") from exc
    from tvm_bridge.onnx_layout import layout_transposes, to_int8, to_nhwc

    mod = to_nhwc(to_int8(check_module(mod, source)))
    transposes = layout_transposes(mod)
    if transposes:
        log.info("%s: %d NCHW<->NHWC int8 transposes (%d bytes) run in TVM's host code around the NHWC layers",
                 source, len(transposes), sum(n for _, _, n in transposes))
    return mod.with_attr(SEMANTICS_ATTR, semantics)


def load_model(model: ModelLike) -> tvm.IRModule:
    """A Relax module from a .tflite/.onnx path, TFLite/ONNX bytes, an ``onnx.ModelProto`` or a Relax
    ``IRModule`` (taken as is, after checking shapes)."""
    if isinstance(model, tvm.IRModule):
        return check_module(model, "<IRModule>")
    if isinstance(model, bytes):
        return from_tflite(model) if model[4:8] == _TFLITE_ID else from_onnx(model)
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise BridgeError(f"{path}: no such model file")
        head = path.read_bytes()[:8]
        if head[4:8] == _TFLITE_ID or path.suffix.lower() == ".tflite":
            return from_tflite(path)
        if path.suffix.lower() == ".onnx":
            return from_onnx(path)
        raise BridgeError(f"{path}: not a TFLite (.tflite, TFL3 flatbuffer) or ONNX (.onnx) model")
    if type(model).__name__ == "ModelProto":
        return from_onnx(model)
    raise BridgeError(f"cannot import a {type(model).__name__}: give a .tflite/.onnx path, model bytes or a Relax IRModule")
