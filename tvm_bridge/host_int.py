"""Exact integer host code for recognised layers that stay on the host.

TVM lowers the imported QDQ chains in float32 (dequantize -> float op -> quantize), which differs
from TFLite's integer kernels by 1 LSB in some elements, and its int32 ``avg_pool2d`` truncates
where TFLite rounds half away from zero (measured on the MLPerf Tiny models: every op at most 1 LSB
off LiteRT's reference kernels, average pooling in about half the channels). Chained, those
differences flip the top-1 class of 4-10 % of random inputs. ``exact_host_layers`` rewrites every
recognised layer left in ``main`` into Relax integer ops with TFLite's semantics
(``tvm_bridge.quant``): int32 convolution/matmul/window sums, int64 fixed-point requantization
(double rounding; single rounding for dense; ONNX layers: one rounding, ties to even; QOperator
layers: onnxruntime's float32 requantization, ``tvm_bridge.quant_qlinear``), zero points and clamps. The result is still plain
Relax, compiled by TVM's own LLVM host code. Max pooling is already exact and is left alone.
"""

from __future__ import annotations

import logging

import numpy as np
import tvm
from tvm import relax
from tvm.relax import op as R

from archs.dims import LoopDim as D
from mapper.workload import Layer
from tvm_bridge import _compat as compat
from tvm_bridge.patterns import Unsupported, extract_from_function, layer_patterns
from tvm_bridge.quant import QLINEAR_SEMANTICS, SINGLE_ROUNDING_OPS, QuantParams, onnx_dequantize_lut, qlinear_add_tables, qlinear_offset
from tvm_bridge.relax_graph import input_order
from tvm_bridge.relax_import import main_function, semantics_of
from tvm_bridge.relax_int import IntBuilder as _Builder
from tvm_bridge.relax_int import i32 as _i32
from tvm_bridge.relax_int import i64 as _i64

log = logging.getLogger(__name__)


def _window_counts(layer: Layer) -> np.ndarray:
    """Valid input pixels under each pooling window [1, OY, OX, 1] (TFLite never counts padding)."""
    s = layer.sizes
    iy, ix = layer.quant.extra["input_shape"][1:3]
    top, left = layer.quant.extra["relax_padding"][:2]
    counts = np.zeros((1, s[D.OY], s[D.OX], 1), np.int32)
    for oy in range(s[D.OY]):
        rows = np.clip([oy * layer.stride[0] - top, oy * layer.stride[0] - top + s[D.FY]], 0, iy)
        for ox in range(s[D.OX]):
            cols = np.clip([ox * layer.stride[1] - left, ox * layer.stride[1] - left + s[D.FX]], 0, ix)
            counts[0, oy, ox, 0] = (rows[1] - rows[0]) * (cols[1] - cols[0])
    return counts


def _body(b: _Builder, layer: Layer, inputs: list) -> relax.Expr:
    q: QuantParams = layer.quant
    s = layer.sizes
    if q.op in ("conv2d", "depthwise"):
        x = b.widen(inputs[0], q.input_zp)
        if q.op == "conv2d":
            weights, layout, groups = q.weights.transpose(1, 2, 3, 0), "HWIO", 1  # OHWI -> HWIO
        else:
            weights, layout, groups = q.weights[..., None], "HWOI", s[D.G]  # [FY, FX, G*M] -> HWOI
        acc = b.emit(R.nn.conv2d(x, _i32(weights), strides=layer.stride, padding=q.extra["relax_padding"],
                                 dilation=layer.dilation, groups=groups, data_layout="NHWC", kernel_layout=layout, out_dtype="int32"))
    elif q.op == "dense":
        x = b.widen(inputs[0], q.input_zp)
        acc = b.emit(R.matmul(x, _i32(q.weights.T), out_dtype="int32"))
    elif q.op == "add" and q.semantics == "onnx":  # onnxruntime's float32 arithmetic (quant.onnx_add)
        f1, f2 = (b.emit(R.take(relax.const(onnx_dequantize_lut(scale, zp)), b.widen(x, -128), axis=0))
                  for x, scale, zp in ((inputs[0], q.input_scale, q.input_zp), (inputs[1], q.input2_scale, q.input2_zp)))
        scaled = b.emit(R.divide(b.emit(R.add(f1, f2)), relax.const(np.float32(q.output_scale))))
        scaled = b.emit(R.clip(scaled, -(2.0 ** 30), 2.0 ** 30))
        return b.finish(b.round_half_even(scaled), q)
    elif q.op == "add" and q.semantics in QLINEAR_SEMANTICS:  # onnxruntime's QLinearAdd (quant_qlinear): exact float64
        unit, t1, t2 = qlinear_add_tables(q)[:3]  # sums (< 2**53 units), one float32 rounding, then to an integer
        f1, f2 = (b.emit(R.take(relax.const(np.ldexp(t.astype(np.float64), unit), "float64"), b.widen(x, -128), axis=0))
                  for x, t in ((inputs[0], t1), (inputs[1], t2)))
        value = b.emit(R.astype(b.emit(R.add(f1, f2)), "float32"))
        rounded = b.round_half_even(b.emit(R.clip(value, -(2.0 ** 20), 2.0 ** 20)))
        offset = qlinear_offset(q)
        saturated = b.emit(R.subtract(R.maximum(R.minimum(rounded, _i64(127 + offset)), _i64(-128 + offset)), _i64(offset)))
        return b.finish(saturated, q, add_zero_point=False)
    elif q.op == "add":
        r1, r2 = (b.rescale(b.emit(R.left_shift(b.widen(x, zp, "int64"), _i64(q.left_shift))), m, sh)
                  for x, zp, m, sh in ((inputs[0], q.input_zp, q.input1_multiplier, q.input1_shift),
                                       (inputs[1], q.input2_zp, q.input2_multiplier, q.input2_shift)))
        return b.finish(b.rescale(b.emit(R.add(r1, r2)), q.multiplier[0], q.shift[0]), q)
    elif q.op == "avg_pool":
        x = b.widen(inputs[0], 0)
        ones = np.ones((s[D.FY], s[D.FX], s[D.G], 1), np.int32)
        total = b.emit(R.nn.conv2d(x, _i32(ones), strides=layer.stride, padding=q.extra["relax_padding"], groups=s[D.G],
                                   data_layout="NHWC", kernel_layout="HWOI", out_dtype="int32"))
        counts = _window_counts(layer)
        half = _i32(counts // 2)
        up = b.emit(R.floor_divide(R.add(total, half), _i32(counts)))
        down = b.emit(R.negative(R.floor_divide(R.subtract(half, total), _i32(counts))))
        return b.finish(b.emit(R.where(R.greater(total, _i32(0)), up, down)), q, add_zero_point=False)
    else:
        raise Unsupported(f"no exact host lowering for {q.op}")
    if q.bias is not None:
        acc = b.emit(R.add(acc, _i32(q.bias)))
    wide = b.emit(R.astype(acc, "int64"))
    if q.rounding == "float32":  # onnxruntime's QLinear requantization: float32(acc) * float32 scale, nearest even
        scales = np.ldexp(q.multiplier.astype(np.float64), q.shift.astype(np.int64)).astype(np.float32)
        product = b.emit(R.multiply(b.emit(R.astype(acc, "float32")), relax.const(scales)))
        return b.finish(b.round_half_even(b.emit(R.clip(product, -(2.0 ** 20), 2.0 ** 20))), q)
    if q.rounding == "half_even":
        product = b.emit(R.multiply(wide, _i64(q.multiplier.astype(np.int64))))
        return b.finish(b.shift_half_even(product, 31 - q.shift.astype(np.int64)), q)
    return b.finish(b.rescale(wide, q.multiplier, q.shift, single=q.op in SINGLE_ROUNDING_OPS), q)


def integer_function(layer: Layer, composite: relax.Function) -> relax.Function:
    """A plain Relax function with ``composite``'s parameters computing ``layer`` exactly (int8 out)."""
    params = [relax.Var(compat.var_name(p), compat.expr_type(p)) for p in composite.params]
    order = input_order(composite)
    bb = relax.BlockBuilder()
    with bb.function(f"exact_{layer.name}", params, private=True):
        with bb.dataflow():
            out = _body(_Builder(bb), layer, [params[i] for i in order])
            result = bb.emit_output(out)
        bb.emit_func_output(result)
    return bb.get()[f"exact_{layer.name}"]


def exact_host_layers(mod: tvm.IRModule) -> tvm.IRModule:
    """Rewrite the recognised layers left in ``main`` (not offloaded) into exact integer Relax."""
    kinds = {"conv2d", "depthwise", "dense", "add", "pool"}
    semantics = semantics_of(mod)
    patterns = [p for p in layer_patterns(kinds, semantics=semantics) if p.name != "match.max_pool"]
    fused = relax.transform.FuseOpsByPattern(patterns, bind_constants=True, annotate_codegen=False, entry_functions=["main"])(mod)
    main_function(fused)
    for gv, func in list(fused.functions.items()):
        if compat.function_attr(func, "Composite") is None or compat.function_attr(func, "Codegen") is not None:
            continue
        try:
            layer = extract_from_function(func, name=compat.var_name(gv), semantics=semantics)
            fused.update_func(gv, integer_function(layer, func))
        except Unsupported as exc:  # keep TVM's float lowering for this one
            log.warning("host layer %s keeps TVM's float QDQ lowering: %s", compat.var_name(gv), exc)
            fused.update_func(gv, func.without_attr("Composite").without_attr("Primitive"))
    return fused
