"""Temporal search by branch and bound over partial loop nests, built from the kernel call out.

Same space and the same reference cost model as ``mapper.tree_search`` (which builds nests from
the outermost loops in); this one starts where deep hierarchies spend most: the innermost memories.

**Construction.** A node fixes the loops below some position (the kernel call, then segments) and
the cut points placed at or below it (per operand its innermost ones). The first step chooses the
kernel call's extents and the first group of cut points at its boundary; each further step adds a
non-empty segment with its leader (``mapper.temporal.order_table``) and the next group; the last
step adds the outermost segment (possibly empty) with its leader. A placed cut point's tile is
known at once; its fetch count ``loops above / run`` is known when its reuse run ends: at the first
segment above it holding a moving loop that indexes its operand (the run then covers that
segment's irrelevant loops ranked before it), or at the top. Until then the cut point is *open*,
its run so far the product of the fully irrelevant segments above it.

**Exactness.** A node is dropped only if a lower bound on all its completions cannot strictly beat
the incumbent (``tree_search.can_beat``). Bound of a node whose position has tile ``P``:

- closed cut points: exact cycles and energy (``costmodel.cost.cut_traffic``);
- open cut points: their traffic fetched once per position (``fetches >= distinct``, and every
  cost grows with fetches);
- unplaced cut points of each operand are its outermost ones, with nested tiles ``P <= T_1 <=
  ...``: ``H_j(P) = min_{T >= P} c(T) + H_{j-1}(T)`` over the divisor lattice, each fetched once per
  position and fitting its memory alone, separately for non-overlapped cycles (for a
  double-buffered output: its last write-back, which ``evaluate`` never hides), overlapped
  (double-buffered) cycles and energy;
- the kernel call is fixed from the first step: compute, tile overhead and kernel access energy
  are exact;
- latency >= max(compute, overlapped traffic) + other traffic + overhead, and >= all traffic +
  overhead, the chains' traffic then summed over one tile per cut point (a fourth chain: the
  separate minima of the first two may take different tiles); energy a sum; EDP a product.
  Under ``overlap: zigzag`` latency >= compute + overhead only (``costmodel.cost.latency_lower_bound``
  argues it), complete mappings are all re-evaluated and no dominance is applied;
- refinements, each argued where it is computed: the one-loop look-ahead and, for a child whose
  group was just placed, the chains lifted by that loop (``_bound_of``); a bound over every leader
  for a node grown to a bigger tile (``_any_leader_bound``); bigger tiles enumerated one dim at a
  time, cut where the parent's bound, which grows with the tile, cannot win
  (``mapper.lattice.TileLattice.above_admitted``).

A node whose placed buffers (outputs at output precision until known to hold partial sums, by the
rules of ``evaluate``) plus the unplaced cut points' buffers at tile ``P`` (outputs sure to receive
partial sums at accumulator precision) (tiles only grow outwards, and buffers with them)
overflow a memory has no feasible completion. Nodes with the same future (position, placed cut
points, open cut points with their tiles and runs so far) are compared by dominance
(``tree_search`` explains the rule), among each batch's children and against every node expanded
before (``tree_search.FutureArchive``). Complete mappings are costed from their parts and the
winners re-evaluated by the reference cost model. Ties keep the first found: deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from archs.dims import DIMS, OPERANDS, Operand
from costmodel.cost import _pipelined_cycles, cut_traffic, latency_lower_bound, writeback_epilogue_cycles
from costmodel.problem import Problem
from mapper.temporal import prime_factors
from mapper.tree_search import (
    NodeBatch,
    SearchStats,
    TemporalResult,
    _complete_costs,
    _result,
    _settle_segment_form,
    _Tables,
    best_first,
    can_beat,
    narrow_dive,
    objective_values,
    segment_runs,
)

N_DIMS = len(DIMS)
N_OPS = len(OPERANDS)
_NO_LOOP = N_DIMS + 1
_DIVE_WIDTH = 8
_SUM_AFTER = 1000  # nodes expanded before the summed chain tables pay for themselves


class _UpTables(_Tables):
    """``_Tables`` plus the outward chains: ``outer[o][j]`` [3, point], the cheapest (serial cycles,
    overlapped cycles, energy) of operand ``o``'s ``j`` outermost cut points above a tile."""

    def __init__(self, problem: Problem, objective: str):
        super().__init__(problem, objective)
        lat = self.lattice
        # [cut, point] non-overlapped cycles of a tile fetched once per position: all of them, or for a
        # double-buffered output its last write-back (never hidden: ``evaluate``'s epilogue), at
        # least one tile at output precision (partial sums are wider) plus the fixed cycles.
        points = np.ascontiguousarray(lat.points.T)
        self.serial_lb = np.where(self.db[:, None], 0.0, self.cycles_lb)
        for p in self.db_cuts:
            if self.is_out[p]:
                cut = problem.cut_points[p]
                once = cut_traffic(problem, p, points, self.distinct[p], self.distinct[p])
                link = min(cut.inner.read_bytes_per_cycle, cut.outer.write_bytes_per_cycle)
                self.serial_lb[p] = once.bytes_out / self.distinct[p] / link + cut.inner.transfer_fixed_cycles
        # Traffic is affine in the fetch count for a given tile (``cut_traffic``): per cut point and
        # tile, (intercept, slope) of its cycles, energy, bytes and runs out, from two evaluations.
        self.traffic_affine = []
        for p in range(self.n_cut):
            once = cut_traffic(problem, p, points, self.distinct[p], self.distinct[p])
            twice = cut_traffic(problem, p, points, 2 * self.distinct[p], self.distinct[p])
            fields = {}
            for name in ("cycles", "energy_pj", "bytes_out", "runs_out"):
                a, b = np.asarray(getattr(once, name), dtype=np.float64), np.asarray(getattr(twice, name), dtype=np.float64)
                slope = (b - a) / self.distinct[p]
                fields[name] = (a - slope * self.distinct[p], slope)
            self.traffic_affine.append(fields)
        self.outer = []
        for o in range(N_OPS):
            tables = [np.zeros((4, lat.size))]
            for p in reversed(self.cuts_of[o]):  # outermost first
                overlapped = np.where(self.db[p], self.cycles_lb[p], 0.0)
                step = np.stack([self.serial_lb[p], overlapped, self.energy_lb[p], self.serial_lb[p] + overlapped])
                step = np.where(self.fits[p][None, :], step + tables[-1], np.inf)
                tables.append(lat.upward_min(step))
            self.outer.append(tables)
        # Extra cost of each cut point, over its once-per-position bound, if its run ended right at
        # a tile: fetched once per position of the loops left above it (serial, overlapped, energy).
        tiles = np.ascontiguousarray(lat.points.T)
        rest = self.total // self.point_volume
        close_now = np.zeros((self.n_cut, lat.size, 3))  # [cut, point, (serial, overlapped, energy)]
        for p in range(self.n_cut):
            now = cut_traffic(problem, p, tiles, rest, self.distinct[p])
            extra = np.maximum(now.cycles - self.cycles_lb[p], 0.0)
            close_now[p] = np.stack([np.where(self.db[p], 0.0, extra), np.where(self.db[p], extra, 0.0),
                                          np.maximum(now.energy_pj - self.energy_lb[p], 0.0)], axis=1)
        # Per operand, the subset of a mask's bits that are its cut points, and the summed ``close_now``
        # of each subset of its cut points, one block of rows per subset ([subset * point + tile, 3]):
        # ``close_sum``.
        self.subset_of = []
        masks = np.arange(1 << self.n_cut)
        for o in range(N_OPS):
            subset = np.zeros(1 << self.n_cut, dtype=np.int64)
            for j, p in enumerate(self.cuts_of[o]):
                subset |= (masks >> p & 1) << j
            self.subset_of.append(subset)
        self.close_sum = self._subset_sums(close_now)
        # [operand, point] product of a tile's extents the operand ignores / indexes: a segment from
        # tile P to tile T holds a moving loop indexing the operand iff the indexed product grows, and
        # the loops it ignores multiply to irrelevant_volume[T] / irrelevant_volume[P].
        rel = problem.relevant
        self.irrelevant_volume = np.stack([np.prod(np.where(rel[o][None, :], 1, lat.points), axis=1)
                                           for o in range(N_OPS)])
        self.relevant_volume = np.stack([np.prod(np.where(rel[o][None, :], lat.points, 1), axis=1)
                                         for o in range(N_OPS)])
        # Dims with loops, grouped by the operands they index: (operands, [point] a loop is left above).
        patterns: dict[tuple, list[int]] = {}
        for d in range(N_DIMS):
            if problem.remaining[d] > 1:
                patterns.setdefault(tuple(o for o in range(N_OPS) if problem.relevant[o][d]), []).append(d)
        # Per operand and subset of its cut points (like ``close_sum``): the once-per-position (serial,
        # overlapped, energy) of their tiles.
        placed_lb = np.stack([self.serial_lb, np.where(self.db[:, None], self.cycles_lb, 0.0), self.energy_lb], axis=2)
        self.placed_sum = self._subset_sums(placed_lb)
        self.buffer_lb_rows = np.ascontiguousarray(self.buffer_lb.T)  # [point, cut]
        self.db_mask = sum(1 << p for p in self.db_cuts)
        # Partial sums, as ``evaluate`` sizes output tiles: an output cut point holds them when partial
        # sums leave it (fetches > distinct), when its memory accumulates, when the output cut point
        # just below sends them, or (the innermost) when reduction loops lie between the kernel call
        # and its reuse run's end. ``red`` [point]: product of a tile's reduction extents.
        reduction = ~problem.relevant[OPERANDS.index(Operand.O)]
        self.red = np.prod(np.where(reduction[None, :], lat.points, 1), axis=1)
        self.below_out = np.full(self.n_cut, -1, dtype=np.int64)  # the output cut point just below, if any
        for p, cut in enumerate(problem.cut_points):
            if self.is_out[p] and cut.boundary > 0:
                self.below_out[p] = next(q for q, c in enumerate(problem.cut_points)
                                         if self.is_out[q] and c.boundary == cut.boundary - 1)
        self.out_cuts = [p for p in range(self.n_cut) if self.is_out[p]]
        self.max_buffer = self.buffer_partial.max(axis=1)  # [cut] the most a cut point's tile can take
        self.first_out_bit = sum(1 << p for p in self.out_cuts if self.below_out[p] < 0)
        self.cuts_in = np.array([sum(1 << p for p in range(self.n_cut) if self.mem[p] == m) for m in range(self.n_mem)],
                                dtype=np.int64)  # [memory] mask of the cut points it holds
        self.first_loops = [(ops, (lat.points[:, dims] < problem.remaining[dims][None, :]).any(axis=1))
                            for ops, dims in sorted(patterns.items())]
        # Per dim with loops, its operands and the tiles one prime step above each tile in that dim
        # ([prime, point], -1 where the extent times the prime does not divide the dim's).
        self.first_dims = []
        for ops, dims in sorted(patterns.items()):
            for d in dims:
                a = lat.active.index(d)
                dv = lat.divisors[a]
                pos = (np.arange(lat.size) // lat.strides[a]) % len(dv)
                steps = []
                for q in sorted(set(prime_factors(int(problem.remaining[d])))):
                    target = dv[pos] * q
                    ok = (problem.remaining[d] % target == 0)
                    newpos = np.searchsorted(dv, np.where(ok, target, dv[pos]))
                    steps.append(np.where(ok, np.arange(lat.size) + (newpos - pos) * lat.strides[a], -1))
                self.first_dims.append((ops, np.array(steps)))
        # The same, one row per (number of unplaced cut points, tile): [j * point + tile, 4].
        self.outer_flat = [np.ascontiguousarray(np.stack(tables).transpose(0, 2, 1)).reshape(-1, 4)
                           for tables in self.outer]
        # Every operand's whole chain above the smallest tile: (serial, overlapped, energy).
        self.outer_total = sum(self.outer[o][len(self.cuts_of[o])][:, 0] for o in range(N_OPS))
        self._inner_groups: dict[int, list[int]] = {}
        # Every operand's chain summed, one row per (unplaced count of each operand, tile), when small.
        self._radix = tuple(len(self.cuts_of[o]) + 1 for o in range(N_OPS))
        self.chain_combo = np.ravel_multi_index(tuple(self.unplaced.T), self._radix)  # [mask] row block
        self.chain_sum = None  # [combo * point + tile, 4], while ``search_bottom_up`` runs
        self.next_chain = None  # [(operands, [combo * point + tile, 4])], likewise

    def _subset_sums(self, per_cut: np.ndarray) -> list[np.ndarray]:
        """Per operand, ``per_cut`` [cut, point, 3] summed over each subset of its cut points (bit j:
        its j-th innermost), one block of rows per subset: [subset * point + tile, 3]."""
        sums = []
        for o in range(N_OPS):
            cuts = self.cuts_of[o]
            table = np.zeros((1 << len(cuts), self.lattice.size, 3))
            for j, p in enumerate(cuts):
                table[(np.arange(1 << len(cuts)) >> j & 1) == 1] += per_cut[p][None]
            sums.append(table.reshape(-1, 3))
        return sums

    def build_chain_sum(self, max_bytes: int = 1 << 26) -> None:
        """Sum the operands' outward chains into one table, one block per unplaced count of each
        operand (one read per node instead of one per operand), unless it takes over ``max_bytes``."""
        size = self.lattice.size
        n_combo = int(np.prod(self._radix))
        if self.chain_sum is not None or n_combo * size * 32 > max_bytes:
            return
        table = np.zeros((n_combo, size, 4))
        for combo in range(n_combo):
            counts = np.unravel_index(combo, self._radix)
            for o in range(N_OPS):
                if self.cuts_of[o]:
                    table[combo] += self.outer_flat[o][counts[o] * size:(counts[o] + 1) * size]
        self.chain_sum = table.reshape(-1, 4)
        # Per dim with loops, the chains one prime step above each tile in that dim (least over the
        # primes, per component): ``_bound_of`` with ``above``.
        if len(self.first_dims) * n_combo * size * 32 <= max_bytes:
            self.next_chain = []
            for ops, steps in self.first_dims:
                low = np.full((n_combo, size, 4), np.inf)
                for st in steps:
                    ok = st >= 0
                    low[:, ok] = np.minimum(low[:, ok], table[:, st[ok]])
                self.next_chain.append((ops, low.reshape(-1, 4)))

    def inner_groups(self, mask: int) -> list[int]:
        """Groups that can be placed next above a node with ``mask`` placed: per operand its next
        innermost unplaced cut points (any number), at least one in all."""
        if mask not in self._inner_groups:
            per_op = []
            for o in range(N_OPS):
                options, bits = [0], 0
                for p in self.cuts_of[o]:  # innermost first
                    if mask >> p & 1:
                        continue
                    bits |= 1 << p
                    options.append(bits)
                per_op.append(options)
            self._inner_groups[mask] = sorted({a | b | c for a in per_op[0] for b in per_op[1] for c in per_op[2]} - {0})
        return self._inner_groups[mask]


@dataclass
class _Nodes(NodeBatch):
    """A batch of partial mappings built from the kernel call out."""

    P: np.ndarray  # [n] lattice index of the tile below the position
    mask: np.ndarray  # [n] placed cut points
    kernel: np.ndarray  # [n] lattice index of the kernel call
    serial: np.ndarray  # [n] exact cycles of closed non-overlapped transfers (+ write-back epilogues)
    overlapped: np.ndarray  # [n] exact cycles of closed double-buffered transfers
    energy: np.ndarray  # [n] exact pJ of closed transfers
    open_serial: np.ndarray  # [n] lower bounds of open cut points (fetched once per position)
    open_overlapped: np.ndarray  # [n]
    open_energy: np.ndarray  # [n]
    db_fetches: np.ndarray  # [n, db cut]
    db_event: np.ndarray  # [n, db cut]
    occupancy: np.ndarray  # [n, memory] placed buffers, outputs at their least known precision
    occupancy_max: np.ndarray  # [n, memory] the same, undecided outputs at accumulator precision
    open_mask: np.ndarray  # [n] open cut points
    tile_of: np.ndarray  # [n, cut] lattice index of each placed cut point's tile
    run: np.ndarray  # [n, cut] run so far of each open cut point
    depth: np.ndarray  # [n] groups placed
    leader: np.ndarray  # [n, segment] leader of segments 1..k
    group_of: np.ndarray  # [n, cut] group of each placed cut point
    spills: np.ndarray  # [n] bits: output cut points closed with partial sums leaving (fetches > distinct)
    wide: np.ndarray  # [n] bits: output cut points whose buffer counts at accumulator precision
    primary: np.ndarray  # [n] bound
    secondary: np.ndarray  # [n]


def _root(t: _UpTables) -> _Nodes:
    n_db, n_cut = len(t.db_cuts), t.n_cut
    zeros = np.zeros(1)
    return _Nodes(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), zeros, zeros, zeros, zeros,
                  zeros, zeros, np.zeros((1, n_db)), np.zeros((1, n_db)), np.zeros((1, t.n_mem)),
                  np.zeros((1, t.n_mem)), np.zeros(1, np.int64), np.zeros((1, n_cut), np.int32),
                  np.ones((1, n_cut), np.int64), np.zeros(1, np.int64), np.zeros((1, n_cut + 1), np.int8),
                  np.zeros((1, n_cut), np.int8), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1),
                  np.zeros(1))  # small index types: pools get large


def _bound(t: _UpTables, nodes: _Nodes) -> tuple[np.ndarray, np.ndarray]:
    """(primary, secondary) lower bounds of ``nodes`` (their kernel call fixed)."""
    return _bound_of(t, nodes.P, nodes.kernel, nodes.mask, nodes.serial + nodes.open_serial,
                     nodes.overlapped + nodes.open_overlapped, nodes.energy + nodes.open_energy,
                     nodes.db_fetches, nodes.db_event, nodes.open_mask)


def _bound_of(t: _UpTables, P, kernel, mask, serial, overlapped, energy, db_fetches=None,
              db_event=None, open_mask=None, above=False) -> tuple[np.ndarray, np.ndarray]:
    """Bounds from a node's tile, kernel call, placed cut points and placed costs (closed exact plus
    open lower bounds): outward chains for the unplaced cut points, the kernel call's own costs.

    The overlapped part of the latency is at least the compute, at least all double-buffered
    traffic, and at least the pipelined sum of ``evaluate`` over the closed double-buffered cut
    points' fetches ``db_fetches`` and cycles per fetch ``db_event`` alone (adding events to that
    sum can only raise it: each call's load grows). That sum is also at least all double-buffered
    traffic plus the compute of the calls where none is due, at least those beyond the most fetched
    event's fetches (known once closed, else at most the positions of ``P``), with the open ones (given ``open_mask``)
    fetched once per position of their tile (the sum grows with fetches: periods nest, so more
    fetches of an event make it due at more calls). An open cut point's tile has the relevant
    extents of ``P`` (only loops its operand ignores lie between them), so ``P`` indexes its
    tables.

    With ``open_mask`` (the node's open cut points) the bound also looks one loop ahead: below the
    top, every completion has a first moving loop above ``P``, of some dim ``d`` with loops left.
    Every open cut point whose operand ``d`` indexes ends its run right there, with the run it has
    (an open cut point's tile times its run is ``P``): it is fetched once per position of the
    loops left above ``P`` (``close_sum``). The bound is the least over ``d`` of those costs.

    With ``above`` (the cut points left to place go strictly above ``P``, as for a child whose group
    was just placed at ``P``: the next group needs a segment), the loop of dim ``d`` is below all of
    them, so each one's tile is a multiple of ``P`` whose extent in ``d`` is ``P``'s times a prime:
    the chains are read at those tiles (``next_chain``: their least over the primes, per component,
    the chains growing with the tile) instead of at ``P``."""
    ser = serial + t.overhead[kernel]
    ovl = overlapped.copy()
    en = energy + t.kernel_energy[kernel]
    cycles = ser + ovl  # every transfer cycle, the chains' least sum taken over one tile per cut point
    before_chains = (ser.copy(), ovl.copy(), en.copy(), cycles.copy()) if above else None
    if t.chain_sum is not None:
        chain = t.chain_sum[t.chain_combo[mask] * t.lattice.size + P]  # [node, 4] every operand's
        ser += chain[:, 0]
        ovl += chain[:, 1]
        en += chain[:, 2]
        cycles += chain[:, 3]
    else:
        for o in range(N_OPS):
            if t.cuts_of[o]:
                chain = t.outer_flat[o][t.unplaced[mask, o] * t.lattice.size + P]  # [node, 4]
                ser += chain[:, 0]
                ovl += chain[:, 1]
                en += chain[:, 2]
                cycles += chain[:, 3]
    if t.zigzag:  # latency >= compute + overhead only (``costmodel.cost.latency_lower_bound``)
        latency = latency_lower_bound(t.problem, t.compute[kernel], ovl, ser, t.overhead[kernel])
        return objective_values(t.objective, latency, en)
    hidden = np.maximum(t.compute[kernel], ovl)
    idle = 0.0
    if db_fetches is not None and t.db_cuts:
        n_steps = (t.total // t.point_volume[kernel]).astype(np.float64)
        # Calls with no double-buffered transfer due compute alone: at least the calls beyond the most
        # fetched event, whose fetches are known when closed and at most the positions of P otherwise.
        unsettled = (mask & t.db_mask) != t.db_mask
        if open_mask is None:
            unsettled |= (mask & t.db_mask) != 0
        else:
            unsettled |= (open_mask & t.db_mask) != 0
        most = np.maximum(db_fetches.max(axis=1), np.where(unsettled, t.total // t.point_volume[P], 0))
        idle = np.maximum(n_steps - most, 0.0) * (t.compute[kernel] / n_steps)
        if open_mask is not None:  # open double-buffered cut points: fetched at least once per position
            db_fetches, db_event = db_fetches.copy(), db_event.copy()
            for i, p in enumerate(t.db_cuts):
                rows = np.nonzero((open_mask >> p & 1) == 1)[0]
                if rows.size:
                    db_fetches[rows, i] = t.distinct[p, P[rows]]
                    db_event[rows, i] = t.cycles_lb[p, P[rows]] / t.distinct[p, P[rows]]
        compute = t.compute[kernel]
        hidden = np.maximum(hidden, _pipelined_cycles(n_steps, compute / n_steps, db_fetches.T, db_event.T))
    base_p, base_s = objective_values(t.objective, np.maximum(hidden + ser, cycles + idle), en)
    if open_mask is None or not t.first_loops:
        return base_p, base_s
    ending = [None] * N_OPS  # per operand: costs of its open cut points if their runs end now
    for o in range(N_OPS):
        if t.cuts_of[o]:
            subset = t.subset_of[o][open_mask]
            if subset.any():
                ending[o] = t.close_sum[o][subset * t.lattice.size + P]

    def ahead(hid, ser_, ovl_, en_, cycles_, ops):  # objective values when the first loop indexes ``ops``
        parts = [ending[o] for o in ops if ending[o] is not None]
        extra = sum(parts) if parts else np.zeros((P.size, 3))
        latency = np.maximum(np.maximum(hid, ovl_ + extra[:, 1]) + ser_ + extra[:, 0],
                             cycles_ + extra[:, 0] + extra[:, 1] + idle)
        return objective_values(t.objective, latency, en_ + extra[:, 2])

    options = []  # ([node] the first loop can be of this dim / pattern, primary, secondary)
    if above and t.next_chain is not None:
        s0, o0, e0, c0 = before_chains
        for ops, steps in t.next_chain:
            low = steps[t.chain_combo[mask] * t.lattice.size + P]
            o_ = o0 + low[:, 1]
            options.append((np.isfinite(low[:, 0]),
                            *ahead(np.maximum(hidden, o_), s0 + low[:, 0], o_, e0 + low[:, 2], c0 + low[:, 3], ops)))
    else:
        for ops, left in t.first_loops:
            no_parts = all(ending[o] is None for o in ops)
            options.append((left[P], *((base_p, base_s) if no_parts else ahead(hidden, ser, ovl, en, cycles, ops))))
    primary, secondary = np.full(P.size, np.inf), np.full(P.size, np.inf)
    for moves, extra_p, extra_s in options:
        primary = np.where(moves, np.minimum(primary, extra_p), primary)
        secondary = np.where(moves, np.minimum(secondary, extra_s), secondary)
    at_top = ~np.isfinite(primary)
    return np.where(at_top, base_p, primary), np.where(at_top, base_s, secondary)


def _root_bound(t: _UpTables, root: _Nodes) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the empty mapping: its kernel call is not chosen yet, so the kernel's compute,
    overhead and access energy count at their least over every kernel call."""
    ser = t.outer_total[0] + t.overhead.min()
    if t.zigzag:
        latency = latency_lower_bound(t.problem, t.compute.min(), t.outer_total[1], ser, t.overhead.min())
    else:
        latency = np.maximum(np.maximum(t.compute.min(), t.outer_total[1]) + ser, t.outer_total[3] + t.overhead.min())
    energy = t.outer_total[2] + t.kernel_energy.min()
    return objective_values(t.objective, np.array([latency]), np.array([energy]))


def _receives(t: _UpTables, p: int, P, kernel, spills) -> np.ndarray:
    """[node] whether output cut point ``p``, placed at a tile >= ``P``, is sure to receive partial sums:
    from the output cut point below (closed, spilling), or for the innermost one from reduction loops
    already between the kernel call and ``P``."""
    q = t.below_out[p]
    if q < 0:
        return t.red[P] > t.red[kernel]
    return (spills >> q & 1) == 1


def _buffers(t: _UpTables, P, kernel, spills) -> np.ndarray:
    """[node, cut] least buffer of each cut point at a tile >= ``P`` (outputs sure to hold partial sums
    at accumulator precision)."""
    buffers = t.buffer_lb_rows[P]
    for p in t.out_cuts:
        wide = _receives(t, p, P, kernel, spills)
        buffers[:, p] = np.where(wide, t.buffer_partial[p, P], buffers[:, p])
    return buffers


def _per_memory(t: _UpTables, per_cut: np.ndarray) -> np.ndarray:
    """[node, memory] sums of ``per_cut`` [node, cut] over the cut points each memory holds (column
    sums, not a matrix product: BLAS would spread these small products over threads)."""
    out = np.zeros((per_cut.shape[0], t.n_mem))
    for p in range(t.n_cut):
        out[:, t.mem[p]] += per_cut[:, p]
    return out


def _fits(t: _UpTables, mask, occupancy, buffers) -> np.ndarray:
    """[node] placed buffers ``occupancy`` plus the unplaced cut points' least ``buffers`` [node, cut]
    (``_buffers`` at the node's tile: theirs are at least as large) fit every memory."""
    unplaced = ((mask[:, None] >> np.arange(t.n_cut)[None, :]) & 1) == 0
    need = occupancy + _per_memory(t, unplaced * buffers)
    return (need <= t.capacity[None, :]).all(axis=1)


def _place(t: _UpTables, nodes: _Nodes, groups: np.ndarray) -> None:
    """Place each node's cut points ``groups`` [node] at its tile ``P`` (in place): they open with run 1."""
    depth = nodes.depth + 1
    P = nodes.P
    for p in range(t.n_cut):
        rows = np.nonzero(groups >> p & 1)[0]
        if not rows.size:
            continue
        Pr = P[rows]
        nodes.tile_of[rows, p] = Pr
        nodes.run[rows, p] = 1
        nodes.group_of[rows, p] = depth[rows]
        if t.db[p]:
            nodes.open_overlapped[rows] += t.cycles_lb[p, Pr]
        nodes.open_serial[rows] += t.serial_lb[p, Pr]
        nodes.open_energy[rows] += t.energy_lb[p, Pr]
        buffer = t.buffer_lb[p, Pr]
        if t.is_out[p]:
            wide = _receives(t, p, Pr, nodes.kernel[rows], nodes.spills[rows])
            buffer = np.where(wide, t.buffer_partial[p, Pr], buffer)
            nodes.wide[rows[wide]] |= 1 << p
        nodes.occupancy[rows, t.mem[p]] += buffer
        nodes.occupancy_max[rows, t.mem[p]] += t.buffer_partial[p, Pr]
    nodes.mask |= groups
    nodes.open_mask |= groups
    nodes.depth = depth


def _close(t: _UpTables, nodes: _Nodes, closes: np.ndarray, within: np.ndarray, final: bool) -> None:
    """Apply a segment (in place): open cut points whose operand's run ends in it (or all, at the
    top when ``final``) get their exact cost; the others' runs grow by the segment."""
    for p in range(t.n_cut):
        is_open = (nodes.open_mask >> p & 1) == 1
        if not is_open.any():
            continue
        o = t.op[p]
        ending = is_open & (closes[:, o] | final)
        growing = is_open & ~ending
        nodes.run[growing, p] *= within[growing, o]
        rows = np.nonzero(ending)[0]
        if not rows.size:
            continue
        tile = nodes.tile_of[rows, p]
        run = nodes.run[rows, p] * within[rows, o]
        fetches = t.total // (t.point_volume[tile] * run)
        distinct = t.distinct[p, tile]
        traffic = _traffic(t, p, tile, fetches)
        if t.db[p]:
            i = t.db_cuts.index(p)
            nodes.overlapped[rows] += traffic.cycles
            nodes.open_overlapped[rows] -= t.cycles_lb[p, tile]
            nodes.open_serial[rows] -= t.serial_lb[p, tile]
            nodes.db_fetches[rows, i] = fetches
            nodes.db_event[rows, i] = traffic.cycles / fetches
            if t.is_out[p]:
                nodes.serial[rows] += writeback_epilogue_cycles(t.problem, p, traffic, fetches)
        else:
            nodes.serial[rows] += traffic.cycles
            nodes.open_serial[rows] -= t.serial_lb[p, tile]
        nodes.energy[rows] += traffic.energy_pj
        nodes.open_energy[rows] -= t.energy_lb[p, tile]
        if t.is_out[p]:
            spill = fetches > distinct
            nodes.spills[rows[spill]] |= 1 << p
            q = t.below_out[p]
            if q < 0:  # reduction loops between the kernel call and the end of the run
                receives = t.red[tile] * run > t.red[nodes.kernel[rows]]
            else:
                receives = (nodes.spills[rows] >> q & 1) == 1
            partial = (spill | receives) & ((nodes.wide[rows] >> p & 1) == 0)
            nodes.wide[rows[partial]] |= 1 << p
            nodes.occupancy[rows[partial], t.mem[p]] += t.buffer_partial[p, tile[partial]] - t.buffer_lb[p, tile[partial]]
        nodes.open_mask[rows] &= ~(1 << p)
    np.maximum(nodes.open_serial, 0.0, out=nodes.open_serial)  # float noise of the subtraction
    np.maximum(nodes.open_overlapped, 0.0, out=nodes.open_overlapped)
    np.maximum(nodes.open_energy, 0.0, out=nodes.open_energy)


@dataclass
class _Traffic:
    """The parts of ``costmodel.cost.CutTraffic`` that closing a cut point needs."""

    cycles: np.ndarray
    energy_pj: np.ndarray
    bytes_out: np.ndarray
    runs_out: np.ndarray


def _traffic(t: _UpTables, p: int, tile: np.ndarray, fetches: np.ndarray) -> _Traffic:
    """``cut_traffic`` of cut point ``p`` for tiles ``tile`` [row] fetched ``fetches`` [row] times, from
    its affine tables (every quantity is affine in the fetches for a given tile)."""
    fields = t.traffic_affine[p]
    return _Traffic(*(fields[name][0][tile] + fields[name][1][tile] * fetches
                      for name in ("cycles", "energy_pj", "bytes_out", "runs_out")))


def _traffic_costs(t: _UpTables, p: int, tile: np.ndarray, fetches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, pJ) [row] of ``_traffic``, alone."""
    fields = t.traffic_affine[p]
    (c0, c1), (e0, e1) = fields["cycles"], fields["energy_pj"]
    return c0[tile] + c1[tile] * fetches, e0[tile] + e1[tile] * fetches


def _leader_options(t: _UpTables, open_mask: np.ndarray, seg: np.ndarray):
    """(leader, rows, closes, within) per leader, one leader per distinct effect on the open runs of
    rows with open cut points ``open_mask`` under segments ``seg``."""
    open_ops = np.zeros((open_mask.size, N_OPS), dtype=bool)
    for p in range(t.n_cut):
        open_ops[:, t.op[p]] |= (open_mask >> p & 1) == 1
    seen = []
    for leader in range(N_OPS):
        closes, within = segment_runs(t, seg, leader)
        usable = np.ones(open_mask.size, dtype=bool)
        for c0, w0 in seen:
            same = (((closes == c0) & (within == w0)) | ~open_ops).all(axis=1)
            usable &= ~same
        seen.append((closes, within))
        rows = np.nonzero(usable)[0]
        if rows.size:
            yield leader, rows, closes[rows], within[rows]


def _expand(t: _UpTables, nodes: _Nodes, incumbent: tuple, stats: SearchStats):
    """Children of ``nodes`` that could beat ``incumbent``: complete ones (their outermost segment
    placed) and partial ones, in batches."""
    lat = t.lattice
    # A cheap bound first: the parent's placed costs at the bigger tile. Beyond the first step it
    # grows with the tile (outward chains take minima over fewer tiles; the kernel call is fixed), so
    # tiles are enumerated one dim at a time and a partial tile that cannot win ends its branch.
    is_first = nodes.depth == 0
    serial = nodes.serial + nodes.open_serial
    overlapped = nodes.overlapped + nodes.open_overlapped
    energy = nodes.energy + nodes.open_energy
    no_secondary = np.full(1, -np.inf)

    def hopeful(owner: np.ndarray, T: np.ndarray) -> np.ndarray:
        kernel = np.where(is_first[owner], T, nodes.kernel[owner])
        primary, _ = _bound_of(t, T, kernel, nodes.mask[owner], serial[owner], overlapped[owner], energy[owner])
        return can_beat(primary, no_secondary, incumbent)

    # The first step's bound is not monotone (its kernel call is T): its partial tiles all stay.
    owner, T = lat.above_admitted(nodes.P, lambda owner, T: is_first[owner] | hopeful(owner, T))
    first = is_first[owner]
    keep = first | (T != nodes.P[owner])
    at_first = np.nonzero(first)[0]  # the first step (kernel call T): bounded at its whole tiles only
    keep[at_first] = hopeful(owner[at_first], T[at_first])
    owner, T = owner[keep], T[keep]
    if not owner.size:
        return
    kernel = np.where(first[keep], T, nodes.kernel[owner])
    seg = lat.points[T] // lat.points[nodes.P[owner]]  # [pair, dim]
    # The first step has no segment below its group; later steps apply the segment with a leader.
    variants = []
    first = np.nonzero(nodes.depth[owner] == 0)[0]
    if first.size:
        v = nodes.take(owner[first])
        v.P, v.kernel = T[first], kernel[first]
        variants.append(v)
    later = np.nonzero(nodes.depth[owner] > 0)[0]
    if later.size:  # a bound over every leader first, without copying the nodes
        primary, secondary = _any_leader_bound(t, nodes, owner[later], T[later], kernel[later])
        ok = can_beat(primary, secondary, incumbent)
        stats.pruned += int((~ok).sum())
        later = later[ok]
    if later.size:
        for leader, rows, closes, within in _leader_options(t, nodes.open_mask[owner[later]], seg[later]):
            pick = later[rows]
            v = nodes.take(owner[pick])
            v.P, v.kernel = T[pick], kernel[pick]
            v.leader[np.arange(pick.size), v.depth] = leader
            _close(t, v, closes, within, final=False)
            primary, secondary = _bound(t, v)  # closed costs are exact now: a bound for every group
            ok = can_beat(primary, secondary, incumbent)
            stats.pruned += int((~ok).sum())
            if ok.all():
                variants.append(v)
            elif ok.any():
                variants.append(v.take(np.nonzero(ok)[0]))
    for v in variants:
        rows, groups = _group_pairs(t, v.mask)
        P = v.P[rows]
        bits = (groups[:, None] >> np.arange(t.n_cut)[None, :]) & 1 == 1  # [pair, cut] cut points placed now
        stats.children += rows.size
        added = np.zeros((rows.size, 3))  # once-per-position (serial, overlapped, energy) of the group
        for o in range(N_OPS):
            if t.cuts_of[o]:
                added += t.placed_sum[o][t.subset_of[o][groups] * t.lattice.size + P]
        new_mask = v.mask[rows] | groups
        costs = (v.serial[rows] + v.open_serial[rows] + added[:, 0], v.overlapped[rows] + v.open_overlapped[rows] + added[:, 1],
                 v.energy[rows] + v.open_energy[rows] + added[:, 2])
        primary, secondary = _bound_of(t, P, v.kernel[rows], new_mask, *costs, v.db_fetches[rows], v.db_event[rows],
                                       v.open_mask[rows] | groups)
        hope = np.nonzero(can_beat(primary, secondary, incumbent))[0]
        rows, groups, P, bits, new_mask = rows[hope], groups[hope], P[hope], bits[hope], new_mask[hope]
        if t.next_chain is not None:  # the cut points left go strictly above P: a stronger bound
            primary, secondary = _bound_of(t, P, v.kernel[rows], new_mask, *(c[hope] for c in costs), v.db_fetches[rows],
                                           v.db_event[rows], v.open_mask[rows] | groups, above=True)
            hope = np.nonzero(can_beat(primary, secondary, incumbent))[0]
            rows, groups, P, bits, new_mask = rows[hope], groups[hope], P[hope], bits[hope], new_mask[hope]
        buffers = _buffers(t, P, v.kernel[rows], v.spills[rows])
        occupancy = v.occupancy[rows] + _per_memory(t, bits * buffers)
        ok = _fits(t, new_mask, occupancy, buffers)
        primary, secondary = primary[hope], secondary[hope]
        stats.pruned += len(added) - int(ok.sum())
        if not ok.any():
            continue
        keep = np.nonzero(ok)[0]
        child = v.take(rows[keep])
        _place(t, child, groups[keep])
        child.primary, child.secondary = primary[keep], secondary[keep]
        yield child


def _any_leader_bound(t: _UpTables, nodes: _Nodes, owner: np.ndarray, T: np.ndarray,
                      kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(primary, secondary) [pair] lower bounds of node ``owner`` grown to tile ``T`` by one segment,
    whatever its leader. Whether an operand's runs end in the segment does not depend on the leader
    (a moving loop indexing it is in the segment), and its run grows by at most the product of the
    segment's loops it ignores (leader: that operand): the open cut points whose runs end are costed
    at those longest runs, hence their fewest fetches (every cost grows with fetches). The others stay
    open, fetched once per position; the one-loop look-ahead above ``T`` holds for every leader."""
    P = nodes.P[owner]
    serial = (nodes.serial + nodes.open_serial)[owner]
    overlapped = (nodes.overlapped + nodes.open_overlapped)[owner]
    energy = (nodes.energy + nodes.open_energy)[owner]
    open_mask = nodes.open_mask[owner]
    still = open_mask.copy()
    for o in range(N_OPS):
        if not t.cuts_of[o]:
            continue
        closes = t.relevant_volume[o][T] > t.relevant_volume[o][P]
        longest = t.irrelevant_volume[o][T] // t.irrelevant_volume[o][P]
        for p in t.cuts_of[o]:
            rows = np.nonzero(closes & ((open_mask >> p & 1) == 1))[0]
            if not rows.size:
                continue
            tile = nodes.tile_of[owner[rows], p]
            fetches = t.total // (t.point_volume[tile] * nodes.run[owner[rows], p] * longest[rows])
            cycles, pj = _traffic_costs(t, p, tile, fetches)
            if t.db[p]:
                overlapped[rows] += cycles - t.cycles_lb[p, tile]
                serial[rows] -= t.serial_lb[p, tile]
            else:
                serial[rows] += cycles - t.serial_lb[p, tile]
            energy[rows] += pj - t.energy_lb[p, tile]
            still[rows] &= ~(1 << p)
    return _bound_of(t, T, kernel, nodes.mask[owner], serial, overlapped, energy, open_mask=still)


def _group_pairs(t: _UpTables, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, group) pairs: every group that can be placed next above each row's placed ``masks``."""
    uniq, inverse = np.unique(masks, return_inverse=True)
    rows, groups = [], []
    for k, m in enumerate(uniq):
        options = np.array(t.inner_groups(int(m)), dtype=np.int64)
        at = np.nonzero(inverse == k)[0]
        rows.append(np.repeat(at, options.size))
        groups.append(np.tile(options, at.size))
    order = np.argsort(np.concatenate(rows), kind="stable")  # row by row, groups in their order
    return np.concatenate(rows)[order], np.concatenate(groups)[order]


def _finish(t: _UpTables, nodes: _Nodes, stats: SearchStats) -> _Nodes:
    """Complete mappings from nodes with every cut point placed: the outermost segment (the loops
    left above, possibly none) with each leader that changes something."""
    seg = t.lattice.points[t.lattice.top] // t.lattice.points[nodes.P]
    parts = []
    for leader, rows, closes, within in _leader_options(t, nodes.open_mask, seg):
        v = nodes.take(rows)
        v.leader[np.arange(rows.size), v.depth] = leader
        _close(t, v, closes, within, final=True)
        v.P = np.full(rows.size, t.lattice.top)
        parts.append(v)
    return _Nodes.concat(parts)


def _segment_form(t: _UpTables, nodes: _Nodes) -> tuple:
    """Segment form (segments [segment, dim, cand], leaders [segment, cand], cut_groups [cut, cand]) of
    complete mappings, padded to ``n_cut + 1`` segments."""
    lat = t.lattice
    n = len(nodes)
    n_seg = t.n_cut + 1
    segments = np.ones((n_seg, N_DIMS, n), dtype=np.int64)
    segments[0] = lat.points[nodes.kernel].T
    # Tile below each group g: the tile of its cut points; segment g = tile(g + 1) / tile(g).
    group_tile = np.zeros((n_seg + 1, n), dtype=np.int64)
    for p in range(t.n_cut):
        group_tile[nodes.group_of[:, p], np.arange(n)] = nodes.tile_of[:, p]
    cols = np.arange(n)
    for g in range(1, n_seg):
        has = nodes.depth >= g
        upper = np.where(nodes.depth > g, group_tile[np.minimum(g + 1, n_seg), cols], lat.top)
        segments[g][:, has] = (lat.points[upper[has]] // lat.points[group_tile[g, has]]).T
    leaders = nodes.leader.T.copy()
    return segments, leaders, nodes.group_of.T.copy()


def _settle(t: _UpTables, leaves: _Nodes, best_key: tuple, stats: SearchStats):
    latency, energy = _complete_costs(t, _as_leaves(leaves))
    return _settle_segment_form(t, latency, energy, lambda rows: _segment_form(t, leaves.take(rows)), best_key, stats)


def _as_leaves(nodes: _Nodes):
    """The fields ``tree_search._complete_costs`` reads, kernel call as ``U``."""
    return _LeafView(nodes.kernel, nodes.energy, nodes.serial, nodes.db_fetches, nodes.db_event)


@dataclass
class _LeafView:
    U: np.ndarray
    energy: np.ndarray
    serial: np.ndarray
    db_fetches: np.ndarray
    db_event: np.ndarray


def _same_future(t: _UpTables, nodes: _Nodes):
    """[node, column] what a node's completions depend on besides its placed costs: its tile, placed
    and open cut points, kernel call, and the open cut points' tiles and runs so far. With no
    double-buffered cut point, latency is a plain sum, so the kernel call leaves the key: its
    compute, overhead and access energy are compared as costs instead (``drop_dominated``)."""
    open_bits = (nodes.open_mask[:, None] >> np.arange(t.n_cut)[None, :]) & 1
    # Output precision ahead: which output cut points spilled, and the kernel call's reduction extents
    # while the innermost output cut point is not closed (``_receives``).
    inner_open = (nodes.mask & ~nodes.open_mask & t.first_out_bit) == 0
    columns = [nodes.P, nodes.mask, nodes.open_mask, nodes.tile_of * open_bits, nodes.run * open_bits, nodes.spills,
               np.where(inner_open, t.red[nodes.kernel], 0)]
    # Room every completion leaves: capacity minus the largest buffers the cut points left to place
    # could take (their tiles at the whole layer, outputs at accumulator precision).
    unplaced = ((~nodes.mask[:, None] >> np.arange(t.n_cut)[None, :]) & 1).astype(np.float64)
    settled = t.capacity[None, :] - _per_memory(t, unplaced * t.max_buffer[None, :])
    if t.db_cuts:
        return np.column_stack(columns + [nodes.kernel]), None, settled
    k = nodes.kernel
    return np.column_stack(columns), (t.compute[k] + t.overhead[k], t.kernel_energy[k]), settled


def search_bottom_up(problem: Problem, objective: str, incumbent: tuple = (np.inf, np.inf),
                     deadline: Optional[float] = None, pairs_per_batch: int = 131072) -> TemporalResult:
    """Best temporal mapping of ``problem`` strictly better than ``incumbent``, built from the kernel
    call out (best-first, batches of about ``pairs_per_batch`` (node, tile) pairs). Exact unless
    ``deadline`` (a ``time.perf_counter()`` value) passes: then the least bound left is returned as
    a certified lower bound."""
    t = _tables(problem, objective)
    stats = SearchStats()
    best_key: tuple = tuple(incumbent)
    best = None
    root = _root(t)
    root.primary, root.secondary = _root_bound(t, root)
    expand, finish = _steps(t, stats, summed=True)
    if not np.isfinite(best_key[0]):
        found = narrow_dive(root, expand, finish, t.full_mask, best_key, _DIVE_WIDTH)
        if found is not None:
            best_key, best = found
    above_count = t.lattice.above_count
    result = best_first(root, expand, finish, t.full_mask, lambda nodes: above_count[nodes.P],
                        None if t.zigzag else lambda nodes: _same_future(t, nodes), best_key, best, deadline, stats,
                        pairs_per_batch, t.objective)
    t.chain_sum = t.next_chain = None  # the problem keeps its tables: drop the largest
    return result


def _steps(t: _UpTables, stats: SearchStats, summed: bool = False):
    """(expand, finish) for ``tree_search.best_first``: children of a batch; complete mappings (their
    outermost segment added) costed and the best one re-evaluated. With ``summed``, the summed chain
    tables (``_UpTables.build_chain_sum``) are built once the search has expanded ``_SUM_AFTER``
    nodes: most searches end sooner, and building them costs about as much as that."""
    def expand(nodes: _Nodes, incumbent: tuple):
        if summed and t.chain_sum is None and stats.nodes >= _SUM_AFTER:
            t.build_chain_sum()
        return _expand(t, nodes, incumbent, stats)

    def finish(leaves: _Nodes, incumbent: tuple):
        return _settle(t, _finish(t, leaves, stats), incumbent, stats)

    return expand, finish


def dive_bottom_up(problem: Problem, objective: str, incumbent: tuple = (np.inf, np.inf)) -> TemporalResult:
    """A quick mapping strictly better than ``incumbent``, if the narrow dive of ``search_bottom_up``
    finds one (not a proof: ``complete`` is False, ``lower_bound`` the root's bound)."""
    t = _tables(problem, objective)
    stats = SearchStats()
    root = _root(t)
    root.primary, root.secondary = _root_bound(t, root)
    expand, finish = _steps(t, stats)
    found = (narrow_dive(root, expand, finish, t.full_mask, tuple(incumbent), _DIVE_WIDTH)
             if can_beat(root.primary, root.secondary, incumbent)[0] else None)
    if found is None:
        return _result(incumbent, None, float(root.primary[0]), False, stats)
    return _result(found[0], found[1], float(root.primary[0]), False, stats)


search_bottom_up.dive = dive_bottom_up  # search_module seeds its incumbent with it across unrollings


def _tables(problem: Problem, objective: str) -> _UpTables:
    """The problem's tables, computed once (kept in ``problem.memo``)."""
    key = ("bottom_up_tables", objective)
    if key not in problem.memo:
        problem.memo[key] = _UpTables(problem, objective)
    return problem.memo[key]
