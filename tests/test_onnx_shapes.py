"""mapper.from_onnx: ONNX layer shapes as a layer graph (float and QDQ models), errors name the node."""

from __future__ import annotations

import numpy as np
import pytest

import archs
import mapper

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _model(qdq: bool, dynamic: bool = False, group: int = 8):
    """x[1,3,32,32] -> Conv 3x3/2 (pads 0,0,1,1) -> Relu -> depthwise 3x3 -> Conv 1x1 -> Add(residual) ->
    GlobalAveragePool -> Flatten -> Gemm(10); with ``qdq`` every activation goes through Q/DQ."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in (
        ("w0", (8, 3, 3, 3)), ("w1", (8, 8 // group, 3, 3)), ("w2", (8, 8, 1, 1)), ("fc", (10, 8)), ("fcb", (10,)))]
    inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = []

    def q(name: str) -> str:
        if not qdq:
            return name
        nodes.append(helper.make_node("QuantizeLinear", [name, "s", "z"], [name + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_q", "s", "z"], [name + "_dq"]))
        return name + "_dq"

    nodes.append(helper.make_node("Conv", [q("x"), "w0"], ["c0"], name="stem", strides=[2, 2], pads=[0, 0, 1, 1],
                                  kernel_shape=[3, 3]))
    nodes.append(helper.make_node("Relu", ["c0"], ["r0"]))
    nodes.append(helper.make_node("Conv", [q("r0"), "w1"], ["c1"], name="dw", group=group, pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", [q("c1"), "w2"], ["c2"], name="pw"))
    nodes.append(helper.make_node("Add", [q("c2"), q("r0")], ["a"], name="res"))
    nodes.append(helper.make_node("GlobalAveragePool", [q("a")], ["p"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["p"], ["f"]))
    nodes.append(helper.make_node("Gemm", [q("f"), "fc", "fcb"], ["y"], name="fc", transB=1))
    batch = "N" if dynamic else 1
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("qdq", [False, True])
def test_layers_shapes_and_edges(qdq, tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(_model(qdq), path)
    g = mapper.from_onnx(path)
    layers = {n: g.nodes[n]["layer"] for n in g}
    assert list(layers) == ["stem", "dw", "pw", "res", "gap", "fc"]
    stem = layers["stem"]
    assert (stem.kind, stem.padding, stem.stride, stem.sizes[mapper.workload.D.OY]) == ("conv2d", (0, 1, 0, 1), (2, 2), 16)
    assert layers["dw"].kind == "depthwise" and layers["dw"].padding == (1, 1, 1, 1)
    assert layers["res"].kind == "add" and layers["gap"].kind == "pool" and layers["fc"].kind == "dense"
    assert sum(la.macs for la in layers.values() if la.kind in ("conv2d", "depthwise", "dense")) == (
        16 * 16 * 8 * 3 * 9 + 16 * 16 * 8 * 9 + 16 * 16 * 8 * 8 + 8 * 10)
    assert set(g.edges) == {("stem", "dw"), ("dw", "pw"), ("pw", "res"), ("stem", "res"), ("res", "gap"), ("gap", "fc")}
    result = mapper.map_network(g, archs.load("gap9"))
    assert set(result.schedules) == set(layers)


def test_errors_name_the_node(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(mapper.LayerError, match="not an ONNX model"):
        mapper.from_onnx(bad)
    with pytest.raises(mapper.LayerError, match="'stem' .*dynamic shapes are not supported"):
        mapper.from_onnx(_model(False, dynamic=True))


def test_ops_the_mapper_does_not_model_are_listed_and_logged(caplog):
    scale = numpy_helper.from_array(np.full((1, 3, 4, 4), 2.0, np.float32), "k")
    nodes = [helper.make_node("Mul", ["x", "k"], ["m"], name="scale"),
             helper.make_node("MaxPool", ["m"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])], [scale])
    g = mapper.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert list(g) == ["pool"] and g.graph["skipped"] == ["scale (Mul)"]
    assert "scale (Mul) is not a layer the mapper models" in caplog.text


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "the file is empty"),
        (b"model", "not an ONNX model (ir_version 0, 0 opset imports, 0 graph nodes"),  # parses as an empty protobuf
        (b"hello world\nthis is text\n", "not an ONNX model (Error parsing message"),
        (np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes(), "not an ONNX model (Error parsing"),
    ],
    ids=["empty", "text-that-parses", "text", "random-bytes"],
)
def test_non_models_are_a_clear_error_naming_the_file(tmp_path, content, says):
    path = tmp_path / "input.onnx"
    path.write_bytes(content)
    with pytest.raises(mapper.LayerError) as info:
        mapper.from_onnx(path)
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value), str(info.value)
    with pytest.raises(mapper.LayerError, match="<onnx bytes>: "):
        mapper.from_onnx(content)


def test_other_bad_sources():
    with pytest.raises(mapper.LayerError, match=r"missing\.onnx: no such file"):
        mapper.from_onnx("missing.onnx")
    with pytest.raises(mapper.LayerError, match="expected an .onnx path, model bytes or an onnx.ModelProto, got int"):
        mapper.from_onnx(3)


def test_model_without_layers_is_an_error():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="act")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(mapper.LayerError, match=r"<onnx model>: no layer the mapper models \(allowed: Conv, .*\); "
                                                r"ops left out: none"):
        mapper.from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_missing_external_weight_data_is_not_needed(tmp_path):
    """ZigZag ships shape-only ONNX workloads whose weights are external data that is absent."""
    path = tmp_path / "net.onnx"
    onnx.save(_model(False), path, save_as_external_data=True, all_tensors_to_one_file=True, location="net.weights",
              size_threshold=0)
    (tmp_path / "net.weights").unlink()
    with pytest.raises(Exception):  # onnx itself cannot load it
        onnx.load(str(path))
    g = mapper.from_onnx(path)
    assert list(g) == ["stem", "dw", "pw", "res", "gap", "fc"]
    assert g.nodes["stem"]["layer"].sizes[mapper.workload.D.K] == 8 and g.nodes["fc"]["layer"].sizes[mapper.workload.D.K] == 10
