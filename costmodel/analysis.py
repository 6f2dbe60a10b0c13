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
