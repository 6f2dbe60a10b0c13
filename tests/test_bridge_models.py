"""Real int8 TFLite models (tests/data, made by tests/data/make_models.py) through the TVM bridge.

Each one-pattern model is compiled once per target (gap9, diana) and its output compared with
LiteRT's reference kernels (BUILTIN_REF) on random inputs: the maximum absolute difference must
be 0. LiteRT is the independent oracle; the bridge never calls it to compute results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("tflite")
pytest.importorskip("ai_edge_litert")

import archs  # noqa: E402
import tvm_bridge  # noqa: E402
from tvm_bridge import int8_ops  # noqa: E402

DATA = Path(__file__).parent / "data"
FULL_MODELS = ("mobilenet_v2", "mobilenet_v3s")
ABORTING = "softmax_tiny_scale"
MODELS = sorted(p.stem for p in DATA.glob("*.tflite") if p.stem not in FULL_MODELS + (ABORTING,))
TARGETS = ("gap9", "diana")
INPUTS = 3

_compiled: dict = {}
_references: dict = {}


def _compiled_model(model: str, target: str):
    key = (model, target)
    if key not in _compiled:
        _compiled[key] = tvm_bridge.compile(DATA / f"{model}.tflite", archs.load(target))
    return _compiled[key]


def _reference(model: str):
    if model not in _references:
        _references[model] = tvm_bridge.LiteRTReference(DATA / f"{model}.tflite")
    return _references[model]


def _max_diff(model: str, target: str, inputs: int = INPUTS) -> int:
    compiled, ref = _compiled_model(model, target), _reference(model)
    rng = np.random.default_rng(1234)
    worst = 0
    for _ in range(inputs):
        x = ref.random_input(rng)
        y, expected = compiled.run(x), ref.invoke(x)
        worst = max(worst, int(np.abs(y.astype(np.int32) - expected.astype(np.int32).reshape(y.shape)).max()))
    return worst


@pytest.fixture(scope="module", autouse=True)
def _release():
    yield
    for ref in _references.values():
        ref.close()
    _compiled.clear()
    _references.clear()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", MODELS)
def test_model_bit_exact_with_litert(model, target):
    assert _max_diff(model, target) == 0


@pytest.mark.parametrize("model, offloaded", [("transpose_conv", 1), ("pad_conv", 1), ("dyn_flatten", 2),
                                               ("resize_nearest", 2), ("conv1d", 1),
                                               ("space_to_batch", 1)])
def test_rewritten_ops_reach_the_accelerator(model, offloaded):
    """TRANSPOSE_CONV becomes an offloaded convolution; PAD, RESHAPE with a dynamic-batch shape chain,
    RESIZE_NEAREST_NEIGHBOR and Conv1D's RESHAPEs leave the convolutions around them offloadable."""
    compiled = _compiled_model(model, "gap9")
    assert sum(compiled.offloaded.values()) == offloaded


def test_dynamic_batch_shape_chain_is_resolved():
    mod = tvm_bridge.from_tflite(DATA / "dyn_flatten.tflite")
    text = mod.script()
    assert "shape_of" not in text and "strided_slice" not in text
    assert [int(d) for d in mod["main"].params[0].ty.shape.values] == [1, 8, 8, 4]


def test_nearest_indices_by_hand():
    # 8 -> 12 rows, asymmetric: floor(y * 8 / 12)
    assert int8_ops.nearest_indices(8, 12, False, False).tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7]
    # half-pixel centers: floor((y + 0.5) * 8 / 12)
    assert int8_ops.nearest_indices(8, 12, False, True).tolist() == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7]
    # align corners: round(y * 7 / 11)
    assert int8_ops.nearest_indices(8, 12, True, False).tolist() == [0, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 7]


def test_leaky_relu_lut_by_hand():
    # scales 1 -> 1, alpha 0.25: identity above the zero point, x/4 (rounded half away from zero) below
    lut = int8_ops.leaky_relu_lut(1.0, 0, 1.0, 0, 0.25)
    assert int8_ops.apply_lut(lut, np.array([5, 0, -4, -6, -128])).tolist() == [5, 0, -1, -2, -32]


def test_mean_multiplier_by_hand():
    # in_scale == out_scale: multiplier 2**30, shift 1; over 144 = 2**7 * 1.125 elements the folded
    # multiplier is (2**30 << 7) // 144 and the shift 1 - 7
    assert int8_ops.mean_multiplier(0.5, 0.5, 144) == ((1 << 37) // 144, -6)


def test_pad_with_different_quantization_names_the_tflite_op(tmp_path):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray((DATA / "pad_conv.tflite").read_bytes()), 0)
    graph = model.subgraphs[0]
    pad = next(op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.PAD)
    out = graph.tensors[int(pad.outputs[0])]
    out.quantization.zeroPoint = np.asarray(out.quantization.zeroPoint) + 3
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "bad_pad.tflite"
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(tvm_bridge.BridgeError, match="TFLite PAD"):
        tvm_bridge.from_tflite(path)


def test_litert_abort_is_an_error_not_a_crash():
    with pytest.raises(tvm_bridge.LiteRTError, match="SIGABRT"):
        tvm_bridge.LiteRTReference(DATA / f"{ABORTING}.tflite")


@pytest.mark.slow
@pytest.mark.parametrize("model", FULL_MODELS)
def test_keras_application_bit_exact_on_gap9(model):
    assert _max_diff(model, "gap9", inputs=2) == 0


def _with_opcode(path, old: str, new: str, out):
    """A copy of a TFLite model with every ``old`` builtin operator replaced by ``new`` (same tensors)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    for code in model.operatorCodes:
        if code.builtinCode == getattr(schema.BuiltinOperator, old):
            code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, new)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


def _conv1d_with_expand_dims_and_squeeze(out):
    """conv1d.tflite with its two RESHAPEs replaced by EXPAND_DIMS (axis 1) and SQUEEZE (dims [1])."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray((DATA / "conv1d.tflite").read_bytes()), 0)
    graph = model.subgraphs[0]

    def opcode(builtin: int) -> int:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    axis_buffer = schema.BufferT()
    axis_buffer.data = np.frombuffer(np.int32(1).tobytes(), np.uint8)
    model.buffers.append(axis_buffer)
    axis = schema.TensorT()
    axis.name, axis.shape, axis.type, axis.buffer = b"expand_axis", np.zeros(0, np.int32), schema.TensorType.INT32, len(model.buffers) - 1
    graph.tensors.append(axis)
    reshapes = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.RESHAPE]
    expand, squeeze = reshapes
    expand.opcodeIndex = opcode(schema.BuiltinOperator.EXPAND_DIMS)
    expand.inputs = np.asarray([expand.inputs[0], len(graph.tensors) - 1], np.int32)
    expand.builtinOptionsType, expand.builtinOptions = schema.BuiltinOptions.ExpandDimsOptions, schema.ExpandDimsOptionsT()
    squeeze.opcodeIndex, squeeze.inputs = opcode(schema.BuiltinOperator.SQUEEZE), np.asarray([squeeze.inputs[0]], np.int32)
    options = schema.SqueezeOptionsT()
    options.squeezeDims = np.asarray([1], np.int32)
    squeeze.builtinOptionsType, squeeze.builtinOptions = schema.BuiltinOptions.SqueezeOptions, options
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_expand_dims_and_squeeze_bit_exact(tmp_path, target):
    path = _conv1d_with_expand_dims_and_squeeze(tmp_path / "conv1d_expand.tflite")
    ref = tvm_bridge.LiteRTReference(path)
    assert [op["op_name"] for op in ref.ops] == ["EXPAND_DIMS", "CONV_2D", "SQUEEZE"]
    compiled = tvm_bridge.compile(path, archs.load(target))
    assert sum(compiled.offloaded.values()) == 1
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = ref.random_input(rng)
        np.testing.assert_array_equal(compiled.run(x), ref.invoke(x))
    ref.close()


def test_warnings_name_tflite_ops_once_per_kind(caplog, tmp_path):
    import logging

    with caplog.at_level(logging.WARNING):
        tvm_bridge.layer_graph(tvm_bridge.from_tflite(DATA / "mobilenet_v3s.tflite"))  # every op exact: silent
        tvm_bridge.layer_graph(tvm_bridge.from_tflite(DATA / "softmax.tflite"))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        # ABS: imported by TVM in float (dequantize, abs, quantize), not exact: one warning naming it
        tvm_bridge.layer_graph(tvm_bridge.from_tflite(_with_opcode(DATA / "tanh.tflite", "TANH", "ABS", tmp_path / "abs.tflite")))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "TFLite ABS x1 " in warnings[0]


def test_op_nobody_imports_is_a_bridge_error_naming_it(tmp_path):
    with pytest.raises(tvm_bridge.BridgeError, match="'ELU'"):
        tvm_bridge.from_tflite(_with_opcode(DATA / "tanh.tflite", "TANH", "ELU", tmp_path / "elu.tflite"))


def test_compile_speed_benchmark_writes_json(tmp_path, capsys):
    import json

    from benchmarks import compile_speed

    rows = compile_speed.main(["--models", "pad_conv", "--targets", "gap9", "--json", str(tmp_path / "c.json")])
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["rows"] == rows and rows[0]["model"] == "pad_conv" and rows[0]["offloaded"] == 1
    assert rows[0]["total_s"] >= rows[0]["build_s"] > 0
    assert "pad_conv" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["dense_rank3", "grouped", "se_mul", "leaky_relu", "hard_swish", "resize_nearest", "pad_conv",
                                   "add_broadcast", "softmax", "space_to_batch", "transpose_conv", "concat"])
def test_no_float_lowering_left_outside_layers(model):
    """Ops outside the recognised layers are imported as integer Relax: after fusing the layer
    patterns, no float tensor is left in ``main``."""
    fused = tvm_bridge.layer_graph.__globals__["recognise"](tvm_bridge.from_tflite(DATA / f"{model}.tflite"))
    assert "float32" not in fused["main"].script()


def test_host_build_failure_is_a_bridge_error(monkeypatch):
    import tvm_bridge.compiled as compiled_module

    def broken(*args, **kwargs):
        raise RuntimeError("InternalError: CodeGenVM cannot emit this Relax operator directly")

    monkeypatch.setattr(compiled_module.compat, "compile_relax", broken)
    with pytest.raises(tvm_bridge.BridgeError, match="TVM cannot build the host code.*CodeGenVM"):
        tvm_bridge.compile(DATA / "pad_conv.tflite", archs.load("gap9"))


def test_zero_point_pad_folded_into_the_conv():
    text = tvm_bridge.from_tflite(DATA / "pad_conv.tflite")["main"].script()
    assert "R.nn.pad" not in text and "padding=[1, 0, 2, 1]" in text  # ZeroPadding2D(((1, 2), (0, 1)))
    layer = next(iter(tvm_bridge.layer_graph(tvm_bridge.from_tflite(DATA / "pad_conv.tflite")).nodes.values()))["layer"]
    assert layer.input_size == (12, 12) and sum(layer.padding) == 4
