"""Grouped convolutions are layers like any other: ``mapper.from_onnx`` reads an ONNX Conv with
1 < group < channels as a ``conv2d`` with a G loop, ``mapper.from_zigzag_workload`` reads ZigZag's
grouped layers (its ONNX parser's ``O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]``), and
both map. The G/K/C reading is checked against ONNX's own reference evaluator (onnx.reference)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import archs
import mapper
from archs import LoopDim
from archs.zigzag import zigzag_example
from mapper.zigzag_workload import to_zigzag_workload

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

D = LoopDim


def grouped_model(channels: int = 96, out_channels: int = 64, group: int = 2, size: int = 8, weight_in: int = 0):
    """x[1, channels, size, size] -> Conv 3x3 (group, pads 1) -> Relu -> Conv 1x1 (group 1)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((out_channels, weight_in or channels // group, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((8, out_channels, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="gconv", group=group, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="pw", kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, size, size])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), w


def conv_from_layer(layer: mapper.Layer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Convolution computed from our loop dims only: input [G, C, IY, IX], weights [G, K, C, FY, FX],
    output [G, K, OY, OX] (stride 1, symmetric padding)."""
    s = layer.sizes
    g, k, c, fy, fx, oy, ox = (s[d] for d in (D.G, D.K, D.C, D.FY, D.FX, D.OY, D.OX))
    top, _, left, _ = layer.padding
    xp = np.pad(x.reshape(g, c, *x.shape[-2:]), ((0, 0), (0, 0), (top, top), (left, left)))
    wg = w.reshape(g, k, c, fy, fx)
    out = np.zeros((g, k, oy, ox), np.float64)
    for i in range(fy):
        for j in range(fx):
            out += np.einsum("gkc,gcyx->gkyx", wg[:, :, :, i, j], xp[:, :, i:i + oy, j:j + ox])
    return out.reshape(1, g * k, oy, ox)


def test_onnx_grouped_conv_is_a_conv2d_with_groups():
    model, w = grouped_model()
    graph = mapper.from_onnx(model)
    assert list(graph.nodes) == ["gconv", "pw"] and list(graph.edges) == [("gconv", "pw")]
    layer = graph.nodes["gconv"]["layer"]
    assert layer.kind == "conv2d"
    assert {d: layer.sizes[d] for d in (D.G, D.K, D.C, D.OY, D.OX, D.FY, D.FX)} == {
        D.G: 2, D.K: 32, D.C: 48, D.OY: 8, D.OX: 8, D.FY: 3, D.FX: 3}
    assert layer.macs == 64 * 48 * 8 * 8 * 3 * 3  # per output channel: 96 / 2 input channels x 3 x 3, hand-derived
    # our G/K/C reading computes what ONNX computes (onnx.reference, first node only)
    x = np.random.default_rng(1).standard_normal((1, 96, 8, 8)).astype(np.float32)
    (expected,) = ReferenceEvaluator(helper.make_model(helper.make_graph(
        [model.graph.node[0]], "g1", list(model.graph.input), [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
        [model.graph.initializer[0]]), opset_imports=[helper.make_opsetid("", 13)])).run(None, {"x": x})
    np.testing.assert_allclose(conv_from_layer(layer, x, w), expected, rtol=1e-4, atol=1e-4)


def test_grouped_conv_maps():
    graph = mapper.from_onnx(grouped_model()[0])
    soc = archs.load("gap9")
    result = mapper.map_network(graph, soc)
    assert set(result.schedules) == {"gconv", "pw"}
    schedule = result.schedules["gconv"]
    assert schedule.latency_cycles > 0
    host = mapper.map_network(graph, soc, modules=[soc.host]).schedules["gconv"]
    assert host.latency_cycles >= schedule.latency_cycles


def test_inconsistent_group_is_a_clear_error():
    model, _ = grouped_model(channels=96, group=3, weight_in=48)  # 48 x 3 != 96 input channels
    with pytest.raises(mapper.LayerError, match=r"node 'gconv' \(Conv\): group 3 does not fit its 96 input channels"):
        mapper.from_onnx(model)


def test_zigzag_workload_grouped_layer(tmp_path):
    # the form ZigZag 3.9.1's ONNX parser writes for every Conv (conv_parser.py): G groups of K x C
    entry = {"id": 0, "name": "gconv", "operator_type": "Conv",
             "equation": "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]",
             "dimension_relations": ["ix=1*ox+1*fx", "iy=1*oy+1*fy"],
             "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"], "loop_sizes": [1, 32, 2, 8, 8, 48, 3, 3],
             "operand_precision": {"W": 8, "I": 8, "O_final": 8, "O": 16}, "operand_source": {"I": 0, "W": 0},
             "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [8, 8], "padding": [[1, 1], [1, 1]]}
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump([entry]))
    layer = mapper.from_zigzag_workload(path).nodes["gconv"]["layer"]
    onnx_layer = mapper.from_onnx(grouped_model()[0]).nodes["gconv"]["layer"]
    assert layer.kind == "conv2d" and layer.sizes == onnx_layer.sizes and layer.padding == onnx_layer.padding
    # and back: our writer emits the grouped equation, which reads back to the same layer
    again = mapper.from_zigzag_workload(to_zigzag_workload([layer])).nodes["gconv"]["layer"]
    assert again.sizes == layer.sizes and again.kind == "conv2d"
    soc = archs.from_zigzag(zigzag_example("tpu_like"), zigzag_example("tpu_like", "mapping"))
    assert mapper.search_module(layer, soc.modules["tpu_like"]).schedule is not None
