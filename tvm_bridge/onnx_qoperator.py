"""Rewrites of a QOperator-format ONNX model into QDQ form before TVM's ONNX frontend reads it.

``onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QOperator)`` emits
``QLinearConv``, ``QLinearMatMul`` and the com.microsoft ``QGemm`` and ``QLinearAdd``, which TVM
0.27's frontend lacks. ``rewrite_qoperator`` replaces each by the equivalent
``DequantizeLinear -> Conv / MatMul / Gemm / Add -> QuantizeLinear`` chain (an int32 bias becomes a
DequantizeLinear of scale ``float32(x_scale * w_scale)``, i.e. accumulator units), which the bridge
already recognises. The rewritten model computes the same real values; what differs is how
onnxruntime rounds them: its QLinear kernels requantize in float32 (``tvm_bridge.quant``,
``semantics = "onnx_qlinear"``), which ``from_onnx`` records on the module.

``ConvInteger`` / ``MatMulInteger`` / ``DynamicQuantizeLinear`` (``quantize_dynamic`` models: activation
scales computed at run time) and QLinear ops without a rewrite raise ``QOperatorError`` naming the op.
Only the TVM import sees the rewritten model; onnxruntime (the reference) runs the original.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REWRITTEN_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd")
# quantize_dynamic's ops (the com.microsoft ones appear after onnxruntime's own graph optimisations)
DYNAMIC_OPS = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
               "DynamicQuantizeLSTM")
_QUANTIZED_CONTRIB_OPS = ("QGemm", "QAttention", "QEmbedLayerNormalization", "QuantizeWithOrder", "DequantizeWithOrder")
_QDQ_CONSUMERS = ("Conv", "Gemm", "MatMul", "Add")  # float ops of a QDQ layer


class QOperatorError(ValueError):
    """A QOperator-format op the rewrite cannot express (the message names the op and the reason)."""


@dataclass
class QOperatorRewrite:
    """The rewritten model (the input itself when it has no QOperator op) and what was rewritten."""

    model: Any  # onnx.ModelProto
    ops: Counter = field(default_factory=Counter)  # QOperator op type -> count
    activation_dtype: str = ""  # "int8" | "uint8": the QLinear ops' activation type ("" if none)


def _is_quantized_op(node: Any) -> bool:
    """A QOperator-format op: ONNX/com.microsoft ``QLinear*`` and onnxruntime's quantized contrib ops."""
    return node.op_type.startswith(("QLinear", "QOrdered")) or (node.domain == "com.microsoft" and node.op_type in _QUANTIZED_CONTRIB_OPS)


def check_dynamic(model: Any) -> None:
    """QOperatorError naming the first run-time-quantized op (``quantize_dynamic`` models)."""
    for node in model.graph.node:
        if node.op_type in DYNAMIC_OPS:
            raise QOperatorError(
                f"ONNX {node.op_type} (node {node.name!r}) quantizes activations at run time (a quantize_dynamic model); "
                "the bridge runs static int8 pipelines only: quantize the model statically "
                "(onnxruntime.quantization.quantize_static, QDQ or QOperator format)")


def rewrite_qoperator(model: Any) -> QOperatorRewrite:
    """``model`` (an ``onnx.ModelProto``) with every QLinearConv / QLinearMatMul / QGemm / QLinearAdd
    replaced by its QDQ chain. Raises QOperatorError for dynamic quantization ops, other QLinear ops,
    a model mixing QOperator and QDQ layers, or int8 and uint8 QLinear activations."""
    check_dynamic(model)
    nodes = list(model.graph.node)
    others = sorted({n.op_type for n in nodes if _is_quantized_op(n) and n.op_type not in REWRITTEN_OPS})
    if others:
        raise QOperatorError(f"ONNX {', '.join(others)} (QOperator format) is not supported; the bridge imports "
                             f"{', '.join(REWRITTEN_OPS)} and QDQ models (quantize_static with QuantFormat.QDQ)")
    if not any(n.op_type in REWRITTEN_OPS for n in nodes):
        return QOperatorRewrite(model)
    import onnx

    produced_by_dq = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    mixed = [n for n in nodes if n.op_type in _QDQ_CONSUMERS and any(i in produced_by_dq for i in n.input)]
    if mixed:
        raise QOperatorError(f"the model mixes QOperator ops and QDQ layers (ONNX {mixed[0].op_type} {mixed[0].name!r} reads a "
                             "DequantizeLinear); quantize it in one format")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    rewriter = _Rewriter(out)
    new_nodes = []
    for node in nodes:
        new_nodes += rewriter.rewrite(node) if node.op_type in REWRITTEN_OPS else [node]
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    out.graph.initializer.extend(rewriter.new_initializers)
    for opset in out.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version < 13:
            opset.version = 13  # per-axis DequantizeLinear
    dtypes = set(rewriter.activation_dtypes)
    if len(dtypes) > 1:
        raise QOperatorError(f"QLinear ops with both int8 and uint8 activations ({sorted(dtypes)}); quantize with one activation type")
    return QOperatorRewrite(out, rewriter.counts, dtypes.pop())


class _Rewriter:
    """Builds the QDQ nodes of each QOperator node (constants read from the initializers)."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.new_initializers: list = []
        self.counts: Counter = Counter()
        self.activation_dtypes: list[str] = []
        self.serial = 0

    def _name(self, node: Any, what: str) -> str:
        self.serial += 1
        return f"{node.name or node.op_type}__{what}_{self.serial}"

    def _constant(self, node: Any, name: str, what: str) -> np.ndarray:
        if name not in self.values:
            raise QOperatorError(f"ONNX {node.op_type} {node.name!r}: {what} ({name!r}) is not a constant initializer")
        return self.values[name]

    def _dq(self, node: Any, x: str, scale: str, zero: str, what: str, axis: int | None = None) -> tuple[list, str]:
        from onnx import helper

        out = self._name(node, what)
        inputs = [x, scale] + ([zero] if zero else [])
        kwargs = {"axis": axis} if axis is not None and self._constant(node, scale, f"{what} scale").size > 1 else {}
        return [helper.make_node("DequantizeLinear", inputs, [out], name=out, **kwargs)], out

    def _activation(self, node: Any, zero: str) -> None:
        self.activation_dtypes.append(str(self._constant(node, zero, "zero point").dtype) if zero else "uint8")

    def _bias(self, node: Any, bias: str, x_scale: str, w_scale: str) -> tuple[list, str]:
        """DequantizeLinear of an int32 bias in accumulator units: scale float32(x_scale * w_scale[k])."""
        from onnx import helper, numpy_helper

        values = self._constant(node, bias, "bias")
        if values.dtype != np.int32:
            raise QOperatorError(f"ONNX {node.op_type} {node.name!r}: bias has dtype {values.dtype}, expected int32")
        xs = np.float32(self._constant(node, x_scale, "input scale").reshape(()))
        ws = self._constant(node, w_scale, "weight scale").astype(np.float32).reshape(-1)
        scale = (xs * ws).astype(np.float32)
        names = self._name(node, "bias_scale"), self._name(node, "bias_zero_point")
        self.new_initializers += [numpy_helper.from_array(scale if scale.size > 1 else scale.reshape(()), names[0]),
                                  numpy_helper.from_array(np.zeros(scale.shape if scale.size > 1 else (), np.int32), names[1])]
        out = self._name(node, "bias")
        return [helper.make_node("DequantizeLinear", [bias, names[0], names[1]], [out], name=out,
                                 **({"axis": 0} if scale.size > 1 else {}))], out

    def rewrite(self, node: Any) -> list:
        from onnx import helper

        self.counts[node.op_type] += 1
        ins = list(node.input) + [""] * 9
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "QLinearAdd":  # A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp
            self._activation(node, ins[2])
            na, a = self._dq(node, ins[0], ins[1], ins[2], "a")
            nb, b = self._dq(node, ins[3], ins[4], ins[5], "b")
            real, y_scale, y_zero = self._name(node, "sum"), ins[6], ins[7]
            body = na + nb + [helper.make_node("Add", [a, b], [real], name=real)]
        elif node.op_type in ("QLinearConv", "QLinearMatMul"):  # x, xs, xz, w, ws, wz, ys, yz, [B]
            self._activation(node, ins[2])
            nx, x = self._dq(node, ins[0], ins[1], ins[2], "x")
            is_conv = node.op_type == "QLinearConv"
            nw, w = self._dq(node, ins[3], ins[4], ins[5], "w", axis=0 if is_conv else 1)
            body, operands = nx + nw, [x, w]
            if is_conv and ins[8]:
                nb, b = self._bias(node, ins[8], ins[1], ins[4])
                body, operands = body + nb, operands + [b]
            real, y_scale, y_zero = self._name(node, "real"), ins[6], ins[7]
            body.append(helper.make_node("Conv" if is_conv else "MatMul", operands, [real], name=real,
                                         **(attrs if is_conv else {})))
        else:  # QGemm: A, a_scale, a_zp, B, b_scale, b_zp, [C], [y_scale], [y_zp]
            if not ins[7]:
                raise QOperatorError(f"ONNX QGemm {node.name!r} has a float output (no y_scale); only int8 outputs are supported")
            if float(attrs.get("alpha", 1.0)) != 1.0 or int(attrs.get("transA", 0)):
                raise QOperatorError(f"ONNX QGemm {node.name!r}: alpha {attrs.get('alpha', 1.0)} / transA {attrs.get('transA', 0)}; "
                                     "only alpha 1, transA 0 are supported")
            self._activation(node, ins[2])
            na, a = self._dq(node, ins[0], ins[1], ins[2], "a")
            nw, w = self._dq(node, ins[3], ins[4], ins[5], "b", axis=0 if int(attrs.get("transB", 0)) else 1)
            body, operands = na + nw, [a, w]
            if ins[6]:
                nb, b = self._bias(node, ins[6], ins[1], ins[4])
                body, operands = body + nb, operands + [b]
            real, y_scale, y_zero = self._name(node, "real"), ins[7], ins[8]
            body.append(helper.make_node("Gemm", operands, [real], name=real, transB=int(attrs.get("transB", 0))))
        quantize_inputs = [real, y_scale] + ([y_zero] if y_zero else [])
        return body + [helper.make_node("QuantizeLinear", quantize_inputs, [node.output[0]], name=self._name(node, "q"))]
