"""tvm_bridge import side: Relax import, layer recognition, QuantParams extraction, bad input.

The four MLPerf Tiny int8 models (benchmarks/models) give the golden MAC-layer counts and totals;
every recognised layer's numpy reference (tvm_bridge.quant.reference_layer) must equal LiteRT's
reference kernels bit for bit when fed LiteRT's own input tensor of that layer.
Small edited models (flatbuffer object API of ai-edge-litert) cover max/avg pooling with SAME
padding, an op the bridge does not know, float-only models and dynamic shapes.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("tflite")
pytest.importorskip("ai_edge_litert")

import tvm_bridge  # noqa: E402
from tvm_bridge.litert_ref import LiteRTReference  # noqa: E402
from tvm_bridge.patterns import crop_input  # noqa: E402
from tvm_bridge.quant import reference_layer  # noqa: E402
from tvm_bridge.relax_graph import layer_graph, total_macs  # noqa: E402
from tvm_bridge.relax_import import BridgeError, from_tflite, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "benchmarks" / "models"
#: model -> (file, MAC layers, total MACs, all recognised layers) of the real networks
GOLDEN = {
    "kws": ("kws_ref_model.tflite", 10, 2_656_768, 11),
    "vww": ("vww_96_int8.tflite", 28, 7_489_664, 29),
    "ic": ("pretrainedResnet_quant.tflite", 10, 12_501_632, 14),
    "ad": ("ad01_int8.tflite", 10, 264_192, 10),
}


def model_path(key: str) -> Path:
    return MODELS / GOLDEN[key][0]


# --------------------------------------------------------------------------- edited test models


def _schema():
    import ai_edge_litert.schema_py_generated as schema

    return schema


def _load(path: Path):
    return _schema().ModelT.InitFromPackedBuf(path.read_bytes(), 0)


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model, builtin: int, version: int = 1) -> int:
    S = _schema()
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = S.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _insert_after(model, op_index: int, builtin: int, options_type: int, options, name: str, scale=None, zp=None, twice=False):
    """Insert an op reading op ``op_index``'s output (a copy of that tensor, optionally requantized);
    later readers of that output read the new op's output."""
    S = _schema()
    graph = model.subgraphs[0]
    src = graph.operators[op_index].outputs[0]
    tensor = copy.deepcopy(graph.tensors[src])
    tensor.name = name.encode()
    model.buffers.append(S.BufferT())
    tensor.buffer = len(model.buffers) - 1
    if scale is not None:
        tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zp]
    graph.tensors.append(tensor)
    out = len(graph.tensors) - 1
    for op in graph.operators[op_index + 1:]:
        op.inputs = [out if i == src else i for i in op.inputs]
    graph.outputs = [out if i == src else i for i in graph.outputs]
    op = S.OperatorT()
    op.opcodeIndex = _opcode(model, builtin, 2)
    op.inputs, op.outputs = ([src, src] if twice else [src]), [out]
    op.builtinOptionsType, op.builtinOptions = options_type, options
    graph.operators.insert(op_index + 1, op)


def _pool_options(kernel: int, stride: int):
    S = _schema()
    options = S.Pool2DOptionsT()
    options.padding, options.strideH, options.strideW = S.Padding.SAME, stride, stride
    options.filterHeight = options.filterWidth = kernel
    return options


def extended_kws_bytes() -> bytes:
    """KWS with an int8 MAX_POOL_2D 3x3/1 SAME after conv 0, an AVERAGE_POOL_2D 3x3/1 SAME after the
    first depthwise, and a MUL (no layer pattern: stays on the host) after the next conv."""
    S = _schema()
    model = _load(model_path("kws"))
    graph = model.subgraphs[0]
    _insert_after(model, 0, S.BuiltinOperator.MAX_POOL_2D, S.BuiltinOptions.Pool2DOptions, _pool_options(3, 1), "max_pool_out")
    _insert_after(model, 2, S.BuiltinOperator.AVERAGE_POOL_2D, S.BuiltinOptions.Pool2DOptions, _pool_options(3, 1), "avg_pool_out")
    src = graph.tensors[graph.operators[4].outputs[0]]
    _insert_after(model, 4, S.BuiltinOperator.MUL, S.BuiltinOptions.MulOptions, S.MulOptionsT(), "mul_out",
                  scale=float(src.quantization.scale[0]) * 8, zp=-128, twice=True)
    return _pack(model)


def dynamic_shape_bytes() -> bytes:
    model = _load(model_path("ad"))
    graph = model.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    tensor.shapeSignature = [1] + [-1] * (len(tensor.shape) - 1)
    return _pack(model)


def float_model_bytes() -> bytes:
    """A float32 FULLY_CONNECTED model (4 -> 3)."""
    S = _schema()
    model = S.ModelT()
    model.version, model.operatorCodes, model.buffers = 3, [], [S.BufferT()]
    graph = S.SubGraphT()
    graph.tensors, graph.operators, graph.name = [], [], b"main"

    def tensor(name, shape, data=None):
        t = S.TensorT()
        t.name, t.shape, t.type = name.encode(), list(shape), S.TensorType.FLOAT32
        buffer = S.BufferT()
        if data is not None:
            buffer.data = np.asarray(data, np.float32).tobytes()
        model.buffers.append(buffer)
        t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    x, w = tensor("x", (1, 4)), tensor("w", (3, 4), np.arange(12).reshape(3, 4) / 10)
    b, y = tensor("b", (3,), np.zeros(3)), tensor("y", (1, 3))
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = _opcode(model, S.BuiltinOperator.FULLY_CONNECTED), [x, w, b], [y]
    op.builtinOptionsType, op.builtinOptions = S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT()
    graph.operators.append(op)
    graph.inputs, graph.outputs = [x], [y]
    model.subgraphs = [graph]
    return _pack(model)


@pytest.fixture(scope="module")
def extended_kws(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "kws_extended.tflite"
    path.write_bytes(extended_kws_bytes())
    return path


# --------------------------------------------------------------------------- golden counts


@pytest.fixture(scope="module")
def graphs() -> dict:
    return {key: layer_graph(from_tflite(model_path(key)), name=key) for key in GOLDEN}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_mac_layers_and_totals_are_the_real_networks(graphs, key):
    _, n_mac, macs, n_layers = GOLDEN[key]
    graph = graphs[key]
    assert total_macs(graph) == (n_mac, macs)
    assert len(graph) == n_layers
    for name in graph.nodes:
        layer = graph.nodes[name]["layer"]
        assert layer.name == name and name == f"{layer.kind}_{name.rsplit('_', 1)[1]}"
        assert layer.quant is not None and layer.quant.op in ("conv2d", "depthwise", "dense", "add", "avg_pool", "max_pool")


def test_layer_names_are_deterministic(graphs):
    again = layer_graph(from_tflite(model_path("ic")))
    assert list(again.nodes) == list(graphs["ic"].nodes)
    assert sorted(again.edges) == sorted(graphs["ic"].edges)


def test_resnet_wiring_and_geometry(graphs):
    graph = graphs["ic"]
    # op 3 ADD reads conv 0 (left) and conv 2 (right); the 1x1/2 shortcut conv 6 reads add 3
    assert graph.edges["conv2d_0", "add_3"]["input"] == 0 and graph.edges["conv2d_2", "add_3"]["input"] == 1
    assert set(graph.predecessors("conv2d_6")) == {"add_3"} and set(graph.successors("add_3")) == {"conv2d_4", "conv2d_6"}
    conv4, conv6 = graph.nodes["conv2d_4"]["layer"], graph.nodes["conv2d_6"]["layer"]
    assert conv4.padding == (0, 1, 0, 1) and conv4.stride == (2, 2)      # TF SAME, stride 2
    assert conv6.input_size == (31, 31) and conv6.quant.extra["input_shape"] == (1, 32, 32, 16)  # last row/col unread
    assert graph.graph["outputs"] == ["dense_13"]
    host_ops = [h.op for h in graph.graph["host_ops"]]  # reshape, then SOFTMAX as integer Relax (table lookups)
    assert host_ops[0] == "relax.reshape" and "relax.take" in host_ops and not {"relax.dequantize", "relax.nn.softmax"} & set(host_ops)
    kws0 = graphs["kws"].nodes["conv2d_0"]["layer"]
    assert kws0.padding == (4, 5, 1, 1) and kws0.input_size == (49, 10)


def test_quant_params_of_known_layers(graphs):
    ad0 = graphs["ad"].nodes["dense_0"]["layer"].quant
    assert ad0.input_zp == 89 and ad0.act_min == -128 and ad0.weights.shape == (128, 640) and ad0.bias.dtype == np.int32
    assert graphs["ad"].nodes["dense_9"]["layer"].quant.output_zp == 96
    dw = graphs["kws"].nodes["depthwise_1"]["layer"].quant
    assert dw.weights.shape == (3, 3, 64) and dw.multiplier.shape == (64,) and len(set(dw.multiplier.tolist())) > 1  # per-channel
    add = graphs["ic"].nodes["add_3"]["layer"].quant
    assert add.left_shift == 20 and add.input2_zp == 4 and add.output_zp == -128


# --------------------------------------------------------------------------- bit-exact vs LiteRT


def _compare_layers(path: Path, graph, inputs: int, seed: int = 0) -> dict[str, int]:
    """Feed every layer LiteRT's own input tensor(s); number of differing output elements per layer."""
    ref = LiteRTReference(path)
    mapping = ref.layer_tensors(graph)
    assert set(mapping) == set(graph.nodes)
    rng = np.random.default_rng(seed)
    diffs = dict.fromkeys(mapping, 0)
    for _ in range(inputs):
        tensors = ref.run(ref.random_input(rng))
        for name, where in mapping.items():
            layer = graph.nodes[name]["layer"]
            y = reference_layer(layer, *(crop_input(layer, tensors[t]) for t in where.inputs))
            diffs[name] += int(np.count_nonzero(y != tensors[where.output].reshape(y.shape)))
    return diffs


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_reference_layers_bit_exact_with_litert(graphs, key):
    diffs = _compare_layers(model_path(key), graphs[key], inputs=3 if key != "ad" else 20)
    assert diffs == dict.fromkeys(diffs, 0)


def test_pools_with_same_padding_and_unknown_op(extended_kws, caplog):
    with caplog.at_level(logging.INFO, logger="tvm_bridge"):
        graph = layer_graph(from_tflite(extended_kws))
    assert [graph.nodes[n]["layer"].quant.op for n in ("pool_1", "pool_3", "pool_11")] == ["max_pool", "avg_pool", "avg_pool"]
    assert graph.nodes["pool_1"]["layer"].padding == (1, 1, 1, 1)
    assert total_macs(graph) == (10, 2_656_768)
    assert "relax.multiply" in [h.op for h in graph.graph["host_ops"]]
    # MUL is imported as exact integer Relax: its Relax ops are listed at INFO, no warning names a Relax op
    assert any("relax.multiply" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert not any("relax." in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)
    # the layer after the MUL still gets its edge through the host op
    assert ("conv2d_4", "depthwise_5") in graph.edges
    diffs = _compare_layers(extended_kws, graph, inputs=3)
    assert diffs == dict.fromkeys(diffs, 0)


# --------------------------------------------------------------------------- bad input


def test_not_a_model_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model at all")
    with pytest.raises(BridgeError, match="not a TFLite .* or ONNX"):
        load_model(text)
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(BridgeError, match="not a TFLite model"):
        from_tflite(fake)
    with pytest.raises(BridgeError, match="no such model file"):
        from_tflite(tmp_path / "missing.tflite")
    with pytest.raises(BridgeError, match="cannot import a int"):
        load_model(3)


def test_float_only_model():
    with pytest.raises(BridgeError, match="float-only model"):
        from_tflite(float_model_bytes())


def test_dynamic_shapes():
    with pytest.raises(BridgeError, match=r"dynamic shapes .*input_1"):
        from_tflite(dynamic_shape_bytes())


def test_relax_module_taken_as_is_and_dynamic_relax_rejected():
    from tvm import relax, tirx

    mod = from_tflite(model_path("ad"))
    assert load_model(mod) is mod
    n = tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType((n, 4), "int8"))
    func = relax.Function([x], relax.SeqExpr([], x), relax.TensorType((n, 4), "int8")).with_attr("global_symbol", "main")
    import tvm

    with pytest.raises(BridgeError, match="dynamic shape"):
        load_model(tvm.IRModule({"main": func}))


def qdq_dense_onnx(path: Path) -> Path:
    """A QDQ ONNX model: int8 [1, 16] -> DequantizeLinear -> MatMul(DQ(W)) + DQ(bias) -> QuantizeLinear."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = {"W": rng.integers(-127, 128, (16, 8), dtype=np.int8), "B": rng.integers(-1000, 1000, (8,), dtype=np.int32),
              "sx": np.array(0.05, np.float32), "zx": np.array(3, np.int8), "sw": np.array(0.01, np.float32),
              "zw": np.array(0, np.int8), "sb": np.array(0.0005, np.float32), "zb": np.array(0, np.int32),
              "sy": np.array(0.1, np.float32), "zy": np.array(-5, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"]),
             helper.make_node("DequantizeLinear", ["W", "sw", "zw"], ["wf"]),
             helper.make_node("DequantizeLinear", ["B", "sb", "zb"], ["bf"]),
             helper.make_node("MatMul", ["xf", "wf"], ["mm"]),
             helper.make_node("Add", ["mm", "bf"], ["acc"]),
             helper.make_node("QuantizeLinear", ["acc", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_fc", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 8])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_onnx_import(tmp_path):
    try:
        import onnx  # noqa: F401
    except ImportError:  # the bridge does not depend on onnx: a clear error names the package
        with pytest.raises(BridgeError, match="needs the 'onnx' package"):
            tvm_bridge.from_onnx(tmp_path / "m.onnx")
        return
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"garbage")
    with pytest.raises(BridgeError, match="not an ONNX model"):
        tvm_bridge.from_onnx(garbage)
    path = qdq_dense_onnx(tmp_path / "fc.onnx")
    graph = layer_graph(load_model(path))
    layer = graph.nodes["dense_0"]["layer"]
    assert layer.quant.weights.shape == (8, 16) and layer.quant.input_zp == 3 and layer.quant.output_zp == -5


def test_quant_imports_without_tvm():
    code = "import sys, tvm_bridge, tvm_bridge.quant; assert 'tvm' not in sys.modules, 'tvm imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
