"""TFLite's int8 semantics of element-wise and data-movement ops, in numpy (no TVM).

An int8 -> int8 element-wise op is a function of 256 input values, so each is given here as a
256-entry lookup table indexed by ``x + 128``, computed the way LiteRT's reference kernels compute
it (``tensorflow/lite/kernels/activations.cc``):

- ``LOGISTIC`` / ``TANH``: LiteRT's own lookup table: dequantize in float32, apply the function,
  ``round(y / output_scale)`` (half away from zero) + output zero point, clamp;
- ``LEAKY_RELU``: ``(x - zp_in)`` rescaled by ``MultiplyByQuantizedMultiplier`` with the identity
  multiplier (``in_scale / out_scale``) for ``x >= zp_in``, else the alpha multiplier
  (``in_scale * alpha / out_scale``, float32 products), + output zero point, clamp;
- ``HARD_SWISH``: TFLite's int16 fixed-point formulation (``hard_swish_lut``).

``softmax_tables`` gives int8 ``SOFTMAX``'s gemmlowp fixed-point exponentials per difference from the
row maximum (the reciprocal of their sum is computed per row in integer Relax by ``tflite_convert``).

``mean_multiplier`` / ``mul_multiplier`` / ``activation_range`` give the fixed-point parameters of
int8 ``MEAN`` and ``MUL`` (``tflite_convert`` emits them as integer Relax). ``nearest_indices``
gives ``RESIZE_NEAREST_NEIGHBOR``'s source index per output row/column.
"""

from __future__ import annotations

import numpy as np

from tvm_bridge.quant import multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot
from tvm_bridge.quant import saturating_rounding_doubling_high_mul as srdhm

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


def _clamp8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


def _float_lut(fn, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    x = np.float32(in_scale) * (INT8_VALUES - in_zp).astype(np.float32)
    y = fn(x.astype(np.float64)).astype(np.float32)  # float64 then float32: the correctly rounded float32 value
    inverse = np.float32(1.0) / np.float32(out_scale)
    scaled = (y * inverse).astype(np.float32)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))  # std::round: half away from zero
    return _clamp8(rounded.astype(np.int64) + out_zp)


def logistic_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 LOGISTIC as a 256-entry table (index ``x + 128``)."""
    def fn(v):
        e = np.exp(-v.astype(np.float32).astype(np.float64)).astype(np.float32)
        return (np.float32(1.0) / (np.float32(1.0) + e)).astype(np.float64)
    return _float_lut(fn, in_scale, in_zp, out_scale, out_zp)


def tanh_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 TANH as a 256-entry table (index ``x + 128``)."""
    return _float_lut(np.tanh, in_scale, in_zp, out_scale, out_zp)


def leaky_relu_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int, alpha: float) -> np.ndarray:
    """int8 LEAKY_RELU as a 256-entry table (index ``x + 128``)."""
    f32 = np.float32
    identity = quantize_multiplier(float(f32(in_scale) / f32(out_scale)))
    negative = quantize_multiplier(float(f32(f32(in_scale) * f32(alpha)) / f32(out_scale)))
    x = INT8_VALUES - in_zp
    pos = multiply_by_quantized_multiplier(x, np.int64(identity[0]), np.int64(identity[1]))
    neg = multiply_by_quantized_multiplier(x, np.int64(negative[0]), np.int64(negative[1]))
    return _clamp8(np.where(x >= 0, pos, neg) + out_zp)


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """(multiplier, shift) of int8 MEAN over ``count`` elements: TFLite's ``in_scale / out_scale``
    multiplier with ``1 / count`` folded in (``reference_ops::QuantizedMeanOrSum``)."""
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    fold = min(int(count).bit_length() - 1, 32, 31 + shift)
    return int((multiplier << fold) // count), shift - fold


def mul_multiplier(scale1: float, scale2: float, output_scale: float) -> tuple[int, int]:
    """(multiplier, shift) of int8 MUL: ``in1_scale * in2_scale / out_scale`` (float32 arithmetic)."""
    f32 = np.float32
    return quantize_multiplier(float(f32(f32(scale1) * f32(scale2)) / f32(output_scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """int8 clamp of a fused activation (``NONE``, ``RELU``, ``RELU6``, ``RELU_N1_TO_1``)."""
    def q(v: float) -> int:
        return zero_point + int(np.sign(v / scale) * np.floor(abs(np.float32(v) / np.float32(scale)) + 0.5))
    low, high = -128, 127
    if activation == "RELU":
        low = max(low, zero_point)
    elif activation == "RELU6":
        low, high = max(low, zero_point), min(high, q(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, q(-1.0)), min(high, q(1.0))
    elif activation != "NONE":
        raise ValueError(f"fused activation {activation!r} (allowed: NONE, RELU, RELU6, RELU_N1_TO_1)")
    return low, high


def _int16_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier`` then ``DownScaleInt32ToInt16Multiplier``: (int16 multiplier, exponent)."""
    multiplier, exponent = quantize_multiplier(real)
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int16 values."""
    ab = np.asarray(a, np.int64) * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    total = ab + nudge
    out = np.where(total < 0, -((-total) >> 15), total >> 15)  # C division by 2**15 truncates toward zero
    return np.where((np.asarray(a) == -(1 << 15)) & (b == -(1 << 15)), (1 << 15) - 1, out)


def _saturate16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -(1 << 15), (1 << 15) - 1)


def hard_swish_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """int8 HARD_SWISH as a 256-entry table (index ``x + 128``): TFLite's int16 fixed-point kernel
    (``reference_ops::HardSwish``): input on a 2**7 finer scale, a "relu-ish" factor in [0, 1] from
    the input rescaled so that 3.0 maps to 2**15, a truncating doubling high multiply, a rounding shift."""
    f32 = np.float32
    hires = f32(f32(1.0 / 128.0) * f32(in_scale))
    out_mult, out_exp = _int16_multiplier(float(f32(hires / f32(out_scale))))
    relu_mult, relu_exp = _int16_multiplier(float(f32(hires / f32(3.0 / 32768.0))))
    if out_exp > 0:
        raise ValueError(f"HARD_SWISH output multiplier exponent {out_exp} > 0 (TFLite rejects it too)")
    x = (INT8_VALUES - in_zp) * (1 << 7)
    preshift = _srdhm16(x, out_mult)
    relu = x
    if relu_exp > 0:
        relu = _saturate16(relu * (1 << (relu_exp - 1)))
    relu = _srdhm16(relu, relu_mult)
    if relu_exp > 0:
        relu = _saturate16(relu * 2)
    if relu_exp < 0:
        relu = rounding_divide_by_pot(relu, np.int64(-relu_exp))
    relu = (relu + (1 << 15)) >> 1
    product = relu * preshift  # SaturatingDoublingHighMul: truncating, no rounding nudge
    high = np.where(product < 0, -((-product) >> 15), product >> 15)
    high = np.where((relu == -(1 << 15)) & (preshift == -(1 << 15)), (1 << 15) - 1, high)
    out = rounding_divide_by_pot(high, np.int64(-out_exp)) + out_zp
    return _clamp8(out)


_I32_MAX = (1 << 31) - 1


def _sat32(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -(1 << 31), _I32_MAX)


def _exp_on_interval(a: np.ndarray) -> np.ndarray:
    """gemmlowp ``exp_on_interval_between_negative_one_quarter_and_0_excl`` (Q0.31 raw values)."""
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    inner = rounding_divide_by_pot(srdhm(rounding_divide_by_pot(x4, np.int64(2)) + x3, 715827883) + x2, np.int64(1))
    return 1895147668 + srdhm(1895147668, x + inner)


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values`` of Q5.26 raw values <= 0; Q0.31 raw results."""
    a = np.asarray(a, np.int64)
    quarter = 1 << 24
    shifted = (a & (quarter - 1)) - quarter
    result = _exp_on_interval(_sat32(shifted * 32))
    remainder = shifted - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                                 (3, 720401), (4, 242)):
        result = np.where((remainder & (1 << (26 + exponent))) != 0, srdhm(result, multiplier), result)
    return np.where(a == 0, _I32_MAX, result)


def softmax_tables(beta: float, input_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 SOFTMAX's per-difference values, indexed by ``x - row max + 255`` (TFLite's
    ``reference_ops::Softmax``): the Q0.31 exponential, its Q12 rescale summed over the row, and
    whether the difference is above ``diff_min`` (else the output is -128).

    Raises ValueError when the input scale is so small that TFLite's ``PreprocessSoftmaxScaling``
    would need a right shift (LiteRT aborts on such a model)."""
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << 26), (1 << 31) - 1.0)
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"softmax beta * input scale = {real / (1 << 26):.3g} is too small (TFLite needs a left shift)")
    diff_min = -int(np.floor(1.0 * ((1 << 5) - 1) * (1 << 26) / (1 << shift)))
    diffs = np.arange(-255, 1, dtype=np.int64)
    ok = diffs >= diff_min
    exps = exp_on_negative_values(np.where(ok, srdhm(diffs * (1 << shift), multiplier), 0))
    return np.where(ok, exps, 0), np.where(ok, rounding_divide_by_pot(exps, np.int64(12)), 0), ok


def apply_lut(lut: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Look up int8 ``x`` in a 256-entry table."""
    return lut[np.asarray(x, np.int64) + 128]


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """Source index of each output position of TFLite's RESIZE_NEAREST_NEIGHBOR (float32 arithmetic)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    pos = (np.arange(out_size, dtype=np.float32) + offset) * scale
    if align_corners:
        index = (np.sign(pos) * np.floor(np.abs(pos) + f32(0.5))).astype(np.int64)
    else:
        index = np.floor(pos).astype(np.int64)
    index = np.minimum(index, in_size - 1)
    return np.maximum(index, 0) if half_pixel_centers else index
