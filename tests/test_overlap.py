"""``overlap: zigzag`` (costmodel.overlap) on small cases derived by hand, the option in the schema and
the ZigZag importer. Every expected latency below is worked out in the test's docstring from the
loop nest (one weight register fed from DRAM; 1 MAC per cycle, so the compute is one cycle per
temporal iteration), not taken from the code under test. The array reads its input and writes its
8-bit outputs (partial sums too, unless said otherwise) through DRAM ports of its own
(``array_port``) at 1 B/cycle: one byte per cycle, which never stalls."""

from __future__ import annotations

import dataclasses

import pytest

import archs
import mapper
from archs.dims import LoopDim, Operand
from archs.model import ComputeModel, ExecModule, LayerRule, MemoryLevel
from archs.zigzag import zigzag_example
from mapper.evaluate import ExplicitMapping, evaluate_mapping, make_unrolling

K, C, OX = LoopDim.K, LoopDim.C, LoopDim.OX
I8 = mapper.Precision(input=8, weight=8, output=8, accumulator=8)


def _module(register_bytes: int, overlap: str = "zigzag") -> ExecModule:
    """A weight register (write port 0.5 B/cycle) under a DRAM (1 B/cycle each way) holding
    everything; no array (1 MAC per cycle), no fixed transfer cycles, no tile overhead."""
    register = MemoryLevel("reg", register_bytes, frozenset({Operand.W}), 1.0, 0.5)
    dram = MemoryLevel("dram", 1 << 20, frozenset(Operand), 1.0, 1.0, array_port=True)
    return ExecModule("npu", (), (register, dram), ComputeModel(1.0), accepts=(LayerRule("conv2d"),), overlap=overlap)


def _cost(layer, module, loops, weight_cut: int) -> float:
    mapping = ExplicitMapping(make_unrolling(module, {}), tuple(loops), {Operand.W: (weight_cut,)})
    return evaluate_mapping(layer, module, mapping).latency_cycles


def test_stall_when_the_register_port_is_too_slow():
    """8 one-byte weights (K=4, C=2), each used for one cycle (loops C, K above a one-weight tile).
    A weight takes 2 cycles through the register's 0.5 B/cycle write port, but the register is full
    (1 B of 1 B: not double-buffered) and the tile is used once (no reuse run), so each of the 7
    reloads may only take its 1-cycle period: 7 x 1 stall. The first load (2 cycles) precedes the
    computation. Latency = 8 compute + 7 stall + 2 first load = 17 (as a pipeline: 2 + 7 x 2 + 1).
    Serially (the default overlap) every load adds: 8 + 8 x 2 = 24."""
    layer = mapper.conv2d("c", input_size=(1, 1), in_channels=2, out_channels=4, kernel=1, precision=I8)
    loops = [(C, 2), (K, 4)]
    assert _cost(layer, _module(1), loops, 0) == pytest.approx(17.0)
    assert _cost(layer, _module(1, overlap="serial"), loops, 0) == pytest.approx(24.0)


def test_the_array_stalls_on_wide_partial_sums():
    """The first case with 32-bit partial sums: C = 2 is reduced in DRAM, so every cycle the array
    reads a 4-byte partial sum and writes one back, 4 cycles each through 1 B/cycle ports, in a
    1-cycle window: 7 x 3 = 21 stall cycles on each port. The read port also carries the inputs,
    1 cycle each: the allowed cycles of both (7 x 1 each) exceed the 8 cycles the port has by 6.
    The worst port counts, not the sum (the weight register's 7 stall cycles hide behind it):
    latency = 8 + (21 + 6) + 2 first load = 37."""
    layer = mapper.conv2d("c", input_size=(1, 1), in_channels=2, out_channels=4, kernel=1,
                          precision=mapper.Precision(input=8, weight=8, output=8, accumulator=32))
    assert _cost(layer, _module(1), [(C, 2), (K, 4)], 0) == pytest.approx(37.0)


def test_single_buffered_tile_is_replaced_during_its_last_use():
    """2 weights (K=2), each used for 2 cycles (OX=2 right above the one-weight tile: a reuse run of
    2), so 2 loads, one every 2 cycles. Single-buffered, the next weight can only be written during
    the last of the 2 uses: a 1-cycle window for a 2-cycle load, 1 stall cycle. Latency = 4 compute
    + 1 stall + 2 first load = 7 (as a pipeline: load 2, compute 2, stall 1, compute 2)."""
    layer = mapper.conv2d("c", input_size=(1, 2), in_channels=1, out_channels=2, kernel=1, precision=I8)
    assert _cost(layer, _module(1), [(OX, 2), (K, 2)], 0) == pytest.approx(7.0)


def test_double_buffered_tile_loads_during_the_whole_period():
    """The same nest with a 2-byte register: the 1-byte tile takes at most half of it, so it is
    double-buffered (ZigZag's rule) and the second weight loads during the whole 2-cycle period of
    the first: no stall. Latency = 4 compute + 2 first load = 6."""
    layer = mapper.conv2d("c", input_size=(1, 2), in_channels=1, out_channels=2, kernel=1, precision=I8)
    assert _cost(layer, _module(2), [(OX, 2), (K, 2)], 0) == pytest.approx(6.0)


def test_overlap_is_a_module_key_checked_by_the_schema():
    base = {"name": "soc", "clock_mhz": 100, "host": "cpu", "modules": [{
        "name": "cpu", "memories": [{"name": "ram", "size_bytes": 1024, "operands": ["I", "W", "O"],
                                     "read_bytes_per_cycle": 4, "write_bytes_per_cycle": 4}],
        "compute": {"macs_per_cycle": 1}}]}
    assert archs.from_dict(base).modules["cpu"].overlap == "serial"
    base["modules"][0]["overlap"] = "zigzag"
    soc = archs.from_dict(base)
    assert soc.modules["cpu"].overlap == "zigzag"
    assert archs.from_dict(archs.schema.to_dict(soc)).modules["cpu"].overlap == "zigzag"
    base["modules"][0]["overlap"] = "parallel"
    with pytest.raises(archs.ArchError, match=r"modules\[0\]\.overlap: must be one of serial, zigzag"):
        archs.from_dict(base)
    base["modules"][0]["overlap"] = "zigzag"
    base["modules"][0]["memories"][0]["instance_dims"] = ["rows"]
    with pytest.raises(archs.ArchError, match=r"modules\[0\]\.memories\[0\]\.instance_dims\[0\]: names no spatial dim"):
        archs.from_dict(base)


def test_from_zigzag_sets_the_option_when_asked():
    hardware, mapping = zigzag_example("tpu_like"), zigzag_example("tpu_like", "mapping")
    assert archs.from_zigzag(hardware, mapping).modules["tpu_like"].overlap == "serial"
    npu = archs.from_zigzag(hardware, mapping, overlap="zigzag").modules["tpu_like"]
    assert npu.overlap == "zigzag"
    with pytest.raises(archs.ArchError, match="overlap"):
        archs.from_zigzag(hardware, mapping, overlap="both")
    assert dataclasses.replace(npu, overlap="serial") == archs.from_zigzag(hardware, mapping).modules["tpu_like"]


def test_strided_input_tiles_count_the_touched_pixels_only():
    """A 1x1 stride-2 conv over an 8-wide row with an input register (1 B/cycle each way) under DRAM.
    One input tile of 4 outputs: serially its span, (4 - 1) x 2 + 1 = 7 pixels, moves (7 cycles
    at 1 B/cycle, after which 4 MACs take 4 cycles: 11). ZigZag's data model counts the 4 pixels the
    windows touch; the tile is loaded once and is also the innermost tile, so no spare bandwidth
    can shorten it: 4 cycles of onloading before 4 cycles of compute, latency 8."""
    layer = mapper.conv2d("c", input_size=(1, 8), in_channels=1, out_channels=1, kernel=1, stride=2, precision=I8)
    register = MemoryLevel("reg", 16, frozenset({Operand.I}), 1.0, 1.0, array_port=True)
    dram = MemoryLevel("dram", 1 << 20, frozenset(Operand), 1.0, 1.0, array_port=True)
    for overlap, expected in (("zigzag", 8.0), ("serial", 11.0)):
        module = ExecModule("npu", (), (register, dram), ComputeModel(1.0), accepts=(LayerRule("conv2d"),), overlap=overlap)
        mapping = ExplicitMapping(make_unrolling(module, {}), ((OX, 4),), {Operand.I: (1,)})
        assert evaluate_mapping(layer, module, mapping).latency_cycles == pytest.approx(expected), overlap


def test_reuse_block_counts_the_irrelevant_loops_around_the_cut():
    """An output register under DRAM, a 1-D conv (OX = 2, FX = 3). Loops FX, OX with the output tile
    at 1 (FX inside the kernel call): FX does not index the output and nothing else moves in the
    call, so the tile is used 3 times in a row: block 3 (run 1: OX right above indexes it). Loops
    OX, FX with the cut at 1: the run above is FX (3), and the kernel call moves OX, which indexes
    the output: block 3. The same with the cut at 2: nothing above, the call moves OX: block 1."""
    from costmodel.analysis import analyze
    from mapper.evaluate import _problem

    layer = mapper.conv2d("c", input_size=(1, 4), in_channels=1, out_channels=1, kernel=(1, 3), padding="valid",
                          precision=I8)
    register = MemoryLevel("reg", 64, frozenset({Operand.O}), 1.0, 1.0)
    dram = MemoryLevel("dram", 1 << 20, frozenset(Operand), 1.0, 1.0)
    module = ExecModule("npu", (), (register, dram), ComputeModel(1.0), accepts=(LayerRule("conv2d"),), overlap="zigzag")
    FX = LoopDim.FX
    for loops, cut, expected in (([(FX, 3), (OX, 2)], 1, 3), ([(OX, 2), (FX, 3)], 1, 3), ([(OX, 2), (FX, 3)], 2, 1)):
        mapping = ExplicitMapping(make_unrolling(module, {}), tuple(loops), {Operand.O: (cut,)})
        problem, dims, factors, cuts = _problem(layer, module, mapping)
        stats = analyze(problem, dims, factors[None, :], cuts[None, :])
        assert stats.reuse_block[0].tolist() == [expected], (loops, cut)


def test_systolic_dims_add_their_drain():
    """A layer ends with a drain of (unrolling - 1) cycles along each systolic array dim (ZigZag's
    rule): K unrolled 4 over a systolic dim adds 3 cycles to the same mapping."""
    from archs.model import SpatialDim

    layer = mapper.conv2d("c", input_size=(1, 1), in_channels=2, out_channels=4, kernel=1, precision=I8)
    costs = []
    for systolic in (False, True):
        module = dataclasses.replace(_module(4), spatial=(SpatialDim("cols", 4, (K,), systolic),))
        mapping = ExplicitMapping(make_unrolling(module, {"cols": ("K", 4)}), ((C, 2),), {Operand.W: (0,)})
        costs.append(evaluate_mapping(layer, module, mapping).latency_cycles)
    assert costs[1] - costs[0] == pytest.approx(3.0)


def test_explain_breakdown_counts_every_transfer_as_overlapped():
    """``match-mapper explain``'s split under overlap zigzag: nothing is serial, the 9 exposed cycles
    of the first case (7 stall + 2 first load) are its stall, and the parts add up to the latency."""
    from explorer.breakdown import cycle_breakdown

    layer = mapper.conv2d("c", input_size=(1, 1), in_channels=2, out_channels=4, kernel=1, precision=I8)
    module = _module(1)
    mapping = ExplicitMapping(make_unrolling(module, {}), ((C, 2), (K, 4)), {Operand.W: (0,)})
    split = cycle_breakdown(evaluate_mapping(layer, module, mapping).schedule, module)
    assert (split.compute, split.serial_transfers, split.stall, split.latency) == pytest.approx((8.0, 0.0, 9.0, 17.0))
