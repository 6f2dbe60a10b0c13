"""``python -m benchmarks.onnx_exactness``: how often the bridge's ONNX QDQ layers differ from onnxruntime.

onnxruntime (graph optimisations off) runs ``DequantizeLinear -> float op -> QuantizeLinear``; the
bridge runs integer kernels that round the exact real value (``tvm_bridge.quant``, ONNX semantics),
so the two differ only where onnxruntime's float32 sum lands on the other side of a rounding tie.
This builds small int8 QDQ ONNX models with random weights (``QDQBuilder``; the models of
tests/test_bridge_onnx.py), compiles them with ``tvm_bridge.compile`` for each target, runs random
inputs through both and prints per model the largest |difference| and how many int8 outputs differ
(against onnxruntime with graph optimisations off and, ``mismatches_default_level``, at its default
level). Rows ``qop_*`` are QOperator models (``benchmarks.onnx_qoperator``: QLinearConv, QGemm,
QLinearMatMul, QLinearAdd; random or decimal scales), whose layers follow onnxruntime's integer
kernels. Then ``benchmarks.onnx_ties.self_consistency`` measures whether onnxruntime agrees with
itself at rounding ties (one decimal-scale QDQ conv as equivalent graphs) and, on full runs,
``default_level_semantics`` which semantics matches onnxruntime's default level on uint8 QDQ
models (partly fused into QLinear kernels). ``--json`` writes all three.

    python -m benchmarks.onnx_exactness
    python -m benchmarks.onnx_exactness --runs 50 --targets gap9 diana --json onnx.json
    python -m benchmarks.onnx_exactness --models decimal_residual --targets gap9
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from benchmarks import onnx_qoperator as qop
from benchmarks import onnx_ties


class QDQBuilder:
    """Builds an int8 QDQ ONNX graph (NCHW) layer by layer with random weights.

    ``pow2``: every scale a power of two (onnxruntime's float math is then exact: small integers
    times powers of two, sums below 2**24 units); else random float scales. Output scales are set
    from the expected spread of each layer's real output so that activations neither vanish nor
    saturate. ``uint8``: activations (input, output, every QuantizeLinear) uint8 instead of int8.
    ``decimal``: random scales rounded to one significant decimal digit (many real values on ties).
    """

    def __init__(self, shape: tuple[int, int, int, int], pow2: bool, seed: int, uint8: bool = False, decimal: bool = False):
        from onnx import TensorProto, helper

        self.helper, self.TensorProto = helper, TensorProto
        self.rng = np.random.default_rng(seed)
        self.pow2, self.decimal = pow2, decimal
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {}
        self.input_shape = shape
        self.scale, self.zp, self.spread = self._scale(0.05), int(self.rng.integers(-10, 11)), 74.0
        self.tensor, self.shape, self.count = "x", shape, 0
        self.uint8 = uint8

    def _scale(self, value: float) -> float:
        if self.pow2:
            return float(2.0 ** np.round(np.log2(value)))
        value = value * self.rng.uniform(0.8, 1.25)
        if self.decimal:
            power = 10.0 ** np.floor(np.log10(value))
            value = np.round(value / power) * power
        return float(np.float32(value))

    def _name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def _const(self, base: str, value: np.ndarray) -> str:
        name = self._name(base)
        self.inits[name] = value
        return name

    def _dequantize(self, tensor: str, scale, zp: int, dtype=np.int8) -> str:
        """DequantizeLinear; a vector ``scale`` is per channel (axis 0, zero points 0)."""
        out = self._name("dq")
        scale = np.asarray(scale, np.float32)
        zero = np.full(scale.shape, zp, dtype)
        attrs = {"axis": 0} if scale.ndim else {}
        self.nodes.append(self.helper.make_node("DequantizeLinear", [tensor, self._const("s", scale), self._const("z", zero)],
                                                [out], **attrs))
        return out

    def _zero_point(self, zp: int) -> np.ndarray:
        """An activation zero point (given in int8 terms) in the activations' dtype."""
        return np.array(zp + 128, np.uint8) if self.uint8 else np.array(zp, np.int8)

    def _dequantize_act(self, tensor: str, scale: float, zp: int) -> str:
        out = self._name("dq")
        self.nodes.append(self.helper.make_node("DequantizeLinear", [tensor, self._const("s", np.array(scale, np.float32)),
                                                                      self._const("z", self._zero_point(zp))], [out]))
        return out

    def _quantize(self, tensor: str, spread: float) -> None:
        """QuantizeLinear with an output scale for a real output of about ``spread`` standard deviation."""
        scale, zp = self._scale(3.0 * spread / 127.0), int(self.rng.integers(-10, 11))
        out = self._name("q")
        self.nodes.append(self.helper.make_node("QuantizeLinear", [tensor, self._const("s", np.array(scale, np.float32)),
                                                                    self._const("z", self._zero_point(zp))], [out]))
        self.tensor, self.scale, self.zp, self.spread = out, scale, zp, 74.0

    def _activation(self, tensor: str, act: str) -> str:
        if act == "none":
            return tensor
        out = self._name("act")
        if act == "relu":
            self.nodes.append(self.helper.make_node("Relu", [tensor], [out]))
        else:  # clip(0, 6)
            lo, hi = self._const("lo", np.array(0.0, np.float32)), self._const("hi", np.array(6.0, np.float32))
            self.nodes.append(self.helper.make_node("Clip", [tensor, lo, hi], [out]))
        return out

    def conv(self, out_channels: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: str = "relu",
             bias: bool = True, per_channel: bool = False) -> "QDQBuilder":
        b, c, h, w = self.shape
        cin = c // groups
        weights = self.rng.integers(-127, 128, (out_channels, cin, kernel, kernel), dtype=np.int8)
        w_scale = np.array([self._scale(0.01 * v) for v in self.rng.uniform(0.5, 2.0, out_channels)]) if per_channel \
            else self._scale(0.01)
        x = self._dequantize_act(self.tensor, self.scale, self.zp)
        inputs = [x, self._dequantize(self._const("W", weights), w_scale, 0)]
        if bias:
            b_scale = np.float32(self.scale) * np.asarray(w_scale, np.float32)  # as onnxruntime's quantizer sets it
            values = self.rng.integers(-2000, 2000, out_channels, dtype=np.int32)
            inputs.append(self._dequantize(self._const("B", values), b_scale, 0, np.int32))
        out = self._name("conv")
        pad = kernel // 2
        self.nodes.append(self.helper.make_node("Conv", inputs, [out], pads=[pad] * 4, strides=[stride, stride], group=groups))
        spread = self.scale * float(np.mean(w_scale)) * self.spread * 73.0 * np.sqrt(cin * kernel * kernel)
        self.shape = (b, out_channels, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        self._quantize(self._activation(out, act), spread)
        return self

    def residual(self, act: str = "none") -> "QDQBuilder":
        """``y = conv1x1(x) + x`` (the add's second input shares x's tensor)."""
        skip, skip_scale, skip_zp = self.tensor, self.scale, self.zp
        self.conv(self.shape[1], kernel=1, act="none")
        a, b = self._dequantize_act(self.tensor, self.scale, self.zp), self._dequantize_act(skip, skip_scale, skip_zp)
        out = self._name("add")
        self.nodes.append(self.helper.make_node("Add", [a, b], [out]))
        self._quantize(self._activation(out, act), 74.0 * max(self.scale, skip_scale) * 1.4)
        return self

    def gemm(self, out_features: int, matmul: bool = False, act: str = "none") -> "QDQBuilder":
        """Flatten, then Gemm (``transB=1``, bias) or MatMul (+ Add of a dequantized bias)."""
        features = int(np.prod(self.shape[1:]))
        flat = self._name("flat")
        self.nodes.append(self.helper.make_node("Flatten", [self._dequantize_act(self.tensor, self.scale, self.zp)], [flat]))
        w_scale = self._scale(0.01)
        b_scale = float(np.float32(np.float32(self.scale) * np.float32(w_scale)))
        bias = self._dequantize(self._const("B", self.rng.integers(-2000, 2000, out_features, dtype=np.int32)), b_scale, 0, np.int32)
        out = self._name("fc")
        if matmul:
            weights = self.rng.integers(-127, 128, (features, out_features), dtype=np.int8)
            mm = self._name("mm")
            self.nodes.append(self.helper.make_node("MatMul", [flat, self._dequantize(self._const("W", weights), w_scale, 0)], [mm]))
            self.nodes.append(self.helper.make_node("Add", [mm, bias], [out]))
        else:
            weights = self.rng.integers(-127, 128, (out_features, features), dtype=np.int8)
            self.nodes.append(self.helper.make_node("Gemm", [flat, self._dequantize(self._const("W", weights), w_scale, 0), bias],
                                                    [out], transB=1))
        spread = self.scale * w_scale * self.spread * 73.0 * np.sqrt(features)
        self.shape = (self.shape[0], out_features)
        self._quantize(self._activation(out, act), spread)
        return self

    def save(self, path) -> str:
        import onnx
        from onnx import numpy_helper

        helper, tp = self.helper, self.TensorProto
        act = tp.UINT8 if self.uint8 else tp.INT8
        graph = helper.make_graph(self.nodes, "qdq", [helper.make_tensor_value_info("x", act, list(self.input_shape))],
                                  [helper.make_tensor_value_info(self.tensor, act, list(self.shape))],
                                  [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        return str(path)


def conv_chain(path, pow2: bool, seed: int = 0) -> str:
    """conv 3x3 + Relu, depthwise 3x3 stride 2 + Clip(0, 6), conv 1x1 + residual add, Gemm."""
    return (QDQBuilder((1, 8, 10, 10), pow2, seed).conv(16).conv(16, stride=2, groups=16, act="clip").residual()
            .gemm(10).save(path))


def conv_stack(path, pow2: bool, seed: int = 0, uint8: bool = False, decimal: bool = False) -> str:
    """conv 3x3 + Relu, depthwise 3x3 stride 2 + Clip(0, 6) (per-channel weight scales), conv 1x1 +
    residual add: 400 int8 outputs."""
    return (QDQBuilder((1, 8, 10, 10), pow2, seed, uint8, decimal).conv(16).conv(16, stride=2, groups=16, act="clip", per_channel=True)
            .residual().save(path))


def matmul_chain(path, pow2: bool, seed: int = 0, uint8: bool = False) -> str:
    """conv 3x3 stride 2 without bias or activation, MatMul + bias add + Relu."""
    return (QDQBuilder((1, 4, 8, 8), pow2, seed, uint8).conv(8, stride=2, act="none", bias=False).gemm(12, matmul=True, act="relu")
            .save(path))


def single_conv(path, pow2: bool, seed: int = 0) -> str:
    """One conv 3x3, 16 -> 32 channels, on 32x32 (no activation): 32,768 outputs per input."""
    return QDQBuilder((1, 16, 32, 32), pow2, seed).conv(32, act="none").save(path)


def residual_conv_onnx(path) -> str:
    """conv 3x3 (decimal scales 0.05, 0.002 -> 0.08) + residual add sharing the conv's input
    DequantizeLinear (-> 0.1): the conv's real outputs are multiples of 1/800, so many lie on a
    rounding tie, where onnxruntime's float32 sum decides."""
    import onnx
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
    return str(path)


MODELS: dict[str, Callable[[Path], str]] = {
    **{f"conv_chain_pow2_s{s}": (lambda p, s=s: conv_chain(p, True, s)) for s in range(2)},
    **{f"conv_stack_random_s{s}": (lambda p, s=s: conv_stack(p, False, s)) for s in range(3)},
    **{f"conv_chain_random_s{s}": (lambda p, s=s: conv_chain(p, False, s)) for s in range(2)},
    "matmul_chain_random": lambda p: matmul_chain(p, False, 0),
    "conv_stack_uint8_pow2": lambda p: conv_stack(p, True, 0, uint8=True),
    **{f"single_conv_random_s{s}": (lambda p, s=s: single_conv(p, False, s)) for s in range(2)},
    "decimal_residual": residual_conv_onnx,
    **{f"qop_conv_residual_{kind}_s{s}": (lambda p, s=s, kind=kind: qop.conv_residual(p, s, decimal=kind == "decimal"))
       for kind in ("random", "decimal") for s in range(2)},
    "qop_conv_residual_uint8_decimal": lambda p: qop.conv_residual(p, 0, uint8=True, decimal=True),
    **{f"qop_dense_chain_{kind}": (lambda p, kind=kind: qop.dense_chain(p, 0, decimal=kind == "decimal"))
       for kind in ("random", "decimal")},
}


def ort_session(path, optimized: bool = False):
    """onnxruntime on the CPU, graph optimisations off (or at its default level: ``optimized``)."""
    return qop.ort_session(path, optimized)


def compare(compiled, path, runs: int, seed: int = 1, optimized: bool = False) -> tuple[int, int, int]:
    """(max |diff|, differing int8 outputs, outputs) of ``compiled`` vs onnxruntime (graph optimisations
    off, or at the default level: ``optimized``) on ``runs`` random inputs."""
    session = ort_session(path, optimized)
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
    dtype = np.uint8 if session.get_inputs()[0].type == "tensor(uint8)" else np.int8
    rng = np.random.default_rng(seed)
    worst = mismatches = total = 0
    for _ in range(runs):
        x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, shape, dtype=dtype)
        y, expected = compiled.run(x), session.run(None, {name: x})[0]
        if y.shape != expected.shape:
            raise AssertionError(f"{path}: output shape {y.shape}, onnxruntime {expected.shape}")
        diff = np.abs(y.astype(np.int32) - expected.astype(np.int32))
        worst, mismatches, total = max(worst, int(diff.max())), mismatches + int(np.count_nonzero(diff)), total + diff.size
    return worst, mismatches, total


def measure(name: str, make: Callable[[Path], str], target: str, runs: int, workdir: Path) -> dict:
    import archs
    import tvm_bridge

    path = make(workdir / f"{name}.onnx")
    compiled = tvm_bridge.compile(path, archs.load(target))
    worst, mismatches, total = compare(compiled, path, runs)
    worst_default, mismatches_default, _ = compare(compiled, path, runs, optimized=True)
    return {"model": name, "target": target, "runs": runs, "max_abs_diff": worst, "mismatches": mismatches, "outputs": total,
            "max_abs_diff_default_level": worst_default, "mismatches_default_level": mismatches_default,
            "offloaded": sum(compiled.offloaded.values()), "layers": len(compiled.offloaded)}


def default_level_semantics(runs: int, workdir: Path, seeds: int = 3) -> list[dict]:
    """uint8 decimal-scale QDQ conv stacks (which onnxruntime fuses partly into QLinear kernels at its
    default level) compiled for gap9 with the QDQ semantics and with the QLinear one: differing
    outputs vs onnxruntime with optimisations off and at the default level, printed."""
    import archs
    import tvm_bridge

    rows = []
    print("\nuint8 decimal-scale QDQ conv stacks: outputs differing from onnxruntime (optimisations off / default level)")
    for seed in range(seeds):
        path = conv_stack(workdir / f"u8_decimal_{seed}.onnx", False, seed, uint8=True, decimal=True)
        row = {"model": f"conv_stack_uint8_decimal_s{seed}", "runs": runs}
        for semantics in ("onnx", "onnx_qlinear_uint8"):
            compiled = tvm_bridge.compile(tvm_bridge.from_onnx(path).with_attr("match.semantics", semantics), archs.load("gap9"))
            _, off, outputs = compare(compiled, path, runs)
            row[semantics] = {"outputs": outputs, "off": off, "default": compare(compiled, path, runs, optimized=True)[1]}
        rows.append(row)
        print(f"  {row['model']:28} QDQ semantics {row['onnx']['off']:5d} / {row['onnx']['default']:5d}   QLinear semantics "
              f"{row['onnx_qlinear_uint8']['off']:5d} / {row['onnx_qlinear_uint8']['default']:5d}   of {row['onnx']['outputs']}")
    return rows


def report_ties(runs: int) -> list[dict]:
    """``onnx_ties.self_consistency`` for a 1x1 conv of 72 and of 144 input channels, printed."""
    results = [onnx_ties.self_consistency(runs=runs, channels=c) for c in (72, 144)]
    print("\nonnxruntime at rounding ties: one QDQ conv (scales 0.05, 0.002 -> 0.08), equivalent graphs; outputs that differ")
    for r in results:
        print(f"  {r['shape'][1]} input channels: {r['outputs']} outputs, {r['ties']} exactly on a tie")
        for variant, c in r["variants"].items():
            print(f"    {variant:16} vs conv {c['vs_conv']:5d}   vs exact rounding {c['vs_exact']:5d} (at ties {c['vs_exact_at_ties']})")
    return results


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="ONNX QDQ models: bridge vs onnxruntime (ORT_DISABLE_ALL), int8 outputs.")
    parser.add_argument("--runs", type=int, default=20, help="random inputs per model (default 20)")
    parser.add_argument("--targets", nargs="+", default=["gap9", "diana"], help="SoC names or YAML paths")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="models to measure (default: all)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    logging.getLogger("tvm_bridge").setLevel(logging.ERROR)
    rows = []
    print(f"{'model':32} {'target':7} {'max|diff|':>9} {'differ':>8} {'default':>8} {'outputs':>9} {'offloaded':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in MODELS.items():
            if args.models and name not in args.models:
                continue
            for target in args.targets:
                row = measure(name, make, target, args.runs, Path(tmp))
                rows.append(row)
                print(f"{name:32} {target:7} {row['max_abs_diff']:9d} {row['mismatches']:8d} {row['mismatches_default_level']:8d} "
                      f"{row['outputs']:9d} {row['offloaded']:>4}/{row['layers']:<5}", flush=True)
        ties = report_ties(args.runs)
        fusion = default_level_semantics(args.runs, Path(tmp)) if not args.models else []
    if args.json:
        import onnxruntime

        from benchmarks._environment import cpu_model, git_commit

        args.json.write_text(json.dumps({"runs": args.runs, "commit": git_commit(), "cpu": cpu_model(),
                                         "onnxruntime": onnxruntime.__version__, "rows": rows, "ort_self_consistency": ties,
                                         "qdq_default_level": fusion},
                                        indent=1))
    return rows


if __name__ == "__main__":
    main()
