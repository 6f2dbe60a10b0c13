"""Does onnxruntime agree with itself at rounding ties? One QDQ convolution, several equivalent graphs.

With decimal scales (x 0.05, w 0.002, y 0.08) the real output of a QDQ 1x1 convolution is
``acc / 800`` for the int32 accumulator ``acc``: every ``acc = 400 (mod 800)`` lies exactly on a
rounding tie. onnxruntime computes it in float32 (dequantized products summed by its MLAS kernel,
divided by 0.08, rounded half to even), so which side of the tie it lands on depends on float32
rounding in the sum, i.e. on the kernel's summation order. ``self_consistency`` runs the same
computation expressed as

- ``conv``: ``Conv`` 1x1 (NCHW), graph optimisations off, 1 thread (the reference);
- ``conv_threads4``: the same with 4 intra-op threads;
- ``conv_optimized``: the same at onnxruntime's default optimisation level (NCHWc conv kernel);
- ``matmul``: ``Transpose -> MatMul`` with the weights as a [C, K] matrix (SGEMM), optimisations off;
- ``gemm``: ``Gemm`` with ``transB`` on the transposed input, optimisations off;
- ``conv_reversed`` / ``matmul_reversed``: ``conv`` / ``matmul`` with the input channels (and the
  weights' input channels) in reverse order: the same integer accumulators, summed in another order;

on random int8 inputs and counts, per variant, the outputs that differ from the reference and from
the exact rounding of ``acc / 800`` (ties to even), and does the same for the bridge's integer ONNX
semantics (``quant.multiply_half_even`` with the exact ratio of the float32 scales).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

SCALES = {"x": 0.05, "w": 0.002, "y": 0.08}  # acc * 0.05 * 0.002 / 0.08 = acc / 800
VARIANTS = ("conv", "conv_threads4", "conv_optimized", "matmul", "gemm", "conv_reversed", "matmul_reversed")


def _model(variant: str, channels: int, out_channels: int, size: int, weights: np.ndarray):
    """The QDQ graph of one variant: int8 x [1, C, size, size] -> int8 y (NCHW, or [size*size, K] for matmul/gemm)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(SCALES[k], np.float32), f"s{k}") for k in SCALES]
    inits += [numpy_helper.from_array(np.array(0, np.int8), "zero")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zero"], ["xf"])]
    if variant.startswith("conv"):
        inits.append(numpy_helper.from_array(weights.reshape(out_channels, channels, 1, 1), "w"))
        nodes += [helper.make_node("DequantizeLinear", ["w", "sw", "zero"], ["wf"]), helper.make_node("Conv", ["xf", "wf"], ["yf"])]
        out_shape = [1, out_channels, size, size]
    else:
        inits.append(numpy_helper.from_array(np.array([channels, size * size], np.int64), "flat"))
        nodes += [helper.make_node("Reshape", ["xf", "flat"], ["x2"]), helper.make_node("Transpose", ["x2"], ["rows"], perm=[1, 0])]
        if variant == "matmul":
            inits.append(numpy_helper.from_array(np.ascontiguousarray(weights.T), "w"))
            nodes += [helper.make_node("DequantizeLinear", ["w", "sw", "zero"], ["wf"]), helper.make_node("MatMul", ["rows", "wf"], ["yf"])]
        else:
            inits.append(numpy_helper.from_array(weights, "w"))
            nodes += [helper.make_node("DequantizeLinear", ["w", "sw", "zero"], ["wf"]),
                      helper.make_node("Gemm", ["rows", "wf"], ["yf"], transB=1)]
        out_shape = [size * size, out_channels]
    nodes.append(helper.make_node("QuantizeLinear", ["yf", "sy", "zero"], ["y"]))
    graph = helper.make_graph(nodes, variant, [helper.make_tensor_value_info("x", TensorProto.INT8, [1, channels, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _session(variant: str, model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if variant == "conv_optimized"
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = 4 if variant == "conv_threads4" else 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def self_consistency(runs: int = 20, channels: int = 72, out_channels: int = 32, size: int = 16, seed: int = 0,
                     variants: Optional[tuple[str, ...]] = None) -> dict:
    """Counts over ``runs`` random inputs: outputs, ties (``acc = 400 mod 800``) and, per variant (and
    ``bridge_onnx``, the bridge's integer result), outputs
    differing from the ``conv`` reference (``vs_conv``) and from the exact rounding (``vs_exact``; of
    them at ties: ``vs_exact_at_ties``). Outputs as NHWC-ordered [size*size, K] arrays for comparison."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(-127, 128, (out_channels, channels)).astype(np.int8)
    from tvm_bridge import quant

    variants = variants or VARIANTS
    sessions = {v: _session(v, _model(v.replace("_reversed", ""), channels, out_channels, size,
                                      weights[:, ::-1].copy() if v.endswith("_reversed") else weights))
                for v in dict.fromkeys(("conv",) + tuple(variants))}
    multiplier, shift = quant.onnx_multipliers(SCALES["x"], np.array([SCALES["w"]]), SCALES["y"])
    counts = {v: {"vs_conv": 0, "vs_exact": 0, "vs_exact_at_ties": 0} for v in variants + ("bridge_onnx",)}
    outputs = ties = 0
    for _ in range(runs):
        x = rng.integers(-128, 128, (1, channels, size, size)).astype(np.int8)
        acc = x.reshape(channels, -1).T.astype(np.int64) @ weights.T.astype(np.int64)  # [size*size, K]
        floor, remainder = np.divmod(acc, 800)
        exact = np.clip(floor + ((remainder > 400) | ((remainder == 400) & (floor % 2 == 1))), -128, 127)
        tie = remainder == 400
        results = {}
        for variant, session in sessions.items():
            y = session.run(None, {"x": x[:, ::-1].copy() if variant.endswith("_reversed") else x})[0].astype(np.int64)
            results[variant] = y.reshape(out_channels, -1).T if variant.startswith("conv") else y
        results["bridge_onnx"] = np.clip(quant.multiply_half_even(acc, multiplier[0], shift[0]), -128, 127)
        for variant in variants + ("bridge_onnx",):
            differs = results[variant] != exact
            counts[variant]["vs_conv"] += int(np.count_nonzero(results[variant] != results["conv"]))
            counts[variant]["vs_exact"] += int(np.count_nonzero(differs))
            counts[variant]["vs_exact_at_ties"] += int(np.count_nonzero(differs & tie))
        outputs, ties = outputs + acc.size, ties + int(np.count_nonzero(tie))
    return {"runs": runs, "scales": SCALES, "shape": [1, channels, size, size], "out_channels": out_channels,
            "outputs": outputs, "ties": ties, "variants": counts}
