"""Contiguous runs of tile transfers: the rows / planes a 2-D / 3-D DMA transfer moves.

A tile transfer moves the valid box of a tile (input windows clipped at the image border) between
the operand's layout (``TENSOR_LAYOUTS``: NHWC tensors, TFLite weight layouts) and a dense tile
buffer of the tile's full extents. The transfer is described by the tile's geometry in the
operand's tensor: axis ``a`` of the box is *full* when the box spans the tensor's whole extent on it
(then it spans the tile buffer's too). A run is a maximal piece contiguous in the tensor layout,
hence in every buffer holding the tile: with ``k`` the innermost axis that is not full,

    runs(box) = prod(count[a] for a < k)     (1 when every axis but the outermost is full;
                                              0 for an empty box)

``MemoryLevel.transfer_cycles_per_run`` charges each run; the generated C counts the same runs
(``match_dma_runs`` in ``tvm_bridge/c/match_target.h``) from each transfer's counts and the
tensor's extents.

``sweep_runs`` sums runs over every tile position of one sweep in closed form: per axis it needs
the sum of the box counts over its positions, and how many positions are full or non-full (and
non-empty); positions are independent across axes (each axis moves with its own loop dims).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Union

import numpy as np

from archs.dims import DIM_INDEX, LoopDim, Operand

D = LoopDim
ROWS, COLS = "rows", "cols"  # input window axes (OY with FY, OX with FX)
Axis = Union[LoopDim, str]

_OUTPUT_LAYOUT: tuple[Axis, ...] = (D.B, D.OY, D.OX, D.G, D.K)
_INPUT_LAYOUT: tuple[Axis, ...] = (D.B, ROWS, COLS, D.G, D.C)
#: Tensor layout per (kind, operand), outermost axis first: NHWC activations, TFLite weights
#: (conv2d OHWI per group, depthwise [FY][FX][G*M], dense [K][C]); add's second input is laid out
#: like its output. Size-1 axes do not change run counts.
TENSOR_LAYOUTS: dict[str, dict[Operand, tuple[Axis, ...]]] = {
    kind: {Operand.I: _INPUT_LAYOUT, Operand.O: _OUTPUT_LAYOUT, Operand.W: weights}
    for kind, weights in (("conv2d", (D.G, D.K, D.FY, D.FX, D.C)), ("dense", (D.G, D.K, D.FY, D.FX, D.C)),
                          ("depthwise", (D.FY, D.FX, D.G, D.K, D.C)), ("add", _OUTPUT_LAYOUT), ("pool", ()))
}


def box_runs(counts, extents) -> int:
    """Contiguous runs of one box of ``counts`` elements per axis (outermost first) in a tensor of
    ``extents``: the reference formula of the module docstring."""
    counts, extents = list(counts), list(extents)
    if any(c <= 0 for c in counts):
        return 0
    k = len(counts) - 1
    while k > 0 and counts[k] == extents[k]:
        k -= 1
    return int(np.prod(counts[:k], dtype=np.int64)) if k > 0 else 1


@lru_cache(maxsize=4096)
def _window_stats(out: int, kernel: int, stride: int, dilation: int, pad_lo: int, in_size: int) -> np.ndarray:
    """[3, out + 1, kernel + 1]: for input windows of (output extent, kernel extent) tiles of the
    padded extents ``out`` x ``kernel``, over every tile position: the sum of valid rows, the
    positions whose window covers the whole image, and the non-empty positions that do not."""
    table = np.zeros((3, out + 1, kernel + 1))
    for a in (t for t in range(1, out + 1) if out % t == 0):
        for b in (t for t in range(1, kernel + 1) if kernel % t == 0):
            length = (a - 1) * stride + (b - 1) * dilation + 1
            starts = np.arange(out // a)[:, None] * a * stride + np.arange(kernel // b)[None, :] * b * dilation - pad_lo
            valid = np.clip(np.minimum(starts + length, in_size) - np.maximum(starts, 0), 0, None)
            table[:, a, b] = valid.sum(), (valid == in_size).sum(), ((valid > 0) & (valid < in_size)).sum()
    return table


def _axis_plan(problem, operand: Operand) -> list[tuple]:
    """Per axis of ``operand``'s layout, how its statistics are computed (memoised per problem):
    ("const", count) for a dim that never moves (one full position), ("dim", d, count) for a
    moving dim, ("window", o, k, table) for an input window."""
    key = ("runs_plan", operand)
    plan = problem.memo.get(key)
    if plan is not None:
        return plan
    layer = problem.layer
    padded = problem.padded_sizes
    plan = []
    for axis in TENSOR_LAYOUTS[layer.kind][operand]:
        if axis in (ROWS, COLS):
            i = 0 if axis == ROWS else 1
            o, k = (DIM_INDEX[D.OY], DIM_INDEX[D.FY]) if axis == ROWS else (DIM_INDEX[D.OX], DIM_INDEX[D.FX])
            table = _window_stats(int(padded[o]), int(padded[k]), layer.stride[i], layer.dilation[i],
                                  layer.padding[0 if axis == ROWS else 2], layer.input_size[i])
            plan.append(("window", o, k, table))
        else:
            d = DIM_INDEX[axis]
            real = float(problem.real_sizes[d])
            plan.append(("const", real) if problem.remaining[d] == 1 else ("dim", d, real))
    problem.memo[key] = plan
    return plan


def _axis_stats(problem, step: tuple, tile: np.ndarray):
    """(positions, sum of counts, full positions, non-full non-empty positions) of one axis for
    tiles of temporal extents ``tile`` [dim, cand]: arrays [cand] or scalars."""
    if step[0] == "const":
        return 1, step[1], 1, 0
    if step[0] == "dim":
        positions = problem.remaining[step[1]] // tile[step[1]]
        full = positions == 1
        return positions, step[2], full, positions - full
    _, o, k, table = step
    t_out = tile[o] * int(problem.spatial[o])
    t_k = tile[k] * int(problem.spatial[k])
    padded = problem.padded_sizes
    return (padded[o] // t_out) * (padded[k] // t_k), table[0, t_out, t_k], table[1, t_out, t_k], table[2, t_out, t_k]


def sweep_runs(problem, operand: Operand, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(runs, positions) [cand]: runs summed over one transfer of every tile position of ``operand``
    with temporal extents ``tile`` [dim, cand], and the number of positions."""
    plan = _axis_plan(problem, operand)
    n_cand = tile.shape[1]
    if not plan:
        return np.zeros(n_cand), np.ones(n_cand)
    stats = [_axis_stats(problem, step, tile) for step in plan]
    positions = 1
    for p, _, _, _ in stats:
        positions = positions * p
    # innermost non-full axis k >= 1: prod_{a<k} sum(count) * nonfull_k * prod_{b>k} full_b
    total = 0
    suffix_full = 1  # prod over b > k of full_b
    for k in range(len(stats) - 1, 0, -1):
        nonfull = stats[k][3]
        if not (np.isscalar(nonfull) and nonfull == 0):
            prefix = 1
            for a in range(k):
                prefix = prefix * stats[a][1]
            total = total + prefix * nonfull * suffix_full
        suffix_full = suffix_full * stats[k][2]
    total = total + (stats[0][2] + stats[0][3]) * suffix_full  # every axis but the outermost full: one run
    return (np.broadcast_to(np.asarray(total, dtype=np.float64), (n_cand,)),
            np.broadcast_to(np.asarray(positions, dtype=np.float64), (n_cand,)))


def transfer_runs(problem, operand: Operand, tile: np.ndarray, fetches) -> np.ndarray:
    """[cand] runs moved by ``fetches`` [cand] transfers of ``operand``'s tiles of temporal extents
    ``tile`` [dim, cand] (every tile position is visited equally often)."""
    total, positions = sweep_runs(problem, operand, tile)
    return np.asarray(fetches, dtype=np.float64) * total / positions
