"""Measure the host cost model: plain-C int8 kernels on RV32IMC under QEMU, fitted per layer kind.

    python -m benchmarks.host_model                 # measure, fit, print, write benchmarks/results/host_model.json
    python -m benchmarks.host_model --check         # also fail if archs.kernels' shipped model is off

``benchmarks/c/host_kernels.c`` (conv2d, depthwise, dense, add, average / max pool; int8 in, int32
accumulation, TFLite requantization) is cross-compiled with ``riscv64-unknown-elf-gcc -march=rv32imc
-mabi=ilp32 -O2`` (picolibc) and run on ``qemu-system-riscv32 -icount shift=0``, which makes the
``rdinstret`` CSR count retired instructions exactly; each layer shape runs between two reads,
and its output must equal ``tvm_bridge.quant.reference_layer`` on the same data (checksums).
Per kind, ``instructions = a * MACs + w * windows + b * outputs + c`` is fitted by non-negative
least squares on relative errors (``scipy.optimize.nnls``: a model with a negative term could predict fewer cycles
than MACs / peak on small tiles). ``windows`` = outputs x FY x FX (kernel-window positions, each
with its padding test and inner-loop set-up) is used for conv2d only: it equals MACs for depthwise
and pool; ``add`` has MACs = outputs, so it fits ``b * outputs + c``. Pool fits average
and max pooling together (``mapper`` has one ``pool`` kind). Cycles = instructions x CPI 1 (the
hosts are single-issue in-order RV32 cores); the shipped constants are ``archs.kernels.HOST_RV32``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import nnls

import mapper
from archs import kernels
from archs.dims import LoopDim as D
from archs.dims import Operand
from benchmarks import rv32
from tvm_bridge import quant

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "c" / "host_kernels.c"
HEADER_DIR = ROOT.parent / "tvm_bridge" / "c"  # match_target.h: the requantization helpers
DEFAULT_JSON = ROOT / "results" / "host_model.json"
KIND_CODES = {"conv2d": 0, "depthwise": 1, "dense": 2, "add": 3, "avg_pool": 4, "max_pool": 5}
#: Old flat host model: 4 cycles per MAC for every kind (macs_per_cycle 0.25).
OLD_CYCLES_PER_MAC = 4.0


def shapes(seed: int = 0) -> list[tuple[str, mapper.Layer]]:
    """A deterministic spread of layer shapes per kind: (measured kind, layer)."""
    rng = np.random.default_rng(seed)
    pick = lambda values: values[int(rng.integers(len(values)))]  # noqa: E731
    out: list[tuple[str, mapper.Layer]] = []
    for i in range(16):
        groups = pick([1, 1, 1, 2])
        hw = pick([4, 6, 8, 12, 16])
        out.append(("conv2d", mapper.conv2d(
            f"conv{i}", input_size=(hw, hw), in_channels=groups * pick([1, 3, 4, 8, 16]),
            out_channels=groups * pick([2, 4, 8, 16]), kernel=pick([1, 3, 3, 5]), stride=pick([1, 2]),
            padding=pick(["same", "valid"]) if hw > 5 else "same", groups=groups)))
    for i in range(12):
        hw = pick([4, 8, 12, 16])
        out.append(("depthwise", mapper.depthwise(
            f"dw{i}", input_size=(hw, hw), channels=pick([4, 8, 16, 32]), kernel=pick([3, 3, 5]),
            stride=pick([1, 2]), multiplier=pick([1, 1, 2]), padding="same")))
    for i in range(12):
        out.append(("dense", mapper.dense(f"fc{i}", in_features=pick([8, 16, 64, 128, 256, 640]),
                                          out_features=pick([2, 10, 16, 64, 128]), batch=pick([1, 1, 2]))))
    for i in range(10):
        hw = pick([1, 4, 8, 16])
        out.append(("add", mapper.add(f"add{i}", channels=pick([4, 8, 16, 32, 64]), size=(hw, hw))))
    for op in ("avg_pool", "max_pool"):
        for i in range(8):
            hw = pick([4, 8, 16])
            k = pick([2, 3, hw])
            out.append((op, mapper.pool(f"{op}{i}", input_size=(hw, hw), channels=pick([4, 8, 16, 64]), kernel=k,
                                        stride=pick([1, 2, k]) if k < hw else k)))
    return out


def outputs(layer: mapper.Layer) -> int:
    """Output elements of ``layer``."""
    s = layer.sizes
    return s[D.B] * s[D.K] * s[D.OY] * s[D.OX] * s[D.G]


def _shapes_header(items: Sequence[tuple[str, mapper.Layer]]) -> str:
    rows, max_in, max_w, max_out, max_ch = [], 1, 1, 1, 1
    for kind, layer in items:
        s = layer.sizes
        iy, ix = layer.input_size
        fields = [KIND_CODES[kind], s[D.B], s[D.K], s[D.C], s[D.OY], s[D.OX], s[D.FY], s[D.FX], s[D.G],
                  layer.stride[0], layer.stride[1], layer.padding[0], layer.padding[2], iy, ix]
        rows.append("    {" + ", ".join(map(str, fields)) + "},")
        max_in = max(max_in, layer.tensor_elements(Operand.I))
        max_w = max(max_w, layer.tensor_elements(Operand.W))
        max_out = max(max_out, outputs(layer))
        max_ch = max(max_ch, s[D.K] * s[D.G])
    return ("/* written by benchmarks/host_model.py */\n"
            f"#define HOST_MAX_IN {max_in}\n#define HOST_MAX_W {max_w}\n#define HOST_MAX_OUT {max_out}\n"
            f"#define HOST_MAX_CH {max_ch}\nstatic const shape_t HOST_SHAPES[] = {{\n" + "\n".join(rows) + "\n};\n")


def measure(items: Sequence[tuple[str, mapper.Layer]], check: bool = True) -> list[int]:
    """Retired RV32IMC instructions of each (kind, layer) kernel call, in order.

    With ``check``, every kernel's output must equal ``tvm_bridge.quant.reference_layer`` (the
    numpy model of TFLite's reference kernels) on the same data, else ``rv32.Rv32Error``."""
    with tempfile.TemporaryDirectory(prefix="host_model_") as tmp:
        work = Path(tmp)
        (work / "host_shapes.h").write_text(_shapes_header(items))
        elf = rv32.build([SOURCE], work / "host_kernels.elf", flags=("-O2",), include_dirs=(work, HEADER_DIR))
        result = rv32.run(elf)
    counts: dict[int, tuple[int, int]] = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(\w+) (\d+) (\d+) (\d+)", line.strip())
        if match:
            counts[int(match.group(2))] = (int(match.group(3)), int(match.group(4)))
    if sorted(counts) != list(range(len(items))):
        raise rv32.Rv32Error(f"expected {len(items)} result lines, got {len(counts)}: {result.stdout[:500]!r}")
    if check:
        expected = reference_checksums(items)
        wrong = [f"{kind} {layer.name}" for i, (kind, layer) in enumerate(items) if counts[i][1] != expected[i]]
        if wrong:
            raise rv32.Rv32Error(f"host kernels differ from tvm_bridge.quant.reference_layer on {', '.join(wrong[:5])}")
    return [counts[i][0] for i in range(len(items))]


# --------------------------------------------------------------------------- reference outputs
def _harness_data(items: Sequence[tuple[str, mapper.Layer]]) -> dict[str, np.ndarray]:
    """The harness's input, weight and requantization arrays (its LCG, same order)."""
    header = _shapes_header(items)
    sizes = {name: int(re.search(rf"#define HOST_MAX_{name} (\d+)", header).group(1)) for name in ("IN", "W", "CH")}
    state = 12345

    def draw(n: int) -> np.ndarray:
        nonlocal state
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
            out[i] = (state >> 24) - 256 * ((state >> 24) >= 128)
        return out

    pairs = draw(2 * sizes["IN"])
    weights = draw(sizes["W"])
    per_channel = draw(2 * sizes["CH"]).reshape(-1, 2)  # bias, multiplier
    channels = np.arange(sizes["CH"])
    return {"in": pairs[0::2].astype(np.int8), "in2": pairs[1::2].astype(np.int8), "w": weights.astype(np.int8),
            "bias": (per_channel[:, 0] * 64).astype(np.int32),
            "mult": (1518500250 + per_channel[:, 1] * 4096).astype(np.int32),
            "shift": (-7 - channels % 3).astype(np.int32)}


def _reference(kind: str, layer: mapper.Layer, data: dict[str, np.ndarray]) -> np.ndarray:
    """Output of ``layer`` from the harness data, by ``tvm_bridge.quant.reference_layer``."""
    s = layer.sizes
    iy, ix = layer.input_size
    zp = {"input_zp": 3, "output_zp": -2}
    if kind in ("avg_pool", "max_pool"):
        q = quant.QuantParams(kind, 3, 3)
        x = data["in"][:s[D.B] * iy * ix * s[D.G]].reshape(s[D.B], iy, ix, s[D.G])
        return quant.reference_layer(dataclasses.replace(layer, quant=q), x)
    if kind == "add":
        n = s[D.B] * s[D.OY] * s[D.OX] * s[D.G]
        q = quant.QuantParams("add", **zp, multiplier=np.array([1073741824], np.int32), shift=np.array([-19], np.int32),
                              input2_zp=-5, input1_multiplier=1073741824, input1_shift=-1,
                              input2_multiplier=1288490189, input2_shift=-1)
        shape = (s[D.B], s[D.OY], s[D.OX], s[D.G])
        return quant.reference_layer(dataclasses.replace(layer, quant=q), data["in"][:n].reshape(shape),
                                     data["in2"][:n].reshape(shape))
    cout = s[D.G] * s[D.K]
    per_channel = {"bias": data["bias"][:cout], "multiplier": data["mult"][:cout], "shift": data["shift"][:cout]}
    if kind == "dense":
        q = quant.QuantParams("dense", **zp, weights=data["w"][:s[D.K] * s[D.C]].reshape(s[D.K], s[D.C]), **per_channel)
        return quant.reference_layer(dataclasses.replace(layer, quant=q), data["in"][:s[D.B] * s[D.C]].reshape(s[D.B], s[D.C]))
    if kind == "depthwise":
        w = data["w"][:s[D.FY] * s[D.FX] * cout].reshape(s[D.FY], s[D.FX], cout)
        q = quant.QuantParams("depthwise", **zp, weights=w, **per_channel)
        x = data["in"][:s[D.B] * iy * ix * s[D.G]].reshape(s[D.B], iy, ix, s[D.G])
        return quant.reference_layer(dataclasses.replace(layer, quant=q), x)
    # conv2d: the reference has no groups; run each group as its own conv and concatenate channels
    g, k, c = s[D.G], s[D.K], s[D.C]
    x = data["in"][:s[D.B] * iy * ix * g * c].reshape(s[D.B], iy, ix, g * c)
    w = data["w"][:cout * s[D.FY] * s[D.FX] * c].reshape(cout, s[D.FY], s[D.FX], c)
    one = dataclasses.replace(layer, sizes={**s, D.G: 1})
    outs = []
    for j in range(g):
        part = slice(j * k, (j + 1) * k)
        q = quant.QuantParams("conv2d", **zp, weights=w[part], **{n: v[part] for n, v in per_channel.items()})
        outs.append(quant.reference_layer(dataclasses.replace(one, quant=q), x[..., j * c:(j + 1) * c]))
    return np.concatenate(outs, axis=-1)


def reference_checksums(items: Sequence[tuple[str, mapper.Layer]]) -> list[int]:
    """The harness's checksum (h = 31 h + byte, mod 2**32, NHWC order) of each reference output."""
    data = _harness_data(items)
    sums = []
    for kind, layer in items:
        h = 0
        for byte in _reference(kind, layer, data).reshape(-1).view(np.uint8):
            h = (h * 31 + int(byte)) & 0xFFFFFFFF
        sums.append(h)
    return sums


def features(kind: str, macs: np.ndarray, windows: np.ndarray, outs: np.ndarray) -> np.ndarray:
    """Design matrix [shape, (MACs, windows, outputs, 1)] of the fit; columns a kind does not use
    (see the module docstring) are zero."""
    zero = np.zeros(len(macs))
    mac_column = zero if kind == "add" else macs.astype(np.float64)
    window_column = windows.astype(np.float64) if kind == "conv2d" else zero
    return np.stack([mac_column, window_column, outs.astype(np.float64), np.ones(len(macs))], axis=1)


def fit(kind: str, macs: np.ndarray, windows: np.ndarray, outs: np.ndarray,
        instructions: np.ndarray) -> tuple[float, float, float, float]:
    """Non-negative (a, w, b, c) of ``instructions ~ a * MACs + w * windows + b * outputs + c``,
    minimising the relative error (rows scaled by 1 / instructions: small and large shapes count
    alike)."""
    y = instructions.astype(np.float64)
    coef, _ = nnls(features(kind, macs, windows, outs) / y[:, None], np.ones_like(y))
    return float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3])


def run(seed: int = 0) -> dict:
    """Measure every shape, fit every kind; a JSON-ready report."""
    items = shapes(seed)
    counts = measure(items)
    report: dict = {"toolchain": f"{rv32.GCC} {' '.join(rv32.ARCH_FLAGS)} -O2, picolibc; {rv32.QEMU} -icount shift=0",
                    "cpi": kernels.HOST_RV32_CPI, "kinds": {}, "shapes": []}
    groups = {"conv2d": ["conv2d"], "depthwise": ["depthwise"], "dense": ["dense"], "add": ["add"],
              "pool": ["avg_pool", "max_pool"]}
    for kind, measured_kinds in groups.items():
        rows = [(k, layer, n) for (k, layer), n in zip(items, counts) if k in measured_kinds]
        macs = np.array([layer.macs for _, layer, _ in rows])
        outs = np.array([outputs(layer) for _, layer, _ in rows])
        windows = np.array([outputs(layer) * layer.sizes[D.FY] * layer.sizes[D.FX] for _, layer, _ in rows])
        instr = np.array([n for _, _, n in rows])
        a, w, b, c = fit(kind, macs, windows, outs, instr)
        predicted = features(kind, macs, windows, outs) @ np.array([a, w, b, c])
        rel = np.abs(predicted - instr) / instr
        shipped = kernels.host_rv32_instructions(kind, macs, windows, outs)
        report["kinds"][kind] = {
            "a_per_mac": round(a, 3), "w_per_window": round(w, 3), "b_per_output": round(b, 3),
            "c_per_call": round(c, 1),
            "shapes": len(rows), "max_rel_error": round(float(rel.max()), 4),
            "mean_cycles_per_mac": round(float(np.mean(instr / macs)) * kernels.HOST_RV32_CPI, 3),
            "ratio_to_old_4_cycles_per_mac": round(float(np.mean(instr * kernels.HOST_RV32_CPI / (OLD_CYCLES_PER_MAC * macs))), 3),
            "shipped_max_rel_error": round(float(np.max(np.abs(shipped - instr) / instr)), 4),
        }
        for (k, layer, n), p in zip(rows, predicted):
            report["shapes"].append({"kind": k, "layer": layer.to_dict(), "macs": layer.macs,
                                     "outputs": outputs(layer), "instructions": n, "fitted": round(float(p), 1)})
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the report (default: %(default)s)")
    parser.add_argument("--check", type=float, nargs="?", const=0.05, default=None, metavar="TOL",
                        help="exit 1 if archs.kernels.HOST_RV32 mispredicts any measured shape by more than the "
                             "fit itself does + TOL (relative, default 0.05)")
    args = parser.parse_args(argv)
    try:
        report = run()
    except rv32.Rv32Error as exc:
        print(f"host_model: {exc}", file=sys.stderr)
        return 2
    print(f"{'kind':10s} {'a/MAC':>8s} {'w/window':>9s} {'b/output':>9s} {'c/call':>8s} {'shapes':>6s} {'max err':>8s} "
          f"{'cyc/MAC':>8s} {'vs 4/MAC':>8s} {'shipped err':>11s}")
    for kind, row in report["kinds"].items():
        print(f"{kind:10s} {row['a_per_mac']:8.3f} {row['w_per_window']:9.3f} {row['b_per_output']:9.3f} {row['c_per_call']:8.1f} "
              f"{row['shapes']:6d} {row['max_rel_error']:8.3f} {row['mean_cycles_per_mac']:8.3f} "
              f"{row['ratio_to_old_4_cycles_per_mac']:7.3f}x {row['shipped_max_rel_error']:11.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")
    if args.check is not None:
        bad = [k for k, r in report["kinds"].items() if r["shipped_max_rel_error"] > r["max_rel_error"] + args.check]
        if bad:
            print(f"host_model: the shipped archs.kernels.HOST_RV32 is off for {', '.join(bad)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
