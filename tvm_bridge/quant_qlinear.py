"""onnxruntime's QLinear integer kernels (QOperator models), exactly, in integers (pure numpy, no TVM).

Read from onnxruntime's MLAS sources (1.2x-1.3x, x86-64 with AVX2) and checked against
onnxruntime 1.32 on every output (tests/test_bridge_onnx_qoperator.py):

- ``QLinearConv`` / ``QGemm`` / ``QLinearMatMul``: the int32 accumulator plus the int32 bias is
  converted to float32 (round to nearest even), multiplied by the float32 output scale
  ``float32(float32(x_scale * w_scale[k]) / y_scale)`` (one float32 rounding), rounded to the nearest
  integer, ties to even (``cvtps2dq``), plus the output zero point, saturated
  (``MlasRequantizeOutput``). ``qlinear_scales`` gives that scale as ``mantissa * 2**exponent``
  (24-bit mantissa) and ``qlinear_requantize`` reproduces both float32 roundings with int64 shifts,
  which is what the generated C does (``match_f32_requant``): no float unit needed.
- ``QLinearAdd`` (``MlasQLinearAddKernelAvx2``): with ``r_a = float32(a_scale / c_scale)``,
  ``r_b = float32(b_scale / c_scale)`` and ``fixed = float32(c_zp - (r_a * a_zp + r_b * b_zp))``
  (the compiler contracts the inner sum into one FMA, ``fma(r_a, a_zp, r_b * b_zp)``), each output
  is ``fma(a, r_a, fma(b, r_b, fixed))`` rounded to the nearest integer, ties to even, saturated.
  ``t_b = fma(b, r_b, fixed)`` takes 256 values and ``a * r_a`` is exact, so the result is a monotone
  function of the exact integer ``table_a[a] + table_b[b]`` (both in a common power-of-two unit):
  ``qlinear_add_tables`` gives the two tables and the thresholds where the output steps up, the
  same integer form as the QDQ add (``quant.onnx_add_tables``, ``match_onnx_add`` in C).

Tensors that were uint8 in the model (``offset`` 128) run as int8 ``x - 128`` in the bridge; the
add's float32 steps depend on the original values, so the tables are built from ``x + offset``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

_F32_MANTISSA_BITS = 24  # significant bits of a float32
_F32_MIN_EXPONENT = -149  # exponent of the smallest float32 subnormal


def float32_parts(value: float) -> tuple[int, int]:
    """(mantissa, exponent) of a float32 ``value``: ``value == mantissa * 2**exponent`` with
    ``|mantissa| < 2**24`` (Python ints; 0.0 -> (0, 0))."""
    numerator, denominator = float(np.float32(value)).as_integer_ratio()
    exponent = -(denominator.bit_length() - 1)
    while numerator and numerator % 2 == 0 and abs(numerator) >= 1 << _F32_MANTISSA_BITS:
        numerator, exponent = numerator // 2, exponent + 1
    return numerator, exponent


def qlinear_scale_values(input_scale: float, weight_scales: np.ndarray, output_scale: float) -> np.ndarray:
    """onnxruntime's float32 output scales of QLinearConv / QGemm: ``(x_scale * w_scale[k]) / y_scale``
    with a float32 rounding after each operation."""
    f32 = np.float32
    w = np.atleast_1d(np.asarray(weight_scales, np.float32))
    return ((f32(input_scale) * w).astype(np.float32) / f32(output_scale)).astype(np.float32)


def qlinear_scales(input_scale: float, weight_scales: np.ndarray, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mantissa, exponent) int32 arrays of ``qlinear_scale_values``: scale = mantissa * 2**exponent."""
    parts = [float32_parts(float(v)) for v in qlinear_scale_values(input_scale, weight_scales, output_scale)]
    return np.array([m for m, _ in parts], np.int32), np.array([e for _, e in parts], np.int32)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Number of significant bits of non-negative int64 values below 2**62 (0 -> 0)."""
    x = np.asarray(x, np.int64)
    n = np.zeros(x.shape, np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = (x >> n) >= (np.int64(1) << step)
        n = np.where(big, n + step, n)
    return np.where(x > 0, n + 1, 0)


def rounding_shift_half_even(x: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``x / 2**total`` rounded to nearest, ties to even (int64; ``total`` in 1..62, broadcasting).
    Re-exported by ``tvm_bridge.quant``, which uses it for the ONNX semantics too."""
    x = np.asarray(x, np.int64)
    total = np.asarray(total, np.int64)
    floor = x >> total
    remainder = x - (floor << total)
    half = np.int64(1) << (total - 1)
    return floor + ((remainder > half) | ((remainder == half) & ((floor & 1) == 1)))


def _shift_half_even(x: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Non-negative int64 ``x / 2**total`` rounded to nearest, ties to even (total >= 0; > 62 gives 0)."""
    x, total = np.asarray(x, np.int64), np.asarray(total, np.int64)
    rounded = rounding_shift_half_even(x, np.clip(total, 1, 62))
    return np.where(total <= 0, x, np.where(total > 62, 0, rounded))


def _round_to_float32_bits(magnitude: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``magnitude * 2**exponent`` (int64 magnitude >= 0) rounded to 24 significant bits, ties to even."""
    extra = np.maximum(_bit_length(magnitude) - _F32_MANTISSA_BITS, 0)
    return _shift_half_even(magnitude, extra), exponent + extra


def qlinear_requantize(acc: np.ndarray, mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """``nearbyint(float32(float32(acc) * scale))`` with scale = mantissa * 2**exponent (a float32),
    in int64 arithmetic only (int64 result, before the zero point; broadcasting over the last axis).

    float32(acc) keeps 24 significant bits of the int32 (ties to even); the product of two 24-bit
    mantissas is exact in int64 and is rounded to 24 bits again; the final shift rounds to an
    integer, ties to even. Results beyond +-2**20 saturate there (any clamp to int8 follows).
    Products below float32's normal range (< 2**-126) round to 0 either way.
    """
    acc = np.asarray(acc, np.int64)
    magnitude, exp = _round_to_float32_bits(np.abs(acc), np.zeros(acc.shape, np.int64))
    magnitude, exp = _round_to_float32_bits(magnitude * np.asarray(mantissa, np.int64), exp + np.asarray(exponent, np.int64))
    limit = np.int64(1) << 20
    left = np.minimum(np.maximum(exp, 0), 21)
    whole = np.minimum(np.where(exp >= 0, magnitude << left, _shift_half_even(magnitude, -exp)), limit)
    return np.where(acc < 0, -whole, whole)


# --------------------------------------------------------------------------- QLinearAdd


def _fraction_to_float32(value: Fraction) -> Fraction:
    """The float32 nearest to ``value`` (ties to even, subnormals included; no overflow check)."""
    if value == 0:
        return Fraction(0)
    sign, magnitude = (-1 if value < 0 else 1), abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    quantum = max(exponent - (_F32_MANTISSA_BITS - 1), _F32_MIN_EXPONENT)
    scaled = magnitude / Fraction(2) ** quantum
    return sign * Fraction(round(scaled)) * Fraction(2) ** quantum  # round(): ties to even


def _f32(value: float) -> Fraction:
    return Fraction(float(np.float32(value)))


@lru_cache(maxsize=64)  # pattern checks ask again for the same layer
def qlinear_add_terms(scale_a: float, zp_a: int, scale_b: float, zp_b: int, scale_c: float, zp_c: int,
                      offset: int = 0) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]]:
    """Exact values of ``a * r_a`` and of ``t_b = fma(b, r_b, fixed)`` (module docstring) for each stored
    int8 value (index ``x + 128``); zero points are the stored (int8) ones, ``offset`` 128 for uint8 models."""
    r_a = _fraction_to_float32(_f32(scale_a) / _f32(scale_c))
    r_b = _fraction_to_float32(_f32(scale_b) / _f32(scale_c))
    za, zb, zc = zp_a + offset, zp_b + offset, zp_c + offset
    inner = _fraction_to_float32(r_a * za + _fraction_to_float32(r_b * zb))  # fma(r_a, za, r_b * zb)
    fixed = _fraction_to_float32(zc - inner)
    values = [x + offset for x in range(-128, 128)]
    return tuple(r_a * v for v in values), tuple(_fraction_to_float32(v * r_b + fixed) for v in values)


def qlinear_add_output(total: np.ndarray, unit: int, act_min: int, act_max: int, offset: int = 0) -> np.ndarray:
    """onnxruntime's QLinearAdd output (stored int8) for exact sums ``total * 2**unit`` (|total| < 2**53):
    float32 rounding, nearest integer (ties to even), saturation to the stored type, clamp."""
    value = np.ldexp(np.asarray(total, np.int64).astype(np.float64), unit).astype(np.float32)
    rounded = np.rint(np.clip(value, -(2.0 ** 20), 2.0 ** 20)).astype(np.int64)
    saturated = np.clip(rounded, -128 + offset, 127 + offset) - offset
    return np.clip(saturated, act_min, act_max)


def qlinear_add_tables(scale_a: float, zp_a: int, scale_b: float, zp_b: int, scale_c: float, zp_c: int,
                       act_min: int = -128, act_max: int = 127, offset: int = 0) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(unit, table_a, table_b, thresholds) of a QLinearAdd: the output for stored inputs (a, b) is
    ``act_min`` + the number of thresholds at or below ``table_a[a + 128] + table_b[b + 128]``
    (int64, exact sums in units of ``2**unit``). Raises ValueError when the sums need more than 53 bits."""
    terms_a, terms_b = qlinear_add_terms(scale_a, zp_a, scale_b, zp_b, scale_c, zp_c, offset)
    nonzero = [t for t in terms_a + terms_b if t]  # exponents of power-of-two denominators
    unit = min(-(t.denominator.bit_length() - 1) for t in nonzero) if nonzero else 0
    table_a, table_b = (np.array([int(t / Fraction(2) ** unit) for t in terms], np.int64) for terms in (terms_a, terms_b))
    if int(np.abs(table_a).max()) + int(np.abs(table_b).max()) >= 1 << 53:
        raise ValueError(f"QLinearAdd scales {scale_a:.3g}, {scale_b:.3g} -> {scale_c:.3g}: the exact sums need more than 53 bits")
    low, high = int(table_a.min() + table_b.min()), int(table_a.max() + table_b.max())
    levels = np.arange(act_min + 1, act_max + 1, dtype=np.int64)
    lo, hi = np.full(levels.size, low, np.int64), np.full(levels.size, high + 1, np.int64)
    while np.any(lo < hi):  # smallest sum reaching each level (high + 1: never)
        mid = lo + (hi - lo) // 2
        reached = qlinear_add_output(np.minimum(mid, high), unit, act_min, act_max, offset) >= levels
        hi, lo = np.where(reached & (lo < hi), mid, hi), np.where(~reached & (lo < hi), mid + 1, lo)
    return unit, table_a, table_b, lo


def qlinear_add_values(x1: np.ndarray, x2: np.ndarray, unit: int, table_a: np.ndarray, table_b: np.ndarray,
                       act_min: int, act_max: int, offset: int = 0) -> np.ndarray:
    """QLinearAdd of stored int8 arrays through the tables of ``qlinear_add_tables`` (int64 result)."""
    total = table_a[np.asarray(x1, np.int64) + 128] + table_b[np.asarray(x2, np.int64) + 128]
    return qlinear_add_output(total, unit, act_min, act_max, offset)

