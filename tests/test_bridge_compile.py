"""tvm_bridge compile side: partitioning, the relax.ext.match codegen, CompiledModel, export.

Measured, not assumed: every offloaded layer's generated code is fed LiteRT's own input tensor(s)
and must reproduce LiteRT's output tensor bit for bit; after one model run the bytes and transfers
counted by the generated code must equal the mapper's prediction per schedule level; end to end the
top-1 class must agree with LiteRT on at least 99 of 100 random inputs.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("ai_edge_litert")

import tvm  # noqa: E402
from test_bridge_import import GOLDEN, extended_kws_bytes, model_path, qdq_dense_onnx  # noqa: E402
from tvm import relax  # noqa: E402

import archs  # noqa: E402
import tvm_bridge  # noqa: E402
from tvm_bridge.litert_ref import LiteRTReference  # noqa: E402
from tvm_bridge.offload_attrs import soc_from_json, soc_to_json  # noqa: E402
from tvm_bridge.partition import schedules_of  # noqa: E402
from tvm_bridge.patterns import soc_patterns  # noqa: E402
from tvm_bridge.relax_codegen import CodegenSink  # noqa: E402
from tvm_bridge.relax_import import BridgeError, from_tflite  # noqa: E402

SOCS = ("gap9", "diana")
CASES = [(model, soc) for model in sorted(GOLDEN) for soc in SOCS]
#: layers that must stay on the host, per (model, SoC): what no accelerator accepts (DIANA: asymmetric
#: SAME padding of stride-2 convs, pooling) or where the host is cheapest
HOST_LAYERS = {
    ("ic", "diana"): {"pool_12"},  # the stride-2 SAME convs run on the digital array after a host pad
    ("kws", "diana"): {"conv2d_0", "pool_9"},
}


@pytest.fixture(scope="module")
def socs() -> dict:
    return {name: archs.load(name) for name in SOCS}


@pytest.fixture(scope="module")
def compiled(socs):
    cache: dict = {}

    def get(model: str, soc: str, **options) -> tvm_bridge.CompiledModel:
        key = (model, soc, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = tvm_bridge.compile(model_path(model), socs[soc], **options)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def references() -> dict:
    cache: dict = {}

    def get(model: str) -> LiteRTReference:
        if model not in cache:
            cache[model] = LiteRTReference(model_path(model))
        return cache[model]

    return get


def _layer_tensors(model: str, ref: LiteRTReference):
    return ref.layer_tensors(tvm_bridge.layer_graph(from_tflite(model_path(model))))


# --------------------------------------------------------------------------- bit-exact layers, counters


@pytest.mark.parametrize("model,soc", CASES)
def test_offloaded_layers_bit_exact_and_counters_match(compiled, references, socs, model, soc):
    cm, ref = compiled(model, soc), references(model)
    host = socs[soc].host
    assert set(cm.schedules) == set(tvm_bridge.layer_graph(from_tflite(model_path(model))).nodes)
    on_host = {name for name, on in cm.offloaded.items() if not on}
    assert on_host >= HOST_LAYERS.get((model, soc), set())
    for name, on in cm.offloaded.items():
        assert (cm.schedules[name].module != host) == on
    assert sum(cm.offloaded.values()) == sum(len(f.layers) for f in cm.functions) >= 7
    mapping = _layer_tensors(model, ref)
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = ref.random_input(rng)
        tensors = ref.run(x)
        cm.run(x)
        assert cm.counters() == cm.predicted_counters()  # bytes and transfers per level, after one run
        for name, on in cm.offloaded.items():
            if on:
                where = mapping[name]
                y = cm.run_layer(name, *(tensors[t] for t in where.inputs))
                np.testing.assert_array_equal(y, tensors[where.output].reshape(y.shape), err_msg=f"{model} {soc} {name}")


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("model,soc", CASES)
def test_top1_agrees_with_litert(compiled, references, model, soc):
    cm, ref = compiled(model, soc), references(model)
    rng = np.random.default_rng(2024)
    agree, worst = 0, 0
    for _ in range(100):
        x = ref.random_input(rng)
        y, expected = cm.run(x).astype(np.int32), ref.invoke(x).astype(np.int32)
        agree += int(np.argmax(y) == np.argmax(expected))
        worst = max(worst, int(np.abs(y - expected).max()))
    assert agree >= 99, f"{model} on {soc}: top-1 agrees on {agree}/100 (max |diff| {worst})"
    # offloaded layers are bit-exact and host layers use exact integer Relax (host_int); only the
    # softmax is TVM's float one, and on these inputs it rounds like LiteRT's: measured 0 everywhere
    assert worst == 0, f"{model} on {soc}: max |diff| {worst} LSB"


# --------------------------------------------------------------------------- partition pass


def test_partition_pass_in_a_user_pipeline(compiled, references, socs):
    mod = from_tflite(model_path("ic"))
    seq = tvm.transform.Sequential([tvm_bridge.partition_for(socs["diana"]), relax.transform.RunCodegen()])
    part = tvm_bridge.partition_for(socs["diana"])(mod)
    offloaded = [f for _, f in part.functions.items() if f.attrs is not None and "Codegen" in f.attrs]
    assert len(offloaded) == 13
    for func in offloaded:
        schedule = json.loads(str(func.attrs["match.schedule"]))
        assert schedule["module"] == "digital" and schedule["layer"] == str(func.attrs["match.layer"])
    schedules, flags = schedules_of(part)
    assert {n for n, on in flags.items() if not on} == HOST_LAYERS[("ic", "diana")]
    for name in ("conv2d_4", "conv2d_8"):  # TF SAME stride 2: asymmetric padding, applied by the host
        assert schedules[name].module == "digital" and schedules[name].host_padding == (0, 1, 0, 1)
        assert schedules[name].host_padding_cycles > 0
    vm = relax.VirtualMachine(tvm.compile(seq(mod), target="llvm"), tvm.cpu())  # in process, no export
    x = references("ic").random_input(np.random.default_rng(5))
    np.testing.assert_array_equal(vm["main"](tvm.runtime.tensor(x)).numpy(), compiled("ic", "diana").run(x))


def _shrunk_l1(soc, size: int):
    """``soc`` with every accelerator's innermost memory resized to ``size`` bytes (in memory only)."""
    modules = {name: m if m.is_host else dataclasses.replace(m, memories=(dataclasses.replace(m.memories[0], size_bytes=size),)
                                                             + m.memories[1:])
               for name, m in soc.modules.items()}
    return dataclasses.replace(soc, modules=modules)


def test_codegen_uses_the_partitioned_soc_not_the_file(tmp_path, socs):
    """A SoC modified in memory (same name and source file as gap9) is the one the C is generated for,
    even once the object is gone: the function carries the SoC's content."""
    pytest.importorskip("onnx")
    path = qdq_dense_onnx(tmp_path / "fc.onnx")
    modified = _shrunk_l1(archs.load("gap9"), 40_000)
    assert modified.source == socs["gap9"].source and modified.name == "gap9"
    assert all(m.memories[0].size_bytes != 40_000 for m in socs["gap9"].accelerators)
    assert soc_from_json(soc_to_json(modified)) == modified
    part = tvm_bridge.partition_for(modified, policy="accelerator_first")(tvm_bridge.from_onnx(path))
    module = schedules_of(part)[0]["dense_0"].module
    del modified
    gc.collect()
    sink = CodegenSink()
    relax.transform.RunCodegen({"match": {"sink": sink.key}})(part)
    (func,) = sink.functions
    memory = archs.load("gap9").modules[module].memories[0].name
    assert func.generated.arena_bytes[memory] == 40_000
    assert re.search(rf"static int8_t \w+_{memory}\[40000\]", func.generated.source)


def test_pattern_tables_follow_the_soc(socs):
    names = {soc: {p.name for p in soc_patterns(socs[soc])} for soc in SOCS}
    assert names["gap9"] == {"match.conv2d", "match.depthwise", "match.dense", "match.add", "match.avg_pool", "match.max_pool"}
    assert names["diana"] == {"match.conv2d", "match.depthwise", "match.dense", "match.add"}  # no pooling on DIANA


def test_host_only_offloads_nothing_and_host_layers_are_exact(references, socs):
    soc, ref = socs["diana"], references("kws")
    exact = tvm_bridge.compile(model_path("kws"), soc, modules=[soc.host])
    floating = tvm_bridge.compile(model_path("kws"), soc, modules=[soc.host], exact_host=False)
    assert not exact.functions and not any(exact.offloaded.values())
    rng = np.random.default_rng(0)
    float_diff = 0
    for _ in range(8):
        x = ref.random_input(rng)
        expected = ref.invoke(x)
        np.testing.assert_array_equal(exact.run(x), expected)  # integer host lowering: TFLite-exact
        float_diff = max(float_diff, int(np.abs(floating.run(x).astype(int) - expected).max()))
    assert float_diff > 0  # TVM's float QDQ lowering is not (1 LSB per op, growing through the network)


def test_accelerator_first_policy(compiled):
    best, first = compiled("ad", "gap9"), compiled("ad", "gap9", policy="accelerator_first")
    # AD's 640-wide dense layer is cheaper on the cluster (best); DORY's rule sends it to NE16
    assert best.schedules["dense_0"].module == "cluster" and best.offloaded["dense_0"]
    assert first.schedules["dense_0"].module == "ne16" and first.offloaded["dense_0"]
    assert all(first.offloaded.values())


# --------------------------------------------------------------------------- bad input, unknown ops


def test_unknown_op_and_pools_run_with_host_fallback(tmp_path, caplog, socs):
    path = tmp_path / "kws_extended.tflite"
    path.write_bytes(extended_kws_bytes())
    ref = LiteRTReference(path)
    mapping = ref.layer_tensors(tvm_bridge.layer_graph(from_tflite(path)))
    for soc in SOCS:
        with caplog.at_level(logging.INFO, logger="tvm_bridge"):
            cm = tvm_bridge.compile(path, socs[soc])
        assert any("relax.multiply" in r.getMessage() for r in caplog.records)  # the MUL stays on the host, logged
        assert cm.offloaded["pool_1"] == cm.offloaded["pool_3"] == (soc == "gap9")
        if soc == "diana":
            assert any("pool_1 stays on the host" in r.getMessage() for r in caplog.records)
        rng = np.random.default_rng(3)
        agree = 0
        for _ in range(10):
            x = ref.random_input(rng)
            tensors = ref.run(x)
            y = cm.run(x)
            agree += int(np.argmax(y) == np.argmax(tensors[ref.name(ref.output["index"])]))
            for name, on in cm.offloaded.items():
                if on:
                    where = mapping[name]
                    out = cm.run_layer(name, *(tensors[t] for t in where.inputs))
                    np.testing.assert_array_equal(out, tensors[where.output].reshape(out.shape), err_msg=f"{soc} {name}")
        assert agree >= 9


def test_compile_rejects_bad_input(tmp_path, compiled):
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(BridgeError):
        tvm_bridge.compile(text, "gap9")
    cm = compiled("ad", "gap9")
    with pytest.raises(BridgeError, match="expected int8"):
        cm.run(np.zeros((1, 640), np.float32))
    with pytest.raises(BridgeError, match="not offloaded|no layer"):
        cm.run_layer("softmax", np.zeros(3, np.int8))


@pytest.mark.parametrize(
    "given, says",
    [
        (np.full((1, 640), np.nan), "got float64 (1, 640) with 640 other value(s), e.g. nan"),
        (np.full((1, 640), np.inf), "e.g. inf"),
        (np.full((1, 640), 300.7), "e.g. 300.7"),
        (np.full((1, 640), 0.5), "e.g. 0.5"),
        (np.full((1, 640), 300, np.int32), "got int32 (1, 640) with 640 other value(s), e.g. 300"),
        (np.full((1, 640), -129, np.int64), "e.g. -129"),
        (np.zeros((1, 641), np.int8), "got int8 (1, 641)"),
        (np.zeros(3, np.int8), "got int8 (3,)"),
        (np.full((1, 640), "a"), "(not numeric)"),
    ],
    ids=["nan", "inf", "300.7", "fraction", "int32-300", "int64--129", "641", "3", "str"],
)
def test_run_layer_rejects_values_int8_cannot_hold(compiled, given, says):
    cm = compiled("ad", "gap9")
    assert cm.offloaded["dense_0"]
    with pytest.raises(BridgeError) as info:
        cm.run_layer("dense_0", given)
    text = str(info.value)
    assert text.startswith("layer 'dense_0' input 0: expected int8 (1, 640) (640 elements)") and says in text, text


def test_run_layer_accepts_integral_values_of_any_numeric_dtype(compiled):
    cm = compiled("ad", "gap9")
    x = np.random.default_rng(3).integers(-128, 128, (1, 640))
    expected = cm.run_layer("dense_0", x.astype(np.int8))
    for same in (x.astype(np.float32), x.astype(np.int64), x.astype(np.int8).reshape(640)):
        np.testing.assert_array_equal(cm.run_layer("dense_0", same), expected)


def float_input_qdq_dense_onnx(path: Path) -> Path:
    """``qdq_dense_onnx`` with a float input quantized by the model (QuantizeLinear first)."""
    import onnx

    model = onnx.load(str(qdq_dense_onnx(path)))
    graph = model.graph
    graph.node.insert(0, onnx.helper.make_node("QuantizeLinear", ["x_float", "sx", "zx"], ["x"]))
    graph.input[0].CopyFrom(onnx.helper.make_tensor_value_info("x_float", onnx.TensorProto.FLOAT, [1, 16]))
    onnx.save(model, path)
    return path


def test_float_input_model_rejects_non_finite_inputs(tmp_path, socs):
    pytest.importorskip("onnx")
    cm = tvm_bridge.compile(float_input_qdq_dense_onnx(tmp_path / "ffc.onnx"), socs["gap9"])
    assert cm.input_dtypes == ["float32"]
    x = np.random.default_rng(1).uniform(-3, 3, (1, 16)).astype(np.float32)
    # independent oracle: quantize as QuantizeLinear does (round half to even, zero point 3), then the int8 model
    q = np.clip(np.rint(x / np.float32(0.05)) + 3, -128, 127).astype(np.int8)
    int8_model = tvm_bridge.compile(qdq_dense_onnx(tmp_path / "fc.onnx"), socs["gap9"])
    np.testing.assert_array_equal(cm.run(x), int8_model.run(q))
    for bad, shown in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        y = x.copy()
        y[0, 5] = bad
        with pytest.raises(BridgeError, match=rf"model input 0: expected finite float32 values, got {shown} \(1 non-finite"):
            cm.run(y)


# --------------------------------------------------------------------------- export


def test_export_library_and_sources(tmp_path, compiled, references):
    cm = compiled("ic", "gap9")
    library = cm.export(tmp_path / "ic_gap9")
    src = library.parent / "src"
    assert library.is_file() and (src / "match_target.h").is_file() and (src / "tvm_module.cc").is_file()
    layer_files = sorted(src.glob("*.c"))
    assert len(layer_files) == len(cm.functions)
    assert json.loads((src / "schedules.json").read_text())["conv2d_1"]["offloaded"] is True
    # the readable per-layer sources compile on their own against the shipped header
    result = subprocess.run(["gcc", "-std=c11", "-Wall", "-c", "-o", str(tmp_path / "l.o"), "-I", str(src), str(layer_files[0])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
    x = references("ic").random_input(np.random.default_rng(9))
    np.testing.assert_array_equal(vm["main"](tvm.runtime.tensor(x)).numpy(), cm.run(x))
    assert Path(cm.export(tmp_path / "other.so")).name == "other.so" and (tmp_path / "other_src" / "match_target.h").is_file()


def test_onnx_model_compiles_with_tflite_integer_semantics(tmp_path, socs):
    pytest.importorskip("onnx")
    from tvm_bridge.quant import reference_layer

    path = qdq_dense_onnx(tmp_path / "fc.onnx")
    layer = tvm_bridge.layer_graph(tvm_bridge.from_onnx(path)).nodes["dense_0"]["layer"]
    cm = tvm_bridge.compile(path, socs["gap9"], policy="accelerator_first", objective="energy")
    assert cm.offloaded["dense_0"] and cm.schedules["dense_0"].objective == "energy"
    x = np.random.default_rng(0).integers(-128, 128, (1, 16), dtype=np.int8)
    np.testing.assert_array_equal(cm.run(x), reference_layer(layer, x))
    assert cm.counters() == cm.predicted_counters()
