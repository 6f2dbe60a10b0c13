"""Loop-nest analysis: tile extents, fetch counts and reuse of a batch of temporal mappings.

A batch is ``N`` candidate loop nests of ``L`` slots each (innermost first): ``loop_dims[n, l]``
(index into ``DIMS``) and ``loop_factors[n, l]`` (1 for an empty slot), plus ``cuts[n, p]``: for
each cut point ``p`` of the problem, the slot position (0..L) below which the operand's tile lives in
the inner memory. Everything is array arithmetic over the candidate axis.

Reuse rule: a tile is re-fetched only when a loop above it that indexes its operand changes, so a
tile is fetched ``prod(loops above the cut) / prod(the run of irrelevant loops right above the cut)``
times.

Reuse block (used by ``overlap: zigzag``, ZigZag's ``top_ir``): the product of the loops not
indexing the operand in the contiguous block that ends where the run ends: the run, plus the
irrelevant loops right below the cut down to the first moving loop that indexes the operand. The
kernel call counts as one block (its loop order is not part of a mapping): it adds its loops if
none of them moves a dim indexing the operand, else it stops the block. 1 when the operand's next
inner cut point has the same fetch count (its run ends at the same place: ZigZag's level between
them is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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
    reuse_block: Optional[np.ndarray] = None  # [cand, cut] (module docstring); computed for overlap: zigzag only


@dataclass(frozen=True)
class CandidateLastStats:
    """``MappingStats`` with the candidate axis last (contiguous per dim: the fast internal layout)."""

    tile: np.ndarray  # [cut, dim, cand]
    fetches: np.ndarray  # [cut, cand]
    distinct: np.ndarray  # [cut, cand]
    compute_tile: np.ndarray  # [dim, cand]
    n_steps: np.ndarray  # [cand]
    reuse_block: Optional[np.ndarray] = None  # [cut, cand]

    def candidate_first(self) -> MappingStats:
        return MappingStats(self.tile.transpose(2, 0, 1), self.fetches.T, self.distinct.T, self.compute_tile.T,
                            self.n_steps, None if self.reuse_block is None else self.reuse_block.T)


def candidate_last(stats: MappingStats) -> CandidateLastStats:
    """The fast layout of ``stats`` (copies)."""
    block = None if stats.reuse_block is None else np.ascontiguousarray(stats.reuse_block.T)
    return CandidateLastStats(np.ascontiguousarray(stats.tile.transpose(1, 2, 0)), np.ascontiguousarray(stats.fetches.T),
                              np.ascontiguousarray(stats.distinct.T), np.ascontiguousarray(stats.compute_tile.T),
                              stats.n_steps, block)


def _same_level(problem: Problem, fetches: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``block`` [cut, cand] with 1 where the operand's next inner cut point has the same fetches."""
    for p, cut in enumerate(problem.cut_points):
        inner = [q for q, c in enumerate(problem.cut_points) if c.operand is cut.operand and c.boundary == cut.boundary - 1]
        if inner:
            block[p] = np.where(fetches[inner[0]] == fetches[p], 1, block[p])
    return block


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
    block = np.empty((n_cut, n_cand), dtype=np.int64)
    moving = loop_factors > 1
    inner_cuts = [p for p, c in enumerate(problem.cut_points) if c.boundary == 0]
    lowest = cuts[:, inner_cuts].min(axis=1) if inner_cuts else np.full(n_cand, n_slots)
    for p, cut in enumerate(problem.cut_points):
        rel = problem.relevant[OPERANDS.index(cut.operand)]  # [dim]
        at_cut = _gather(below, cuts[:, p])
        moves_rel = rel[loop_dims] & moving
        relevant_slot = moves_rel & (positions >= cuts[:, p : p + 1])
        run_end = np.where(relevant_slot, positions, n_slots).min(axis=1, initial=n_slots)
        at_run_end = _gather(below, run_end)
        tile[:, p, :] = at_cut
        fetches[:, p] = total // np.prod(at_run_end, axis=1)
        distinct[:, p] = np.prod(np.where(rel, problem.remaining // at_cut, 1), axis=1)
        last = np.where(moves_rel & (positions < run_end[:, None]), positions, -1).max(axis=1, initial=-1)
        start = np.where(last >= lowest, last + 1, np.where(last >= 0, lowest, 0))
        block[p] = np.prod(at_run_end // _gather(below, start), axis=1)
    block = _same_level(problem, fetches.T, block) if problem.module.overlap == "zigzag" else None

    if inner_cuts:
        compute_tile = _gather(below, lowest)
    else:  # a single memory level: one kernel call runs the whole layer
        compute_tile = np.broadcast_to(problem.remaining, (n_cand, N_DIMS)).copy()
    n_steps = total // np.prod(compute_tile, axis=1)
    return MappingStats(tile, fetches, distinct, compute_tile, n_steps, None if block is None else block.T)


def _select(prefix: np.ndarray, groups: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write ``prefix[groups[n] - 1, :, n]`` [dim, cand] for each candidate ``n`` into ``out``."""
    first = int(groups[0]) if groups.size else 1
    np.copyto(out, prefix[first - 1])
    for g in range(1, prefix.shape[0] + 1):
        if g != first:
            mask = groups == g
            if mask.any():
                np.copyto(out, prefix[g - 1], where=mask[None, :])
    return out


def analyze_segments(problem: Problem, segments: np.ndarray, ranks: np.ndarray, cut_groups: np.ndarray
                     ) -> CandidateLastStats:
    """``analyze`` for loop nests given in segment form (same results, far less work per candidate).

    A segment-form nest is a stack of ``S`` segments, innermost first, each holding every dim once:
    ``segments[s, d, n]`` is the factor of dim ``d`` in segment ``s`` of candidate ``n`` (1: no loop)
    and ``ranks[d, s, n]`` the position of dim ``d`` in segment ``s``'s loop order (0: innermost).
    Segment 0 is one kernel call. Cut point ``p`` sits right above segment ``cut_groups[p, n] - 1``
    (its tile is the product of segments ``0 .. cut_groups - 1``), ``cut_groups >= 1``. Segments of
    ones are transparent, so batches of different depths can share ``S`` by padding.

    An operand's reuse run through a segment covers the loops ranked before the first loop that
    indexes the operand and has a factor above 1; a run crossing a whole segment goes on above it.
    Inputs and results are in the candidate-last layout.
    """
    seg = np.asarray(segments, dtype=np.int64)  # [segment, dim, cand]
    n_seg, _, n_cand = seg.shape
    n_cut = len(problem.cut_points)
    rank = np.asarray(ranks)[:, 1:, :]  # [dim, segment-1, cand]
    groups = np.asarray(cut_groups, dtype=np.int64)
    groups = np.broadcast_to(groups.reshape(n_cut, -1) if n_cut else np.zeros((0, 1), np.int64), (n_cut, n_cand))
    total = int(np.prod(problem.remaining))
    active = [d for d in range(N_DIMS) if problem.remaining[d] > 1]  # other dims only hold factors of 1
    act = np.array(active, dtype=np.int64)
    seg_active = seg[:, act, :]  # [segment, active dim, cand]
    prefix = np.empty_like(seg_active)  # extents below the top of each segment
    prefix[0] = seg_active[0]
    for s in range(1, n_seg):
        np.multiply(prefix[s - 1], seg_active[s], out=prefix[s])
    upper = seg[1:].transpose(1, 0, 2)  # [dim, segment-1, cand] (view)
    tile_active = np.empty((n_cut, act.size, n_cand), dtype=np.int64)
    fetches = np.empty((n_cut, n_cand), dtype=np.int64)
    distinct = np.empty((n_cut, n_cand), dtype=np.int64)
    runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    run_of = np.empty((n_cut, n_cand), dtype=np.int64)
    moving_rank: dict[int, np.ndarray] = {}
    for p, cut in enumerate(problem.cut_points):
        o = OPERANDS.index(cut.operand)
        rel = problem.relevant[o]
        if o not in runs:
            first = np.full((n_seg - 1, n_cand), N_DIMS, dtype=rank.dtype)  # rank of the first loop ending the run
            for d in active:
                if rel[d]:
                    if d not in moving_rank:  # rank of dim d's loop where it moves, else past the end
                        moving_rank[d] = np.where(upper[d] > 1, rank[d], N_DIMS)
                    np.minimum(first, moving_rank[d], out=first)
            within = np.ones((n_seg - 1, n_cand), dtype=np.int64)  # product of the loops the run covers
            for d in active:
                if not rel[d]:
                    within *= np.where(rank[d] < first, upper[d], 1)
            # reach[s - 1]: product of the loops a run entering segment s covers (through the
            # segments above it while it does not stop), built from the top down.
            stops = first < N_DIMS
            reach = np.empty_like(within)
            reach[-1] = within[-1]
            for s in range(n_seg - 3, -1, -1):
                reach[s] = np.where(stops[s], within[s], within[s] * reach[s + 1])
            runs[o] = reach
        reach = runs[o]
        g = groups[p]
        _select(prefix, g, tile_active[p])
        run = np.empty((1, n_cand), dtype=np.int64)  # the run starts in segment g
        _select(reach[:, None, :], g, run)
        run = run[0]
        run_of[p] = run
        size = np.ones(n_cand, dtype=np.int64)
        rel_size = np.ones(n_cand, dtype=np.int64)
        for i, d in enumerate(active):
            size *= tile_active[p, i]
            if rel[d]:
                rel_size *= tile_active[p, i]
        fetches[p] = total // (size * run)
        distinct[p] = int(np.prod(problem.remaining[rel])) // rel_size
    tile = np.empty((n_cut, N_DIMS, n_cand), dtype=np.int64)
    for d in range(N_DIMS):  # dims without loops keep extent 1
        if d in active:
            tile[:, d, :] = tile_active[:, active.index(d), :]
        else:
            tile[:, d, :] = 1
    inner_cuts = [p for p, c in enumerate(problem.cut_points) if c.boundary == 0]
    if inner_cuts:
        lowest = groups[inner_cuts].min(axis=0)
        compute_tile = np.ones((N_DIMS, n_cand), dtype=np.int64)
        compute_active = _select(prefix, lowest, np.empty((act.size, n_cand), dtype=np.int64))
        for i, d in enumerate(active):
            compute_tile[d] = compute_active[i]
    else:  # a single memory level: one kernel call runs the whole layer
        compute_tile = np.repeat(problem.remaining[:, None], n_cand, axis=1)
    calls = np.ones(n_cand, dtype=np.int64)
    for d in active:
        calls *= compute_tile[d]
    block = None
    if problem.module.overlap == "zigzag":  # only its latency needs them
        lowest_group = groups[inner_cuts].min(axis=0) if inner_cuts else np.full(n_cand, n_seg)
        block = _same_level(problem, fetches, _segment_reuse_blocks(problem, seg, rank, groups, run_of, lowest_group,
                                                                    compute_tile))
    return CandidateLastStats(tile, fetches, distinct, compute_tile, total // calls, block)


def _segment_reuse_blocks(problem: Problem, seg: np.ndarray, rank: np.ndarray, groups: np.ndarray, run: np.ndarray,
                          lowest: np.ndarray, compute_tile: np.ndarray) -> np.ndarray:
    """[cut, cand] reuse blocks (module docstring) of segment-form nests: the run times the
    irrelevant loops below the cut, segment by segment down (in a segment, those ranked above its
    highest moving loop that indexes the operand; the block goes on below a segment without one),
    the kernel call (segments below ``lowest``) counting as one block."""
    n_seg, _, n_cand = seg.shape
    upper = seg[1:].transpose(1, 0, 2)  # [dim, segment-1, cand]
    out = np.empty((len(problem.cut_points), n_cand), dtype=np.int64)
    done: dict[int, np.ndarray] = {}
    for p, cut in enumerate(problem.cut_points):
        o = OPERANDS.index(cut.operand)
        rel = problem.relevant[o]
        if o not in done:
            moving_rel = (compute_tile > 1) & rel[:, None]  # [dim, cand]
            kernel = np.where(moving_rel.any(axis=0), 1, np.prod(np.where(rel[:, None], 1, compute_tile), axis=0))
            last = np.full((n_seg - 1, n_cand), -1, dtype=np.int64)  # rank of the highest moving relevant loop
            for d in range(len(rel)):
                if rel[d]:
                    last = np.maximum(last, np.where(upper[d] > 1, rank[d], -1))
            top = np.ones((n_seg - 1, n_cand), dtype=np.int64)
            for d in range(len(rel)):
                if not rel[d]:
                    top *= np.where(rank[d] > last, upper[d], 1)
            down = np.empty((n_seg, n_cand), dtype=np.int64)  # block from the top of segment s down
            down[0] = kernel
            for s in range(1, n_seg):
                below = np.where(last[s - 1] >= 0, 1, down[s - 1])
                down[s] = np.where(s < lowest, kernel, top[s - 1] * below)
            done[o] = down
        down = done[o]
        g = groups[p]
        picked = np.take_along_axis(down, (g - 1)[None, :], axis=0)[0]
        out[p] = run[p] * picked
    return out
