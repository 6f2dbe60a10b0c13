"""Recognise quantized layers in imported Relax modules and build their ``mapper.Layer`` + ``QuantParams``.

Int8 models arrive in QDQ form: every int8 tensor is ``dequantize``d by each consumer, the MAC op
runs in float32 and its result is ``quantize``d (fused activations as ``clip``). The chains recognised:

- conv2d / depthwise: ``dequantize(x)``, ``dequantize(W)`` [+ ``reshape``], ``nn.conv2d`` (NHWC),
  [``add(dequantize(bias))``], [``nn.relu`` | ``clip``], ``quantize``, [``clip``] (fused ReLU/ReLU6,
  ONNX Relu/Clip, as integer bounds);
- dense: ``dequantize(x)``, ``dequantize([permute_dims](W))``, ``matmul``, [bias], [``nn.relu`` | ``clip``],
  ``quantize``, [``clip``];
- add: ``dequantize(a)``, ``dequantize(b)``, ``add``, [``nn.relu`` | ``clip``], ``quantize``, [``clip``];
- average pool: ``astype(int32)``, ``nn.avg_pool2d``, ``astype(int8)``, [``clip``];
- max pool: ``nn.max_pool2d`` on int8, [``clip``].

``extract_layer`` turns a matched chain into a ``Layer`` whose ``quant`` holds TFLite's integer
semantics (multipliers from ``tvm_bridge.quant``), or ONNX's (``semantics="onnx"``, or
``"onnx_qlinear[_uint8]"`` for QOperator models: models imported by ``from_onnx``, whose NCHW
chains ``tvm_bridge.onnx_layout`` turned NHWC). Anything it cannot
represent exactly raises ``Unsupported`` with the reason; the chain then stays on TVM's host code.

Pattern tables are generated from a SoC (``soc_patterns``): a kind gets a pattern only if some
non-host module lists it, and each pattern's check admits a layer only if some non-host module
accepts it (``mapper.acceptance.rejection_reason``).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Mapping, Optional

import numpy as np
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from archs.dims import LoopDim as D
from archs.model import SoC
from mapper.acceptance import padding_split, rejection_reason
from mapper.workload import Layer, LayerError
from tvm_bridge import _compat as compat
from tvm_bridge.quant import (
    ONNX_SEMANTICS,
    QLINEAR_SEMANTICS,
    QuantParams,
    add_multipliers,
    conv_multipliers,
    dense_multiplier,
    onnx_add_unit,
    onnx_multipliers,
    qlinear_add_tables,
    qlinear_scales,
)

log = logging.getLogger(__name__)

CODEGEN = "match"  # the external codegen name: composites are "match.<pattern>"
#: pattern name -> layer kind (conv2d and depthwise share one Relax chain; the check splits them)
PATTERN_KINDS: dict[str, str] = {
    "conv2d": "conv2d", "depthwise": "depthwise", "dense": "dense", "add": "add", "avg_pool": "pool", "max_pool": "pool",
}


class Unsupported(ValueError):
    """A matched chain the bridge cannot run bit-exactly (the message says why)."""


class KindMismatch(Unsupported):
    """A chain of the shared conv pattern that is the other kind (conv2d vs depthwise)."""


# --------------------------------------------------------------------------- Relax patterns


def _dq(x):
    return is_op("relax.dequantize")(x, is_const(), is_const())


def _requant(acc):
    biased = is_op("relax.add")(acc, _dq(is_const())) | acc
    activated = biased | is_op("relax.nn.relu")(biased) | is_op("relax.clip")(biased, wildcard(), wildcard())
    q = is_op("relax.quantize")(activated, is_const(), is_const())
    return q | is_op("relax.clip")(q, wildcard(), wildcard())


def _clipped(x):
    return x | is_op("relax.clip")(x, wildcard(), wildcard())


def relax_patterns() -> dict[str, Any]:
    """Pattern name -> ``relax.dpl`` pattern of its QDQ chain (fresh objects on every call)."""
    weight = _dq(is_const() | is_op("relax.permute_dims")(is_const()))
    conv = _requant(is_op("relax.nn.conv2d")(_dq(wildcard()), weight | is_op("relax.reshape")(weight, wildcard())))
    dense = _requant(is_op("relax.matmul")(_dq(wildcard()), weight))
    total = is_op("relax.add")(_dq(wildcard()), _dq(wildcard()))
    activated = total | is_op("relax.nn.relu")(total) | is_op("relax.clip")(total, wildcard(), wildcard())
    add = _clipped(is_op("relax.quantize")(activated, is_const(), is_const()))
    avg = _clipped(is_op("relax.astype")(is_op("relax.nn.avg_pool2d")(is_op("relax.astype")(wildcard()))))
    max_pool = _clipped(is_op("relax.nn.max_pool2d")(wildcard()))
    return {"conv2d": conv, "depthwise": conv, "dense": dense, "add": add, "avg_pool": avg, "max_pool": max_pool}


# --------------------------------------------------------------------------- extraction helpers


def _round_half_away(x: float) -> int:
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


def _float_activation(chain: "_Chain", expr: Any, out_scale: float, out_zp: int, act_min: int, act_max: int,
                      semantics: str) -> tuple[Any, int, int]:
    """Strip a float ``nn.relu`` / ``clip`` before the output ``quantize``: (inner expr, act_min, act_max).

    The bounds are the quantized clip bounds (monotone rounding commutes with the clamp): TFLite
    rounds half away from zero, onnxruntime ``nearbyint(float32(bound / scale))``."""
    lo, hi = -np.inf, np.inf
    if compat.op_name(expr) == "relax.nn.relu":
        lo, expr = 0.0, chain.value(expr.args[0])
    elif compat.op_name(expr) == "relax.clip":
        lo, hi = (float(compat.scalar_value(v)) for v in expr.args[1:3])
        expr = chain.value(expr.args[0])

    def quantized(bound: float) -> int:
        if semantics in ONNX_SEMANTICS:
            return out_zp + int(np.rint(np.float32(bound) / np.float32(out_scale)))
        return out_zp + _round_half_away(bound / out_scale)

    if lo > -np.inf:
        act_min = max(act_min, quantized(lo))
    if hi < np.inf:
        act_max = min(act_max, quantized(hi))
    if act_min > act_max:
        raise Unsupported(f"activation clamp [{lo}, {hi}] is empty after quantization")
    return expr, max(-128, act_min), min(127, act_max)


def _per_tensor(expr: Any, what: str) -> float:
    value = compat.constant_value(expr) if compat.is_constant(expr) else np.asarray(compat.scalar_value(expr))
    if value.size != 1:
        raise Unsupported(f"{what} is per-channel ({value.size} values); only per-tensor is supported")
    return float(np.float32(value.reshape(())))


def _dequantize_args(call: Any, what: str) -> tuple[Any, float, int]:
    """(input expr, scale, zero point) of a per-tensor dequantize."""
    if compat.op_name(call) != "relax.dequantize":
        raise Unsupported(f"{what}: expected relax.dequantize, found {compat.op_name(call) or type(call).__name__}")
    return call.args[0], _per_tensor(call.args[1], f"{what} scale"), int(round(_per_tensor(call.args[2], f"{what} zero point")))


def _require_int8(expr: Any, what: str) -> None:
    dtype = compat.tensor_dtype(expr)
    if dtype != "int8":
        raise Unsupported(f"{what} has dtype {dtype or 'unknown'}; only int8 is supported")


def _shape(expr: Any, what: str) -> tuple[int, ...]:
    shape = compat.tensor_shape(expr)
    if shape is None:
        raise Unsupported(f"{what} has a dynamic or unknown shape")
    return shape


class _Chain:
    """Walk a matched chain backwards from its root; ``bindings`` maps each bound Var to its value."""

    def __init__(self, bindings: Mapping[Any, Any]):
        self.bindings = bindings

    def value(self, expr: Any) -> Any:
        seen = 0
        while isinstance(expr, relax.Var) and expr in self.bindings and seen < 64:
            expr, seen = self.bindings[expr], seen + 1
        return expr

    def activation(self, root: Any) -> tuple[Any, int, int]:
        """Strip a trailing integer clip: (inner expr, act_min, act_max)."""
        root = self.value(root)
        if compat.op_name(root) == "relax.clip":
            lo, hi = (compat.scalar_value(a) for a in root.args[1:3])
            return self.value(root.args[0]), max(-128, int(np.ceil(lo))), min(127, int(np.floor(hi)))
        return root, -128, 127


def _weights(chain: _Chain, weight: Any, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights of a MAC op with output channels first (``layout`` -> "O" + the rest in order)
    and per-output-channel scales.

    Replays the Relax ops between the int8 constant and the MAC op (permute, dequantize, reshape) on
    the integer values and on a scale array broadcast along the dequantize axis. ``layout`` names the
    axes of the MAC op's weight operand ("HWIO", "HWOI" for conv2d, "IO" for matmul).
    """
    expr = chain.value(weight)
    post = []
    while compat.op_name(expr) in ("relax.reshape", "relax.permute_dims"):
        post.append(expr)
        expr = chain.value(expr.args[0])
    if compat.op_name(expr) != "relax.dequantize":
        raise Unsupported("weights are not a dequantized constant")
    source = chain.value(expr.args[0])
    pre = []
    while compat.op_name(source) == "relax.permute_dims":
        pre.append(source)
        source = chain.value(source.args[0])
    if not compat.is_constant(source) or compat.constant_value(source).dtype != np.int8:
        raise Unsupported("weights are not an int8 constant")
    weights = compat.constant_value(source)
    for op in reversed(pre):
        weights = np.transpose(weights, [int(a) for a in op.attrs.axes])
    scale = compat.constant_value(expr.args[1]).astype(np.float32).reshape(-1)
    zero = compat.constant_value(expr.args[2]).reshape(-1)
    if np.any(zero != 0):
        raise Unsupported("weight zero point is not 0")
    axis = int(expr.attrs.axis) % weights.ndim
    shape = [1] * weights.ndim
    shape[axis] = scale.size
    scales = np.broadcast_to(scale.reshape(shape), weights.shape)
    for op in reversed(post):
        if compat.op_name(op) == "relax.reshape":
            target = _shape(op, "weight reshape")
            weights, scales = weights.reshape(target), scales.reshape(target)
        else:
            axes = [int(a) for a in op.attrs.axes]
            weights, scales = np.transpose(weights, axes), np.transpose(scales, axes)
    if weights.ndim != len(layout):
        raise Unsupported(f"weights of rank {weights.ndim} for layout {layout}")
    order = [layout.index(c) for c in "O" + layout.replace("O", "")]
    weights, scales = np.transpose(weights, order), np.transpose(scales, order)
    per_channel = scales.reshape(scales.shape[0], -1)
    if np.any(per_channel != per_channel[:, :1]):
        raise Unsupported("weight scales vary inside an output channel")
    return np.ascontiguousarray(weights), per_channel[:, 0].astype(np.float32)


def _output_quantization(expr: Any, what: str) -> tuple[float, int]:
    """(scale, zero point) of the int8 ``relax.quantize`` ending a layer."""
    if compat.op_name(expr) != "relax.quantize":
        raise Unsupported(f"expected relax.quantize, found {compat.op_name(expr)}")
    _require_int8(expr, what)
    return _per_tensor(expr.args[1], "output scale"), int(round(_per_tensor(expr.args[2], "output zero point")))


def _requant_tail(chain: _Chain, root: Any, semantics: str) -> dict:
    """Fields of the ``[add(bias)] -> [relu | clip] -> quantize -> [clip]`` tail of a MAC layer and the
    accumulator call (``bias_scales``: the bias dequantize's scale per value, None without bias)."""
    inner, act_min, act_max = chain.activation(root)
    out_scale, out_zp = _output_quantization(inner, "output")
    acc, act_min, act_max = _float_activation(chain, chain.value(inner.args[0]), out_scale, out_zp, act_min, act_max, semantics)
    bias = bias_scales = None
    if compat.op_name(acc) == "relax.add":
        sides = [chain.value(a) for a in acc.args]
        is_bias = [compat.op_name(s) == "relax.dequantize" and compat.is_constant(chain.value(s.args[0])) for s in sides]
        if not any(is_bias):
            raise Unsupported("add after the MAC op is not a constant bias")
        k = is_bias.index(True) if not is_bias[0] or not is_bias[1] else 1
        bias = compat.constant_value(chain.value(sides[k].args[0]))
        if bias.dtype != np.int32:
            raise Unsupported(f"bias has dtype {bias.dtype}; only int32 is supported")
        if np.any(compat.constant_value(sides[k].args[2]) != 0):
            raise Unsupported("bias zero point is not 0")
        bias_scales = np.broadcast_to(compat.constant_value(sides[k].args[1]).astype(np.float32).reshape(-1), (bias.size,))
        acc = sides[1 - k]
    return {"acc": acc, "bias": None if bias is None else bias.reshape(-1).astype(np.int32), "out_scale": out_scale,
            "output_zp": out_zp, "act_min": act_min, "act_max": act_max, "bias_scales": bias_scales}


def _check_bias_scale(tail: dict, in_scale: float, w_scales: np.ndarray) -> None:
    """ONNX: the bias must be in accumulator units (bias scale = input scale * weight scale, as float32
    products are: within 2**-20 relative), else it cannot be added to the integer accumulator."""
    if tail["bias_scales"] is None:
        return
    expected = float(np.float32(in_scale)) * np.asarray(w_scales, np.float64)
    if np.any(np.abs(tail["bias_scales"].astype(np.float64) / expected - 1.0) > 2.0 ** -20):
        raise Unsupported("bias scale is not input scale * weight scale; the bias is not in accumulator units")


def _mac_multipliers(tail: dict, in_scale: float, w_scales: np.ndarray, semantics: str, dense: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) of a conv/depthwise/dense layer under ``semantics``."""
    if semantics == "onnx":
        _check_bias_scale(tail, in_scale, w_scales)
        return onnx_multipliers(in_scale, w_scales, tail["out_scale"])
    if semantics in QLINEAR_SEMANTICS:  # onnxruntime's float32 output scale (quant_qlinear)
        _check_bias_scale(tail, in_scale, w_scales)
        return qlinear_scales(in_scale, w_scales, tail["out_scale"])
    if dense and np.all(w_scales == w_scales[0]):
        m, s = dense_multiplier(in_scale, float(w_scales[0]), tail["out_scale"])
        return np.full(w_scales.size, m, np.int32), np.full(w_scales.size, s, np.int32)
    return conv_multipliers(in_scale, w_scales, tail["out_scale"])


def _pads(attrs: Any) -> tuple[int, int, int, int]:
    """Relax (top, left, bottom, right) -> Layer (top, bottom, left, right)."""
    p = [int(v) for v in attrs.padding]
    if len(p) == 2:
        p = p * 2
    top, left, bottom, right = p
    return (top, bottom, left, right)


def _geometry(layer_pads, out_hw, kernel, stride, dilation, in_hw) -> tuple[int, int, int, int]:
    """Layer padding: drop trailing pad rows/cols the last window never reads."""
    top, bottom, left, right = layer_pads
    out = []
    for lo, hi, o, k, s, d, size in ((top, bottom, out_hw[0], kernel[0], stride[0], dilation[0], in_hw[0]),
                                     (left, right, out_hw[1], kernel[1], stride[1], dilation[1], in_hw[1])):
        extent = (k - 1) * d + 1
        out += [lo, max(0, min(hi, (o - 1) * s + extent - size - lo))]
    return (out[0], out[1], out[2], out[3])


# --------------------------------------------------------------------------- per-kind extraction


def _conv(chain: _Chain, root: Any, name: str, semantics: str = "tflite") -> Layer:
    tail = _requant_tail(chain, root, semantics)
    conv = tail["acc"]
    if compat.op_name(conv) != "relax.nn.conv2d":
        raise Unsupported(f"expected relax.nn.conv2d, found {compat.op_name(conv)}")
    a = conv.attrs
    if str(a.data_layout) != "NHWC" or str(a.out_layout or "NHWC") != "NHWC":
        raise Unsupported(f"conv2d layout {a.data_layout}/{a.out_layout}; only NHWC is offloaded")
    x, in_scale, in_zp = _dequantize_args(chain.value(conv.args[0]), "conv input")
    _require_int8(x, "conv input")
    in_shape, out_shape = _shape(x, "conv input"), _shape(conv, "conv output")
    layout = str(a.kernel_layout)
    if sorted(layout) != sorted("HWIO"):
        raise Unsupported(f"conv2d kernel layout {layout}")
    weights, w_scales = _weights(chain, conv.args[1], layout)  # O + the others in layout order
    weights = np.transpose(weights, [0] + [1 + layout.replace("O", "").index(c) for c in "HWI"])  # OHWI
    k_out, fy, fx, c_per_group = weights.shape
    groups = int(a.groups)
    b, iy, ix, c_in = in_shape
    _, oy, ox, _ = out_shape
    stride, dilation = tuple(int(v) for v in a.strides), tuple(int(v) for v in a.dilation)
    pads = _geometry(_pads(a), (oy, ox), (fy, fx), stride, dilation, (iy, ix))
    if w_scales.size == 1:
        w_scales = np.repeat(w_scales, k_out)
    mult, shift = _mac_multipliers(tail, in_scale, w_scales, semantics, dense=False)
    if groups == 1:
        kind, w = "conv2d", weights
        sizes = {D.B: b, D.K: k_out, D.C: c_in, D.OY: oy, D.OX: ox, D.FY: fy, D.FX: fx, D.G: 1}
    elif groups == c_in and c_per_group == 1:
        kind, w = "depthwise", np.ascontiguousarray(weights[:, :, :, 0].transpose(1, 2, 0))
        sizes = {D.B: b, D.K: k_out // groups, D.OY: oy, D.OX: ox, D.FY: fy, D.FX: fx, D.G: groups}
    else:
        raise Unsupported(f"grouped convolution (groups={groups}, {c_in} input channels) is not supported")
    bias = tail["bias"]
    if bias is not None and bias.size != k_out:
        raise Unsupported(f"bias has {bias.size} values for {k_out} output channels")
    q = QuantParams(kind, in_zp, tail["output_zp"], tail["act_min"], tail["act_max"], weights=w, bias=bias,
                    multiplier=mult, shift=shift, input_scale=in_scale, output_scale=tail["out_scale"],
                    extra={"input_shape": in_shape, "output_shape": out_shape, "weight_scales": w_scales,
                           "relax_padding": tuple(int(v) for v in a.padding)}, semantics=semantics)
    return Layer(name, kind, sizes, stride, dilation, pads, quant=q)


def _dense(chain: _Chain, root: Any, name: str, semantics: str = "tflite") -> Layer:
    tail = _requant_tail(chain, root, semantics)
    mm = tail["acc"]
    if compat.op_name(mm) != "relax.matmul":
        raise Unsupported(f"expected relax.matmul, found {compat.op_name(mm)}")
    x, in_scale, in_zp = _dequantize_args(chain.value(mm.args[0]), "dense input")
    _require_int8(x, "dense input")
    in_shape, out_shape = _shape(x, "dense input"), _shape(mm, "dense output")
    if len(in_shape) != 2:
        raise Unsupported(f"dense input of rank {len(in_shape)}; only [batch, features] is supported")
    weights, w_scales = _weights(chain, mm.args[1], "IO")  # [K, C]
    mult, shift = _mac_multipliers(tail, in_scale, np.asarray(w_scales, np.float32), semantics, dense=True)
    k_out, c_in = weights.shape
    if in_shape[1] != c_in:
        raise Unsupported(f"dense input has {in_shape[1]} features, weights {c_in}")
    q = QuantParams("dense", in_zp, tail["output_zp"], tail["act_min"], tail["act_max"], weights=weights, bias=tail["bias"],
                    multiplier=mult, shift=shift, input_scale=in_scale, output_scale=tail["out_scale"],
                    extra={"input_shape": in_shape, "output_shape": out_shape, "weight_scales": np.array(w_scales)},
                    semantics=semantics)
    return Layer(name, "dense", {D.B: in_shape[0], D.K: k_out, D.C: c_in}, quant=q)


def _to_nhwc4(shape: tuple[int, ...], what: str) -> tuple[int, int, int, int]:
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (shape[0], 1, 1, shape[1])
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2])
    raise Unsupported(f"{what} of rank {len(shape)} is not supported")


def _add(chain: _Chain, root: Any, name: str, semantics: str = "tflite") -> Layer:
    q_expr, act_min, act_max = chain.activation(root)
    out_scale, out_zp = _output_quantization(q_expr, "add output")
    total, act_min, act_max = _float_activation(chain, chain.value(q_expr.args[0]), out_scale, out_zp, act_min, act_max, semantics)
    if compat.op_name(total) != "relax.add":
        raise Unsupported(f"expected relax.add, found {compat.op_name(total)}")
    (x1, s1, z1), (x2, s2, z2) = (_dequantize_args(chain.value(a), f"add input {i + 1}") for i, a in enumerate(total.args))
    for x in (x1, x2):
        _require_int8(x, "add input")
    shape1, shape2, out_shape = _shape(x1, "add input 1"), _shape(x2, "add input 2"), _shape(q_expr, "add output")
    if not shape1 == shape2 == out_shape:
        raise Unsupported(f"broadcasting add {shape1} + {shape2} is not supported")
    extra = {"input_shape": shape1, "input2_shape": shape2, "output_shape": out_shape, "input2_scale": s2}
    if semantics in ONNX_SEMANTICS:  # onnxruntime's float32 computation, from the scales (quant.onnx_add, qlinear_add)
        q = QuantParams("add", z1, out_zp, act_min, act_max, multiplier=np.array([0], np.int32), shift=np.array([0], np.int32),
                        input2_zp=z2, input_scale=s1, input2_scale=s2, output_scale=out_scale, extra=extra, semantics=semantics)
        try:
            onnx_add_unit(q) if semantics == "onnx" else qlinear_add_tables(q)  # the generated C's integer form must exist
        except ValueError as exc:
            raise Unsupported(str(exc)) from exc
    else:
        p = add_multipliers(s1, s2, out_scale)
        q = QuantParams("add", z1, out_zp, act_min, act_max,
                        multiplier=np.array([p["output_multiplier"]], np.int32), shift=np.array([p["output_shift"]], np.int32),
                        input2_zp=z2, input1_multiplier=p["input1_multiplier"], input1_shift=p["input1_shift"],
                        input2_multiplier=p["input2_multiplier"], input2_shift=p["input2_shift"], input_scale=s1,
                        output_scale=out_scale, extra=extra)
    b, oy, ox, g = _to_nhwc4(out_shape, "add tensor")
    return Layer(name, "add", {D.B: b, D.OY: oy, D.OX: ox, D.G: g}, quant=q)


def _pool(chain: _Chain, root: Any, name: str, semantics: str = "tflite") -> Layer:
    inner, act_min, act_max = chain.activation(root)
    if compat.op_name(inner) == "relax.astype":
        _require_int8(inner, "avg_pool output")
        pool, op = chain.value(inner.args[0]), "avg_pool"
        if compat.op_name(pool) != "relax.nn.avg_pool2d":
            raise Unsupported(f"expected relax.nn.avg_pool2d, found {compat.op_name(pool)}")
        widen = chain.value(pool.args[0])
        if compat.op_name(widen) != "relax.astype" or compat.tensor_dtype(widen) != "int32":
            raise Unsupported("avg_pool2d input is not an int8 tensor widened to int32")
        x = widen.args[0]
        if bool(pool.attrs.count_include_pad):
            raise Unsupported("avg_pool2d with count_include_pad=True (TFLite never counts padding)")
    elif compat.op_name(inner) == "relax.nn.max_pool2d":
        pool, op, x = inner, "max_pool", inner.args[0]
        _require_int8(pool, "max_pool output")
    else:
        raise Unsupported(f"expected a pooling op, found {compat.op_name(inner)}")
    _require_int8(x, f"{op} input")
    a = pool.attrs
    if str(a.layout) != "NHWC" or bool(a.ceil_mode):
        raise Unsupported(f"{op} layout {a.layout} / ceil_mode {a.ceil_mode}; only NHWC floor mode is offloaded")
    in_shape, out_shape = _shape(x, f"{op} input"), _shape(pool, f"{op} output")
    b, iy, ix, g = in_shape
    _, oy, ox, _ = out_shape
    fy, fx = (int(v) for v in a.pool_size)
    stride, dilation = tuple(int(v) for v in a.strides), tuple(int(v) for v in a.dilation)
    if dilation != (1, 1):
        raise Unsupported(f"{op} with dilation {dilation}")
    pads = _geometry(_pads(a), (oy, ox), (fy, fx), stride, dilation, (iy, ix))
    q = QuantParams(op, 0, 0, act_min, act_max, extra={"input_shape": in_shape, "output_shape": out_shape,
                                                        "relax_padding": tuple(int(v) for v in a.padding)})
    return Layer(name, "pool", {D.B: b, D.OY: oy, D.OX: ox, D.FY: fy, D.FX: fx, D.G: g}, stride, dilation, pads, quant=q)


_EXTRACTORS: dict[str, Callable[..., Layer]] = {
    "conv2d": _conv, "depthwise": _conv, "dense": _dense, "add": _add, "avg_pool": _pool, "max_pool": _pool,
}


def extract_layer(pattern: str, root: Any, bindings: Mapping[Any, Any], name: str = "layer", semantics: str = "tflite") -> Layer:
    """The ``Layer`` (with ``QuantParams``) of a chain matched by pattern ``pattern`` ending in ``root``.

    ``bindings`` maps the chain's bound Vars to their values; ``semantics`` (``"tflite"`` or
    ``"onnx"``) whose integer semantics the layer follows. Raises ``Unsupported`` when the chain
    cannot be run bit-exactly by the offloaded kernels (the reason is in the message).
    """
    try:
        layer = _EXTRACTORS[pattern](_Chain(bindings), root, name, semantics)
    except LayerError as exc:
        raise Unsupported(str(exc)) from exc
    if PATTERN_KINDS[pattern] != layer.kind:
        raise KindMismatch(f"a {layer.kind} layer, not {pattern}")
    return layer


def extract_from_function(func: Any, name: str = "layer", semantics: str = "tflite") -> Layer:
    """The ``Layer`` of a composite function made by ``FuseOpsByPattern`` (attribute ``Composite``)."""
    composite = compat.function_attr(func, "Composite")
    if composite is None:
        raise Unsupported("not a composite function")
    pattern = composite.split(".", 1)[1]
    bindings = {b.var: b.value for block in func.body.blocks for b in block.bindings}
    return extract_layer(pattern, func.body.body, bindings, name, semantics)


def layer_key(layer: Layer) -> str:
    """A digest of a layer's geometry and integer semantics (names excluded): equal keys compute the same."""
    q: QuantParams = layer.quant
    h = hashlib.sha1(repr((layer.kind, tuple(layer.sizes.values()), layer.stride, layer.dilation, layer.padding)).encode())
    for name in ("op", "semantics", "input_zp", "output_zp", "act_min", "act_max", "input2_zp", "input1_multiplier",
                 "input1_shift", "input2_multiplier", "input2_shift", "left_shift", "input_scale", "input2_scale", "output_scale"):
        h.update(repr(getattr(q, name)).encode())
    for name in ("weights", "bias", "multiplier", "shift"):
        value = getattr(q, name)
        h.update(b"-" if value is None else np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def crop_input(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The part of an NHWC input tensor ``layer`` reads: rows/cols past the last window are dropped.

    A 1x1 stride-2 conv on 32x32 reads 31x31 pixels; ``Layer.input_size`` counts only those, and the
    kernels and ``quant.reference_layer`` take the cropped tensor.
    """
    if x.ndim != 4 or layer.kind == "dense":
        return x
    iy, ix = layer.input_size
    return np.ascontiguousarray(x[:, :iy, :ix, :])


# --------------------------------------------------------------------------- pattern tables


def offload_reason(layer: Layer, soc: SoC) -> Optional[str]:
    """None if some non-host module of ``soc`` accepts ``layer`` (possibly unpadded, after the host pads
    its input: ``mapper.acceptance.padding_split``), else every module's reason."""
    reasons = {}
    for module in soc.accelerators:
        reason = rejection_reason(layer, module)
        if reason is None or padding_split(layer, module) is not None:  # the host can pad it first
            return None
        reasons[module.name] = reason
    return "; ".join(f"{m}: {r}" for m, r in reasons.items()) or f"{soc.name} has no accelerator"


def _make_check(pattern: str, accept: Optional[Callable[[Layer], bool]], semantics: str) -> Callable[[Any], bool]:
    def check(ctx: Any) -> bool:
        root = ctx.annotated_expr["root"]
        try:
            layer = extract_layer(pattern, root, ctx.matched_bindings, semantics=semantics)
        except KindMismatch:
            return False
        except Unsupported as exc:
            log.info("%s chain at %s stays on the host: %s", pattern, compat.var_name(ctx.value_to_bound_var[root]), exc)
            return False
        return accept(layer) if accept is not None else True
    return check


def layer_patterns(kinds: Optional[set[str]] = None, accept: Optional[Callable[[Layer], bool]] = None,
                   semantics: str = "tflite") -> list:
    """``FusionPattern``s (named ``match.<pattern>``) for the layer kinds in ``kinds`` (default all).

    A match is fused only if ``extract_layer`` (with ``semantics``) succeeds and ``accept(layer)``
    (when given) is true.
    """
    patterns = []
    for pattern, dpl in relax_patterns().items():
        if kinds is not None and PATTERN_KINDS[pattern] not in kinds:
            continue
        patterns.append(relax.transform.FusionPattern(f"{CODEGEN}.{pattern}", dpl, {"root": dpl}, _make_check(pattern, accept, semantics)))
    return patterns


def soc_patterns(soc: SoC, accept: Optional[Callable[[Layer], bool]] = None, semantics: str = "tflite") -> list:
    """Pattern table generated from ``soc``: kinds some non-host module lists, each check requiring
    that some non-host module accepts the concrete layer (then ``accept``, if given)."""
    kinds = {rule.kind for module in soc.accelerators for rule in module.accepts}

    def offloadable(layer: Layer) -> bool:
        reason = offload_reason(layer, soc)
        if reason is not None:
            log.info("%s layer %s stays on the %s host: %s", layer.kind, _describe(layer), soc.name, reason)
            return False
        return accept(layer) if accept is not None else True

    return layer_patterns(kinds, offloadable, semantics)


def _describe(layer: Layer) -> str:
    s = layer.sizes
    return f"(K={s[D.K]} C={s[D.C]} G={s[D.G]} {s[D.OY]}x{s[D.OX]} kernel {s[D.FY]}x{s[D.FX]} stride {layer.stride} pad {layer.padding})"
