"""Every loop costed: kernel hooks count groups and depthwise multipliers, and no schedule of any
shipped module beats its declared peak MAC rate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs
import costmodel
import mapper
import mapper.acceptance
from archs import LoopDim as D
from archs import kernels

SOCS = ("gap9", "diana", "os32_example")
MODULES = [(soc, name) for soc in SOCS for name in archs.load(soc).modules]


def _whole_tile(layer: mapper.Layer) -> dict:
    """The whole layer as one tile, in the hook's format (one candidate)."""
    return {d: np.array([n], dtype=np.int64) for d, n in layer.sizes.items()}


def _cycles(hook, layer: mapper.Layer) -> float:
    return float(hook(_whole_tile(layer), layer)[0])


# --------------------------------------------------------------------------- hand-derived cycles
def test_grouped_conv_on_the_cluster_costs_every_group():
    # 8 -> 8 channels in 2 groups: G = 2, K = C = 4 per group, 8x8 output, 3x3 kernel.
    layer = mapper.conv2d("g", input_size=(8, 8), in_channels=8, out_channels=8, kernel=3, groups=2)
    assert (layer.sizes[D.G], layer.sizes[D.K], layer.sizes[D.C]) == (2, 4, 4)
    # PULP-NN per group: iterations ceil(8/8) * ceil(8/2) = 4; im2col 3*3*4*2 = 72;
    # matmul 15 + ceil(36/4) * 14 = 141, ceil(K/4) = 1 of them -> 4 * (72 + 141) = 852 per group.
    assert _cycles(kernels.pulp_nn_cluster, layer) == 2 * 852
    # Peak check: 2 * 4 * 4 * 64 * 9 = 18432 MACs in 1704 cycles = 10.8 MAC/cycle <= 32.
    assert layer.macs / _cycles(kernels.pulp_nn_cluster, layer) <= 32


def test_grouped_conv_on_ne16_and_diana_costs_every_group():
    layer = mapper.conv2d("g", input_size=(6, 6), in_channels=32, out_channels=64, kernel=1, groups=2)
    # NE16, 1x1, per group K = 32 (one body iteration), C = 16 (n_in = 1): load 19, w_offset 6,
    # matrixvec 6 + 32, +2 -> 65; normquant 9 + 32, streamout 13 -> 119 per 3x3 block; 2x2 blocks.
    assert _cycles(kernels.ne16, layer) == 2 * 4 * 119
    # DIANA: output channels K * G = 64 -> 4 row blocks; OX = 6 -> 1 column block; per block
    # C*FY*FX + 2*C*FY + 23 = 16 + 32 + 23 = 71; OY = 6 output rows.
    assert _cycles(kernels.diana_digital, layer) == 6 * 4 * 71


def test_depthwise_multiplier_four_costs_four_passes():
    one = mapper.depthwise("d1", input_size=(8, 8), channels=8, kernel=3)
    four = mapper.depthwise("d4", input_size=(8, 8), channels=8, kernel=3, multiplier=4)
    assert (four.sizes[D.G], four.sizes[D.K], four.sizes[D.C]) == (8, 4, 1)
    # PULP-NN depthwise: iterations ceil(8/8) * OX 8 = 8; input rows 7 + 2 + 1 = 10;
    # per iteration 10 * 3 + 8 * (30 + ceil(9/4) * 7) = 438 -> 3504 per multiplier slice.
    assert _cycles(kernels.pulp_nn_cluster, one) == 3504
    assert _cycles(kernels.pulp_nn_cluster, four) == 4 * 3504
    # NE16 depthwise, 8 channels = remainder iteration k = 8: load 31 + w_offset 14 + matrixvec
    # 6 + 8*8 + 2 + normquant 17 + streamout 13 = 147 per 3x3 block, 3x3 blocks of 8x8 outputs.
    assert _cycles(kernels.ne16, one) == 9 * 147
    assert _cycles(kernels.ne16, four) == 4 * 9 * 147
    # DIANA: output channels G * K = 8 -> 1 block, 32 -> 2 blocks; per block 9 + 6 + 23 = 38; OY 8.
    assert _cycles(kernels.diana_digital, one) == 8 * 1 * 38
    assert _cycles(kernels.diana_digital, four) == 8 * 2 * 38


# --------------------------------------------------------------------------- property: peak respected
def _layers() -> st.SearchStrategy[mapper.Layer]:
    """Small layers of every kind; convs wide enough (groups, channels) that a hook dropping a loop
    would beat the peak once transfers and per-tile overheads are paid."""
    size = st.integers(3, 16)
    conv = st.builds(
        lambda hw, cg, kg, g, k, s, pad: mapper.conv2d("conv", input_size=(hw, hw), in_channels=cg * g,
                                                       out_channels=kg * g, kernel=k, stride=s, padding=pad, groups=g),
        size, st.integers(1, 16), st.integers(1, 16), st.integers(1, 8), st.sampled_from([1, 3]),
        st.sampled_from([1, 2]), st.sampled_from(["same", "valid"]))
    dw = st.builds(
        lambda hw, ch, m, s: mapper.depthwise("dw", input_size=(hw, hw), channels=ch, kernel=3, stride=s,
                                              multiplier=m, padding="same"),
        size, st.integers(1, 32), st.integers(1, 4), st.sampled_from([1, 2]))
    fc = st.builds(lambda c, k, b: mapper.dense("fc", in_features=c, out_features=k, batch=b),
                   st.integers(1, 64), st.integers(1, 64), st.integers(1, 2))
    add = st.builds(lambda ch, hw: mapper.add("add", channels=ch, size=(hw, hw)), st.integers(1, 16), size)
    pool = st.builds(lambda ch, hw, k: mapper.pool("pool", input_size=(hw, hw), channels=ch, kernel=min(k, hw)),
                     st.integers(1, 16), size, st.sampled_from([2, 3, 16]))
    return st.one_of(conv, dw, fc, add, pool)


@pytest.mark.parametrize("soc_name, module", MODULES, ids=[f"{s}-{m}" for s, m in MODULES])
@settings(max_examples=200, deadline=None, derandomize=True)
@given(layer=_layers())
def test_kernel_cycles_respect_the_declared_peak(soc_name, module, layer):
    """One kernel call on the whole layer (the hook, or the default: iterations x PEs / peak)."""
    soc = archs.load(soc_name)
    exec_module = soc.modules[module]
    if mapper.acceptance.rejection_reason(layer, exec_module) is not None:
        return
    spatial = {}
    for dim in exec_module.spatial:  # unroll the first listed loop fully, as far as the array allows
        spatial[dim.unroll[0]] = min(dim.size, layer.sizes[dim.unroll[0]])
    problem = costmodel.build_problem(layer, exec_module, spatial,
                                      {o: layer.relevant(o) for o in archs.Operand})
    cycles = costmodel.kernel_cycles(problem, problem.remaining[None, :])[0]
    assert cycles >= layer.macs / exec_module.compute.macs_per_cycle, (layer, cycles)


@pytest.mark.parametrize("soc_name, module", MODULES, ids=[f"{s}-{m}" for s, m in MODULES])
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(layer=_layers())
def test_no_schedule_beats_the_declared_peak(soc_name, module, layer):
    soc = archs.load(soc_name)
    peak = soc.modules[module].compute.macs_per_cycle
    try:
        schedule = mapper.map_layer(layer, soc, modules=[module])
    except mapper.MappingError:
        return  # the module does not accept this layer
    assert schedule.latency_cycles >= layer.macs / peak, (layer, schedule.latency_cycles, layer.macs / peak)
