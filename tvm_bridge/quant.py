"""Integer semantics of int8 layers, exactly as TFLite's int8 reference kernels compute them.

Pure numpy (no TVM import): ``QuantParams`` is what the importer attaches to ``Layer.quant``, what
the C code generator bakes into the generated kernels, and what ``reference_layer`` (the numpy
golden model used by the tests) executes.

Conventions (all activations NHWC int8, batch first):

- conv2d:    input [B, IY, IX, C], weights int8 [K, FY, FX, C] (TFLite OHWI), output [B, OY, OX, K]
- depthwise: input [B, IY, IX, G], weights int8 [FY, FX, G*M] (TFLite 1HWO without the 1; output
  channel ``g*M + m`` reads input channel ``g``; ``M = layer.sizes[K]`` is the channel multiplier),
  output [B, OY, OX, G*M]
- dense:     input [B, C], weights int8 [K, C], output [B, K]
- add:       inputs [B, OY, OX, G] twice, output the same shape
- avg_pool / max_pool: input [B, IY, IX, G], output [B, OY, OX, G]; the window is clipped to the
  valid input (padding never counted), as TFLite does.

Requantization is TFLite's ``MultiplyByQuantizedMultiplier``: the int32 value is multiplied by a Q31
``multiplier`` with a power-of-two ``shift`` (positive = left shift). conv2d, depthwise and add use
the double-rounding (gemmlowp) form; dense (FULLY_CONNECTED) uses the single-rounding form
``(x * multiplier + 2**(30 - shift)) >> (31 - shift)`` (``SINGLE_ROUNDING_OPS``): that is what
LiteRT's reference kernels compute (ai-edge-litert 2.3, BUILTIN_REF; measured: double rounding is off
by 1 LSB on ~0.1 % of the MLPerf Tiny FC outputs, single rounding matches all 33,440 AD outputs over
20 random inputs, while conv/depthwise match only with double rounding).

Layers of ONNX QDQ models (``QuantParams.semantics == "onnx"``) follow ONNX instead: onnxruntime
runs ``DequantizeLinear -> float op -> QuantizeLinear``, i.e. rounds the real value
``scale_in * scale_w * acc / scale_out`` half to even (``std::nearbyint``) and saturates. The
kernels compute that real value in fixed point: ``(acc + bias) * multiplier / 2**(31 - shift)``
with the multiplier of ``onnx_multipliers`` (31 significant bits of the exact double-precision
ratio of the float32 scales) and one rounding, ties to even (``rounding_shift_half_even``). An add
is ``((x1 - zp1) * m1 + (x2 - zp2) * m2) / 2**s``, ties to even (``onnx_add_multipliers``). With
power-of-two scales every step is exact, as is onnxruntime's float math on small values; with other
scales the fixed-point value differs from onnxruntime's float32 sum by float rounding only, which
changes the result where the real value is within ~1e-6 of a tie (see tests/test_bridge_onnx.py).
An add has no summation order to guess: it is computed exactly as onnxruntime does, in float32
(``onnx_add``: each input dequantized through a 256-entry float32 table, one float32 add, one
float32 division by the output scale, round half to even), which matters for decimal scales
(0.08, 0.05, 0.1) whose real sums often lie on a tie. The host runs that float32 arithmetic; the
generated C, which must not need a float unit, the integer form ``onnx_add_tables`` (exact integer
sum, then a search among the sums where onnxruntime's result steps up).

Layers of QOperator models (``QLinearConv``, ``QGemm``, ``QLinearMatMul``, ``QLinearAdd``; semantics
``"onnx_qlinear"``, or ``"onnx_qlinear_uint8"`` when their tensors were uint8) follow onnxruntime's
integer kernels instead (``tvm_bridge.quant_qlinear``): MAC layers requantize
``float32(acc + bias) * float32 scale`` with float32 roundings (``multiplier``/``shift`` hold the
float32 scale's 24-bit mantissa and binary exponent, ``rounding == "float32"``), an add follows the
AVX2 kernel's two FMAs (``qlinear_add``). Both are emulated with integers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from archs.dims import LoopDim as D
from tvm_bridge import quant_qlinear
from tvm_bridge.quant_qlinear import (  # noqa: F401 - re-exported
    qlinear_requantize,
    qlinear_scales,
    rounding_shift_half_even,
)

OPS = ("conv2d", "depthwise", "dense", "add", "avg_pool", "max_pool")
QLINEAR_SEMANTICS = ("onnx_qlinear", "onnx_qlinear_uint8")  # onnxruntime's QLinear kernels (int8 / uint8 tensors)
ONNX_SEMANTICS = ("onnx",) + QLINEAR_SEMANTICS
SEMANTICS = ("tflite",) + ONNX_SEMANTICS  # whose integer semantics a layer follows (QuantParams.semantics)
MAC_OPS = ("conv2d", "depthwise", "dense")
ADD_LEFT_SHIFT = 20  # TFLite int8 ADD: inputs are scaled by 2**20 before rescaling
SINGLE_ROUNDING_OPS = ("dense",)  # requantized with multiply_by_quantized_multiplier_single_rounding


# --------------------------------------------------------------------------- multipliers


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``real ~= multiplier * 2**shift / 2**31``, multiplier in [2**30, 2**31).

    Returns (multiplier, shift), both Python ints; ``real == 0`` (or tiny) gives (0, 0).
    """
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = math.floor(abs(fraction) * (1 << 31) + 0.5) * (1 if fraction >= 0 else -1)  # std::round: half away from 0
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(q), int(shift)


def conv_multipliers(input_scale: float, weight_scales: np.ndarray, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) of a conv/depthwise layer (TFLite ``PopulateConvolutionQuantizationParams``).

    ``effective = input_scale * weight_scale[c] / output_scale`` in double precision, scales given as
    float32 values. Returns two int32 arrays of the length of ``weight_scales``.
    """
    scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32)).astype(np.float64)
    pairs = [quantize_multiplier(float(np.float32(input_scale)) * float(s) / float(np.float32(output_scale))) for s in scales]
    return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32)


def dense_multiplier(input_scale: float, weight_scale: float, output_scale: float) -> tuple[int, int]:
    """(multiplier, shift) of a per-tensor FULLY_CONNECTED layer (TFLite ``GetQuantizedConvolutionMultipler``).

    Unlike conv, TFLite multiplies ``input_scale * weight_scale`` in float32 before dividing in double.
    """
    product = float(np.float32(input_scale) * np.float32(weight_scale))
    return quantize_multiplier(product / float(np.float32(output_scale)))


def add_multipliers(scale1: float, scale2: float, output_scale: float) -> dict[str, int]:
    """TFLite int8 ADD parameters: input1/input2/output (multiplier, shift) with left_shift 20."""
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, output_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * so))
    return {"input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2, "input2_shift": sh2,
            "output_multiplier": mo, "output_shift": sho}


def onnx_multipliers(input_scale: float, weight_scales: np.ndarray, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) of an ONNX QDQ conv/dense layer: ``input_scale * weight_scale[c] /
    output_scale`` of the float32 scales in double precision, as ``multiplier * 2**shift / 2**31``
    (``quantize_multiplier``), for ``rounding_shift_half_even(x * multiplier, 31 - shift)``."""
    f32 = np.float32
    scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    pairs = [quantize_multiplier(float(f32(input_scale)) * float(s) / float(f32(output_scale))) for s in scales]
    return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32)


def onnx_dequantize_lut(scale: float, zero_point: int) -> np.ndarray:
    """float32 value of each int8 ``x`` (index ``x + 128``) as onnxruntime's DequantizeLinear computes it."""
    return (np.arange(-128, 128).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def _onnx_quantize(total: np.ndarray, q: "QuantParams") -> np.ndarray:
    """onnxruntime's QuantizeLinear of float32 values: divide by the scale, round half to even, + zero point, clamp."""
    scaled = (np.asarray(total, np.float32) / np.float32(q.output_scale)).astype(np.float32)
    return _clamp_int8(np.rint(np.clip(scaled, -(2.0 ** 30), 2.0 ** 30)).astype(np.int64) + q.output_zp, q)


def onnx_add(x1: np.ndarray, x2: np.ndarray, q: "QuantParams") -> np.ndarray:
    """int8 ONNX QDQ add as onnxruntime computes it: float32 dequantize, add, divide, round half to even."""
    total = (onnx_dequantize_lut(q.input_scale, q.input_zp)[np.asarray(x1, np.int64) + 128]
             + onnx_dequantize_lut(q.input2_scale, q.input2_zp)[np.asarray(x2, np.int64) + 128])
    return _onnx_quantize(total, q)


def onnx_add_unit(q: "QuantParams") -> tuple[int, list[np.ndarray]]:
    """(e, [t1, t2]): both inputs' float32 dequantized values as int64 multiples of ``2**e``, the
    smallest ulp among them. Raises ValueError if their sums do not fit 53 bits (scale ratio > ~2**20)."""
    values = [onnx_dequantize_lut(q.input_scale, q.input_zp), onnx_dequantize_lut(q.input2_scale, q.input2_zp)]
    nonzero = np.concatenate([v[v != 0] for v in values]).astype(np.float64)
    unit = min(math.frexp(float(v))[1] for v in nonzero) - 24 if nonzero.size else 0
    tables = [np.array([int(math.ldexp(float(v), -unit)) for v in t], np.int64) for t in values]
    if max(int(np.abs(t).max()) for t in tables) >= 1 << 52:
        raise ValueError(f"ONNX add input scales {q.input_scale:.3g} and {q.input2_scale:.3g} are too far apart for integer sums")
    return unit, tables


def onnx_add_tables(q: "QuantParams") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer-only form of ``onnx_add`` (for kernels without a float unit): (t1, t2, thresholds).

    Both inputs' float32 dequantized values are integers in a common unit ``2**e`` (the smallest
    ulp among them): ``t1[x1 + 128] + t2[x2 + 128]`` is the exact real sum in that unit. The float32
    sum, division and rounding are monotone in the exact sum, so the output is ``act_min`` plus the
    number of ``thresholds`` (int64, non-decreasing, ``act_max - act_min`` of them) at or below it;
    threshold ``v`` is the smallest exact sum that onnxruntime's float32 arithmetic maps to
    ``act_min + 1 + v`` or above. Raises ValueError if the sums do not fit 53 bits (scale ratio > ~2**20).
    """
    unit, tables = onnx_add_unit(q)
    low, high = int(tables[0].min() + tables[1].min()), int(tables[0].max() + tables[1].max())

    def output(total: np.ndarray) -> np.ndarray:  # onnxruntime's result for exact sums (units 2**unit)
        return _onnx_quantize(np.ldexp(total.astype(np.float64), unit).astype(np.float32), q).astype(np.int64)

    levels = np.arange(q.act_min + 1, q.act_max + 1, dtype=np.int64)
    lo, hi = np.full(levels.size, low, np.int64), np.full(levels.size, high + 1, np.int64)
    while np.any(lo < hi):  # smallest sum reaching each level (high + 1: never)
        mid = lo + (hi - lo) // 2
        reached = output(np.minimum(mid, high)) >= levels
        hi, lo = np.where(reached & (lo < hi), mid, hi), np.where(~reached & (lo < hi), mid + 1, lo)
    return tables[0], tables[1], lo


def qlinear_offset(q: "QuantParams") -> int:
    """128 for layers of models whose QLinear tensors were uint8 (stored as int8 ``x - 128``), else 0."""
    return 128 if q.semantics == "onnx_qlinear_uint8" else 0


def qlinear_add_tables(q: "QuantParams") -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(unit, t1, t2, thresholds) of an ONNX QLinearAdd layer (``quant_qlinear.qlinear_add_tables``);
    ValueError if the exact sums need more than 53 bits."""
    return quant_qlinear.qlinear_add_tables(q.input_scale, q.input_zp, q.input2_scale, q.input2_zp, q.output_scale,
                                            q.output_zp, q.act_min, q.act_max, qlinear_offset(q))


def qlinear_add(x1: np.ndarray, x2: np.ndarray, q: "QuantParams") -> np.ndarray:
    """int8 QLinearAdd as onnxruntime's AVX2 kernel computes it (``quant_qlinear``), through the integer tables."""
    unit, t1, t2, _ = qlinear_add_tables(q)
    return _clamp_int8(quant_qlinear.qlinear_add_values(x1, x2, unit, t1, t2, q.act_min, q.act_max, qlinear_offset(q)), q)


# --------------------------------------------------------------------------- fixed-point arithmetic


def _trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C integer division (truncates toward zero) of an int64 array by a positive int."""
    q = np.abs(x) // d
    return np.where(x < 0, -q, q)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int64 arrays holding int32 values."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    out = _trunc_div(ab + nudge, 1 << 31)
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return np.where(overflow, np.int64((1 << 31) - 1), out)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: x / 2**exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (int32 semantics on int64 arrays; broadcasting)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.asarray(x, np.int64) * (np.int64(1) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_single_rounding(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` with ``TFLITE_SINGLE_ROUNDING``: one round half up.

    ``(x * multiplier + 2**(30 - shift)) >> (31 - shift)`` in int64 (shift in -31..30).
    """
    total = 31 - np.asarray(shift, np.int64)
    product = np.asarray(x, np.int64) * np.asarray(multiplier, np.int64)
    return (product + (np.int64(1) << (total - 1))) >> total


def multiply_half_even(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """ONNX requantization: ``x * multiplier / 2**(31 - shift)``, one rounding, ties to even."""
    product = np.asarray(x, np.int64) * np.asarray(multiplier, np.int64)
    return rounding_shift_half_even(product, 31 - np.asarray(shift, np.int64))


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Integer semantics of one int8 layer (attached to ``Layer.quant``).

    ``multiplier``/``shift`` are int32 arrays with one entry per output channel (a per-tensor layer
    repeats its single value). ``act_min``/``act_max`` is the output clamp after the zero point
    (fused ReLU/ReLU6/clip folded in). Scales are kept for reporting only; the integer fields are
    what every kernel uses. ``semantics``: ``"tflite"`` (TFLite's fixed-point rounding) or
    ``"onnx"`` (MAC layers: one rounding, ties to even; an add: onnxruntime's float32 computation
    from ``input_scale``, ``input2_scale``, ``output_scale``, ``onnx_add``); ``rounding`` names the
    form per layer.
    """

    op: str
    input_zp: int
    output_zp: int
    act_min: int = -128
    act_max: int = 127
    weights: Optional[np.ndarray] = None  # int8, layout per op (module docstring)
    bias: Optional[np.ndarray] = None  # int32 [output channels]
    multiplier: Optional[np.ndarray] = None  # int32 [output channels]
    shift: Optional[np.ndarray] = None  # int32 [output channels]
    # ADD only: second input and the three TFLite rescalings (output uses multiplier[0]/shift[0]).
    input2_zp: int = 0
    input1_multiplier: int = 0
    input1_shift: int = 0
    input2_multiplier: int = 0
    input2_shift: int = 0
    left_shift: int = ADD_LEFT_SHIFT
    input_scale: float = 0.0
    output_scale: float = 0.0
    extra: dict = field(default_factory=dict)  # free-form provenance (source op names, scales of input 2, ...)
    semantics: str = "tflite"
    input2_scale: float = 0.0  # ONNX add: the second input's scale (the float32 computation uses the scales)

    @property
    def rounding(self) -> str:
        """Requantization form: ``"double"`` (TFLite conv, depthwise, add), ``"single"`` (TFLite dense),
        ``"half_even"`` (ONNX: one rounding, ties to even), ``"float32"`` (onnxruntime's QLinear kernels:
        ``qlinear_requantize``, ``qlinear_add``)."""
        if self.semantics == "onnx":
            return "half_even"
        if self.semantics in QLINEAR_SEMANTICS:
            return "float32"
        return "single" if self.op in SINGLE_ROUNDING_OPS else "double"

    def __post_init__(self) -> None:
        if self.semantics not in SEMANTICS:
            raise ValueError(f"QuantParams.semantics: unknown {self.semantics!r}; allowed: {', '.join(SEMANTICS)}")
        if self.op not in OPS:
            raise ValueError(f"QuantParams.op: unknown op {self.op!r}; allowed: {', '.join(OPS)}")
        if self.op in MAC_OPS:
            for name in ("weights", "multiplier", "shift"):
                if getattr(self, name) is None:
                    raise ValueError(f"QuantParams.{name}: required for a {self.op} layer")
        if self.op == "add" and (self.multiplier is None or self.shift is None):
            raise ValueError("QuantParams.multiplier/shift: required for an add layer (output rescale)")
        if not -128 <= self.act_min <= self.act_max <= 127:
            raise ValueError(f"QuantParams.act_min/act_max: need -128 <= min <= max <= 127, got {self.act_min}, {self.act_max}")


# --------------------------------------------------------------------------- numpy reference


def _clamp_int8(acc: np.ndarray, q: QuantParams) -> np.ndarray:
    return np.clip(acc, q.act_min, q.act_max).astype(np.int8)


def _padded(layer, x: np.ndarray, fill: int) -> np.ndarray:
    top, bottom, left, right = layer.padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)


def _windows(layer, xp: np.ndarray):
    """Yield (fy, fx, view [B, OY, OX, ch]) of the padded input for each kernel offset."""
    s = layer.sizes
    sy, sx = layer.stride
    dy, dx = layer.dilation
    oy, ox = s[D.OY], s[D.OX]
    for fy in range(s[D.FY]):
        for fx in range(s[D.FX]):
            y0, x0 = fy * dy, fx * dx
            yield fy, fx, xp[:, y0:y0 + (oy - 1) * sy + 1:sy, x0:x0 + (ox - 1) * sx + 1:sx, :]


def _check_shape(layer, what: str, x: np.ndarray, shape: tuple) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"layer {layer.name!r}: {what} has shape {tuple(x.shape)}, expected {tuple(shape)}")


def reference_layer(layer, x: np.ndarray, x2: Optional[np.ndarray] = None) -> np.ndarray:
    """Run ``layer`` (a ``mapper.Layer`` with ``quant`` set) on int8 input(s) in numpy; returns int8.

    Bit-exact model of TFLite's int8 reference kernels (conv, depthwise, fully connected, add,
    average/max pool), shapes as in the module docstring.
    """
    q: QuantParams = layer.quant
    if not isinstance(q, QuantParams):
        raise ValueError(f"layer {layer.name!r}: no QuantParams attached (layer.quant is {type(q).__name__})")
    s = layer.sizes
    b = s[D.B]
    x = np.asarray(x)
    if q.op == "dense":
        _check_shape(layer, "input", x, (b, s[D.C]))
        acc = (x.astype(np.int64) - q.input_zp) @ q.weights.astype(np.int64).T
        return _requant(acc, q)
    iy, ix = layer.input_size
    if q.op == "add":
        shape = (b, s[D.OY], s[D.OX], s[D.G])
        _check_shape(layer, "input 1", x, shape)
        _check_shape(layer, "input 2", np.asarray(x2), shape)
        if q.semantics == "onnx":
            return onnx_add(x, x2, q)
        if q.semantics in QLINEAR_SEMANTICS:
            return qlinear_add(x, x2, q)
        a1 = (x.astype(np.int64) - q.input_zp) * (1 << q.left_shift)
        a2 = (np.asarray(x2).astype(np.int64) - q.input2_zp) * (1 << q.left_shift)
        r1 = multiply_by_quantized_multiplier(a1, q.input1_multiplier, q.input1_shift)
        r2 = multiply_by_quantized_multiplier(a2, q.input2_multiplier, q.input2_shift)
        out = multiply_by_quantized_multiplier(r1 + r2, int(q.multiplier[0]), int(q.shift[0])) + q.output_zp
        return _clamp_int8(out, q)
    if q.op in ("avg_pool", "max_pool"):
        _check_shape(layer, "input", x, (b, iy, ix, s[D.G]))
        valid = np.ones((1, iy, ix, 1), np.int64)
        vp = _padded(layer, valid, 0)
        if q.op == "max_pool":
            xp = _padded(layer, x.astype(np.int64), -(1 << 20))
            acc = np.max(np.stack([w for _, _, w in _windows(layer, xp)]), axis=0)
            return _clamp_int8(acc, q)
        xp = _padded(layer, x.astype(np.int64), 0)
        total = sum(w for _, _, w in _windows(layer, xp))
        count = sum(w for _, _, w in _windows(layer, vp))
        half = count // 2
        acc = np.where(total > 0, (total + half) // count, -((half - total) // count))  # C division truncates
        return _clamp_int8(acc, q)
    if q.op == "conv2d":
        _check_shape(layer, "input", x, (b, iy, ix, s[D.C]))
        w = q.weights.astype(np.int64)  # [K, FY, FX, C]
        xp = _padded(layer, x.astype(np.int64) - q.input_zp, 0)
        acc = sum(np.einsum("byxc,kc->byxk", win, w[:, fy, fx, :]) for fy, fx, win in _windows(layer, xp))
        return _requant(acc, q)
    if q.op == "depthwise":
        g, m = s[D.G], s[D.K]
        _check_shape(layer, "input", x, (b, iy, ix, g))
        w = q.weights.astype(np.int64)  # [FY, FX, G*M]
        xp = _padded(layer, x.astype(np.int64) - q.input_zp, 0)
        xp = np.repeat(xp, m, axis=3)  # channel g*M + m reads input channel g
        acc = sum(win * w[fy, fx, :] for fy, fx, win in _windows(layer, xp))
        return _requant(acc, q)
    raise ValueError(f"layer {layer.name!r}: QuantParams.op {q.op!r} has no reference")


def _requant(acc: np.ndarray, q: QuantParams) -> np.ndarray:
    """bias add, per-channel requantization (last axis), output zero point, clamp."""
    if q.bias is not None:
        acc = acc + q.bias.astype(np.int64)
    rescale = {"double": multiply_by_quantized_multiplier, "single": multiply_by_quantized_multiplier_single_rounding,
               "half_even": multiply_half_even, "float32": qlinear_requantize}[q.rounding]
    out = rescale(acc, q.multiplier.astype(np.int64), q.shift.astype(np.int64))
    return _clamp_int8(out + q.output_zp, q)
