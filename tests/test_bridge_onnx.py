"""ONNX QDQ models through the TVM bridge: a conv with a residual add sharing its input's
DequantizeLinear (``y = Conv(x) + x``) imports, compiles and runs (it used to fail in ``tvm.compile``
with ``Var lvN is not defined``), and stays within 1 LSB of onnxruntime (graph optimisations off)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")
onnx = pytest.importorskip("onnx")

import archs  # noqa: E402
import tvm_bridge  # noqa: E402


def residual_conv_onnx(path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = {"W": rng.integers(-127, 128, (8, 8, 3, 3), dtype=np.int8), "B": rng.integers(-1000, 1000, (8,), dtype=np.int32),
              "sx": np.array(0.05, np.float32), "zx": np.array(3, np.int8), "sw": np.array(0.002, np.float32),
              "zw": np.array(0, np.int8), "sb": np.array(0.0001, np.float32), "zb": np.array(0, np.int32),
              "sc": np.array(0.08, np.float32), "zc": np.array(-2, np.int8), "sy": np.array(0.1, np.float32),
              "zy": np.array(1, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"]),
             helper.make_node("DequantizeLinear", ["W", "sw", "zw"], ["wf"]),
             helper.make_node("DequantizeLinear", ["B", "sb", "zb"], ["bf"]),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["cf"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["cf", "sc", "zc"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "sc", "zc"], ["cd"]),
             helper.make_node("Add", ["cd", "xf"], ["sf"]),  # xf is shared with the conv
             helper.make_node("QuantizeLinear", ["sf", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 8, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 8, 8, 8])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_shared_dequantize_is_split(tmp_path):
    mod = tvm_bridge.from_onnx(residual_conv_onnx(tmp_path / "res.onnx"))
    assert mod["main"].script().count("R.dequantize(x,") == 2


@pytest.mark.parametrize("target", ["gap9", "diana"])
def test_residual_conv_compiles_and_runs(tmp_path, target):
    ort = pytest.importorskip("onnxruntime")
    path = residual_conv_onnx(tmp_path / "res.onnx")
    compiled = tvm_bridge.compile(path, archs.load(target))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).integers(-128, 128, (1, 8, 8, 8), dtype=np.int8)
    y, expected = compiled.run(x), session.run(None, {"x": x})[0]
    # the add runs with TFLite's integer semantics, onnxruntime's QDQ graph in float: 1 LSB apart at most
    assert np.abs(y.astype(np.int32) - expected.astype(np.int32)).max() <= 1
    assert np.mean(y == expected) > 0.9
