"""Workload: layer builders, derived geometry, bad layers, JSON layer graphs."""

from __future__ import annotations

import json

import pytest

import mapper
from archs import LoopDim as D
from archs import Operand


def test_conv_same_stride2_pads_like_tflite():
    layer = mapper.conv2d("c", input_size=(32, 32), in_channels=16, out_channels=32, kernel=3, stride=2)
    assert (layer.sizes[D.OY], layer.sizes[D.OX]) == (16, 16)
    assert layer.padding == (0, 1, 0, 1)  # TF SAME: 0 top/left, 1 bottom/right
    assert layer.input_size == (32, 32)
    assert layer.macs == 16 * 16 * 32 * 16 * 9


def test_valid_padding_reads_only_what_windows_cover():
    layer = mapper.conv2d("c", input_size=(32, 32), in_channels=1, out_channels=1, kernel=3, stride=2, padding="valid")
    assert layer.sizes[D.OY] == 15 and layer.input_size == (31, 31)  # the last row is never read


def test_depthwise_add_pool_keep_channels_in_g():
    dw = mapper.depthwise("dw", input_size=(8, 8), channels=24, kernel=3)
    assert (dw.sizes[D.G], dw.sizes[D.K], dw.sizes[D.C]) == (24, 1, 1)
    assert dw.tensor_elements(Operand.W) == 24 * 9
    add = mapper.add("a", channels=8, size=(4, 4))
    assert add.tensor_elements(Operand.W) == add.tensor_elements(Operand.O) == 128
    pool = mapper.pool("p", input_size=(8, 8), channels=4, kernel=8)
    assert not pool.has_operand(Operand.W) and pool.sizes[D.OY] == 1


def test_relevance_sets_are_disjoint():
    """The reduced temporal space relies on each loop dim being irrelevant to at most one operand."""
    may_vary = {  # dims a layer of each kind may have > 1 (the others are validated to be 1)
        "conv2d": set(D), "depthwise": set(D) - {D.C}, "dense": {D.B, D.K, D.C},
        "add": {D.B, D.OY, D.OX, D.G}, "pool": {D.B, D.OY, D.OX, D.FY, D.FX, D.G},
    }
    for kind, dims in may_vary.items():
        irrelevant = [dims - mapper.relevant_dims(kind, o) for o in Operand if mapper.relevant_dims(kind, o)]
        for i, a in enumerate(irrelevant):
            for b in irrelevant[i + 1:]:
                assert not a & b, kind


@pytest.mark.parametrize(
    "build, says",
    [
        (lambda: mapper.conv2d("x", input_size=(2, 2), in_channels=1, out_channels=1, kernel=5, padding="valid"),
         "layer 'x': input (2, 2) is smaller than the kernel"),
        (lambda: mapper.conv2d("x", input_size=(8, 8), in_channels=3, out_channels=4, groups=2), "layer 'x': groups"),
        (lambda: mapper.Layer("x", "softmax", {D.K: 2}), "layer 'x': kind: unknown kind 'softmax'; allowed: conv2d"),
        (lambda: mapper.Layer("x", "conv2d", {D.K: 0}), "layer 'x': sizes.K: must be >= 1"),
        (lambda: mapper.Layer("x", "conv2d", {D.FY: 3}, padding=(3, 0, 0, 0)), "smaller than the kernel extent"),
        (lambda: mapper.Layer("x", "dense", {D.K: 2, D.OY: 2}), "dense layer has OY = OX = 1"),
        (lambda: mapper.Layer("x", "conv2d", {D.K: 2}, precision=mapper.Precision(input=0)), "precision.input"),
        (lambda: mapper.conv2d("x", input_size=(4, 4), in_channels=2, out_channels=2,
                               precision=mapper.Precision(output=16, accumulator=8)),
         "layer 'x': precision.accumulator: 8 bits is below the output precision 16 bits"),
        (lambda: mapper.Layer.from_dict({"name": "x", "kind": "dense", "sizes": {"K": 2, "C": 2},
                                         "precision": {"output": 32, "accumulator": 16}}),
         "layer 'x': precision.accumulator: 16 bits is below the output precision 32 bits"),
    ],
)
def test_bad_layers_name_layer_and_field(build, says):
    with pytest.raises(mapper.LayerError, match=None) as info:
        build()
    assert says in str(info.value)


def test_accumulator_at_output_precision_is_accepted():
    layer = mapper.dense("fc", in_features=4, out_features=2, precision=mapper.Precision(8, 8, 32, 32))
    assert layer.precision.accumulator == layer.precision.output == 32


def _graph():
    a = mapper.conv2d("a", input_size=(8, 8), in_channels=3, out_channels=8)
    b = mapper.conv2d("b", input_size=(8, 8), in_channels=8, out_channels=8)
    c = mapper.add("c", channels=8, size=(8, 8))
    return mapper.layer_graph([a, b, c], [("a", "b", "t0"), ("a", "c", "t0"), ("b", "c", "t1")], name="res")


def test_graph_json_round_trip(tmp_path):
    graph = _graph()
    path = tmp_path / "g.json"
    mapper.save_graph(graph, path)
    loaded = mapper.load_graph(path)
    assert mapper.graph_to_dict(loaded) == mapper.graph_to_dict(graph)
    assert [loaded.nodes[n]["layer"] for n in loaded] == [graph.nodes[n]["layer"] for n in graph]
    assert mapper.ordered_layers(loaded) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "mutate, says",
    [
        (lambda d: d.update(format="onnx"), "not a layer graph"),
        (lambda d: d.update(version=7), "version 7 unsupported"),
        (lambda d: d["layers"][0].update(kind="lstm"), "layer 'a': kind: unknown kind 'lstm'"),
        (lambda d: d["layers"][0]["sizes"].update(Q=3), "sizes.Q: unknown loop dim"),
        (lambda d: d["edges"].append({"src": "a", "dst": "zz"}), "names unknown layer 'zz'"),
        (lambda d: d["edges"].append({"src": "c", "dst": "a"}), "has a cycle"),
    ],
)
def test_bad_graph_files(tmp_path, mutate, says):
    data = mapper.graph_to_dict(_graph())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(mapper.GraphError) as info:
        mapper.load_graph(path)
    assert str(path) in str(info.value) and says in str(info.value)


def test_graph_without_edges_stays_edgeless(tmp_path):
    data = mapper.graph_to_dict(_graph())
    data["edges"] = []
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    assert mapper.load_graph(path).number_of_edges() == 0
    chained = mapper.layer_graph([_graph().nodes[n]["layer"] for n in ("a", "b")])
    assert list(chained.edges) == [("a", "b")]
