"""Loop-nest analysis: tile extents, fetch counts and reuse of a batch of temporal mappings.

A batch is ``N`` candidate loop nests of ``L`` slots each (innermost first): ``loop_dims[n, l]``
(index into ``DIMS``) and ``loop_factors[n, l]`` (1 for an empty slot), plus ``cuts[n, p]``: for
each cut point ``p`` of the problem, the slot position (0..L) below which the operand's tile lives in
the inner memory. Everything is array arithmetic over the candidate axis.

Reuse rule: a tile is re-fetched only when a loop above it that indexes its operand changes, so a
tile is fetched ``prod(loops above the cut) / prod(the run of irrelevant loops right above the cut)``
times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archs.dims import DIMS, OPERANDS
from costmodel.problem import Problem

N_DIMS = len(DIMS)


@dataclass(frozen=True)
class MappingStats:
    """Per-candidate results of the loop-nest analysis (axis names in brackets)."""

    tile: np.ndarray  # [cand, cut, dim] temporal extent of each cut point's tile (spatial excluded)
    fetches: np.ndarray  # [cand, cut] how often the tile is brought in (outputs: written back)
    distinct: np.ndarray  # [cand, cut] number of different tiles of the operand at this cut
    compute_tile: np.ndarray  # [cand, dim] temporal extent of one kernel call (spatial excluded)
    n_steps: np.ndarray  # [cand] kernel calls


def _below(loop_dims: np.ndarray, loop_factors: np.ndarray) -> np.ndarray:
    """[cand, slot+1, dim] product of the factors of each dim in slots below each position."""
    onehot = loop_dims[..., None] == np.arange(N_DIMS)  # [cand, slot, dim]
    per_dim = np.where(onehot, loop_factors[..., None], 1)
    below = np.ones((per_dim.shape[0], per_dim.shape[1] + 1, N_DIMS), dtype=np.int64)
    np.cumprod(per_dim, axis=1, out=below[:, 1:, :])
    return below


def _gather(below: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[cand, dim] rows of ``below`` at one position per candidate."""
    return np.take_along_axis(below, position[:, None, None], axis=1)[:, 0, :]


def analyze(problem: Problem, loop_dims: np.ndarray, loop_factors: np.ndarray, cuts: np.ndarray) -> MappingStats:
    """Tile extents, fetch counts and kernel calls of a batch of loop nests.

    ``loop_dims`` may be one row shared by all candidates. The factors of each dim must multiply to
    ``problem.remaining`` (checked by the callers that build nests).
    """
    loop_factors = np.atleast_2d(np.asarray(loop_factors, dtype=np.int64))
    n_cand, n_slots = loop_factors.shape
    loop_dims = np.broadcast_to(np.asarray(loop_dims, dtype=np.int64), (n_cand, n_slots))
    cuts = np.broadcast_to(np.asarray(cuts, dtype=np.int64), (n_cand, len(problem.cut_points)))
    below = _below(loop_dims, loop_factors)
    total = int(np.prod(problem.remaining))
    positions = np.arange(n_slots)

    n_cut = len(problem.cut_points)
    tile = np.empty((n_cand, n_cut, N_DIMS), dtype=np.int64)
    fetches = np.empty((n_cand, n_cut), dtype=np.int64)
    distinct = np.empty((n_cand, n_cut), dtype=np.int64)
    moving = loop_factors > 1
    for p, cut in enumerate(problem.cut_points):
        rel = problem.relevant[OPERANDS.index(cut.operand)]  # [dim]
        at_cut = _gather(below, cuts[:, p])
        relevant_slot = rel[loop_dims] & moving & (positions >= cuts[:, p : p + 1])
        run_end = np.where(relevant_slot, positions, n_slots).min(axis=1, initial=n_slots)
        at_run_end = _gather(below, run_end)
        tile[:, p, :] = at_cut
        fetches[:, p] = total // np.prod(at_run_end, axis=1)
        distinct[:, p] = np.prod(np.where(rel, problem.remaining // at_cut, 1), axis=1)

    inner_cuts = [p for p, c in enumerate(problem.cut_points) if c.boundary == 0]
    if inner_cuts:
        lowest = cuts[:, inner_cuts].min(axis=1)
        compute_tile = _gather(below, lowest)
    else:  # a single memory level: one kernel call runs the whole layer
        compute_tile = np.broadcast_to(problem.remaining, (n_cand, N_DIMS)).copy()
    n_steps = total // np.prod(compute_tile, axis=1)
    return MappingStats(tile, fetches, distinct, compute_tile, n_steps)


def analyze_segments(problem: Problem, segments: np.ndarray, orders: np.ndarray, cut_groups: np.ndarray) -> MappingStats:
    """``analyze`` for loop nests given in segment form (same results, far less work per candidate).

    A segment-form nest is a stack of ``S`` segments, innermost first, each holding every dim once:
    ``segments[n, s, d]`` is the factor of dim ``d`` in segment ``s`` (1: no loop) and
    ``orders[n, s, :]`` the dims of segment ``s`` innermost first (a permutation of all dims).
    Segment 0 is one kernel call. Cut point ``p`` sits right above segment ``cut_groups[n, p] - 1``
    (its tile is the product of segments ``0 .. cut_groups - 1``); ``cut_groups >= 1``, and every
    boundary-0 cut of a candidate sits at group 1 or above the lowest one. Segments of ones are
    transparent, so batches of different depths can share ``S`` by padding.
    """
    segments = np.asarray(segments, dtype=np.int64)
    n_cand, n_seg, _ = segments.shape
    cut_groups = np.broadcast_to(np.asarray(cut_groups, dtype=np.int64), (n_cand, len(problem.cut_points)))
    prefix = np.cumprod(segments, axis=1)  # [cand, segment, dim] extents below the top of each segment
    total = int(np.prod(problem.remaining))
    rows = np.arange(n_cand)
    ordered = np.take_along_axis(segments, orders, axis=2)  # [cand, segment, slot] factors in loop order
    before = np.ones_like(ordered)  # [cand, segment, slot] product of the factors before each slot
    np.cumprod(ordered[:, :, :-1], axis=2, out=before[:, :, 1:])
    moving = ordered > 1
    n_cut = len(problem.cut_points)
    tile = np.empty((n_cand, n_cut, N_DIMS), dtype=np.int64)
    fetches = np.empty((n_cand, n_cut), dtype=np.int64)
    distinct = np.empty((n_cand, n_cut), dtype=np.int64)
    run_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for p, cut in enumerate(problem.cut_points):
        o = OPERANDS.index(cut.operand)
        if o not in run_cache:
            rel = problem.relevant[o]
            stop = rel[orders] & moving  # [cand, segment, slot] loops that end the operand's reuse run
            stops = stop.any(axis=2)
            first = stop.argmax(axis=2)
            # product of the loops a run crossing into the segment covers before it ends
            within = np.where(stops, np.take_along_axis(before, first[:, :, None], axis=2)[:, :, 0],
                              before[:, :, -1] * ordered[:, :, -1])
            run_cache[o] = (within, stops)
        within, stops = run_cache[o]
        g = cut_groups[:, p]
        tile[:, p, :] = prefix[rows, g - 1]
        run = np.ones(n_cand, dtype=np.int64)
        open_run = np.ones(n_cand, dtype=bool)
        for s in range(1, n_seg):
            in_run = open_run & (s >= g)
            run = np.where(in_run, run * within[:, s], run)
            open_run &= ~(in_run & stops[:, s])
        fetches[:, p] = total // (np.prod(tile[:, p, :], axis=1) * run)
        distinct[:, p] = np.prod(np.where(problem.relevant[o], problem.remaining // tile[:, p, :], 1), axis=1)
    inner_cuts = [p for p, c in enumerate(problem.cut_points) if c.boundary == 0]
    if inner_cuts:
        compute_tile = prefix[rows, cut_groups[:, inner_cuts].min(axis=1) - 1]
    else:  # a single memory level: one kernel call runs the whole layer
        compute_tile = np.broadcast_to(problem.remaining, (n_cand, N_DIMS)).copy()
    n_steps = total // np.prod(compute_tile, axis=1)
    return MappingStats(tile, fetches, distinct, compute_tile, n_steps)
