"""Contiguous runs of tile transfers (``costmodel.runs``): the per-box formula against the address
segments of the box's elements, and the closed-form sum over a sweep against a brute force over
every tile position; the per-run cost in the cost model and in the YAML field."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archs
import mapper
from archs.dims import DIMS, LoopDim, Operand
from costmodel.cost import cut_traffic
from costmodel.problem import build_problem
from costmodel.runs import COLS, ROWS, TENSOR_LAYOUTS, box_runs, sweep_runs

D = LoopDim
GAP9 = archs.load("gap9")


def address_segments(origin, counts, extents) -> int:
    """Maximal runs of consecutive addresses among the box's elements in a dense tensor (oracle)."""
    if any(c <= 0 for c in counts):
        return 0
    strides = [math.prod(extents[a + 1:]) for a in range(len(extents))]
    addresses = sorted(sum((o + x) * s for o, x, s in zip(origin, point, strides))
                       for point in itertools.product(*(range(c) for c in counts)))
    return 1 + sum(1 for a, b in zip(addresses, addresses[1:]) if b != a + 1)


def test_box_runs_by_hand():
    assert box_runs([1, 4, 4, 8], [1, 4, 4, 8]) == 1  # the whole tensor
    assert box_runs([1, 2, 4, 8], [1, 4, 4, 8]) == 1  # whole rows: one 1-D transfer
    assert box_runs([1, 2, 3, 8], [1, 4, 4, 8]) == 2  # 2-D: a run per row
    assert box_runs([1, 2, 3, 5], [1, 4, 4, 8]) == 6  # 3-D: a run per pixel
    assert box_runs([1, 0, 3, 5], [1, 4, 4, 8]) == 0  # empty
    assert box_runs([2, 1, 4, 8], [2, 3, 4, 8]) == 2  # a partial axis between full ones breaks runs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_box_runs_equal_address_segments(extents, data):
    counts = [data.draw(st.integers(1, e)) for e in extents]
    origin = [data.draw(st.integers(0, e - c)) for e, c in zip(extents, counts)]
    assert box_runs(counts, extents) == address_segments(origin, counts, extents)


def _divisors(n: int) -> list[int]:
    return [t for t in range(1, n + 1) if n % t == 0]


def brute_force_sweep(problem, operand: Operand, tile: np.ndarray) -> int:
    """Runs of one transfer per tile position, each box computed from the position's coordinates."""
    layer = problem.layer
    layout = TENSOR_LAYOUTS[layer.kind][operand]
    real, padded, sp = problem.real_sizes, problem.padded_sizes, problem.spatial
    ext = {d: int(tile[i]) * int(sp[i]) for i, d in enumerate(DIMS)}  # full tile extents
    iy, ix = layer.input_size
    moving = [d for i, d in enumerate(DIMS) if problem.relevant[[*Operand].index(operand), i]]
    total = 0
    for pos in itertools.product(*(range(int(padded[DIMS.index(d)]) // ext[d]) for d in moving)):
        origin = {d: p * ext[d] for d, p in zip(moving, pos)}
        counts, extents = [], []
        for axis in layout:
            if axis in (ROWS, COLS):
                o, k, i = (D.OY, D.FY, 0) if axis == ROWS else (D.OX, D.FX, 1)
                first = origin[o] * layer.stride[i] + origin[k] * layer.dilation[i] - layer.padding[2 * i]
                last = (origin[o] + ext[o] - 1) * layer.stride[i] + (origin[k] + ext[k] - 1) * layer.dilation[i] - layer.padding[2 * i]
                size = iy if axis == ROWS else ix
                counts.append(max(0, min(last + 1, size) - max(first, 0)))
                extents.append(size)
            else:
                r = int(real[DIMS.index(axis)])
                counts.append(min(origin.get(axis, 0) + ext[axis], r) - origin.get(axis, 0))
                extents.append(r)
        total += box_runs(counts, extents)
    return total


LAYERS = [
    mapper.conv2d("conv", input_size=(5, 4), in_channels=3, out_channels=4, kernel=3, padding="same"),
    mapper.conv2d("conv_s2", input_size=(6, 5), in_channels=2, out_channels=2, kernel=(1, 3), stride=2, padding="same"),
    mapper.conv2d("conv_d2", input_size=(6, 6), in_channels=2, out_channels=3, kernel=3, dilation=2, padding=(3, 1, 0, 2)),
    mapper.depthwise("dw", input_size=(4, 6), channels=4, kernel=3, multiplier=2),
    mapper.dense("dense", in_features=6, out_features=4, batch=2),
    mapper.add("add", channels=6, size=(3, 2)),
    mapper.pool("pool", input_size=(6, 6), channels=3, kernel=3, stride=2, padding="same"),
]


@pytest.mark.parametrize("layer", LAYERS, ids=[la.name for la in LAYERS])
@pytest.mark.parametrize("spatial", [{}, {D.K: 3, D.OX: 4}, {D.G: 4, D.OY: 4}], ids=["none", "k3ox4", "g4oy4"])
def test_sweep_runs_equal_brute_force(layer, spatial):
    """Every tile shape (divisors of the padded extents): closed form == sum over positions."""
    module = GAP9.modules["cluster"]
    problem = build_problem(layer, module, spatial, {o: layer.relevant(o) for o in Operand})
    rng = np.random.default_rng(0)
    choices = [_divisors(int(r)) for r in problem.remaining]
    tiles = np.array([[rng.choice(c) for c in choices] for _ in range(40)]).T  # [dim, cand]
    for operand in problem.operands:
        runs, positions = sweep_runs(problem, operand, tiles)
        for j in range(tiles.shape[1]):
            assert runs[j] == brute_force_sweep(problem, operand, tiles[:, j]), (operand, tiles[:, j])


def test_cut_traffic_charges_runs():
    """cycles = bandwidth + fixed + runs x per-run cost; runs grow with fetches, outputs read back too."""
    layer = LAYERS[0]
    module = GAP9.modules["cluster"]
    problem = build_problem(layer, module, {}, {o: layer.relevant(o) for o in Operand})
    tile = np.array([[1, 2, 1, 5, 2, 3, 3, 1]]).T  # B K C OY OX FY FX G: 1 of 3 channels, 2 of 4 columns
    p_in = next(p for p, c in enumerate(problem.cut_points) if c.operand is Operand.I)
    p_out = next(p for p, c in enumerate(problem.cut_points) if c.operand is Operand.O)
    # input positions: 3 channel tiles x 2 column tiles; each box has 5 rows x 3 columns (border
    # windows clipped from 4) x 1 channel: 15 runs each
    assert brute_force_sweep(problem, Operand.I, tile[:, 0]) == 6 * 15
    one = cut_traffic(problem, p_in, tile, np.array([6]), np.array([6]))
    three = cut_traffic(problem, p_in, tile, np.array([18]), np.array([6]))
    assert one.runs_in[0] == 90 and three.runs_in[0] == 270 and one.runs_out[0] == 0
    assert one.cycles[0] == pytest.approx(one.bytes_in[0] / 8.0 + 6 * 920 + 90 * 1.0)
    # outputs: 2 K tiles x 2 column tiles, each 5 rows x 2 columns x 2 of 4 channels: 10 runs
    assert brute_force_sweep(problem, Operand.O, tile[:, 0]) == 4 * 10
    out = cut_traffic(problem, p_out, tile, np.array([12]), np.array([4]))
    assert out.runs_out[0] == 120 and out.runs_in[0] == 80  # 12 write-backs, 8 read-backs


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "1", True])
def test_bad_per_run_cost_is_refused(value):
    data = archs.to_dict(GAP9)
    data["modules"][1]["memories"][0]["transfer_cycles_per_run"] = value
    with pytest.raises(archs.ArchError, match=r"modules\[1\]\.memories\[0\]\.transfer_cycles_per_run"):
        archs.from_dict(data)


def test_per_run_cost_defaults_to_zero_and_round_trips():
    data = archs.to_dict(GAP9)
    assert GAP9.modules["cluster"].memories[0].transfer_cycles_per_run == 1.0  # MATCH's GAP9 DMA model
    index = [m["name"] for m in data["modules"]].index("cluster")
    del data["modules"][index]["memories"][0]["transfer_cycles_per_run"]
    assert archs.from_dict(data).modules["cluster"].memories[0].transfer_cycles_per_run == 0.0
    assert archs.from_dict(archs.to_dict(GAP9)).modules == GAP9.modules
