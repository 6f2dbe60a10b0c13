"""QOperator-format ONNX models (QLinearConv, QLinearMatMul, com.microsoft QGemm / QLinearAdd) through
the TVM bridge, compared with onnxruntime's integer kernels, and the ops the bridge refuses.

- ``tvm_bridge.onnx_qoperator`` rewrites the QLinear ops into QDQ chains; the layers follow
  onnxruntime's QLinear arithmetic (``tvm_bridge.quant_qlinear``: float32 requantization and the
  AVX2 QLinearAdd's two FMAs, emulated with integers). Models with random float scales and with
  decimal scales (many real outputs on rounding ties) are offloaded whole on gap9 and diana and run
  whole on the host, and equal onnxruntime exactly (max |diff| = 0), with graph optimisations off and
  at the default level; the decimal models tell the semantics apart: compiled with the QDQ
  semantics (``"onnx"``, exact real rounding) the same model differs from onnxruntime.
- ``ConvInteger`` / ``MatMulInteger`` / ``DynamicQuantizeLinear`` (``quantize_dynamic``) and QLinear ops
  without a rewrite raise ``BridgeError`` naming the op.
- Evidence for the QDQ near-tie mismatches (``benchmarks.onnx_ties``, ``test_onnxruntime_disagrees_with_itself_at_ties``):
  onnxruntime does not agree with itself at exact rounding ties. Measured (onnxruntime 1.32, AMD EPYC
  with AVX2, ``python -m benchmarks.onnx_exactness --runs 50``: 50 inputs of a decimal-scale 1x1 QDQ
  conv, 409,600 outputs): with 72 input channels 488 outputs lie exactly on a tie and the same graph
  with its input channels in reverse order (Conv or MatMul) differs from the plain Conv on 191 of
  them (4 threads, MatMul, Gemm and the default optimisation level on none); with 144 channels (509
  ties) 4 threads, MatMul and Gemm differ on 54 and reversed channels on 183-185. The bridge's
  integer result differs from the plain Conv on 166-167. Every difference is at a tie, where the
  float32 summation order decides.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import archs  # noqa: E402
import tvm_bridge  # noqa: E402
from benchmarks.onnx_qoperator import conv_residual, dense_chain, ort_session  # noqa: E402
from tvm_bridge import quant_qlinear  # noqa: E402


def _mismatches(compiled, path, runs: int = 4, seed: int = 1) -> dict[str, int]:
    """Differing int8 outputs vs onnxruntime (optimisations off / default level) over ``runs`` inputs."""
    sessions = {"disabled": ort_session(path), "default": ort_session(path, optimized=True)}
    inp = sessions["disabled"].get_inputs()[0]
    dtype = np.uint8 if inp.type == "tensor(uint8)" else np.int8
    rng = np.random.default_rng(seed)
    counts = {name: 0 for name in sessions}
    for _ in range(runs):
        x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, inp.shape, dtype=dtype)
        y = compiled.run(x)
        for name, session in sessions.items():
            expected = session.run(None, {inp.name: x})[0]
            assert y.shape == expected.shape and y.dtype == expected.dtype
            counts[name] += int(np.count_nonzero(y != expected))
    return counts


# --------------------------------------------------------------------------- arithmetic


def test_qlinear_requantize_equals_float32_arithmetic():
    """The integer emulation equals numpy's IEEE float32 ``rint(float32(acc) * scale)`` (the oracle) on
    accumulators across the int32 range (24-bit rounding of int -> float) and scales from 1e-7 to 8,
    decimal ones included (products on ties)."""
    rng = np.random.default_rng(0)
    acc = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 20000), rng.integers(-5000, 5000, 20000),
                          rng.integers(-(1 << 26), 1 << 26, 20000), np.arange(-1000, 1001) * 10]).astype(np.int64)
    scales = np.concatenate([np.exp(rng.uniform(np.log(1e-7), np.log(8.0), 40)), [0.05, 0.1, 0.0125, 0.5, 1.0, 2.0 ** -20]])
    for scale in scales.astype(np.float32):
        mantissa, exponent = quant_qlinear.float32_parts(float(scale))
        assert mantissa * 2.0 ** exponent == float(scale) and abs(mantissa) < 1 << 24
        expected = np.rint(np.clip(acc.astype(np.float32) * scale, -(2.0 ** 20), 2.0 ** 20)).astype(np.int64)
        np.testing.assert_array_equal(quant_qlinear.qlinear_requantize(acc, mantissa, exponent), expected, err_msg=f"scale {scale}")


def test_qlinear_scales_are_onnxruntimes_float32_scales():
    """float32(float32(x_scale * w_scale) / y_scale), as QLinearConv / QGemm compute it (not the double ratio)."""
    m, e = quant_qlinear.qlinear_scales(0.1, np.array([0.05, 0.003], np.float32), 0.07)
    f32 = np.float32
    expected = [f32(f32(f32(0.1) * f32(w)) / f32(0.07)) for w in (0.05, 0.003)]
    assert [float(v) * 2.0 ** float(x) for v, x in zip(m, e)] == [float(v) for v in expected]


def qlinear_add_onnx(path, scales, zero_points, uint8: bool) -> str:
    """One com.microsoft QLinearAdd of two [1, 1, 256, 256] int8 (or uint8) tensors."""
    from onnx import TensorProto, helper, numpy_helper

    dtype, tensor_type, offset = (np.uint8, TensorProto.UINT8, 128) if uint8 else (np.int8, TensorProto.INT8, 0)
    inits = [numpy_helper.from_array(np.array(s, np.float32), f"s{n}") for n, s in zip("aby", scales)]
    inits += [numpy_helper.from_array(np.array(z + offset, dtype), f"z{n}") for n, z in zip("aby", zero_points)]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "qladd", [helper.make_tensor_value_info(n, tensor_type, [1, 1, 256, 256]) for n in "ab"],
                              [helper.make_tensor_value_info("y", tensor_type, [1, 1, 256, 256])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("scales, zero_points, uint8", [((0.08, 0.05, 0.1), (-2, 3, 1), False),
                                                       ((0.0173, 0.0911, 0.0542), (7, -11, 0), True)])
def test_qlinear_add_equals_onnxruntime_on_every_input_pair(tmp_path, scales, zero_points, uint8):
    """All 65,536 input pairs through a QLinearAdd, offloaded (integer tables in the generated C) and on
    the host (exact float64 sums, one float32 rounding), equal onnxruntime at both optimisation levels."""
    path = qlinear_add_onnx(tmp_path / "add.onnx", scales, zero_points, uint8)
    dtype, offset = (np.uint8, 128) if uint8 else (np.int8, 0)
    a = (np.repeat(np.arange(-128, 128), 256) + offset).astype(dtype).reshape(1, 1, 256, 256)
    b = (np.tile(np.arange(-128, 128), 256) + offset).astype(dtype).reshape(1, 1, 256, 256)
    soc = archs.load("gap9")
    offloaded, on_host = tvm_bridge.compile(path, soc), tvm_bridge.compile(path, soc, modules=[soc.host])
    assert offloaded.offloaded == {"add_0": True} and on_host.offloaded == {"add_0": False}
    for optimized in (False, True):
        expected = ort_session(path, optimized).run(None, {"a": a, "b": b})[0]
        np.testing.assert_array_equal(offloaded.run(a, b), expected)
        np.testing.assert_array_equal(on_host.run(a, b), expected)


# --------------------------------------------------------------------------- models


def test_rewrite_marks_the_module_and_its_layers(tmp_path):
    mod = tvm_bridge.from_onnx(conv_residual(tmp_path / "m.onnx", seed=0))
    assert str(mod.attrs["match.semantics"]) == "onnx_qlinear"
    graph = tvm_bridge.layer_graph(mod)
    layers = [graph.nodes[n]["layer"] for n in graph.nodes]
    assert sorted(layer.kind for layer in layers) == ["add", "conv2d", "conv2d", "depthwise"]
    assert {layer.quant.rounding for layer in layers} == {"float32"}
    mod_u8 = tvm_bridge.from_onnx(dense_chain(tmp_path / "u.onnx", seed=0, uint8=True))
    assert str(mod_u8.attrs["match.semantics"]) == "onnx_qlinear_uint8"


@pytest.mark.parametrize("make, kwargs", [(conv_residual, {"decimal": True}), (conv_residual, {"uint8": True}),
                                          (dense_chain, {"decimal": True})])
@pytest.mark.parametrize("target", ["gap9", "diana"])
def test_qoperator_model_offloaded_and_exact(tmp_path, target, make, kwargs):
    path = make(tmp_path / "m.onnx", seed=1, **kwargs)
    compiled = tvm_bridge.compile(path, archs.load(target))
    assert compiled.offloaded and all(compiled.offloaded.values()), compiled.offloaded
    assert _mismatches(compiled, path) == {"disabled": 0, "default": 0}
    assert compiled.counters() == compiled.predicted_counters()


@pytest.mark.parametrize("make", [conv_residual, dense_chain])
def test_qoperator_model_exact_on_the_host_and_semantics_matter(tmp_path, make):
    """Every layer on the host (exact integer / float Relax): equal onnxruntime. The same module compiled
    with the QDQ semantics (exact real rounding) differs from onnxruntime on the decimal-scale model:
    the test tells the two apart."""
    path = make(tmp_path / "m.onnx", seed=1, decimal=True)
    soc = archs.load("gap9")
    on_host = tvm_bridge.compile(path, soc, modules=[soc.host])
    assert not any(on_host.offloaded.values())
    assert _mismatches(on_host, path) == {"disabled": 0, "default": 0}
    qdq_semantics = tvm_bridge.compile(tvm_bridge.from_onnx(path).with_attr("match.semantics", "onnx"), soc, modules=[soc.host])
    assert _mismatches(qdq_semantics, path, runs=8)["disabled"] > 0


# --------------------------------------------------------------------------- refused


def _single_node_model(node, inputs, outputs, inits=()):
    from onnx import helper

    graph = helper.make_graph([node], "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", ["ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"])
def test_dynamic_quantization_ops_are_refused(op):
    from onnx import TensorProto, helper, numpy_helper

    if op == "DynamicQuantizeLinear":
        node = helper.make_node(op, ["x"], ["y", "s", "z"], name="dq")
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])]
        outputs = [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 16])]
        inits = []
    else:
        node = helper.make_node(op, ["x", "w"], ["y"], name="mac")
        shape, w = ([1, 4, 8, 8], np.ones((4, 4, 3, 3), np.int8)) if op == "ConvInteger" else ([1, 16], np.ones((16, 4), np.int8))
        inputs = [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)]
        outputs = [helper.make_tensor_value_info("y", TensorProto.INT32, None)]
        inits = [numpy_helper.from_array(w, "w")]
    with pytest.raises(tvm_bridge.BridgeError, match=f"{op}.*quantize_static"):
        tvm_bridge.from_onnx(_single_node_model(node, inputs, outputs, inits))


def test_quantize_dynamic_model_is_refused(tmp_path):
    """A model made by onnxruntime's quantize_dynamic (MatMul): the error names its run-time quantization op."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import quantize_dynamic

    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    model = _single_node_model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [numpy_helper.from_array(w, "w")])
    onnx.save(model, str(tmp_path / "float.onnx"))
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "dynamic.onnx"))
    with pytest.raises(tvm_bridge.BridgeError, match=r"(DynamicQuantizeLinear|MatMulInteger).*quantize_dynamic.*quantize_static"):
        tvm_bridge.from_onnx(tmp_path / "dynamic.onnx")


def test_unsupported_qlinear_op_is_named():
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
    node = helper.make_node("QLinearGlobalAveragePool", ["x", "s", "z", "s", "z"], ["y"], domain="com.microsoft", channels_last=0)
    model = _single_node_model(node, [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4, 8, 8])],
                               [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 4, 1, 1])], inits)
    with pytest.raises(tvm_bridge.BridgeError, match="QLinearGlobalAveragePool.*not supported.*QLinearConv"):
        tvm_bridge.from_onnx(model)


def test_mixed_qoperator_and_qdq_is_refused(tmp_path):
    """A QLinearConv followed by a QDQ Conv: one semantics per module, so the mix is refused by name."""
    from onnx import helper, numpy_helper

    model = onnx.load(dense_chain(tmp_path / "m.onnx", seed=0))
    conv = next(n for n in model.graph.node if n.op_type == "QLinearConv")
    scale, zero = conv.input[6], conv.input[7]
    model.graph.initializer.append(numpy_helper.from_array(np.ones((4, 4, 1, 1), np.int8), "w_extra"))
    extra = [helper.make_node("DequantizeLinear", [conv.output[0], scale, zero], ["deq"]),
             helper.make_node("DequantizeLinear", ["w_extra", scale, zero], ["wdeq"]),
             helper.make_node("Conv", ["deq", "wdeq"], ["qdq_conv_out"], name="qdq_conv"),
             helper.make_node("QuantizeLinear", ["qdq_conv_out", scale, zero], ["unused"])]
    model.graph.node.extend(extra)
    with pytest.raises(tvm_bridge.BridgeError, match="mixes QOperator ops and QDQ layers.*qdq_conv"):
        tvm_bridge.from_onnx(model)


def test_onnxruntime_disagrees_with_itself_at_ties():
    """Same integer accumulators, input channels summed in reverse order: onnxruntime's float32 result
    differs at exact ties and nowhere else (20 inputs: 186 ties, 76 of them differ; measured
    numbers for 50 inputs in the module docstring)."""
    from benchmarks.onnx_ties import self_consistency

    result = self_consistency(runs=20, variants=("conv_reversed",))
    reversed_channels = result["variants"]["conv_reversed"]
    assert result["ties"] > 100
    assert 0 < reversed_channels["vs_conv"] <= result["ties"]
    assert reversed_channels["vs_exact"] == reversed_channels["vs_exact_at_ties"]  # only ties ever differ


F32_HARNESS = r"""
#include <math.h>
#include <stdio.h>
#include "match_target.h"

static uint64_t state = 88172645463325252ull;
static uint64_t next_random(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

int main(void) {
    static const float decimals[] = {0.05f, 0.1f, 0.0125f, 0.5f, 0.02f, 0.08f, 0.002f, 0.25f};
    long bad = 0, i;
    for (i = 0; i < 2000000; i++) {
        const uint64_t r = next_random();
        int32_t acc, mantissa, exponent;
        int e;
        float scale, product;
        uint32_t bits = (uint32_t)(next_random() & 0x7fffff) | ((uint32_t)(127 - 26 + next_random() % 30) << 23);
        switch (r & 3) {
        case 0: acc = (int32_t)(uint32_t)(r >> 32); break;
        case 1: acc = (int32_t)((r >> 32) % 20001) - 10000; break;
        case 2: acc = (int32_t)((r >> 32) % (1u << 27)) - (1 << 26); break;
        default: acc = ((int32_t)((r >> 32) % 2001) - 1000) * 10; break;
        }
        memcpy(&scale, &bits, sizeof scale);
        if (i % 5 == 0) scale = decimals[i % 8];
        product = (float)acc * scale; /* IEEE float32: one rounding to float, one for the product */
        if (product > 1048576.0f) product = 1048576.0f;
        if (product < -1048576.0f) product = -1048576.0f;
        mantissa = (int32_t)ldexpf(frexpf(scale, &e), 24);
        exponent = e - 24;
        if (match_f32_requant(acc, mantissa, exponent) != (int64_t)lrintf(product)) {
            if (bad++ < 5) printf("acc %d scale %a: %lld vs %ld\n", acc, scale, (long long)match_f32_requant(acc, mantissa, exponent),
                                  lrintf(product));
        }
    }
    printf("%ld mismatches\n", bad);
    return bad != 0;
}
"""


def test_generated_c_float32_requantization_equals_ieee_float(tmp_path):
    """The C emulation (``match_f32_requant``, integers only) against the C compiler's own IEEE float32
    arithmetic (``(float)acc * scale``, ``lrintf``: ties to even) on 2,000,000 random accumulators and
    scales (a fifth of them decimal), built with UBSan."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    include = Path(tvm_bridge.__file__).parent / "c"
    (tmp_path / "f32.c").write_text(F32_HARNESS)
    exe = tmp_path / "f32"
    build = subprocess.run(["gcc", "-O1", "-std=c11", "-Wall", "-Werror", "-ffp-contract=off", "-fsanitize=undefined",
                            "-fno-sanitize-recover=all", f"-I{include}", str(tmp_path / "f32.c"), "-o", str(exe), "-lm"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[:3000]
    result = subprocess.run([str(exe)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "0 mismatches", result.stdout + result.stderr[:3000]
