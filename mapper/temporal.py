"""Temporal mapping space: loop orders of the prime factors and their allocation to memory levels.

The space searched is every loop nest made of the prime factors of the temporal extents, in every
order, with every operand's tile boundary at every memory level placed anywhere (boundaries of one
operand nested, tiles within capacity). It is enumerated without its provably redundant parts:

- The distinct boundary positions split the nest into segments. Costs depend only on each
  operand's tile (the factors below its boundary) and on the run of loops right above its boundary
  that do not index it (the tile is reused across them). Inside a segment, splitting one dim into
  two loops never helps (merging them only lengthens runs), so a segment holds each dim once.
- Every dim indexes at least two of the three operands (the relevance table's irrelevant sets are
  disjoint), so in a segment at most one operand's run can pass its first loop: a segment's order
  is fully described by which operand's irrelevant dims come first (its *leader*); the other dims
  follow in a fixed order. Below the lowest boundary (one kernel call) order does not matter.

A candidate is therefore (cut pattern, factors per segment and dim, leader per segment), and is
turned into an explicit loop nest for the cost model. ``mapper.bruteforce`` enumerates the full
space without these reductions; tests check that both find the same optimum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from archs.dims import DIMS, OPERANDS
from costmodel.problem import Problem

N_DIMS = len(DIMS)


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` in ascending order (with repetition)."""
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


@lru_cache(maxsize=4096)
def factorizations(n: int, parts: int) -> np.ndarray:
    """[row, part] every ordered way to write ``n`` as a product of ``parts`` positive factors."""
    if parts == 1:
        return np.array([[n]], dtype=np.int64)
    rows = []
    for first in (d for d in range(1, n + 1) if n % d == 0):
        rest = factorizations(n // first, parts - 1)
        rows.append(np.concatenate([np.full((rest.shape[0], 1), first, dtype=np.int64), rest], axis=1))
    return np.concatenate(rows, axis=0)


def cut_patterns(problem: Problem) -> list[tuple[int, ...]]:
    """Every placement of the cut points into ordered groups 1..k (equal group = same position),
    with each operand's boundaries nested (inner boundary never above the outer one)."""
    cuts = problem.cut_points
    if not cuts:
        return [()]
    patterns = []
    for k in range(1, len(cuts) + 1):
        for groups in itertools.product(range(1, k + 1), repeat=len(cuts)):
            if set(groups) != set(range(1, k + 1)):
                continue
            nested = all(
                groups[i] <= groups[j]
                for i, a in enumerate(cuts) for j, b in enumerate(cuts)
                if a.operand == b.operand and a.boundary < b.boundary
            )
            if nested:
                patterns.append(groups)
    return patterns


def kernel_tiles(problem: Problem) -> np.ndarray:
    """[tile, dim] every candidate extent of one kernel call (the loops below the lowest boundary):
    all divisor combinations of the temporal extents, in a fixed order. With a single memory level
    the whole layer is one call."""
    if not problem.cut_points:
        return problem.remaining[None, :].copy()
    divisors = [np.array([f for f in range(1, int(n) + 1) if n % f == 0], dtype=np.int64) for n in problem.remaining]
    grid = np.meshgrid(*divisors, indexing="ij")  # first dim slowest, as itertools.product
    return np.stack([g.reshape(-1) for g in grid], axis=1)


@lru_cache(maxsize=1024)
def _rest_tables(extent: int, parts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factorizations into ``parts`` of every divisor v of ``extent``, concatenated:
    (table [row, part], start[v], count[v])."""
    start = np.zeros(extent + 1, dtype=np.int64)
    count = np.zeros(extent + 1, dtype=np.int64)
    tables, offset = [], 0
    for v in range(1, extent + 1):
        if extent % v == 0:
            t = factorizations(v, parts)
            tables.append(t)
            start[v], count[v] = offset, t.shape[0]
            offset += t.shape[0]
    return np.concatenate(tables, axis=0), start, count


def _segment_order(problem: Problem, active: list[int], leader: int) -> list[int]:
    """Dims of one segment, innermost first: the leader's irrelevant dims, then the others."""
    rel = problem.relevant[leader]
    first = [d for d in active if not rel[d]]
    return first + [d for d in active if rel[d]]


def leader_options(problem: Problem, pattern: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Leader choices per segment 1..k: operands with a boundary at or below the segment's bottom
    (only their runs can enter it)."""
    k = max(pattern, default=0)
    per_segment = []
    for s in range(1, k + 1):
        below = sorted({OPERANDS.index(c.operand) for c, g in zip(problem.cut_points, pattern) if g <= s})
        per_segment.append(below)
    return list(itertools.product(*per_segment))


def _allocations(problem: Problem, active: list[int], k: int, tiles: np.ndarray, chunk: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every way to spread the loops left above each kernel tile over ``k`` segments.

    Yields (segments [k+1, dim, cand], tile row [cand], allocation index [cand]) in chunks; the
    cartesian product over dims is ragged (it depends on the tile) and is decoded per row.
    """
    n_tiles = tiles.shape[0]
    if k == 0:
        yield np.ascontiguousarray(tiles.T)[None], np.arange(n_tiles), np.zeros(n_tiles, dtype=np.int64)
        return
    left = problem.remaining[None, :] // tiles  # [tile, dim]
    tables = {d: _rest_tables(int(problem.remaining[d]), k) for d in active}
    counts = {d: tables[d][2][left[:, d]] for d in active}  # [tile] allocations per dim
    per_tile = np.ones(n_tiles, dtype=np.int64)
    for d in active:
        per_tile *= counts[d]
    ends = np.cumsum(per_tile)
    total = int(ends[-1]) if n_tiles else 0
    tiles_t = np.ascontiguousarray(tiles.T)  # [dim, tile]
    for lo in range(0, total, chunk):
        flat = np.arange(lo, min(lo + chunk, total))
        row = np.searchsorted(ends, flat, side="right")
        index = flat - (ends[row] - per_tile[row])
        segments = np.ones((k + 1, N_DIMS, flat.size), dtype=np.int64)
        segments[0] = tiles_t[:, row]
        rest = index.copy()
        for d in reversed(active):
            table, start, _ = tables[d]
            n = counts[d][row]
            segments[1:, d, :] = table[start[left[row, d]] + rest % n].T
            rest //= n
        yield segments, row, index


@dataclass(frozen=True)
class CandidateBatch:
    """Candidates in segment form (see ``costmodel.analyze_segments``), any mix of cut patterns and
    leaders, padded to one depth (segments of ones above a candidate's last boundary). Candidate
    axis last."""

    segments: np.ndarray  # [segment, dim, cand] factors per segment (segment 0: one kernel call)
    leaders: np.ndarray  # [segment, cand] operand index leading each segment's loop order
    cut_groups: np.ndarray  # [cut, cand] segment above each cut point (its tile: segments below)
    tile_rank: np.ndarray  # [cand] rank of the candidate's kernel tile in the caller's order
    pattern_index: np.ndarray  # [cand]
    leader_index: np.ndarray  # [cand]
    rest_index: np.ndarray  # [cand] index of the allocation above the kernel tile

    def __len__(self) -> int:
        return int(self.segments.shape[2])


def order_table(problem: Problem) -> np.ndarray:
    """[leader operand, slot] loop order of a segment led by each operand: its irrelevant active dims,
    then the other active dims, then the inactive ones (always factor 1)."""
    active = [i for i in range(N_DIMS) if problem.remaining[i] > 1]
    inactive = [i for i in range(N_DIMS) if i not in active]
    return np.array([_segment_order(problem, active, o) + inactive for o in range(len(OPERANDS))], dtype=np.int64)


def rank_table(problem: Problem) -> np.ndarray:
    """[leader operand, dim] position of each dim in the loop order of a segment led by each operand."""
    orders = order_table(problem)
    ranks = np.empty_like(orders, dtype=np.int8)
    for o in range(orders.shape[0]):
        ranks[o, orders[o]] = np.arange(orders.shape[1])
    return ranks


def explicit_nest(problem: Problem, segments: np.ndarray, leaders: np.ndarray, cut_groups: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One segment-form candidate (segments [segment, dim], leaders [segment], cut_groups [cut]) as an
    explicit nest: (loop_dims [slot], loop_factors [slot], cuts [cut]),
    slots innermost first, each segment contributing its active dims in its leader's order."""
    active = [i for i in range(N_DIMS) if problem.remaining[i] > 1]
    order = [active] + [_segment_order(problem, active, int(lead)) for lead in leaders[1:]]
    loop_dims = np.array([d for seg in order for d in seg], dtype=np.int64)
    loop_factors = np.array([segments[s, d] for s, seg in enumerate(order) for d in seg], dtype=np.int64)
    return loop_dims, loop_factors, np.asarray(cut_groups, dtype=np.int64) * len(active)


@dataclass(frozen=True)
class SpacePlan:
    """What ``enumerate_batches`` needs about a problem's space, computed once per problem."""

    active: list[int]  # dims with temporal loops
    irrelevant_active: list[list[int]]  # per operand: active dims that do not index it
    depths: list[tuple[int, list[tuple[int, tuple[int, ...]]], dict[int, np.ndarray]]]
    # per depth k: (k, [(pattern index, pattern)], {pattern index: leaders [option, segment]})


def space_plan(problem: Problem) -> SpacePlan:
    """Cut patterns grouped by depth with their leader options (``SpacePlan``)."""
    patterns = cut_patterns(problem)
    depths = []
    for k in sorted({max(p, default=0) for p in patterns}):
        same_depth = [(i, p) for i, p in enumerate(patterns) if max(p, default=0) == k]
        leaders = {}
        for i, p in same_depth:
            options = leader_options(problem, p)
            leaders[i] = np.array(options, dtype=np.int64).reshape(len(options), k)
        depths.append((k, same_depth, leaders))
    active = [i for i in range(N_DIMS) if problem.remaining[i] > 1]
    irrelevant = [[d for d in active if not problem.relevant[o][d]] for o in range(len(OPERANDS))]
    return SpacePlan(active, irrelevant, depths)


def _distinct_orders(problem: Problem, plan: SpacePlan, segments: np.ndarray, options: np.ndarray) -> np.ndarray:
    """[leader option, allocation] mask keeping one loop order per distinct nest.

    A segment whose leader has no moving loop among its irrelevant dims orders its moving loops
    as the other dims (active order), whichever leader that is: such leaders give the same nest
    (loops of factor 1 do not count), so only the first idle option of the segment is kept.
    """
    k = options.shape[1]
    keep = np.ones((options.shape[0], segments.shape[2]), dtype=bool)
    for s in range(1, k + 1):
        column = options[:, s - 1]
        choices = sorted({int(o) for o in column})
        moving = {}
        for o in choices:  # does operand o's irrelevant set move in this segment?
            mask = np.zeros(segments.shape[2], dtype=bool)
            for d in plan.irrelevant_active[o]:
                mask |= segments[s, d] > 1
            moving[o] = mask
        first_idle = np.full(segments.shape[2], -1)
        for o in reversed(choices):
            first_idle = np.where(moving[o], first_idle, o)
        for j, o in enumerate(column):
            keep[j] &= moving[int(o)] | (first_idle == o)
    return keep


def enumerate_batches(problem: Problem, tiles: np.ndarray, tile_rank: np.ndarray, chunk: int = 32768,
                      feasible_hint=None, plan: SpacePlan | None = None) -> Iterator[CandidateBatch]:
    """Stream the reduced space above the given kernel tiles in batches of about ``chunk`` rows, in a
    fixed order (by depth, allocation chunk, pattern, leader; ties break by the indices carried).

    Patterns of the same depth ``k`` share their allocations. ``feasible_hint(segments, patterns)``
    may return one mask of allocations worth evaluating per pattern (capacity or cost lower
    bounds); rows it drops are never yielded. ``plan`` (``space_plan(problem)``) may be passed to
    avoid recomputing it on every call.
    """
    plan = plan if plan is not None else space_plan(problem)
    active = plan.active
    n_seg = len(problem.cut_points) + 1
    pending: list[tuple] = []
    size = 0
    for k, same_depth, leaders in plan.depths:
        widest = sum(leaders[i].shape[0] for i, _ in same_depth)
        for segments, row, index in _allocations(problem, active, k, tiles, max(1, chunk // widest)):
            # Segments strictly between two boundaries must hold a loop (else a coarser pattern).
            base = np.ones(segments.shape[2], dtype=bool)
            for s in range(1, k):
                base &= (segments[s] > 1).any(axis=0)
            masks = (feasible_hint(segments, [p for _, p in same_depth]) if feasible_hint is not None
                     else [base] * len(same_depth))
            for (pattern_index, pattern), mask in zip(same_depth, masks):
                keep = base & mask
                if not keep.any():
                    continue
                kept = segments[:, :, keep]  # [segment, dim, allocation]
                options = leaders[pattern_index]
                rows, choice = np.nonzero(_distinct_orders(problem, plan, kept, options).T)  # allocation-major
                n = rows.size
                padded = np.ones((n_seg, N_DIMS, n), dtype=np.int64)
                padded[:k + 1] = kept[:, :, rows]
                lead = np.zeros((n_seg, n), dtype=np.int64)
                lead[1:k + 1] = options.T[:, choice]
                groups = np.array(pattern, dtype=np.int64)
                pending.append((
                    padded, lead, np.broadcast_to(groups[:, None], (groups.size, n)),
                    tile_rank[row[keep]][rows], np.full(n, pattern_index), choice, index[keep][rows],
                ))
                size += n
            if size >= chunk:
                yield _merge(pending)
                pending, size = [], 0
    if pending:
        yield _merge(pending)


def _merge(pending: list[tuple]) -> CandidateBatch:
    axes = (2, 1, 1, 0, 0, 0, 0)  # the candidate axis of each field
    return CandidateBatch(*(np.concatenate([part[i] for part in pending], axis=axes[i]) for i in range(7)))
