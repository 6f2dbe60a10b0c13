"""QOperator-format int8 ONNX test models (``QLinearConv``, ``QLinearMatMul``, com.microsoft ``QGemm``
and ``QLinearAdd``) built with ``onnx.helper``, random weights and random float scales.

The models of tests/test_bridge_onnx_qoperator.py and of the QOperator rows of
``python -m benchmarks.onnx_exactness``. Output scales follow the expected spread of each layer's
real output (accumulator standard deviation from the operand spreads) so that activations neither
vanish nor saturate.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


class QOperatorBuilder:
    """Builds an int8 (or uint8: ``uint8=True``) QOperator ONNX graph in NCHW, layer by layer.

    ``decimal``: every scale rounded to one significant decimal digit (0.05, 0.002, 0.1...), whose
    ratios put many real outputs on rounding ties, where onnxruntime's float32 requantization and
    the exact real value round differently; else random float scales."""

    def __init__(self, shape: tuple[int, ...], seed: int, uint8: bool = False, decimal: bool = False):
        from onnx import TensorProto, helper

        self.helper, self.TensorProto = helper, TensorProto
        self.rng = np.random.default_rng(seed)
        self.uint8, self.decimal = uint8, decimal
        self.nodes: list = []
        self.inits: list = []
        self.input_shape = shape
        self.count = 0
        self.tensor, self.shape = "x", shape
        self.scale, self.zp, self.spread = self._random_scale(0.05), int(self.rng.integers(-10, 11)), 74.0

    def _random_scale(self, value: float) -> float:
        return float(np.float32(self._decimal(value * self.rng.uniform(0.7, 1.4))))

    def _decimal(self, value):
        """``value`` (scalar or array) rounded to one significant decimal digit when ``decimal``."""
        if not self.decimal:
            return value
        power = 10.0 ** np.floor(np.log10(value))
        return np.round(value / power) * power

    def _const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"{base}{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _activation(self, scale: float, zp: int) -> tuple[str, str]:
        dtype, offset = (np.uint8, 128) if self.uint8 else (np.int8, 0)
        return self._const("s", np.array(scale, np.float32)), self._const("z", np.array(zp + offset, dtype))

    def _output(self, acc_std: float) -> tuple[float, int]:
        """Output scale / zero point for a real output of standard deviation ``acc_std``."""
        return self._random_scale(acc_std / 40.0), int(self.rng.integers(-20, 21))

    def conv(self, out_channels: int, kernel: int = 3, stride: int = 1, groups: int = 1, per_channel: bool = True) -> "QOperatorBuilder":
        c = self.shape[1]
        w = self.rng.integers(-127, 128, (out_channels, c // groups, kernel, kernel)).astype(np.int8)
        w_scale = (self.rng.uniform(0.002, 0.02, out_channels) if per_channel else np.full(1, self.rng.uniform(0.002, 0.02)))
        w_scale = self._decimal(w_scale).astype(np.float32)
        bias = self.rng.integers(-2000, 2000, out_channels).astype(np.int32)
        fan_in = c // groups * kernel * kernel
        acc_std = float(np.sqrt(fan_in) * self.spread * 73.0 * self.scale * float(np.median(w_scale)))
        y_scale, y_zp = self._output(acc_std)
        pad = kernel // 2
        out = f"conv{self.count}"
        xs, xz = self._activation(self.scale, self.zp)
        ys, yz = self._activation(y_scale, y_zp)
        inputs = [self.tensor, xs, xz, self._const("w", w), self._const("ws", w_scale if per_channel else w_scale.reshape(())),
                  self._const("wz", np.zeros(w_scale.shape if per_channel else (), np.int8)), ys, yz, self._const("b", bias)]
        self.nodes.append(self.helper.make_node("QLinearConv", inputs, [out], name=out, pads=[pad] * 4, strides=[stride] * 2,
                                                group=groups, kernel_shape=[kernel, kernel]))
        n, _, h, wd = self.shape
        size = [(h + 2 * pad - kernel) // stride + 1, (wd + 2 * pad - kernel) // stride + 1]
        self.tensor, self.shape, self.scale, self.zp, self.spread = out, (n, out_channels, *size), y_scale, y_zp, 40.0
        return self

    def add(self, other: tuple[str, float, int]) -> "QOperatorBuilder":
        """QLinearAdd of the current tensor and ``other`` = (tensor, scale, zero point) of the same shape."""
        tensor, scale, zp = other
        y_scale, y_zp = self._output(float(np.hypot(self.scale, scale) * self.spread))
        out = f"add{self.count}"
        a = self._activation(self.scale, self.zp)
        b = self._activation(scale, zp)
        y = self._activation(y_scale, y_zp)
        self.nodes.append(self.helper.make_node("QLinearAdd", [self.tensor, *a, tensor, *b, *y], [out], name=out, domain="com.microsoft"))
        self.tensor, self.scale, self.zp = out, y_scale, y_zp
        return self

    def checkpoint(self) -> tuple[str, float, int]:
        """(tensor, scale, zero point) of the current tensor, for a later ``add``."""
        return self.tensor, self.scale, self.zp

    def flatten(self) -> "QOperatorBuilder":
        out = f"flat{self.count}"
        self.nodes.append(self.helper.make_node("Flatten", [self.tensor], [out], name=out))
        self.tensor, self.shape = out, (self.shape[0], int(np.prod(self.shape[1:])))
        self.count += 1
        return self

    def gemm(self, out_features: int, matmul: bool = False) -> "QOperatorBuilder":
        """QGemm (transB, int32 bias) or QLinearMatMul (weights [in, out], no bias), per-column weight scales."""
        c = self.shape[1]
        w = self.rng.integers(-127, 128, (c, out_features) if matmul else (out_features, c)).astype(np.int8)
        w_scale = self._decimal(self.rng.uniform(0.002, 0.02, out_features)).astype(np.float32)
        acc_std = float(np.sqrt(c) * self.spread * 73.0 * self.scale * float(np.median(w_scale)))
        y_scale, y_zp = self._output(acc_std)
        out = f"fc{self.count}"
        a, y = self._activation(self.scale, self.zp), self._activation(y_scale, y_zp)
        wz = self._const("wz", np.zeros(out_features, np.int8))
        if matmul:
            inputs = [self.tensor, *a, self._const("w", w), self._const("ws", w_scale), wz, *y]
            self.nodes.append(self.helper.make_node("QLinearMatMul", inputs, [out], name=out))
        else:
            bias = self.rng.integers(-2000, 2000, out_features).astype(np.int32)
            self.nodes.append(self.helper.make_node("QGemm", [self.tensor, *a, self._const("w", w), self._const("ws", w_scale), wz,
                                                              self._const("b", bias), *y], [out], name=out, domain="com.microsoft",
                                                    transB=1))
        self.tensor, self.shape, self.scale, self.zp, self.spread = out, (self.shape[0], out_features), y_scale, y_zp, 40.0
        return self

    def model(self):
        """The ``onnx.ModelProto`` (opset 13 + com.microsoft 1; int8 or uint8 input and output)."""
        helper = self.helper
        dtype = self.TensorProto.UINT8 if self.uint8 else self.TensorProto.INT8
        graph = helper.make_graph(self.nodes, "qoperator", [helper.make_tensor_value_info("x", dtype, list(self.input_shape))],
                                  [helper.make_tensor_value_info(self.tensor, dtype, list(self.shape))], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 8
        return model

    def save(self, path) -> str:
        import onnx

        onnx.save(self.model(), str(path))
        return str(path)


def conv_residual(path, seed: int = 0, uint8: bool = False, decimal: bool = False, per_channel: bool = True) -> str:
    """QLinearConv 3x3 8->16, depthwise 3x3, 1x1 16->16, QLinearAdd of the last two: int8 [1, 16, 12, 12] out."""
    b = QOperatorBuilder((1, 8, 12, 12), seed, uint8, decimal)
    b.conv(16, per_channel=per_channel).conv(16, groups=16, per_channel=per_channel)
    skip = b.checkpoint()
    return b.conv(16, kernel=1, per_channel=per_channel).add(skip).save(path)


def dense_chain(path, seed: int = 0, uint8: bool = False, decimal: bool = False) -> str:
    """QLinearConv 3x3 stride 2 on [1, 4, 8, 8], Flatten, QGemm 64 -> 48, QLinearMatMul 48 -> 32."""
    return QOperatorBuilder((1, 4, 8, 8), seed, uint8, decimal).conv(4, stride=2).flatten().gemm(48).gemm(32, matmul=True).save(path)


def ort_session(path, optimized: bool = False, threads: Optional[int] = None):
    """onnxruntime on the CPU: graph optimisations off, or onnxruntime's default level (``optimized``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
