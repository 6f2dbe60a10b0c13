"""Generated C of single layers (``tvm_bridge.c_emitter``), compiled with gcc and run through ctypes.

Checks: outputs bit-exact with ``tvm_bridge.quant.reference_layer``; the bytes and transfers counted
at run time per tile level equal the schedule's prediction exactly; clean under
``-fsanitize=address,undefined`` with arenas cut to exactly the bytes the buffers use; the source
also compiles as C++ (TVM builds C source modules with g++). Schedules come from the mapper's
search (``search_module``, every objective, shipped and shrunk memories) and from random loop
nests of the mapper's space (random order of the prime factors, random nested cuts, random
unrolling), on the shipped SoCs and on random hypothetical accelerators.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import archs
import mapper
from archs.dims import DIMS, OPERANDS
from archs.dims import LoopDim as D
from costmodel.analysis import analyze
from costmodel.cost import evaluate
from mapper.acceptance import rejection_reason
from mapper.search import _schedule, build_layer_problem
from mapper.spatial import spatial_unrollings
from mapper.temporal import prime_factors
from tvm_bridge import quant
from tvm_bridge.c_emitter import CodegenError, GeneratedLayer, emit_layer, predicted_counters

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

GAP9 = archs.load("gap9")
DIANA = archs.load("diana")
OS32 = archs.load("os32_example")
CFLAGS = ("-O1", "-std=c11", "-Wall", "-Werror")
# -O0: ten times faster to build than -O1 with both sanitizers
SANITIZE = ("-O0", "-g", "-std=c11", "-Wall", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def shrink(soc: archs.SoC, module: str, index: int, size_bytes: int) -> archs.SoC:
    """A copy of ``soc`` whose memory ``index`` of ``module`` has ``size_bytes`` (forces tiling)."""
    mod = soc.modules[module]
    mems = list(mod.memories)
    mems[index] = dataclasses.replace(mems[index], size_bytes=size_bytes)
    return dataclasses.replace(soc, modules={**soc.modules, module: dataclasses.replace(mod, memories=tuple(mems))})


TARGETS: list[tuple[archs.SoC, str]] = [
    (GAP9, "ne16"), (GAP9, "cluster"), (DIANA, "digital"), (OS32, "os_array"),
    (shrink(GAP9, "cluster", 0, 700), "cluster"),
    (shrink(GAP9, "ne16", 0, 400), "ne16"),
    (shrink(DIANA, "digital", 0, 300), "digital"),
    (shrink(shrink(OS32, "os_array", 0, 64), "os_array", 1, 700), "os_array"),
]


# --------------------------------------------------------------------------- layers, data


def make_quant(layer: mapper.Layer, op: str, rng: np.random.Generator, semantics: Optional[str] = None) -> quant.QuantParams:
    """Random but realistic integer parameters (zero points, clamp, per-channel multipliers). MAC and
    add layers follow ``semantics``; by default a quarter of them ONNX's (``QuantParams.semantics``)."""
    s = layer.sizes
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    act_min, act_max = (-128, 127) if rng.random() < 0.4 else (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    if op in ("avg_pool", "max_pool"):
        return quant.QuantParams(op, in_zp, in_zp, act_min, act_max)
    if op == "add":
        scales = [float(v) for v in rng.uniform(0.005, 0.2, 3)]
        p = quant.add_multipliers(*scales)
        if (rng.random() < 0.25) if semantics is None else semantics in quant.ONNX_SEMANTICS:
            return quant.QuantParams("add", in_zp, out_zp, act_min, act_max, multiplier=np.array([0], np.int32),
                                     shift=np.array([0], np.int32), input2_zp=int(rng.integers(-128, 128)), input_scale=scales[0],
                                     input2_scale=scales[1], output_scale=scales[2], semantics=semantics or "onnx")
        return quant.QuantParams("add", in_zp, out_zp, act_min, act_max, multiplier=np.array([p["output_multiplier"]], np.int32),
                                 shift=np.array([p["output_shift"]], np.int32), input2_zp=int(rng.integers(-128, 128)),
                                 input1_multiplier=p["input1_multiplier"], input1_shift=p["input1_shift"],
                                 input2_multiplier=p["input2_multiplier"], input2_shift=p["input2_shift"])
    channels = s[D.G] * s[D.K]
    shape = {"conv2d": (s[D.K], s[D.FY], s[D.FX], s[D.C]), "dense": (s[D.K], s[D.C]),
             "depthwise": (s[D.FY], s[D.FX], channels)}[op]
    weights = rng.integers(-128, 128, size=shape).astype(np.int8)
    bias = rng.integers(-20000, 20000, size=channels).astype(np.int32)
    in_scale, out_scale = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.2))
    high = 2.0 if rng.random() < 0.2 else 0.05  # sometimes effective scales > 0.5 (positive shifts)
    if op == "dense":
        w_scales = np.full(channels, rng.uniform(1e-4, high))
        m, sh = quant.dense_multiplier(in_scale, float(w_scales[0]), out_scale)
        multiplier, shift = np.full(channels, m, np.int32), np.full(channels, sh, np.int32)
    else:
        w_scales = rng.uniform(1e-4, high, channels)
        multiplier, shift = quant.conv_multipliers(in_scale, w_scales, out_scale)
    if semantics is None:
        semantics = "onnx" if rng.random() < 0.25 else "tflite"
    if semantics == "onnx":
        multiplier, shift = quant.onnx_multipliers(in_scale, w_scales, out_scale)
    elif semantics in quant.QLINEAR_SEMANTICS:  # float32 scale as 24-bit mantissa and exponent
        multiplier, shift = quant.qlinear_scales(in_scale, w_scales, out_scale)
    return quant.QuantParams(op, in_zp, out_zp, act_min, act_max, weights=weights, bias=bias, multiplier=multiplier, shift=shift,
                             semantics=semantics)


def make_inputs(gen: GeneratedLayer, rng: np.random.Generator) -> tuple[np.ndarray, Optional[np.ndarray]]:
    shapes = gen.tensor_shapes
    x = rng.integers(-128, 128, size=shapes["in"]).astype(np.int8)
    x2 = rng.integers(-128, 128, size=shapes["in2"]).astype(np.int8) if "in2" in shapes else None
    return x, x2


def quantized(layer: mapper.Layer, op: str, seed: int, semantics: Optional[str] = None) -> mapper.Layer:
    return dataclasses.replace(layer, quant=make_quant(layer, op, np.random.default_rng(seed), semantics))


@st.composite
def layer_specs(draw) -> tuple[mapper.Layer, str]:
    """(layer, quant op): small layers of every kind, strides, dilations, asymmetric padding."""
    op = draw(st.sampled_from(["conv2d", "conv2d", "depthwise", "dense", "add", "avg_pool", "max_pool"]))
    batch = draw(st.sampled_from([1, 1, 2]))
    if op == "dense":
        return mapper.dense("l", in_features=draw(st.integers(1, 24)), out_features=draw(st.integers(1, 12)), batch=batch), op
    if op == "add":
        return mapper.add("l", channels=draw(st.integers(1, 6)), size=(draw(st.integers(1, 5)), draw(st.integers(1, 5))),
                          batch=batch), op
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if op != "avg_pool" and op != "max_pool" else (1, 1)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]),
                             st.tuples(*(st.integers(0, extent[i // 2] - 1) for i in range(4)))))
    size = (draw(st.integers(extent[0], extent[0] + 4)), draw(st.integers(extent[1], extent[1] + 4)))
    channels = draw(st.integers(1, 5))
    if op == "conv2d":
        layer = mapper.conv2d("l", input_size=size, in_channels=channels, out_channels=draw(st.integers(1, 6)), kernel=kernel,
                              stride=stride, dilation=dilation, padding=padding, batch=batch)
    elif op == "depthwise":
        layer = mapper.depthwise("l", input_size=size, channels=channels, kernel=kernel, stride=stride, dilation=dilation,
                                 padding=padding, multiplier=draw(st.integers(1, 3)), batch=batch)
    else:
        layer = mapper.pool("l", input_size=size, channels=channels, kernel=kernel, stride=stride, padding=padding, batch=batch)
    return layer, op


@st.composite
def random_socs(draw) -> archs.SoC:
    """A hypothetical accelerator ``acc`` with a small PE array and one of four memory layouts:
    accumulating registers for O under a shared L1; a three-level I/W chain; split I+O / W memories;
    weights read from L2 by the kernel (no on-chip W level)."""
    def mem(name: str, size: int, operands: list[str], double: bool = False, accumulates: bool = False) -> dict:
        return {"name": name, "size_bytes": size, "operands": operands, "read_bytes_per_cycle": 8, "write_bytes_per_cycle": 8,
                "transfer_fixed_cycles": 10, "double_buffering": double, "accumulates": accumulates,
                "read_energy_pj_per_byte": 1.0, "write_energy_pj_per_byte": 1.0}

    layout = draw(st.integers(0, 3))
    db = draw(st.booleans())
    if layout == 0:
        mems = [mem("regs", draw(st.integers(16, 256)), ["O"], accumulates=draw(st.booleans())),
                mem("l1", draw(st.integers(200, 3000)), ["I", "W", "O"], double=db)]
    elif layout == 1:
        mems = [mem("l0", draw(st.integers(32, 300)), ["I", "W"], double=draw(st.booleans())),
                mem("l1", draw(st.integers(300, 3000)), ["I", "W", "O"], double=db)]
    elif layout == 2:
        mems = [mem("act", draw(st.integers(64, 1500)), ["I", "O"], double=db), mem("wmem", draw(st.integers(32, 800)), ["W"])]
    else:
        mems = [mem("act", draw(st.integers(64, 1500)), ["I", "O"], double=db)]
    l2 = mem("l2", 1 << 20, ["I", "W", "O"])
    size = draw(st.sampled_from([1, 2, 3, 4]))
    return archs.from_dict({"name": "rand", "clock_mhz": 100, "host": "cpu", "modules": [
        {"name": "cpu", "memories": [dict(l2, name="ram")], "compute": {"macs_per_cycle": 0.5}},
        {"name": "acc", "spatial": [{"name": "pe", "size": size, "unroll": draw(st.sampled_from([["K"], ["OX"], ["K", "G"], ["C"],
                                                                                                  ["OY", "OX"]]))}],
         "allow_padded_unrolling": draw(st.booleans()), "memories": mems + [l2], "compute": {"macs_per_cycle": size},
         "accepts": [{"kind": k} for k in ("conv2d", "depthwise", "dense", "add", "pool")]}]})


def candidate_schedule(layer: mapper.Layer, soc: archs.SoC, module_name: str, rnd: random.Random) -> Optional[mapper.Schedule]:
    """A random point of the mapper's space: unrolling, order of the prime factors, nested cuts.

    Cuts too high to fit are lowered together (nesting kept) until the tiles fit; None if even
    the lowest cuts overflow."""
    module = soc.modules[module_name]
    unrolling = rnd.choice(spatial_unrollings(layer, module))
    problem = build_layer_problem(layer, module, unrolling)
    loops = [(d, p) for d in range(len(DIMS)) for p in prime_factors(int(problem.remaining[d]))]
    rnd.shuffle(loops)
    dims = np.array([d for d, _ in loops], dtype=np.int64)
    factors = np.array([f for _, f in loops], dtype=np.int64)
    cuts = np.zeros(len(problem.cut_points), dtype=np.int64)
    for operand in OPERANDS:
        index = [p for p, c in enumerate(problem.cut_points) if c.operand is operand]
        cuts[index] = sorted(rnd.randint(0, len(loops)) for _ in index)
    while True:
        cost = evaluate(problem, analyze(problem, dims[None], factors[None], cuts[None]))
        if cost.feasible[0]:
            return _schedule(layer, module, "latency", unrolling, problem, dims, factors, cuts, candidates=1, seconds=0.0)
        if not cuts.any():
            return None
        cuts = np.maximum(cuts - 1, 0)


# --------------------------------------------------------------------------- build and run


def compile_shared(sources: Sequence[str], workdir: Path, cxx: bool = False) -> ctypes.CDLL:
    src = workdir / ("layers.cc" if cxx else "layers.c")
    src.write_text("\n".join(sources))
    lib = workdir / ("liblayers_cc.so" if cxx else "liblayers.so")
    flags = ["g++", "-O1", "-std=c++17", "-Wall", "-Werror"] if cxx else ["gcc", *CFLAGS]
    result = subprocess.run([*flags, "-shared", "-fPIC", str(src), "-o", str(lib)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[:4000]
    return ctypes.CDLL(str(lib))


def run_generated(lib: ctypes.CDLL, gen: GeneratedLayer, x: np.ndarray, x2: Optional[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Call the generated function once (counters reset); returns (output, counters)."""
    fn = getattr(lib, gen.symbol)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    getattr(lib, gen.reset_symbol)()
    out = np.zeros(gen.tensor_shapes["out"], np.int8)
    x = np.ascontiguousarray(x)
    x2 = None if x2 is None else np.ascontiguousarray(x2)
    assert fn(x.ctypes.data, None if x2 is None else x2.ctypes.data, out.ctypes.data) == 0
    n = getattr(lib, f"{gen.symbol}_num_counters")()
    assert n == gen.num_counters
    counters = (ctypes.c_int64 * max(1, n)).in_dll(lib, gen.counters_symbol)
    return out, list(counters)[:n]


def check_layers(cases: Sequence[tuple[mapper.Layer, mapper.Schedule, GeneratedLayer]], cxx: bool = False, seed: int = 0) -> None:
    """Compile ``cases`` into one library, run each and compare output and counters."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_shared([g.source for _, _, g in cases], Path(tmp), cxx)
        for layer, schedule, gen in cases:
            x, x2 = make_inputs(gen, rng)
            out, counters = run_generated(lib, gen, x, x2)
            expected = quant.reference_layer(layer, x, x2)
            assert np.array_equal(out, expected), f"{gen.symbol}: output differs from reference_layer at " \
                                                  f"{np.argwhere(out != expected)[:5].tolist()}\n{schedule}"
            assert counters == predicted_counters(schedule), (gen.symbol, gen.counter_names, counters, schedule)


def generate_or_reject(layer: mapper.Layer, schedule: mapper.Schedule, soc: archs.SoC, symbol: str = "layer") -> GeneratedLayer:
    """``emit_layer``; every buffer must have the size the cost model gave it (int32 partial-sum
    tiles included), so the mapper's capacity check is the generated code's."""
    gen = emit_layer(layer, schedule, soc, symbol)
    assert not [note for note in gen.notes if "the schedule counts" in note], gen.notes
    return gen


# --------------------------------------------------------------------------- tests

OS32_SEARCH_MACS = 96  # the three-level os32 search takes seconds on larger layers
# Only too_slow is suppressed: draws build and validate whole SoCs (random_socs) and search schedules, which a
# loaded shared machine can push over hypothesis's generation-time limit; every other health check stays on.
SETTINGS = settings(max_examples=int(os.environ.get("CODEGEN_EXAMPLES", 25)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(spec=layer_specs(), target=st.integers(0, len(TARGETS) - 1), objective=st.sampled_from(["latency", "energy", "edp"]),
       seed=st.integers(0, 2**32 - 1))
def test_searched_schedules_are_bit_exact_and_counted(spec, target, objective, seed):
    layer, op = spec
    accepted = [t for t in TARGETS if rejection_reason(layer, t[0].modules[t[1]]) is None
                and (t[0].name != "os32_example" or layer.macs <= OS32_SEARCH_MACS)]
    assume(accepted)
    soc, module = accepted[target % len(accepted)]
    result = mapper.search_module(layer, soc.modules[module], objective)
    assume(result.schedule is not None)
    layer = quantized(layer, op, seed)
    check_layers([(layer, result.schedule, generate_or_reject(layer, result.schedule, soc))], seed=seed)


@settings(SETTINGS, max_examples=int(os.environ.get("CODEGEN_EXAMPLES", 40)))
@given(spec=layer_specs(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_schedules_are_bit_exact_and_counted(spec, data, seed):
    layer, op = spec
    if data.draw(st.booleans(), label="random soc"):
        soc, module = data.draw(random_socs(), label="soc"), "acc"
    else:
        soc, module = data.draw(st.sampled_from(TARGETS), label="target")
    assume(rejection_reason(layer, soc.modules[module]) is None)
    schedule = candidate_schedule(layer, soc, module, data.draw(st.randoms(use_true_random=False), label="nest"))
    assume(schedule is not None)
    layer = quantized(layer, op, seed)
    check_layers([(layer, schedule, generate_or_reject(layer, schedule, soc))], seed=seed)


SHIPPED_LAYERS = [
    (mapper.conv2d("conv", input_size=(8, 8), in_channels=4, out_channels=8, kernel=3, padding="same"), "conv2d"),
    (mapper.conv2d("conv_s2", input_size=(9, 7), in_channels=3, out_channels=5, kernel=3, stride=2, padding=(1, 0, 0, 1)), "conv2d"),
    (mapper.conv2d("conv_pad16", input_size=(2, 18), in_channels=2, out_channels=20, kernel=3, padding="same"), "conv2d"),
    (mapper.depthwise("dw", input_size=(7, 6), channels=5, kernel=3, stride=2, padding="same"), "depthwise"),
    (mapper.depthwise("dw_m2", input_size=(5, 5), channels=3, kernel=3, multiplier=2, padding="same"), "depthwise"),
    (mapper.dense("fc", in_features=40, out_features=20, batch=2), "dense"),
    (mapper.add("add", channels=20, size=(3, 4)), "add"),
    (mapper.pool("avg", input_size=(6, 5), channels=3, kernel=3, stride=2, padding="same"), "avg_pool"),
    (mapper.pool("max", input_size=(6, 5), channels=3, kernel=2, padding="valid"), "max_pool"),
]


def nest(layer: mapper.Layer, soc: archs.SoC, module: str, loops: list[tuple[D, int]], cuts: list[int],
         spatial: Optional[dict[D, int]] = None) -> mapper.Schedule:
    """The schedule of an explicit nest (innermost first) with the unrolling ``spatial`` (none by default)."""
    mod = soc.modules[module]
    unrolling = next(u for u in spatial_unrollings(layer, mod) if u.factors == (spatial or {}))
    problem = build_layer_problem(layer, mod, unrolling)
    dims = np.array([DIMS.index(d) for d, _ in loops], dtype=np.int64)
    factors = np.array([f for _, f in loops], dtype=np.int64)
    return _schedule(layer, mod, "latency", unrolling, problem, dims, factors, np.array(cuts, dtype=np.int64), 1, 0.0)


OS32_LAYERS = [
    (mapper.conv2d("c", input_size=(4, 3), in_channels=2, out_channels=3, kernel=3, stride=2, padding=(1, 0, 0, 1)), "conv2d"),
    (mapper.dense("f", in_features=16, out_features=8), "dense"),
    (mapper.conv2d("pad", input_size=(1, 35), in_channels=1, out_channels=2, kernel=(1, 3), padding="same"), "conv2d"),  # OX 35 on 32 rows
]


def shipped_cases() -> list[tuple[mapper.Layer, mapper.Schedule, GeneratedLayer]]:
    """The shipped layers on the shipped SoCs: best module, each accelerator alone, host only (the
    three-level os32 search is slow: tiny layers there, forced onto the array)."""
    runs = [(GAP9, [None, ["ne16"], ["cluster"], ["fc"]], SHIPPED_LAYERS),
            (DIANA, [None, ["cpu"]], SHIPPED_LAYERS),
            (OS32, [["os_array"], ["host"]], OS32_LAYERS)]
    cases = []
    for soc, restrictions, layers in runs:
        for i, (layer, op) in enumerate(layers):
            layer = quantized(layer, op, i)
            for j, modules in enumerate(restrictions):
                try:
                    schedule = mapper.map_layer(layer, soc, modules=modules)
                except mapper.MappingError:
                    continue  # e.g. a kind the accelerator does not take
                cases.append((layer, schedule, emit_layer(layer, schedule, soc, f"{soc.name}_{layer.name}_{j}")))
    # DIANA's padded unrolling: OX 20 on 16 columns, K 18 on 16 rows (second tiles 4 and 2 wide)
    layer = quantized(mapper.conv2d("dp", input_size=(3, 20), in_channels=2, out_channels=18, kernel=3, padding="same"), "conv2d", 9)
    schedule = nest(layer, DIANA, "digital", [(D.FX, 3), (D.FY, 3), (D.C, 2), (D.OX, 2), (D.K, 2), (D.OY, 3)], [3, 5, 4],
                    spatial={D.OX: 16, D.K: 16})
    cases.append((layer, schedule, emit_layer(layer, schedule, DIANA, "diana_padded")))
    return cases


def test_shipped_socs_compile_as_c_and_cxx():
    cases = shipped_cases()
    assert {"ne16", "cluster", "digital", "os_array", "fc", "cpu", "host"} <= {s.module for _, s, _ in cases}
    padded = [s for layer, s, _ in cases
              if any(e["dim"] and layer.sizes[D(e["dim"])] % e["factor"] for e in s.spatial.values())]
    assert {s.module for s in padded} == {"digital", "os_array"}
    check_layers(cases)
    check_layers(cases, cxx=True)


def sanitizer_cases() -> list[tuple[mapper.Layer, mapper.Schedule, GeneratedLayer, archs.SoC]]:
    """A fixed batch of random nests covering partial sums in L2 and between on-chip levels,
    double buffering, padded unrolling and clipped input windows; TFLite's, ONNX QDQ's and
    onnxruntime's QLinear semantics."""
    specs = [
        (mapper.conv2d("c", input_size=(6, 5), in_channels=3, out_channels=4, kernel=3, stride=(2, 1), padding=(1, 0, 2, 1)),
         "conv2d"),
        (mapper.depthwise("d", input_size=(5, 6), channels=3, kernel=(3, 2), multiplier=2, dilation=(1, 2), padding="same"),
         "depthwise"),
        (mapper.dense("f", in_features=12, out_features=7, batch=2), "dense"),
        (mapper.add("a", channels=5, size=(3, 2)), "add"),
        (mapper.pool("p", input_size=(5, 5), channels=3, kernel=3, stride=2, padding="same"), "avg_pool"),
        (mapper.pool("m", input_size=(5, 4), channels=2, kernel=2, stride=1, padding=(0, 1, 1, 0)), "max_pool"),
    ]
    targets = TARGETS[4:] + [(shrink(shrink(OS32, "os_array", 0, 32), "os_array", 1, 400), "os_array")]
    rnd = random.Random(1234)
    cases = []
    for i in range(len(specs) * 4):
        layer, op = specs[i % len(specs)]
        soc, module = targets[i % len(targets)]
        if rejection_reason(layer, soc.modules[module]) is not None:
            soc, module = targets[0]
        for _ in range(20):
            schedule = candidate_schedule(layer, soc, module, rnd)
            if schedule is None:
                continue
            # rounds: TFLite's semantics, ONNX QDQ's, onnxruntime's QLinear kernels (int8 and uint8 tensors)
            semantics = ("tflite", "onnx", "onnx_qlinear", "onnx_qlinear_uint8")[i // len(specs)]
            try:
                gen = emit_layer(quantized(layer, op, i, semantics), schedule, soc, f"s{i}_{layer.name}")
            except CodegenError:
                continue
            cases.append((quantized(layer, op, i, semantics), schedule, gen, soc))
            break
    return cases


def exact_arenas(gen: GeneratedLayer) -> str:
    """The source with every arena cut to the bytes its buffers use (ASan then flags any access
    outside the tile buffers)."""
    source = gen.source
    for memory, used in gen.arena_used.items():
        source, n = re.subn(rf"(static int8_t {gen.symbol}_arena\d+_\w+)\[{gen.arena_bytes[memory]}\](.*/\* {re.escape(memory)}:)",
                            rf"\g<1>[{max(used, 1)}]\g<2>", source)
        assert n == 1, memory
    return source


def c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    return f"static const {ctype} {name}[{len(flat)}] = {{{', '.join(map(str, flat))}}};"


def run_sanitized(sources: Sequence[str], cases, workdir: Path) -> subprocess.CompletedProcess:
    """Build the layers plus a main() checking outputs and counters, with ASan + UBSan, and run it."""
    rng = np.random.default_rng(7)
    lines = ["#include <stdint.h>", "#include <stdio.h>", "#include <string.h>"]
    main = ["int main(void) {", "    int bad = 0;"]
    for layer, schedule, gen in cases:
        s = gen.symbol
        x, x2 = make_inputs(gen, rng)
        expected = quant.reference_layer(layer, x, x2)
        predicted = predicted_counters(schedule)
        lines += [c_array("int8_t", f"{s}_x", x), c_array("int8_t", f"{s}_ref", expected),
                  c_array("int64_t", f"{s}_pred", predicted), f"static int8_t {s}_out[{expected.size}];",
                  f"int {s}(const int8_t*, const int8_t*, int8_t*);", f"extern int64_t {s}_counters[];",
                  f"void {s}_reset_counters(void);"]
        if x2 is not None:
            lines.append(c_array("int8_t", f"{s}_x2", x2))
        main += [f"    {s}_reset_counters();",
                 f"    if ({s}({s}_x, {f'{s}_x2' if x2 is not None else 'NULL'}, {s}_out)) bad = 1;",
                 f'    if (memcmp({s}_out, {s}_ref, {expected.size})) {{ printf("{s}: output\\n"); bad = 1; }}',
                 f'    if (memcmp({s}_counters, {s}_pred, {8 * len(predicted)})) {{ printf("{s}: counters\\n"); bad = 1; }}']
    (workdir / "layers.c").write_text("\n".join(sources))
    (workdir / "main.c").write_text("\n".join(lines + main + ["    return bad;", "}", ""]))
    exe = workdir / "check"
    build = subprocess.run(["gcc", *SANITIZE, str(workdir / "layers.c"), str(workdir / "main.c"), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[:4000]
    return subprocess.run([str(exe)], capture_output=True, text=True)


def test_sanitizers_clean_with_exact_arenas(tmp_path):
    cases = sanitizer_cases()
    assert len(cases) >= 15
    gens = [g for _, _, g, _ in cases]
    # the batch exercises what can go wrong: partial sums in L2 and between on-chip levels, ping-pong
    # buffers, int32 accumulator tiles and more than one tile per operand
    assert any(g.psum_bytes for g in gens)
    assert any(b.slot_bytes == 4 and b.memory not in ("regs", "accumulators") for g in gens for b in g.buffers)
    assert any(b.halves == 2 for g in gens for b in g.buffers)
    assert any(t.transfers_in > 1 for _, s, _, _ in cases for t in s.levels)
    result = run_sanitized([exact_arenas(g) for g in gens], [(la, s, g) for la, s, g, _ in cases], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[:4000]


def test_sanitizer_catches_an_arena_one_byte_short(tmp_path):
    """Control for the test above: the same build flags do report an access past the arena."""
    layer = quantized(mapper.conv2d("c", input_size=(4, 4), in_channels=2, out_channels=4, kernel=1, padding="valid"), "conv2d", 0)
    schedule = mapper.map_layer(layer, GAP9, modules=["ne16"])  # no double buffering: every buffer byte is used
    gen = emit_layer(layer, schedule, GAP9, "tight")
    source = exact_arenas(gen)
    used = gen.arena_used["l1"]
    source = source.replace(f"tight_arena0_l1[{used}]", f"tight_arena0_l1[{used - 1}]")
    result = run_sanitized([source], [(layer, schedule, gen)], tmp_path)
    assert result.returncode != 0 and "AddressSanitizer" in result.stderr


def test_counters_layout_and_api():
    layer = quantized(mapper.conv2d("c", input_size=(6, 6), in_channels=3, out_channels=4, kernel=3), "conv2d", 1)
    schedule = mapper.map_layer(layer, shrink(GAP9, "cluster", 0, 700), modules=["cluster"])
    gen = emit_layer(layer, schedule, shrink(GAP9, "cluster", 0, 700), "api")
    assert gen.num_counters == 6 * len(schedule.levels)
    fields = ("bytes_in", "bytes_out", "transfers_in", "transfers_out", "runs_in", "runs_out")
    assert gen.counter_names[:6] == tuple(f"0:I:l2->l1:{f}" for f in fields)
    assert gen.arena_bytes == {"l1": 700} and "static int8_t api_arena0_l1[700]" in gen.source
    assert gen.signature in gen.source and "int64_t api_counters[" in gen.source and "void api_reset_counters(void)" in gen.source
    assert "void api_set_trace(match_event_t* events, int64_t capacity)" in gen.source
    assert gen.tensor_shapes == {"in": (1, 6, 6, 3), "out": (1, 6, 6, 4)}
    offsets = [(b.memory, b.offset, b.size) for b in gen.buffers]
    assert offsets[0][1] == 0 and all(b[1] == a[1] + a[2] for a, b in zip(offsets, offsets[1:]))
    header = emit_layer(layer, schedule, shrink(GAP9, "cluster", 0, 700), "api", inline_target=False).source
    assert '#include "match_target.h"' in header and "static inline void match_kernel" not in header


def test_bad_input_is_refused():
    conv = mapper.conv2d("c", input_size=(4, 4), in_channels=2, out_channels=2, kernel=1)
    schedule = mapper.map_layer(conv, GAP9, modules=["cluster"])
    with pytest.raises(CodegenError, match="no QuantParams"):
        emit_layer(conv, schedule, GAP9, "x")
    for symbol in ("1x", "short", "a-b"):
        with pytest.raises(CodegenError, match="C identifier"):
            emit_layer(quantized(conv, "conv2d", 0), schedule, GAP9, symbol)
    with pytest.raises(CodegenError, match="does not match the layer kind"):
        emit_layer(dataclasses.replace(conv, quant=make_quant(conv, "dense", np.random.default_rng(0))), schedule, GAP9, "x")
    grouped = mapper.conv2d("g", input_size=(4, 4), in_channels=4, out_channels=4, kernel=1, groups=2)
    with pytest.raises(CodegenError, match="grouped"):
        emit_layer(dataclasses.replace(grouped, quant=quantized(conv, "conv2d", 0).quant), mapper.map_layer(grouped, GAP9), GAP9, "x")
    with pytest.raises(CodegenError, match="not in SoC"):
        emit_layer(quantized(conv, "conv2d", 0), schedule, DIANA, "x")


# --------------------------------------------------------------------------- cost-model discrepancies


DISCREPANCIES = {
    # gap9 cluster, dense 4 -> 2: loops K2 C2 (one kernel call) | C2; I and W cut at 2, O at 3. The
    # O tile stays in L1 across the outer C loop (fetches == distinct: no partial write-back), so it
    # accumulates int32 partial sums over two kernel calls: 2 outputs x 4 B x 2 halves = 16 B; the
    # model counts 2 x 1 B x 2 = 4 B. (The optimum of dense 640 -> 128 on gap9 is such a nest:
    # 1024 B needed, 256 B counted.)
    "l1_accumulates_across_kernel_calls": (
        mapper.dense("fc", in_features=4, out_features=2), GAP9, "cluster", [(D.K, 2), (D.C, 2), (D.C, 2)], [2, 2, 3]),
    # os32 os_array, dense 2 -> 2: loops K2 | C2; O cut into accumulators at 0, into sram at 2.
    # The accumulator tile is written back twice per output (partial, then final), so the sram
    # tile receives int32 partial sums and must hold them: 2 x 4 B x 2 halves = 16 B; the model
    # sizes it at output precision (4 B) because the sram tile itself is written back only once.
    "sram_receives_partial_sums": (
        mapper.dense("fc", in_features=2, out_features=2), OS32, "os_array", [(D.K, 2), (D.C, 2)], [0, 0, 0, 2]),
}


@pytest.mark.parametrize("name", sorted(DISCREPANCIES))
def test_buffer_bytes_match_the_schedule(name):
    layer, soc, module, loops, cuts = DISCREPANCIES[name]
    schedule = nest(layer, soc, module, loops, cuts)
    layer = quantized(layer, "dense", 0)
    gen = emit_layer(layer, schedule, soc, "x")
    check_layers([(layer, schedule, gen)])  # the generated code itself is right
    assert [b.size for b in gen.buffers] == [lv.buffer_bytes for lv in schedule.levels]


@pytest.mark.parametrize("kind", ["conv2d", "depthwise"])
@pytest.mark.parametrize("small_memory", [False, True])
def test_host_padding_split_is_bit_exact_and_counted(kind, small_memory):
    """TF-SAME stride-2 layers (asymmetric padding) run on DIANA's digital array after the host pads
    the input: same outputs as the padded layer, counters of the unpadded schedule."""
    soc = shrink(DIANA, "digital", 0, 1500) if small_memory else DIANA
    if kind == "conv2d":
        layer = mapper.conv2d("s2", input_size=(10, 8), in_channels=3, out_channels=5, kernel=3, stride=2, padding="same")
    else:
        layer = mapper.depthwise("s2", input_size=(10, 8), channels=6, kernel=3, stride=2, padding="same")
    assert layer.padding == (0, 1, 0, 1) and rejection_reason(layer, soc.modules["digital"]) is not None
    schedule = mapper.map_layer(layer, soc)
    assert schedule.module == "digital" and schedule.host_padding == (0, 1, 0, 1) and schedule.host_padding_cycles > 0
    assert mapper.map_layer_accelerator_first(layer, soc).module == "cpu"  # HTVM's rules do not split
    layer = quantized(layer, kind, 3)
    gen = generate_or_reject(layer, schedule, soc, "split")
    check_layers([(layer, schedule, gen)], seed=3)


# --------------------------------------------------------------------------- double buffering (event trace)

LOAD, STORE, WAIT, TILE, COMPUTE = 1, 2, 3, 4, 5  # MATCH_EV_* in match_target.h


class Event(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int32), ("level", ctypes.c_int32), ("tile", ctypes.c_int64)]


def run_traced(lib: ctypes.CDLL, gen: GeneratedLayer, x: np.ndarray, x2: Optional[np.ndarray],
               capacity: int = 1 << 18) -> tuple[np.ndarray, list[int], list[tuple[int, int, int]]]:
    """``run_generated`` with the event trace on: (output, counters, events)."""
    buf = (Event * capacity)()
    set_trace = getattr(lib, f"{gen.symbol}_set_trace")
    set_trace.argtypes, set_trace.restype = [ctypes.c_void_p, ctypes.c_int64], None
    count = getattr(lib, f"{gen.symbol}_trace_count")
    count.restype = ctypes.c_int64
    set_trace(ctypes.addressof(buf), capacity)
    out, counters = run_generated(lib, gen, x, x2)
    n = int(count())
    set_trace(None, 0)
    assert n <= capacity, "trace buffer too small"
    return out, counters, [(e.kind, e.level, e.tile) for e in buf[:n]]


def check_trace(events: list[tuple[int, int, int]], schedule: mapper.Schedule, gen: GeneratedLayer) -> int:
    """The double-buffering contract on a trace; returns the number of prefetches checked.

    - kernel calls and each level's tiles come in order, as many as the schedule has;
    - a double-buffered level whose outer levels are all double-buffered (or the tensor) issues the
      transfer of each tile j >= 1 while tile j - 1 is current, before the first kernel call on
      tile j - 1 (the overlap the cost model counts);
    - the processor waits for an innermost tile's transfer before the next kernel call;
    - a double-buffered write-back is not waited for before the next kernel call (a wait covers the
      transfer on its handle and every earlier one: transfers complete in issue order);
    - transfers of levels without double buffering are waited for right after their issue.
    """
    halves = {b.level: b.halves for b in gen.buffers}
    chain: dict[str, list[int]] = {}
    for i, lv in enumerate(schedule.levels):
        chain.setdefault(lv.operand, []).append(i)
    computes = [k for k, e in enumerate(events) if e[0] == COMPUTE]
    assert [events[k][2] for k in computes] == list(range(schedule.kernel_calls))
    next_compute = np.searchsorted(np.array(computes), np.arange(len(events)), side="right")

    def compute_after(k: int) -> int:
        j = int(next_compute[k])
        return computes[j] if j < len(computes) else len(events)

    where = {e: k for k, e in enumerate(events)}  # last occurrence of each event
    checked = 0
    for i, lv in enumerate(schedule.levels):
        tiles = [k for k, e in enumerate(events) if e[0] == TILE and e[1] == i]
        assert [events[k][2] for k in tiles] == list(range(len(tiles)))
        assert len(tiles) == (lv.transfers_out if lv.operand == "O" else lv.transfers_in)
        outer = chain[lv.operand][chain[lv.operand].index(i) + 1:]
        prefetchable = halves[i] == 2 and all(halves[o] == 2 for o in outer)
        innermost = chain[lv.operand][0] == i
        for j, k in enumerate(tiles):
            load = where.get((LOAD, i, j))
            if load is not None and j >= 1 and prefetchable:
                assert tiles[j - 1] < load < compute_after(tiles[j - 1]), (i, j, "prefetch not before the previous tile's compute")
                checked += 1
            if load is not None and innermost:
                assert (WAIT, i, j) in events[k:compute_after(k)], (i, j, "kernel ran before its data arrived")
            store = where.get((STORE, i, j))
            if store is not None and halves[i] == 2 and compute_after(store) < len(events):
                # no wait on its half (tile parity) for it or a later transfer before the next kernel call
                assert not [e for e in events[store:compute_after(store)]
                            if e[0] == WAIT and e[1] == i and e[2] >= j and (e[2] - j) % 2 == 0], (i, j, "write-back waited for at once")
            for issued in (load, store):
                if issued is not None and halves[i] == 1:
                    assert events[issued + 1] == (WAIT, i, j), (i, j, "synchronous transfer not waited for")
    return checked


def three_level_db_soc(l0: int, l1: int) -> archs.SoC:
    """A hypothetical accelerator whose I/W chain has two double-buffered on-chip levels."""
    def mem(name: str, size: int, operands: list[str], double: bool) -> dict:
        return {"name": name, "size_bytes": size, "operands": operands, "read_bytes_per_cycle": 8, "write_bytes_per_cycle": 8,
                "transfer_fixed_cycles": 10, "transfer_cycles_per_run": 2, "double_buffering": double}

    l2 = mem("l2", 1 << 20, ["I", "W", "O"], False)
    return archs.from_dict({"name": "db3", "clock_mhz": 100, "host": "cpu", "modules": [
        {"name": "cpu", "memories": [dict(l2, name="ram")], "compute": {"macs_per_cycle": 0.5}},
        {"name": "acc", "spatial": [{"name": "pe", "size": 2, "unroll": ["K"]}], "memories": [
            mem("l0", l0, ["I", "W", "O"], True), mem("l1", l1, ["I", "W", "O"], True), l2],
         "compute": {"macs_per_cycle": 2}, "accepts": [{"kind": k} for k in ("conv2d", "depthwise", "dense", "add", "pool")]}]})


def test_double_buffering_trace_on_gap9_cluster():
    """Searched GAP9 cluster schedules (L1 shrunk so layers tile) and random nests there:
    prefetches, waits and write-backs follow the overlap the cost model counts; outputs bit-exact,
    counters (runs included) exact."""
    soc = shrink(GAP9, "cluster", 0, 900)
    cases = []
    rnd = random.Random(5)
    for i, (layer, op) in enumerate(SHIPPED_LAYERS):
        layer = quantized(layer, op, i)
        schedules = [mapper.map_layer(layer, soc, modules=["cluster"])]
        schedules += [s for s in (candidate_schedule(layer, soc, "cluster", rnd) for _ in range(2)) if s is not None]
        cases += [(layer, s, emit_layer(layer, s, soc, f"db_{layer.name}_{j}")) for j, s in enumerate(schedules)]
    rng = np.random.default_rng(3)
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_shared([g.source for _, _, g in cases], Path(tmp))
        for layer, schedule, gen in cases:
            x, x2 = make_inputs(gen, rng)
            out, counters, events = run_traced(lib, gen, x, x2)
            assert np.array_equal(out, quant.reference_layer(layer, x, x2)), gen.symbol
            assert counters == predicted_counters(schedule), gen.symbol
            checked += check_trace(events, schedule, gen)
    assert checked >= 20  # tiled layers: many tiles are prefetched


@settings(SETTINGS, max_examples=int(os.environ.get("CODEGEN_EXAMPLES", 25)))
@given(spec=layer_specs(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_double_buffering_trace_on_random_nests(spec, data, seed):
    """Random nests on random accelerators and on a two-level double-buffered chain (prefetches
    that cross into the next outer tile)."""
    layer, op = spec
    if data.draw(st.booleans(), label="db chain"):
        soc = three_level_db_soc(data.draw(st.integers(48, 400), label="l0"), data.draw(st.integers(400, 3000), label="l1"))
    else:
        soc = data.draw(random_socs(), label="soc")
    assume(rejection_reason(layer, soc.modules["acc"]) is None)
    schedule = candidate_schedule(layer, soc, "acc", data.draw(st.randoms(use_true_random=False), label="nest"))
    assume(schedule is not None)
    layer = quantized(layer, op, seed)
    gen = emit_layer(layer, schedule, soc, "traced")
    with tempfile.TemporaryDirectory() as tmp:
        lib = compile_shared([gen.source], Path(tmp))
        x, x2 = make_inputs(gen, np.random.default_rng(seed))
        out, counters, events = run_traced(lib, gen, x, x2)
    assert np.array_equal(out, quant.reference_layer(layer, x, x2))
    assert counters == predicted_counters(schedule)
    check_trace(events, schedule, gen)
