"""``MatchConverter``: TVM's TFLite operator converter with exact int8 versions of the ops it lacks.

TVM 0.27 refuses quantized ops outside its QDQ list and lowers others in float. This subclass
(passed to ``tvm.relax.frontend.tflite.from_tflite(op_converter=...)``) adds, on int8 tensors:

- data movement (input and output quantization must be equal; exact by construction): ``PAD`` /
  ``PADV2`` (padding with the zero point, or PADV2's constant), ``EXPAND_DIMS``, ``SQUEEZE``,
  ``TILE``, ``SPACE_TO_BATCH_ND`` / ``BATCH_TO_SPACE_ND`` (4-D, padding with the zero point),
  ``CONCATENATION``;
  ``RESIZE_NEAREST_NEIGHBOR`` as two ``take``s with TFLite's source indices
  (``int8_ops.nearest_indices``);
- the input dilation of a rewritten ``TRANSPOSE_CONV`` (``tflite_rewrite``);
- ``LOGISTIC``, ``TANH``, ``LEAKY_RELU``, ``HARD_SWISH`` as a ``take`` from a 256-entry table with LiteRT's
  reference results (``int8_ops``), instead of TVM's float lowering;
- ``SOFTMAX`` (gemmlowp fixed point, as LiteRT's reference kernel), grouped ``CONV_2D`` and
  ``FULLY_CONNECTED`` on a rank > 2 input (no layer pattern covers them), ``MUL`` and ``ADD`` (with broadcasting
  or a constant operand, fused activation) and ``MEAN`` as integer Relax with TFLite's
  fixed-point requantization (``relax_int.IntBuilder``).

Anything else is TVM's own conversion; an op nobody handles raises ``OpNotImplemented`` naming
the TFLite op, which ``relax_import.from_tflite`` reports as ``BridgeError``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter

from tvm_bridge import int8_ops
from tvm_bridge.quant import ADD_LEFT_SHIFT, add_multipliers, conv_multipliers, dense_multiplier
from tvm_bridge.relax_int import IntBuilder, i64
from tvm_bridge.tflite_rewrite import InputDilation

#: TFLite ops the bridge recognises as layers (conv/depthwise/dense/add/pool chains: offloaded or exact on the host)
LAYER_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D"})
#: TFLite ops imported with exact int8 semantics outside layers (this converter, or exact data movement in TVM)
EXACT_OPS = frozenset({"PAD", "PADV2", "EXPAND_DIMS", "SQUEEZE", "TILE", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE",
                       "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "CONCATENATION",
                       "LOGISTIC", "TANH", "LEAKY_RELU", "HARD_SWISH", "MUL", "MEAN", "SOFTMAX", "TRANSPOSE_CONV",
                       "QUANTIZE", "DEQUANTIZE"})
_DATA_MOVEMENT = ("PAD", "PADV2", "EXPAND_DIMS", "SQUEEZE", "TILE", "RESIZE_NEAREST_NEIGHBOR", "SPACE_TO_BATCH_ND",
                  "BATCH_TO_SPACE_ND")


def _quant(wrapper: Any) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized TFLite tensor wrapper."""
    q = wrapper.tensor.Quantization()
    scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.zeros(0)
    zps = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.zeros(1, np.int64)
    if len(scales) != 1:
        raise tvm.error.OpNotImplemented(f"tensor {wrapper.tensor.Name().decode()!r}: expected per-tensor int8 quantization")
    return float(scales[0]), int(zps[0])


def converter_class(input_dilations: dict[str, InputDilation]) -> type:
    """A ``MatchConverter`` subclass bound to the rewrite's input dilations (tensor name -> dilation)."""

    class _Bound(MatchConverter):
        dilations = dict(input_dilations)

    return _Bound


class MatchConverter(OperatorConverter):
    """TVM's converter plus the exact int8 ops listed in the module docstring."""

    _SUPPORTED_QUANTIZED_OPS = OperatorConverter._SUPPORTED_QUANTIZED_OPS | frozenset(_DATA_MOVEMENT)
    dilations: dict[str, InputDilation] = {}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.convert_map["EXPAND_DIMS"] = self._expand_dims  # TVM 0.27's passes relax's expand_dims 3 arguments
        for name in ("PAD", "PADV2", "EXPAND_DIMS", "SQUEEZE", "TILE"):
            if name in self.convert_map:
                self.convert_map[name] = self._same_quant(name, self.convert_map[name])
        self.convert_map["RESIZE_NEAREST_NEIGHBOR"] = self._resize_nearest
        self.convert_map["SPACE_TO_BATCH_ND"] = self._space_to_batch
        self.convert_map["BATCH_TO_SPACE_ND"] = self._batch_to_space
        self.convert_map["TRANSPOSE_CONV"] = self._input_dilation
        self.convert_map["LOGISTIC"] = self._lut_op("LOGISTIC", lambda op, i, o: int8_ops.logistic_lut(*i, *o))
        self.convert_map["HARD_SWISH"] = self._lut_op("HARD_SWISH", lambda op, i, o: int8_ops.hard_swish_lut(*i, *o))
        self.convert_map["TANH"] = self._lut_op("TANH", lambda op, i, o: int8_ops.tanh_lut(*i, *o))
        self._tvm_mul, self._tvm_mean = self.convert_map["MUL"], self.convert_map["MEAN"]
        self._tvm_conv, self._tvm_fc = self.convert_map["CONV_2D"], self.convert_map["FULLY_CONNECTED"]
        self.convert_map["FULLY_CONNECTED"] = self._fully_connected
        self.convert_map["CONV_2D"] = self._conv
        self.convert_map["MUL"] = self._mul
        self._tvm_concat = self.convert_map["CONCATENATION"]
        self.convert_map["CONCATENATION"] = self._concat
        self._tvm_add = self.convert_map["ADD"]
        self.convert_map["ADD"] = self._add
        self.convert_map["MEAN"] = self._mean
        self._tvm_softmax = self.convert_map["SOFTMAX"]
        self.convert_map["SOFTMAX"] = self._softmax
        self.convert_map["LEAKY_RELU"] = self._lut_op("LEAKY_RELU", lambda op, i, o: int8_ops.leaky_relu_lut(
            *i, *o, self._leaky_alpha(op)))

    # ------------------------------------------------------------------ helpers
    def _int8(self, wrapper: Any) -> bool:
        return self.get_tensor_type_str(wrapper.tensor.Type()) == "int8" and wrapper.qnn_params is not None

    def _same_quant(self, name: str, convert: Callable) -> Callable:
        def wrapped(op: Any) -> Any:
            inputs, outputs = self.get_input_tensors(op), self.get_output_tensors(op)
            if self._int8(inputs[0]) and _quant(inputs[0]) != _quant(outputs[0]):
                raise tvm.error.OpNotImplemented(
                    f"TFLite {name} {outputs[0].tensor.Name().decode()!r}: int8 input and output quantization differ "
                    f"({_quant(inputs[0])} vs {_quant(outputs[0])}); only data movement with equal quantization is supported")
            return convert(op=op)
        return wrapped

    def _lut_op(self, name: str, table: Callable) -> Callable:
        fallback = self.convert_map.get(name)

        def convert(op: Any) -> Any:
            x, out = self.get_input_tensors(op)[0], self.get_output_tensors(op)[0]
            if not (self._int8(x) and self._int8(out)):
                return fallback(op=op)
            lut = table(op, _quant(x), _quant(out))
            return self._lookup(self.get_expr(x.tensor_idx), lut)
        return convert

    @staticmethod
    def _lookup(expr: relax.Expr, lut: np.ndarray) -> relax.Expr:
        index = relax.op.add(relax.op.astype(expr, "int32"), relax.const(128, "int32"))
        return relax.op.take(relax.const(np.asarray(lut, np.int8), "int8"), index, axis=0, mode="clip")

    def _leaky_alpha(self, op: Any) -> float:
        from tflite.LeakyReluOptions import LeakyReluOptions

        opts = LeakyReluOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        return float(np.float32(opts.Alpha()))

    # ------------------------------------------------------------------ ops
    def _finish(self, acc: relax.Expr, out: Any, activation: str = "NONE") -> relax.Expr:
        scale, zp = _quant(out)
        low, high = int8_ops.activation_range(activation, scale, zp)
        return IntBuilder(self.bb).finish(acc, SimpleNamespace(output_zp=zp, act_min=low, act_max=high))

    def _fused_activation(self, op: Any, options_class: type) -> str:
        """The fused activation of ``op`` (NONE when the model omits its optional options table)."""
        table = op.BuiltinOptions()
        if table is None:
            return self.activation_fn_type[0]
        opts = options_class()
        opts.Init(table.Bytes, table.Pos)
        return self.activation_fn_type[opts.FusedActivationFunction()]

    def _mul(self, op: Any) -> Any:
        from tflite.MulOptions import MulOptions

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        if not (all(self._int8(t) for t in inputs) and self._int8(out)):
            return self._tvm_mul(op=op)
        b = IntBuilder(self.bb)
        (s1, z1), (s2, z2) = _quant(inputs[0]), _quant(inputs[1])
        x1, x2 = (b.widen(self.get_tensor_expr(t), z, "int64") for t, z in ((inputs[0], z1), (inputs[1], z2)))
        multiplier, shift = int8_ops.mul_multiplier(s1, s2, _quant(out)[0])
        acc = b.rescale(b.emit(relax.op.multiply(x1, x2)), multiplier, shift)
        return self._finish(acc, out, self._fused_activation(op, MulOptions))

    def _conv(self, op: Any) -> Any:
        """Grouped int8 CONV_2D (not a layer the bridge recognises) as exact integer Relax; others: TVM's."""
        from tflite.Conv2DOptions import Conv2DOptions
        from tflite.Padding import Padding

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        x, w = inputs[0], inputs[1]
        x_shape, w_shape = [int(d) for d in x.tensor.ShapeAsNumpy()], [int(d) for d in w.tensor.ShapeAsNumpy()]
        if not (self._int8(x) and self._int8(out) and len(x_shape) == 4 and x_shape[3] != w_shape[3]):
            return self._tvm_conv(op=op)
        name = out.tensor.Name().decode()
        groups = x_shape[3] // w_shape[3]
        if x_shape[3] % w_shape[3] or w_shape[0] % groups:
            raise tvm.error.OpNotImplemented(f"TFLite CONV_2D {name!r}: {x_shape[3]} input channels, filters of "
                                             f"{w_shape[3]}: not a grouped convolution")
        opts = Conv2DOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        stride, dilation = (opts.StrideH(), opts.StrideW()), (opts.DilationHFactor(), opts.DilationWFactor())
        pads = []
        for size, k, st, d in zip(x_shape[1:3], w_shape[1:3], stride, dilation):
            if opts.Padding() == Padding.SAME:
                total = max(((size + st - 1) // st - 1) * st + (k - 1) * d + 1 - size, 0)
                pads += [total // 2, total - total // 2]
            else:
                pads += [0, 0]
        q = w.tensor.Quantization()
        weight_scales = q.ScaleAsNumpy()
        if np.any(q.ZeroPointAsNumpy() != 0):
            raise tvm.error.OpNotImplemented(f"TFLite CONV_2D {name!r}: int8 weights with a non-zero zero point")
        (s_in, z_in), (s_out, _) = _quant(x), _quant(out)
        multipliers, shifts = conv_multipliers(s_in, np.broadcast_to(weight_scales, (w_shape[0],)), s_out)
        b = IntBuilder(self.bb)
        kernel = np.ascontiguousarray(self.get_tensor_value(w).astype(np.int32).transpose(1, 2, 3, 0))  # OHWI -> HWIO
        acc = b.emit(relax.op.nn.conv2d(b.widen(self.get_expr(x.tensor_idx), z_in), relax.const(kernel, "int32"),
                                        strides=stride, padding=(pads[0], pads[2], pads[1], pads[3]), dilation=dilation,
                                        groups=groups, data_layout="NHWC", kernel_layout="HWIO", out_dtype="int32"))
        if len(inputs) > 2 and inputs[2].tensor_idx >= 0:
            acc = b.emit(relax.op.add(acc, relax.const(self.get_tensor_value(inputs[2]).astype(np.int32), "int32")))
        wide = b.emit(relax.op.astype(acc, "int64"))
        return self._finish(b.rescale(wide, multipliers, shifts), out, self.activation_fn_type[opts.FusedActivationFunction()])

    def _fully_connected(self, op: Any) -> Any:
        """int8 FULLY_CONNECTED on a rank > 2 input (not a layer the bridge recognises) as exact integer
        Relax: rows flattened, int32 matmul, bias, single-rounding requantization; others: TVM's."""
        from tflite.FullyConnectedOptions import FullyConnectedOptions

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        x, w = inputs[0], inputs[1]
        x_shape = [int(d) for d in x.tensor.ShapeAsNumpy()]
        q = w.tensor.Quantization()
        if not (self._int8(x) and self._int8(out) and len(x_shape) > 2 and q is not None and q.ScaleLength() >= 1
                and self.get_tensor_type_str(w.tensor.Type()) == "int8" and not np.any(q.ZeroPointAsNumpy())):
            return self._tvm_fc(op=op)
        weights = self.get_tensor_value(w).astype(np.int32)  # [units, depth]
        (s_in, z_in), (s_out, _) = _quant(x), _quant(out)
        pairs = [dense_multiplier(s_in, float(scale), s_out) for scale in q.ScaleAsNumpy()]  # per tensor or per unit
        multiplier, shift = np.array([m for m, _ in pairs], np.int64), np.array([sh for _, sh in pairs], np.int64)
        b = IntBuilder(self.bb)
        rows = relax.op.reshape(self.get_expr(x.tensor_idx), (int(np.prod(x_shape)) // weights.shape[1], weights.shape[1]))
        acc = b.emit(relax.op.matmul(b.widen(b.emit(rows), z_in), relax.const(np.ascontiguousarray(weights.T), "int32"),
                                     out_dtype="int32"))
        if len(inputs) > 2 and inputs[2].tensor_idx >= 0:
            acc = b.emit(relax.op.add(acc, relax.const(self.get_tensor_value(inputs[2]).astype(np.int32), "int32")))
        opts = FullyConnectedOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        wide = b.emit(relax.op.astype(acc, "int64"))
        result = self._finish(b.rescale(wide, multiplier, shift, single=True), out,
                              self.activation_fn_type[opts.FusedActivationFunction()])
        return relax.op.reshape(result, tuple(int(d) for d in out.tensor.ShapeAsNumpy()))

    def _softmax(self, op: Any) -> Any:
        """int8 SOFTMAX (output scale 1/256, zero point -128) with TFLite's gemmlowp fixed-point
        arithmetic: per-difference exponentials from ``int8_ops.softmax_tables``, then per row the
        reciprocal of their sum (``GetReciprocal``: 3 Newton-Raphson steps in Q2.29) in int64 Relax."""
        from tflite.SoftmaxOptions import SoftmaxOptions

        x, out = self.get_input_tensors(op)[0], self.get_output_tensors(op)[0]
        if not (self._int8(x) and self._int8(out)) or _quant(out)[1] != -128 or _quant(out)[0] != np.float32(1 / 256):
            return self._tvm_softmax(op=op)
        opts = SoftmaxOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        try:
            exps, rescaled, ok = int8_ops.softmax_tables(opts.Beta(), _quant(x)[0])
        except ValueError as exc:
            raise tvm.error.OpNotImplemented(f"TFLite SOFTMAX {out.tensor.Name().decode()!r}: {exc}") from None
        b = IntBuilder(self.bb)
        e, r = b.emit, relax.op

        def srdhm(a, c):
            ab = e(r.multiply(a, c))
            t = e(r.add(ab, e(r.where(r.greater_equal(ab, i64(0)), i64(1 << 30), i64(1 - (1 << 30))))))
            return e(r.where(r.greater_equal(t, i64(0)), r.right_shift(t, i64(31)), r.negative(r.right_shift(r.negative(t), i64(31)))))

        def sat32(v):
            return e(r.clip(v, -(1 << 31), (1 << 31) - 1))

        wide = b.widen(self.get_expr(x.tensor_idx), 0, "int64")
        index = e(r.add(e(r.subtract(wide, e(r.max(wide, axis=-1, keepdims=True)))), i64(255)))
        exp = e(r.take(relax.const(exps, "int64"), index, axis=0, mode="clip"))
        total = e(r.sum(e(r.take(relax.const(rescaled, "int64"), index, axis=0, mode="clip")), axis=-1, keepdims=True))
        powers = relax.const(np.int64(1) << np.arange(32, dtype=np.int64), "int64")
        bits = e(r.sum(e(r.astype(r.greater_equal(e(r.expand_dims(total, -1)), powers), "int64")), axis=-1))
        headroom = e(r.subtract(i64(32), bits))
        shifted = e(r.subtract(e(r.bitwise_and(e(r.left_shift(total, headroom)), i64(0xFFFFFFFF))), i64(1 << 31)))
        s = e(r.add(shifted, i64((1 << 31) - 1)))  # RoundingHalfSum(shifted, One)
        half = e(r.where(r.greater_equal(s, i64(0)), r.right_shift(r.add(s, i64(1)), i64(1)),
                         r.negative(r.right_shift(r.add(r.negative(s), i64(1)), i64(1)))))
        recip = e(r.add(i64(1515870810), srdhm(half, i64(-1010580540))))
        for _ in range(3):
            step = srdhm(recip, e(r.subtract(i64(1 << 29), srdhm(half, recip))))
            recip = e(r.add(recip, sat32(e(r.multiply(step, i64(4))))))
        scale = sat32(e(r.multiply(recip, i64(2))))
        value = srdhm(scale, exp)
        exponent = e(r.add(e(r.subtract(i64(12), headroom)), i64(23)))  # num_bits_over_unit + 31 - 8
        mask = e(r.subtract(e(r.left_shift(i64(1), exponent)), i64(1)))
        threshold = e(r.add(e(r.right_shift(mask, i64(1))), e(r.astype(r.less(value, i64(0)), "int64"))))
        rounded = e(r.add(e(r.right_shift(value, exponent)),
                          e(r.astype(r.greater(e(r.bitwise_and(value, mask)), threshold), "int64"))))
        result = e(r.clip(e(r.subtract(rounded, i64(128))), -128, 127))
        valid = e(r.take(relax.const(ok), index, axis=0, mode="clip"))
        return r.astype(r.where(valid, result, i64(-128)), "int8")

    def _concat(self, op: Any) -> Any:
        """int8 CONCATENATION with every input quantized like the output (TFLite requires it for int8):
        a plain int8 concat, plus the fused activation's clamp; others: TVM's."""
        from tflite.ConcatenationOptions import ConcatenationOptions

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        if not (self._int8(out) and all(self._int8(t) and _quant(t) == _quant(out) for t in inputs)):
            return self._tvm_concat(op=op)
        opts = ConcatenationOptions()
        table = op.BuiltinOptions()
        opts.Init(table.Bytes, table.Pos)
        joined = relax.op.concat([self.get_tensor_expr(t) for t in inputs], axis=int(opts.Axis()))
        activation = self.activation_fn_type[opts.FusedActivationFunction()]
        if activation == "NONE":
            return joined
        scale, zp = _quant(out)
        low, high = int8_ops.activation_range(activation, scale, zp)
        return IntBuilder(self.bb).finish(self.bb.emit(relax.op.astype(joined, "int32")),
                                          SimpleNamespace(output_zp=zp, act_min=low, act_max=high), add_zero_point=False)

    def _add(self, op: Any) -> Any:
        """int8 ADD with broadcasting or a constant operand (the add layer pattern takes neither) as
        exact integer Relax (TFLite: inputs << 20, rescaled, summed, rescaled); others: TVM's."""
        from tflite.AddOptions import AddOptions

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        if not (all(self._int8(t) for t in inputs) and self._int8(out)):
            return self._tvm_add(op=op)
        shapes = [tuple(int(d) for d in t.tensor.ShapeAsNumpy()) for t in inputs]
        constant = any(not self.has_expr(t.tensor_idx) for t in inputs)
        if shapes[0] == shapes[1] and not constant:
            return self._tvm_add(op=op)
        b = IntBuilder(self.bb)
        (s1, z1), (s2, z2), (s_out, _) = _quant(inputs[0]), _quant(inputs[1]), _quant(out)
        p = add_multipliers(s1, s2, s_out)
        terms = []
        for t, zp, m, sh in ((inputs[0], z1, p["input1_multiplier"], p["input1_shift"]),
                             (inputs[1], z2, p["input2_multiplier"], p["input2_shift"])):
            shifted = b.emit(relax.op.left_shift(b.widen(self.get_tensor_expr(t), zp, "int64"), i64(ADD_LEFT_SHIFT)))
            terms.append(b.rescale(shifted, m, sh))
        total = b.rescale(b.emit(relax.op.add(*terms)), p["output_multiplier"], p["output_shift"])
        return self._finish(total, out, self._fused_activation(op, AddOptions))

    def _mean(self, op: Any) -> Any:
        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        if not (self._int8(inputs[0]) and self._int8(out)):
            return self._tvm_mean(op=op)
        shape = [int(d) for d in inputs[0].tensor.ShapeAsNumpy()]
        axes = sorted({int(a) % len(shape) for a in np.atleast_1d(self.get_tensor_value(inputs[1]))})
        count = int(np.prod([shape[a] for a in axes]))
        (s_in, z_in), (s_out, _) = _quant(inputs[0]), _quant(out)
        b = IntBuilder(self.bb)
        total = b.emit(relax.op.sum(b.widen(self.get_expr(inputs[0].tensor_idx), 0, "int64"), axis=axes, keepdims=True))
        if z_in:
            total = b.emit(relax.op.subtract(total, i64(z_in * count)))
        multiplier, shift = int8_ops.mean_multiplier(s_in, s_out, count)
        result = self._finish(b.rescale(total, multiplier, shift), out)
        return relax.op.reshape(result, tuple(int(d) for d in out.tensor.ShapeAsNumpy()))

    def _expand_dims(self, op: Any) -> Any:
        inputs = self.get_input_tensors(op)
        rank = len(inputs[0].tensor.ShapeAsNumpy())
        axis = int(np.asarray(self.get_tensor_value(inputs[1])).reshape(-1)[0])
        if not -rank - 1 <= axis <= rank:
            raise tvm.error.OpNotImplemented(f"TFLite EXPAND_DIMS: axis {axis} out of range for rank {rank}")
        return relax.op.expand_dims(self.get_tensor_expr(inputs[0]), axis % (rank + 1))

    def _resize_nearest(self, op: Any) -> Any:
        from tflite.ResizeNearestNeighborOptions import ResizeNearestNeighborOptions

        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        x = inputs[0]
        if x.qnn_params is not None and _quant(x) != _quant(out):
            raise tvm.error.OpNotImplemented(f"TFLite RESIZE_NEAREST_NEIGHBOR {out.tensor.Name().decode()!r}: "
                                             "input and output quantization differ")
        opts = ResizeNearestNeighborOptions()
        table = op.BuiltinOptions()
        align = half = False
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
            align, half = bool(opts.AlignCorners()), bool(opts.HalfPixelCenters())
        _, in_h, in_w, _ = (int(d) for d in x.tensor.ShapeAsNumpy())
        out_h, out_w = (int(v) for v in self.get_tensor_value(inputs[1]))
        expr = self.get_expr(x.tensor_idx)
        rows = int8_ops.nearest_indices(in_h, out_h, align, half).astype(np.int32)
        cols = int8_ops.nearest_indices(in_w, out_w, align, half).astype(np.int32)
        expr = relax.op.take(expr, relax.const(rows, "int32"), axis=1, mode="clip")
        return relax.op.take(expr, relax.const(cols, "int32"), axis=2, mode="clip")

    def _block_op(self, op: Any, name: str) -> tuple:
        inputs, out = self.get_input_tensors(op), self.get_output_tensors(op)[0]
        x = inputs[0]
        shape = [int(d) for d in x.tensor.ShapeAsNumpy()]
        block = [int(v) for v in np.atleast_1d(self.get_tensor_value(inputs[1]))]
        amounts = np.asarray(self.get_tensor_value(inputs[2]), np.int64).reshape(-1, 2)
        if len(shape) != 4 or len(block) != 2:
            raise tvm.error.OpNotImplemented(f"TFLite {name} {out.tensor.Name().decode()!r}: only 4-D NHWC tensors with a "
                                             f"2-D block are supported (shape {shape[:6]}, block {block[:4]})")
        zp = _quant(x)[1] if x.qnn_params is not None else 0
        if x.qnn_params is not None and _quant(x) != _quant(out):
            raise tvm.error.OpNotImplemented(f"TFLite {name} {out.tensor.Name().decode()!r}: input and output quantization differ")
        return self.get_expr(x.tensor_idx), shape, block, amounts, zp

    def _space_to_batch(self, op: Any) -> Any:
        """SPACE_TO_BATCH_ND: pad with the zero point, then block-interleave into the batch (exact)."""
        expr, (n, h, w, c), (bh, bw), pads, zp = self._block_op(op, "SPACE_TO_BATCH_ND")
        if pads.any():
            expr = relax.op.nn.pad(expr, [0, 0, int(pads[0, 0]), int(pads[0, 1]), int(pads[1, 0]), int(pads[1, 1]), 0, 0],
                                   pad_value=float(zp))
        hp, wp = h + int(pads[0].sum()), w + int(pads[1].sum())
        expr = relax.op.reshape(expr, (n, hp // bh, bh, wp // bw, bw, c))
        expr = relax.op.permute_dims(expr, [2, 4, 0, 1, 3, 5])
        return relax.op.reshape(expr, (bh * bw * n, hp // bh, wp // bw, c))

    def _batch_to_space(self, op: Any) -> Any:
        """BATCH_TO_SPACE_ND: the inverse interleave, then the crops (exact)."""
        expr, (nb, h, w, c), (bh, bw), crops, _ = self._block_op(op, "BATCH_TO_SPACE_ND")
        n = nb // (bh * bw)
        expr = relax.op.reshape(expr, (bh, bw, n, h, w, c))
        expr = relax.op.permute_dims(expr, [2, 3, 0, 4, 1, 5])
        expr = relax.op.reshape(expr, (n, h * bh, w * bw, c))
        if crops.any():
            expr = relax.op.strided_slice(expr, axes=[1, 2], begin=[int(crops[0, 0]), int(crops[1, 0])],
                                          end=[h * bh - int(crops[0, 1]), w * bw - int(crops[1, 1])])
        return expr

    def _input_dilation(self, op: Any) -> Any:
        out = self.get_output_tensors(op)[0]
        name = out.tensor.Name().decode()
        dilation = self.dilations.get(name)
        if dilation is None:
            raise tvm.error.OpNotImplemented(f"TFLite TRANSPOSE_CONV {name!r} was not rewritten into a convolution")
        x = self.get_input_tensors(op)[0]
        _, zp = _quant(x)
        _, h, w, c = (int(d) for d in x.tensor.ShapeAsNumpy())
        sh, sw = dilation.stride
        expr = relax.op.reshape(self.get_expr(x.tensor_idx), (1, h, 1, w, 1, c))
        expr = relax.op.nn.pad(expr, [0, 0, 0, 0, 0, sh - 1, 0, 0, 0, sw - 1, 0, 0], pad_value=float(zp))
        expr = relax.op.reshape(expr, (1, h * sh, w * sw, c))  # stride - 1 trailing zero points
        top, bottom, left, right = dilation.pads
        bottom, right = bottom - (sh - 1), right - (sw - 1)
        pad = [0, 0, max(top, 0), max(bottom, 0), max(left, 0), max(right, 0), 0, 0]
        if any(pad):
            expr = relax.op.nn.pad(expr, pad, pad_value=float(zp))
        if min(top, bottom, left, right) < 0:
            full_h, full_w = h * sh + max(top, 0) + max(bottom, 0), w * sw + max(left, 0) + max(right, 0)
            expr = relax.op.strided_slice(expr, axes=[1, 2], begin=[max(-top, 0), max(-left, 0)],
                                          end=[full_h - max(-bottom, 0), full_w - max(-right, 0)])
        return expr
