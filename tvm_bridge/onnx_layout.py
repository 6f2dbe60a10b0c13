"""ONNX QDQ graphs in the layout the layer patterns and kernels take: NHWC, int8 data movement.

TVM's ONNX frontend imports a QDQ conv as ``quantize(act(add(conv2d(dequantize(x), W), bias)))``
in NCHW (kernel OIHW). ``to_nhwc`` rewrites every such chain, and every QDQ ``add`` of two 4-D
int8 tensors, to run in NHWC between two int8 transposes:

    x [NCHW int8] -> permute_dims(0, 2, 3, 1) -> dequantize -> conv2d NHWC (kernel OIHW, unchanged)
      -> add(bias reshaped to [1, 1, 1, K]) -> [relu | clip] -> quantize -> permute_dims(0, 3, 1, 2)

A transpose back to NCHW that feeds a transpose to NHWC cancels (the second one reads the first's
input), so a chain of convs and residual adds keeps its activations in NHWC and transposes only at
the model's input and where an NCHW-order op reads them (e.g. the ``reshape`` of a Flatten before
a Gemm). Those transposes are int8 ``permute_dims`` in TVM's host code, outside the offloaded
layers: their cost is host time (one pass over the int8 tensor each; ``layout_transposes`` counts
them and their bytes), not in the accelerator schedule.

ONNX ``Clip`` comes from TVM's frontend as ``call_tir(maximum)`` / ``call_tir(minimum)`` of
NaN-sanitised constant bounds; with constant bounds it becomes ``relax.clip`` (``nn.relu`` for
``[0, inf)``), which the layer patterns know.

uint8 activations (onnxruntime's ``QUInt8``) become int8 first (``to_int8``): ``x - 128`` with the
zero point ``zp - 128`` dequantizes to the same values and quantizes from the same ones (exactly),
so every ``dequantize`` of a uint8 tensor reads ``x - 128`` and every ``quantize`` to uint8 produces
int8 and adds 128 back; a conversion back to uint8 that feeds one to int8 cancels, so the
conversions (int8 host ops, like the transposes) remain only at the model's uint8 inputs and outputs.

Also moved before the dequantize, where they are exact int8 data movement: ``reshape`` of a
per-tensor dequantized activation (Flatten before Gemm/MatMul), and ``permute_dims`` of a
dequantized constant weight (Gemm ``transB``), so the dense pattern sees ``dequantize(int8)``.
Everything else is left as imported.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import tvm
from tvm import relax

from tvm_bridge import _compat as compat

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


def _axes(call: Any) -> Optional[tuple[int, ...]]:
    if compat.op_name(call) != "relax.permute_dims" or call.attrs.axes is None:
        return None
    return tuple(int(a) for a in call.attrs.axes)


def _scalar(expr: Any) -> bool:
    return compat.is_constant(expr) and compat.constant_value(expr).size == 1


@relax.expr_functor.mutator
class _ToNHWC(relax.PyExprMutator):
    """The rewrite of ``to_nhwc`` (see the module docstring)."""

    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.nhwc: dict = {}  # NCHW int8 var -> its NHWC transpose (one per tensor)

    # ------------------------------------------------------------------ helpers
    def _value(self, expr: Any) -> Any:
        while isinstance(expr, relax.Var):
            bound = self.lookup_binding(expr)
            if bound is None:
                return expr
            expr = bound
        return expr

    def _to_nhwc(self, x: relax.Expr) -> relax.Expr:
        """The NHWC version of int8 NCHW ``x``: the source of a transpose to NCHW, else a new transpose."""
        bound = self._value(x)
        if _axes(bound) == TO_NCHW:
            return bound.args[0]
        if x not in self.nhwc:
            self.nhwc[x] = self.builder_.emit(relax.op.permute_dims(x, list(TO_NHWC)))
        return self.nhwc[x]

    def _dequantized_int8(self, expr: Any) -> Optional[Any]:
        """The per-tensor ``dequantize`` call of a 4-D int8 tensor that ``expr`` is, else None."""
        dq = self._value(expr)
        if compat.op_name(dq) != "relax.dequantize" or not (_scalar(dq.args[1]) and _scalar(dq.args[2])):
            return None
        shape = compat.tensor_shape(dq.args[0])
        if compat.tensor_dtype(dq.args[0]) != "int8" or shape is None or len(shape) != 4:
            return None
        return dq

    def _dequantize_nhwc(self, dq: Any) -> relax.Expr:
        return self.builder_.emit(relax.op.dequantize(self._to_nhwc(dq.args[0]), dq.args[1], dq.args[2], axis=3,
                                                      out_dtype=str(dq.attrs.out_dtype)))

    def _bias_nhwc(self, expr: Any, channels: int) -> Optional[relax.Expr]:
        """``dequantize(constant [1, 1, 1, K])`` for an NCHW bias ``reshape(dequantize(constant [K]), [1, K, 1, 1])``."""
        shape = compat.tensor_shape(expr)
        value = self._value(expr)
        if shape != (1, channels, 1, 1) or compat.op_name(value) != "relax.reshape":
            return None
        dq = self._value(value.args[0])
        const = self._value(dq.args[0]) if compat.op_name(dq) == "relax.dequantize" else None
        if const is None or not compat.is_constant(const) or compat.constant_value(const).shape != (channels,):
            return None
        bias = relax.const(compat.constant_value(const).reshape(1, 1, 1, channels))
        return self.builder_.emit(relax.op.dequantize(bias, dq.args[1], dq.args[2], axis=3, out_dtype=str(dq.attrs.out_dtype)))

    # ------------------------------------------------------------------ chains
    def _conv_chain(self, inner: Any) -> Optional[relax.Expr]:
        """NHWC version of ``[add(bias)](conv2d NCHW(dequantize(int8), W))`` (None if it is not one)."""
        bias, acc = None, self._value(inner)
        if compat.op_name(acc) == "relax.add":
            sides = [self._value(a) for a in acc.args]
            conv_side = [compat.op_name(s) == "relax.nn.conv2d" for s in sides]
            if conv_side.count(True) != 1:
                return None
            k = conv_side.index(True)
            bias, acc = acc.args[1 - k], sides[k]
        if compat.op_name(acc) != "relax.nn.conv2d":
            return None
        a = acc.attrs
        if str(a.data_layout) != "NCHW" or str(a.out_layout or "NCHW") != "NCHW" or str(a.kernel_layout) != "OIHW":
            return None
        dq = self._dequantized_int8(acc.args[0])
        out_shape = compat.tensor_shape(acc)
        if dq is None or out_shape is None:
            return None
        new_bias = None
        if bias is not None:
            new_bias = self._bias_nhwc(bias, out_shape[1])
            if new_bias is None:
                return None
        out_dtype = str(a.out_dtype) if a.out_dtype is not None else ""
        conv = self.builder_.emit(relax.op.nn.conv2d(
            self._dequantize_nhwc(dq), acc.args[1], strides=a.strides, padding=a.padding, dilation=a.dilation,
            groups=int(a.groups), data_layout="NHWC", kernel_layout="OIHW", out_layout="NHWC",
            out_dtype=None if out_dtype in ("", "None", "void") else out_dtype))
        return conv if new_bias is None else self.builder_.emit(relax.op.add(conv, new_bias))

    def _add_chain(self, inner: Any) -> Optional[relax.Expr]:
        """NHWC version of ``add(dequantize(a), dequantize(b))`` of equal-shape 4-D int8 tensors."""
        total = self._value(inner)
        if compat.op_name(total) != "relax.add":
            return None
        dqs = [self._dequantized_int8(a) for a in total.args]
        if any(d is None for d in dqs) or compat.tensor_shape(dqs[0].args[0]) != compat.tensor_shape(dqs[1].args[0]):
            return None
        return self.builder_.emit(relax.op.add(self._dequantize_nhwc(dqs[0]), self._dequantize_nhwc(dqs[1])))

    def _quantized_chain(self, call: relax.Call) -> Optional[relax.Expr]:
        if not (_scalar(call.args[1]) and _scalar(call.args[2])) or len(compat.tensor_shape(call) or ()) != 4:
            return None
        act, inner = None, self._value(call.args[0])
        if compat.op_name(inner) in ("relax.nn.relu", "relax.clip"):
            act, inner = inner, inner.args[0]
        new = self._conv_chain(inner)
        if new is None:
            new = self._add_chain(inner)
        if new is None:
            return None
        if act is not None:
            new = self.builder_.emit(compat.call_with_args(act, [new] + list(act.args[1:])))
        q = self.builder_.emit(relax.op.quantize(new, call.args[1], call.args[2], axis=3, out_dtype=str(call.attrs.out_dtype)))
        return relax.op.permute_dims(q, list(TO_NCHW))

    def _clip_bound(self, expr: Any) -> Optional[float]:
        """The value of a constant scalar clip bound (through the frontend's ``where(isnan(c), inf, c)``)."""
        value = self._value(expr)
        if compat.op_name(value) == "relax.where":
            value = self._value(value.args[2])
        if not _scalar(value):
            return None
        bound = float(compat.constant_value(value).reshape(()))
        return None if np.isnan(bound) else bound

    def _te_minmax(self, call: relax.Call) -> Optional[tuple[str, Any, float]]:
        """("maximum" | "minimum", tensor, bound) of the frontend's ``call_tir`` of a topi max/min by a scalar."""
        if compat.op_name(call) != "relax.call_tir" or not isinstance(call.args[0], tvm.ir.GlobalVar):
            return None
        kind = compat.var_name(call.args[0]).rstrip("0123456789_")
        args = call.args[1].fields if isinstance(call.args[1], relax.Tuple) else []
        if kind not in ("maximum", "minimum") or len(args) != 2 or compat.tensor_shape(args[1]) not in ((), None):
            return None
        bound = self._clip_bound(args[1])
        return None if bound is None or compat.tensor_dtype(args[0]) != "float32" else (kind, args[0], bound)

    def _clip(self, call: relax.Call) -> Optional[relax.Expr]:
        """``relax.clip`` / ``nn.relu`` for the frontend's ONNX Clip (``minimum(maximum(x, lo), hi)``)."""
        outer = self._te_minmax(call)
        if outer is None:
            return None
        kind, x, bound = outer
        lo, hi = (bound, np.inf) if kind == "maximum" else (-np.inf, bound)
        if kind == "minimum":  # its maximum was visited first: already a relu or a clip with no upper bound
            inner = self._value(x)
            if compat.op_name(inner) == "relax.nn.relu":
                x, lo = inner.args[0], 0.0
            elif compat.op_name(inner) == "relax.clip" and float(compat.scalar_value(inner.args[2])) >= np.finfo(np.float32).max:
                x, lo = inner.args[0], float(compat.scalar_value(inner.args[1]))
        if lo == 0.0 and hi == np.inf:
            return relax.op.nn.relu(x)
        big = float(np.finfo(np.float32).max)
        return relax.op.clip(x, max(lo, -big), min(hi, big))

    # ------------------------------------------------------------------ visitor
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        clip = self._clip(call)
        if clip is not None:
            return clip
        name = compat.op_name(call)
        if name == "relax.quantize":
            new = self._quantized_chain(call)
            return call if new is None else new
        if name == "relax.reshape" and isinstance(call.args[0], relax.Var):
            dq = self._value(call.args[0])  # reshape(dequantize(x)) -> dequantize(reshape(x)), per tensor
            if (compat.op_name(dq) == "relax.dequantize" and _scalar(dq.args[1]) and _scalar(dq.args[2])
                    and compat.tensor_dtype(dq.args[0]) == "int8" and not compat.is_constant(dq.args[0])):
                moved = self.builder_.emit(relax.op.reshape(dq.args[0], call.args[1]))
                return relax.op.dequantize(moved, dq.args[1], dq.args[2], axis=-1, out_dtype=str(dq.attrs.out_dtype))
        if name == "relax.permute_dims" and isinstance(call.args[0], relax.Var):
            dq = self._value(call.args[0])  # permute_dims(dequantize(W const)) -> dequantize(permute_dims(W))
            if compat.op_name(dq) == "relax.dequantize" and compat.is_constant(self._value(dq.args[0])):
                rank = len(compat.tensor_shape(dq.args[0]) or ())
                axes = _axes(call) or tuple(reversed(range(rank)))
                moved = self.builder_.emit(relax.op.permute_dims(self._value(dq.args[0]), list(axes)))
                axis = axes.index(int(dq.attrs.axis) % rank) if rank else -1
                return relax.op.dequantize(moved, dq.args[1], dq.args[2], axis=axis, out_dtype=str(dq.attrs.out_dtype))
        return call


def _shifted_zero_point(zp: Any) -> Optional[relax.Expr]:
    """The int8 zero point ``zp - 128`` of a constant uint8 zero point."""
    if not compat.is_constant(zp) or compat.constant_value(zp).dtype != np.uint8:
        return None
    return relax.const((compat.constant_value(zp).astype(np.int16) - 128).astype(np.int8))


@relax.expr_functor.mutator
class _ToInt8(relax.PyExprMutator):
    """The rewrite of ``to_int8`` (see the module docstring)."""

    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.int8: dict = {}  # uint8 var -> its int8 version
        self.source: dict = {}  # uint8 var made from an int8 tensor -> that int8 tensor

    def _as_int8(self, x: relax.Expr) -> relax.Expr:
        while isinstance(x, relax.Var):
            if x in self.source:
                return self.source[x]
            bound = self.lookup_binding(x)
            if not isinstance(bound, relax.Var):
                break
            x = bound
        if x not in self.int8:
            wide = self.builder_.emit(relax.op.subtract(relax.op.astype(x, "int16"), relax.const(np.int16(128))))
            self.int8[x] = self.builder_.emit(relax.op.astype(wide, "int8"))
        return self.int8[x]

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        name = compat.op_name(call)
        if name == "relax.dequantize" and compat.tensor_dtype(call.args[0]) == "uint8" and not compat.is_constant(call.args[0]):
            zp = _shifted_zero_point(call.args[2])
            if zp is not None:
                return relax.op.dequantize(self._as_int8(call.args[0]), call.args[1], zp, axis=int(call.attrs.axis),
                                           out_dtype=str(call.attrs.out_dtype))
        if name == "relax.quantize" and str(call.attrs.out_dtype) == "uint8":
            zp = _shifted_zero_point(call.args[2])
            if zp is not None:
                q = self.builder_.emit(relax.op.quantize(call.args[0], call.args[1], zp, axis=int(call.attrs.axis), out_dtype="int8"))
                wide = self.builder_.emit(relax.op.add(relax.op.astype(q, "int16"), relax.const(np.int16(128))))
                out = self.builder_.emit(relax.op.astype(wide, "uint8"))
                self.source[out] = q
                return out
        return call


def to_int8(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with its uint8 QDQ activations as int8 (module docstring); unchanged without uint8 ones."""
    gv = mod.get_global_var("main")
    new = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    new[gv] = _ToInt8(mod).visit_expr(mod[gv])
    return relax.transform.DeadCodeElimination(["main"])(new)


def to_nhwc(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with its NCHW QDQ conv and add chains in NHWC between int8 transposes (module docstring)."""
    gv = mod.get_global_var("main")
    new = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    new[gv] = _ToNHWC(mod).visit_expr(mod[gv])
    return relax.transform.DeadCodeElimination(["main"])(new)


def layout_transposes(mod: tvm.IRModule) -> list[tuple[str, tuple[int, ...], int]]:
    """The layout transposes ``to_nhwc`` left in ``main``: (direction, int8 tensor shape, bytes) each."""
    found: list[tuple[str, tuple[int, ...], int]] = []

    def visit(expr: Any) -> None:
        axes = _axes(expr) if isinstance(expr, relax.Call) else None
        if axes in (TO_NHWC, TO_NCHW) and compat.tensor_dtype(expr) == "int8":
            shape = compat.tensor_shape(expr.args[0]) or ()
            found.append(("NCHW->NHWC" if axes == TO_NHWC else "NHWC->NCHW", shape, int(np.prod(shape))))

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return found
