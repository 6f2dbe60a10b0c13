"""Integer Relax building blocks with TFLite's fixed-point semantics (used by ``host_int`` and
``tflite_convert``): widening with a zero point, ``MultiplyByQuantizedMultiplier`` (double or single
rounding) on int64 tensors, ONNX's rounding shift (ties to even), and the final zero point + clamp +
int8 cast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tvm import relax
from tvm.relax import op as R

from tvm_bridge import _compat as compat


def i64(value: Any) -> relax.Expr:
    return relax.const(np.asarray(value, np.int64), "int64")


def i32(value: Any) -> relax.Expr:
    return relax.const(np.asarray(value, np.int32), "int32")


class IntBuilder:
    """Emits integer Relax ops into a BlockBuilder dataflow block."""

    def __init__(self, bb: relax.BlockBuilder):
        self.bb = bb

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.emit(expr)

    def widen(self, x: relax.Expr, zero_point: int, dtype: str = "int32") -> relax.Expr:
        wide = self.emit(R.astype(x, dtype))
        return self.emit(R.subtract(wide, relax.const(np.asarray(zero_point, dtype), dtype))) if zero_point else wide

    def rescale(self, x: relax.Expr, multiplier: Any, shift: Any, single: bool = False) -> relax.Expr:
        """TFLite ``MultiplyByQuantizedMultiplier`` on an int64 tensor (per last-axis channel or scalar)."""
        multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
        if single:
            total = 31 - shift
            product = self.emit(R.multiply(x, i64(multiplier)))
            return self.emit(R.right_shift(self.emit(R.add(product, i64(np.int64(1) << (total - 1)))), i64(total)))
        left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
        if np.any(left):
            x = self.emit(R.multiply(x, i64(np.int64(1) << left)))
        ab = self.emit(R.multiply(x, i64(multiplier)))
        zero = i64(0)
        nudged = self.emit(R.add(ab, self.emit(R.where(R.greater_equal(ab, zero), i64(1 << 30), i64(1 - (1 << 30))))))
        # SaturatingRoundingDoublingHighMul: C division by 2**31 truncates toward zero
        high = self.emit(R.where(R.greater_equal(nudged, zero), R.right_shift(nudged, i64(31)),
                                 R.negative(R.right_shift(R.negative(nudged), i64(31)))))
        if not np.any(right):
            return high
        mask = (np.int64(1) << right) - 1
        remainder = self.emit(R.bitwise_and(high, i64(mask)))
        threshold = self.emit(R.add(i64(mask >> 1), R.astype(R.less(high, zero), "int64")))
        rounded = self.emit(R.add(R.right_shift(high, i64(right)), R.astype(R.greater(remainder, threshold), "int64")))
        return rounded

    def shift_half_even(self, x: relax.Expr, total: Any) -> relax.Expr:
        """``x / 2**total`` rounded to nearest, ties to even, on an int64 tensor (``total`` in 1..62,
        scalar or per last-axis channel): ``quant.rounding_shift_half_even``."""
        total = np.asarray(total, np.int64)
        floor = self.emit(R.right_shift(x, i64(total)))
        remainder = self.emit(R.subtract(x, R.left_shift(floor, i64(total))))
        half = i64(np.int64(1) << (total - 1))
        odd = R.equal(R.bitwise_and(floor, i64(1)), i64(1))
        up = R.logical_or(R.greater(remainder, half), R.logical_and(R.equal(remainder, half), odd))
        return self.emit(R.add(floor, R.astype(up, "int64")))

    def round_half_even(self, x: relax.Expr) -> relax.Expr:
        """A float32 tensor rounded to the nearest integer, ties to even (``std::nearbyint``), as int64;
        spelled out (floor, exact fraction) rather than left to ``round``'s lowering."""
        floor = self.emit(R.floor(x))
        fraction = self.emit(R.subtract(x, floor))  # exact for float32
        low = self.emit(R.astype(floor, "int64"))
        half = relax.const(np.float32(0.5))
        odd = R.equal(R.bitwise_and(low, i64(1)), i64(1))
        up = R.logical_or(R.greater(fraction, half), R.logical_and(R.equal(fraction, half), odd))
        return self.emit(R.add(low, R.astype(up, "int64")))

    def finish(self, x: relax.Expr, q: Any, add_zero_point: bool = True) -> relax.Expr:
        """+ output zero point, clamp to the activation range, int8 (``q``: ``output_zp``, ``act_min``, ``act_max``)."""
        if add_zero_point and q.output_zp:
            x = self.emit(R.add(x, relax.const(np.asarray(q.output_zp, compat.tensor_dtype(x)), compat.tensor_dtype(x))))
        dtype = compat.tensor_dtype(x)
        high, low = (relax.const(np.asarray(v, dtype), dtype) for v in (q.act_max, q.act_min))
        x = self.emit(R.maximum(R.minimum(x, high), low))
        return self.emit(R.astype(x, "int8"))
