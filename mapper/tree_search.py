"""Temporal search by branch and bound over partial loop nests, built from the outermost loops in.

**Space.** The space of ``mapper.temporal`` (which ``mapper.bruteforce`` checks exhaustively on small
layers): loop nests of the temporal extents in which every operand's tile boundary at every memory
level sits anywhere (an operand's boundaries nested). Written innermost first, a nest is a kernel
call (segment 0) and segments ``1..k`` separated by groups of boundaries ("cut points"); a segment
holds each dim at most once, its loop order given by its *leader*, the operand whose irrelevant
dims come first (``mapper.temporal.order_table``); segments strictly between two groups hold a
loop. A cut point's tile is the product of the segments below it, its fetch count ``loops above /
reuse run right above`` (``costmodel.analysis``).

**Construction.** A partial mapping (a node) fixes the loops above some position and the cut points
placed there or above. A step adds one segment with its leader and the non-empty group of cut
points right below it (per operand, the next outermost ones). At that point a placed cut's tile
(``remaining / loops above``) and fetch count (``loops above / run``; the run is what the node's
``runs`` carry: the product of each operand's irrelevant loops directly above the position, up to
its first relevant moving loop) are final, so its traffic, cycles and energy
(``costmodel.cost.cut_traffic``) are exact at the node. When every cut point is placed, what is
left below is the kernel call, and the candidate's cost is computed from its parts and then
re-evaluated by the reference cost model (``analyze_segments`` + ``evaluate``).

**Exactness.** A node is discarded only when a lower bound on the cost of every completion of it
cannot strictly beat the incumbent (``search._can_beat``: better objective, or equal objective and
better secondary metric). The bound of a node with tile ``U`` (the extents left below it):

- placed cut points: their exact cycles and energy;
- the unplaced cut points of each operand are its innermost ones, with nested tiles
  ``T_0 <= ... <= T_{j-1} <= U``; each costs at least its traffic when fetched once per position
  (``fetches >= distinct`` and every cost grows with fetches), and its tile must fit its memory on
  its own. ``G_j(U) = min_{T <= U} c_{j-1}(T) + G_{j-1}(T)`` over the divisor lattice
  (``mapper.lattice``) is the cheapest such chain, separately for non-overlapped cycles,
  overlapped (double-buffered) cycles and energy;
- the kernel call has extents ``t <= U``: compute, tile overhead and kernel access energy are at
  least their minima over that down-set;
- latency >= max(compute, overlapped traffic) + other traffic + overheads (the pipelined sum of
  ``evaluate`` is at least each of its two parts), energy is a plain sum, EDP a product of two
  positive bounds. Under ``overlap: zigzag`` latency >= compute + overheads
  (``costmodel.cost.latency_lower_bound`` argues it); complete mappings are then costed from their
  parts as that bound only, so every one whose bound can win is re-evaluated, and no dominance is
  applied (the latency is not a sum of per-cut parts).

A node whose placed buffers (outputs at output precision unless they are known to hold partial
sums) plus the smallest buffers of its unplaced cut points overflow a memory has no feasible
completion. Ties keep the first candidate in visiting order, so results are deterministic.

**Budget.** With a deadline, the search stops between chunks of nodes; the least bound over the
nodes not yet expanded is then a certified lower bound on the optimum, and the result says how far
the incumbent may be from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from archs.dims import DIMS, OPERANDS, Operand
from costmodel.analysis import analyze_segments
from costmodel.cost import (
    _pipelined_cycles,
    call_lower_bound,
    cut_buffer_lower_bound,
    cut_traffic,
    evaluate,
    latency_lower_bound,
    partial_sum_buffer,
    writeback_epilogue_cycles,
)
from costmodel.problem import Problem
from mapper.lattice import TileLattice, lattice_of
from mapper.temporal import rank_table

N_DIMS = len(DIMS)
N_OPS = len(OPERANDS)
_TIE = 1e-9
_NO_LOOP = N_DIMS + 1  # rank past every loop
_GROUP_CAP = 8  # dominance compares each node with at most this many of its group's cheapest
_DIVE_BEAM = 8  # nodes kept per step by the dive that finds a first incumbent


def objective_values(objective: str, latency, energy) -> tuple:
    """(primary, secondary) values of ``objective`` (the secondary breaks ties)."""
    if objective == "latency":
        return latency, energy
    if objective == "energy":
        return energy, latency
    return latency * energy, latency


def can_beat(primary, secondary, incumbent: tuple) -> np.ndarray:
    """Mask of values (primary, secondary) that would strictly beat ``incumbent``: a better primary,
    or an equal primary (relative tolerance 1e-9) with a better secondary."""
    best_p, best_s = incumbent
    better = primary < best_p * (1 - _TIE)
    tied = primary <= best_p * (1 + _TIE)
    return better | (tied & (secondary < best_s * (1 - _TIE)))


@dataclass
class SearchStats:
    """Work done by one temporal search (counts, not seconds)."""

    nodes: int = 0  # partial mappings expanded
    children: int = 0  # partial and complete mappings generated (bounded)
    pruned: int = 0  # generated mappings discarded by bound or capacity
    complete: int = 0  # complete mappings costed from their parts
    evaluated: int = 0  # complete mappings re-evaluated by the reference cost model
    levels: int = 0  # deepest step reached

    def add(self, other: "SearchStats") -> None:
        for name in self.__dataclass_fields__:
            if name == "levels":
                self.levels = max(self.levels, other.levels)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class TemporalResult:
    """Best temporal mapping of one problem, in segment form (see ``mapper.temporal.explicit_nest``)."""

    key: tuple  # (primary, secondary) of the best, (inf, inf) if none beat the incumbent
    segments: Optional[np.ndarray]  # [segment, dim]
    leaders: Optional[np.ndarray]  # [segment]
    cut_groups: Optional[np.ndarray]  # [cut]
    lower_bound: float  # no mapping of this problem has a smaller primary value
    complete: bool  # False: stopped by the deadline with nodes left
    overflow: Optional[str] = None  # why nothing fitted, when nothing did
    stats: SearchStats = field(default_factory=SearchStats)


class NodeBatch:
    """Base of the searches' node batches: a dataclass of arrays whose first axis is the node."""

    def __len__(self) -> int:
        return int(getattr(self, next(iter(self.__dataclass_fields__))).shape[0])

    def take(self, rows):
        return type(self)(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    @classmethod
    def concat(cls, parts: list):
        if len(parts) == 1:
            return parts[0]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})


class _Tables:
    """Everything the search needs about one problem, computed once over the tile lattice."""

    def __init__(self, problem: Problem, objective: str):
        self.problem = problem
        self.objective = objective
        module = problem.module
        lat = lattice_of(problem)
        self.lattice: TileLattice = lat
        cuts = problem.cut_points
        self.n_cut = len(cuts)
        self.op = np.array([OPERANDS.index(c.operand) for c in cuts], dtype=np.int64)
        self.mem = np.array([c.inner_index for c in cuts], dtype=np.int64)
        # Under ``overlap: zigzag`` the latency is not built from these parts: no double-buffered
        # pipeline, parts only bound it (``costmodel.cost.latency_lower_bound``), no dominance.
        self.zigzag = module.overlap == "zigzag"
        self.db = np.array([c.inner.double_buffering and not self.zigzag for c in cuts], dtype=bool)
        self.is_out = np.array([c.operand is Operand.O for c in cuts], dtype=bool)
        self.db_cuts = [p for p in range(self.n_cut) if self.db[p]]
        self.capacity = np.array([m.size_bytes for m in module.memories], dtype=np.float64)
        self.n_mem = len(module.memories)
        self.total = int(np.prod(problem.remaining))
        tiles = np.ascontiguousarray(lat.points.T)  # [dim, point]
        self.point_volume = np.prod(lat.points, axis=1)  # [point]
        self.distinct = np.empty((self.n_cut, lat.size), dtype=np.int64)
        self.buffer_lb = np.empty((self.n_cut, lat.size))
        self.buffer_partial = np.empty((self.n_cut, lat.size))
        self.cycles_lb = np.empty((self.n_cut, lat.size))
        self.energy_lb = np.empty((self.n_cut, lat.size))
        for p, cut in enumerate(cuts):
            rel = problem.relevant[self.op[p]]
            self.distinct[p] = int(np.prod(problem.remaining[rel])) // np.prod(lat.points[:, rel], axis=1)
            self.buffer_lb[p] = cut_buffer_lower_bound(problem, p, tiles)
            self.buffer_partial[p] = partial_sum_buffer(problem, p, tiles) if self.is_out[p] else self.buffer_lb[p]
            once = cut_traffic(problem, p, tiles, self.distinct[p], self.distinct[p])
            self.cycles_lb[p], self.energy_lb[p] = once.cycles, once.energy_pj
        self.min_buffer = self.buffer_lb[:, 0].copy()
        fits = self.buffer_lb <= self.capacity[self.mem][:, None]
        self.fits = fits  # [cut, point] the tile alone fits its memory
        compute, overhead, energy = call_lower_bound(problem, tiles)
        self.compute, self.overhead, self.kernel_energy = (np.asarray(compute, float), np.asarray(overhead, float),
                                                           np.asarray(energy, float))
        self.cuts_of = [[p for p in range(self.n_cut) if self.op[p] == o] for o in range(N_OPS)]
        # Masks of placed cut points: per operand its outermost ones.
        self.full_mask = (1 << self.n_cut) - 1
        self.unplaced = np.zeros((1 << self.n_cut, N_OPS), dtype=np.int64)
        for mask in range(1 << self.n_cut):
            for p in range(self.n_cut):
                if not mask >> p & 1:
                    self.unplaced[mask, self.op[p]] += 1
        self._groups: dict[int, list[int]] = {}
        self.ranks = rank_table(problem).astype(np.int64)  # [leader, dim]
        self.relevant = problem.relevant  # [operand, dim]


    # Top-down tables (``search_temporal`` only), computed on first use.
    @cached_property
    def compute_lb(self) -> np.ndarray:
        return self.lattice.downward_min(self.compute)

    @cached_property
    def overhead_lb(self) -> np.ndarray:
        return self.lattice.downward_min(self.overhead)

    @cached_property
    def kernel_energy_lb(self) -> np.ndarray:
        return self.lattice.downward_min(self.kernel_energy)

    @cached_property
    def chain(self) -> list:
        """Chains of unplaced cut points per operand: chain[o][j] [3, point] (serial, overlapped, energy)."""
        lat, chain = self.lattice, []
        for o in range(N_OPS):
            tables = [np.zeros((3, lat.size))]
            for p in self.cuts_of[o]:
                step = np.stack([np.where(self.db[p], 0.0, self.cycles_lb[p]), np.where(self.db[p], self.cycles_lb[p], 0.0),
                                 self.energy_lb[p]])
                step = np.where(self.fits[p][None, :], step + tables[-1], np.inf)
                tables.append(lat.downward_min(step))
            chain.append(tables)
        return chain

    def groups(self, mask: int) -> list[int]:
        """Every group of cut points that can be placed next below a node with ``mask`` placed:
        per operand its next outermost unplaced ones (any number), at least one in all."""
        if mask not in self._groups:
            per_op = []
            for o in range(N_OPS):
                unplaced = [p for p in reversed(self.cuts_of[o]) if not mask >> p & 1]  # outermost first
                options = [0]
                bits = 0
                for p in unplaced:
                    bits |= 1 << p
                    options.append(bits)
                per_op.append(options)
            groups = sorted({a | b | c for a in per_op[0] for b in per_op[1] for c in per_op[2]} - {0})
            self._groups[mask] = groups
        return self._groups[mask]

    def bound(self, U: np.ndarray, mask: np.ndarray, serial, overlapped, energy) -> tuple[np.ndarray, np.ndarray]:
        """(primary, secondary) lower bounds of nodes with tile ``U``, ``mask`` placed and the exact
        costs of their placed cut points (serial cycles, overlapped cycles, energy)."""
        ser = serial + self.overhead_lb[U]
        ovl = overlapped.copy()
        en = energy + self.kernel_energy_lb[U]
        for o in range(N_OPS):
            if not self.cuts_of[o]:
                continue
            j = self.unplaced[mask, o]
            for jj in np.unique(j):
                if jj == 0:
                    continue
                rows = j == jj
                table = self.chain[o][jj]
                ser[rows] += table[0, U[rows]]
                ovl[rows] += table[1, U[rows]]
                en[rows] += table[2, U[rows]]
        latency = latency_lower_bound(self.problem, self.compute_lb[U], ovl, ser, self.overhead_lb[U])
        return objective_values(self.objective, latency, en)

    def capacity_ok(self, mask: np.ndarray, occupancy: np.ndarray) -> np.ndarray:
        """[node] placed buffers plus the smallest buffers of unplaced cut points fit every memory."""
        need = occupancy.copy()
        for p in range(self.n_cut):
            open_rows = (mask >> p & 1) == 0
            need[open_rows, self.mem[p]] += self.min_buffer[p]
        return (need <= self.capacity[None, :]).all(axis=1)


@dataclass
class _Nodes(NodeBatch):
    """A batch of partial (or complete) mappings; history arrays locate each step's choices."""

    U: np.ndarray  # [n] lattice index of the tile left below
    mask: np.ndarray  # [n] placed cut points
    runs: np.ndarray  # [n, operand] reuse run right above the position
    serial: np.ndarray  # [n] cycles of placed non-overlapped transfers (+ write-back epilogues)
    overlapped: np.ndarray  # [n] cycles of placed double-buffered transfers
    energy: np.ndarray  # [n] pJ of placed transfers
    db_fetches: np.ndarray  # [n, db cut] fetches of placed double-buffered cut points (0: unplaced)
    db_event: np.ndarray  # [n, db cut] cycles per fetch
    occupancy: np.ndarray  # [n, memory] bytes of placed buffers (outputs at their least precision)
    occupancy_max: np.ndarray  # [n, memory] the same with undecided outputs at accumulator precision
    depth: np.ndarray  # [n] steps taken
    steps_tile: np.ndarray  # [n, step] lattice index of the tile below each step's group
    steps_leader: np.ndarray  # [n, step] leader of each step's segment
    steps_group: np.ndarray  # [n, step] cut points each step placed (bit mask)
    primary: np.ndarray  # [n] bound
    secondary: np.ndarray  # [n]


def _root(t: _Tables) -> _Nodes:
    n_db = len(t.db_cuts)
    root = _Nodes(
        U=np.array([t.lattice.top]), mask=np.zeros(1, np.int64), runs=np.ones((1, N_OPS), np.int64),
        serial=np.zeros(1), overlapped=np.zeros(1), energy=np.zeros(1), db_fetches=np.zeros((1, n_db)),
        db_event=np.zeros((1, n_db)), occupancy=np.zeros((1, t.n_mem)),
        occupancy_max=np.zeros((1, t.n_mem)), depth=np.zeros(1, np.int64),
        steps_tile=np.zeros((1, t.n_cut), np.int32), steps_leader=np.zeros((1, t.n_cut), np.int8),
        steps_group=np.zeros((1, t.n_cut), np.int32), primary=np.zeros(1), secondary=np.zeros(1))
    root.primary, root.secondary = t.bound(root.U, root.mask, root.serial, root.overlapped, root.energy)
    return root


def segment_runs(t: _Tables, seg: np.ndarray, leader: int) -> tuple[np.ndarray, np.ndarray]:
    """(closes [row, operand], within [row, operand]) for a segment of factors ``seg`` [row, dim] led by
    ``leader``: whether it holds a moving loop indexing the operand, and the product of the
    operand's irrelevant loops ranked before the first such loop (all of them if none)."""
    rank = t.ranks[leader]
    moving = seg > 1
    closes = np.zeros((seg.shape[0], N_OPS), dtype=bool)
    within = np.ones((seg.shape[0], N_OPS), dtype=np.int64)
    for o in range(N_OPS):
        rel = t.relevant[o]
        first = np.full(seg.shape[0], _NO_LOOP, dtype=np.int64)
        for d in range(N_DIMS):
            if rel[d]:
                first = np.where(moving[:, d], np.minimum(first, rank[d]), first)
        for d in range(N_DIMS):
            if not rel[d]:
                within[:, o] *= np.where(rank[d] < first, seg[:, d], 1)
        closes[:, o] = first < _NO_LOOP
    return closes, within


def _new_runs(t: _Tables, seg: np.ndarray, leader: int, runs: np.ndarray) -> np.ndarray:
    """[row, operand] runs right below a segment of factors ``seg`` [row, dim] led by ``leader``, the
    runs right above it being ``runs``: per operand, its irrelevant loops ranked before its first
    relevant moving loop, times the run above when the segment has no relevant moving loop."""
    closes, within = segment_runs(t, seg, leader)
    return within * np.where(closes, 1, runs)


def _expand(t: _Tables, nodes: _Nodes, incumbent: tuple, stats: SearchStats):
    """Every child of ``nodes`` that could beat ``incumbent`` and fits the memories, in batches: one
    segment below each node (non-empty below the first group), a leader, and a group of cut points
    below it."""
    lat = t.lattice
    parent, T = lat.below(nodes.U)
    keep = (T != nodes.U[parent]) | (nodes.depth[parent] == 0)
    # A child's bound is at least the bound of its parent's costs at the smaller tile T (the
    # cost-to-go tables only grow as tiles shrink, placed cut points cost at least their chain term).
    primary, secondary = t.bound(T, nodes.mask[parent], nodes.serial[parent], nodes.overlapped[parent],
                                 nodes.energy[parent])
    keep &= can_beat(primary, secondary, incumbent)
    stats.pruned += int((~keep).sum())
    parent, T = parent[keep], T[keep]
    seg = lat.points[nodes.U[parent]] // lat.points[T]  # [pair, dim]
    mask = nodes.mask[parent]
    runs_above = nodes.runs[parent]
    # Leaders: operands with unplaced cut points; one leader per distinct set of runs that matter.
    matters = t.unplaced[mask] > 0  # [pair, operand]
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    for leader in range(N_OPS):
        allowed = matters[:, leader].copy()
        if not allowed.any():
            continue
        runs = _new_runs(t, seg, leader, runs_above)
        usable = allowed.copy()
        for earlier_runs, earlier_allowed in seen:
            same = ((runs == earlier_runs) | ~matters).all(axis=1)
            usable &= ~(same & earlier_allowed)
        seen.append((runs, allowed))
        rows = np.nonzero(usable)[0]
        if rows.size:
            for children in _place_groups(t, nodes, parent[rows], T[rows], leader, runs[rows], incumbent, stats):
                fits = t.capacity_ok(children.mask, children.occupancy)
                stats.pruned += int((~fits).sum())
                if fits.any():
                    yield children.take(np.nonzero(fits)[0])


def _place_groups(t: _Tables, nodes: _Nodes, parent: np.ndarray, T: np.ndarray, leader: int, runs: np.ndarray,
                  incumbent: tuple, stats: SearchStats):
    """Children for each valid group of cut points placed at tiles ``T`` under ``parent`` nodes.

    Each unplaced cut point's exact cost at ``T`` is computed once; a group's child then adds them
    up. Groups with a cut point whose tile alone overflows its memory, or whose bound cannot beat
    ``incumbent``, make no child."""
    lat = t.lattice
    mask = nodes.mask[parent]
    fetch_base = t.total // t.point_volume[T]  # loops above the new position
    tiles = lat.points[T].T  # [dim, pair]
    n = T.size
    cost = {}
    for p in range(t.n_cut):
        todo = (mask >> p & 1) == 0
        if not todo.any():
            continue
        o = t.op[p]
        fetches = fetch_base // runs[:, o]
        distinct = t.distinct[p, T]
        traffic = cut_traffic(t.problem, p, tiles, fetches, distinct)
        serial = np.zeros(n) if t.db[p] else traffic.cycles
        overlapped = traffic.cycles if t.db[p] else np.zeros(n)
        if t.db[p] and t.is_out[p]:
            serial = writeback_epilogue_cycles(t.problem, p, traffic, fetches)
        buffer = t.buffer_lb[p, T]
        if t.is_out[p]:
            buffer = np.where(fetches > distinct, t.buffer_partial[p, T], buffer)
        cost[p] = (serial, overlapped, traffic.energy_pj, fetches, traffic.cycles / fetches, buffer,
                   t.buffer_partial[p, T], t.fits[p, T])
    for m in np.unique(mask):
        rows_m = np.nonzero(mask == m)[0]
        for group in t.groups(int(m)):
            members = [p for p in range(t.n_cut) if group >> p & 1]
            fits = np.ones(rows_m.size, dtype=bool)
            for p in members:
                fits &= cost[p][7][rows_m]
            rows = rows_m[fits]
            stats.pruned += rows_m.size - rows.size
            if not rows.size:
                continue
            par = parent[rows]
            Tg = T[rows]
            serial = nodes.serial[par].copy()
            overlapped = nodes.overlapped[par].copy()
            energy = nodes.energy[par].copy()
            for p in members:
                serial += cost[p][0][rows]
                overlapped += cost[p][1][rows]
                energy += cost[p][2][rows]
            new_mask = np.full(rows.size, m | group, dtype=np.int64)
            primary, secondary = t.bound(Tg, new_mask, serial, overlapped, energy)
            good = can_beat(primary, secondary, incumbent)
            stats.children += rows.size
            stats.pruned += rows.size - int(good.sum())
            if not good.any():
                continue
            sel = np.nonzero(good)[0]
            rows, par, Tg, new_mask = rows[sel], par[sel], Tg[sel], new_mask[sel]
            serial, overlapped, energy, primary, secondary = (serial[sel], overlapped[sel], energy[sel], primary[sel],
                                                              secondary[sel])
            db_fetches = nodes.db_fetches[par].copy()
            db_event = nodes.db_event[par].copy()
            occupancy = nodes.occupancy[par].copy()
            occupancy_max = nodes.occupancy_max[par].copy()
            for p in members:
                if t.db[p]:
                    i = t.db_cuts.index(p)
                    db_fetches[:, i] = cost[p][3][rows]
                    db_event[:, i] = cost[p][4][rows]
                occupancy[:, t.mem[p]] += cost[p][5][rows]
                occupancy_max[:, t.mem[p]] += cost[p][6][rows]
            new_runs = runs[rows].copy()
            new_runs[t.unplaced[new_mask] == 0] = 1  # runs of finished operands no longer matter
            depth = nodes.depth[par]
            steps_tile, steps_leader, steps_group = (nodes.steps_tile[par].copy(), nodes.steps_leader[par].copy(),
                                                     nodes.steps_group[par].copy())
            at = np.arange(rows.size)
            steps_tile[at, depth], steps_leader[at, depth], steps_group[at, depth] = Tg, leader, group
            yield _Nodes(Tg, new_mask, new_runs, serial, overlapped, energy, db_fetches, db_event, occupancy,
                         occupancy_max, depth + 1, steps_tile, steps_leader, steps_group, primary, secondary)


def drop_dominated(nodes, key: np.ndarray, stats: SearchStats, group_cap: int = _GROUP_CAP,
                   additive: Optional[tuple] = None, objective: str = "edp",
                   incumbent: tuple = (np.inf, np.inf), settled: Optional[np.ndarray] = None):
    """``nodes`` without those dominated by another node with the same future: equal rows of ``key``
    [node, column] (what the completions depend on, besides costs already placed).

    Nodes with the same future have the same completions at the same cost for the cut points still
    to place and the kernel call. Node A dominates node B when A's non-overlapped cycles, energy,
    and every placed double-buffered cut point's fetches and cycles per fetch are at most B's (the
    pipelined latency of ``evaluate`` grows with each of them), and A's largest possible occupancy of
    each memory is at most B's least (so A fits wherever B does): every completion then costs A no
    more than B in latency and energy. Among equal nodes the first (in the nodes' order) is kept.
    Groups larger than ``group_cap`` are compared against their ``group_cap`` cheapest nodes only
    (fewer removals, still exact). ``additive`` ([node] cycles, [node] pJ), when given, is a part of
    every completion's latency and energy that differs within a group (the searches pass the kernel
    call's compute, overhead and access energy when the key leaves the kernel call out, which is
    exact when no cut point is double-buffered: latency is then a plain sum); it is added to the
    compared cycles and energy.

    ``settled`` [node, memory], when given, is a room in each memory that every completion of the
    node leaves (the same for the whole group, e.g. the capacity minus the most the cut points left to
    place there can take): A also fits wherever B does when A's largest possible occupancy fits it,
    whatever B's occupancy (later steps only add those buffers and settle its outputs' precision).

    The secondary metric only breaks ties (``can_beat``), so with a finite ``incumbent`` it is not
    compared when the primary one is strictly lower by more than twice the tie tolerance of the
    incumbent: for ``objective`` latency, when A's non-overlapped cycles are lower by that margin
    (and its double-buffered parts no higher), every completion of A is faster than the same
    completion of B by the margin, so B's can only win where A's does, or beat nothing that could
    still win; likewise for energy. Still transitive, so dropping in any order is exact.
    """
    rows = _undominated_rows(nodes, key, stats, group_cap, additive, objective, incumbent, settled)
    return nodes if rows.size == len(nodes) else nodes.take(rows)


def _undominated_rows(nodes, key: np.ndarray, stats: SearchStats, group_cap: int, additive: Optional[tuple],
                      objective: str, incumbent: tuple, settled: Optional[np.ndarray]) -> np.ndarray:
    """Ascending rows of ``nodes`` that ``drop_dominated`` keeps."""
    n = len(nodes)
    if n < 2:
        return np.arange(n)
    # By key, then cheapest first (the likeliest dominators lead each group), then position.
    serial, energy = nodes.serial, nodes.energy
    if additive is not None:
        serial, energy = serial + additive[0], energy + additive[1]
    # Groups gather equal hashes of the key; pairs are compared only when their keys are equal.
    hashes = _row_hash(key)
    order = np.lexsort((np.arange(n), energy, serial + nodes.overlapped, hashes))
    sorted_key, sorted_hash = key[order], hashes[order]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = sorted_hash[1:] != sorted_hash[:-1]
    group_id = np.cumsum(new_group) - 1
    starts = np.nonzero(new_group)[0]
    sizes = np.diff(np.append(starts, n))
    if sizes.max() == 1:
        return np.arange(n)
    cost, high, room = _dominance_terms(nodes, additive, settled)
    cost, high, room = cost[order], high[order], room[order]
    member = np.arange(n) - starts[group_id]
    # A row whose key is not its group's first key (a hash collision, never seen) is compared with nothing.
    valid = (sorted_key == sorted_key[starts[group_id]]).all(axis=1)
    margin = 2 * _TIE * incumbent[0]
    drop = np.zeros(n, dtype=bool)
    # First against the group's cheapest node (it comes first, so it wins ties), then the survivors
    # against the next ``group_cap - 1``.
    b = np.nonzero(valid & (member > 0))[0]
    a = starts[group_id[b]]
    drop[b[_dominates(cost[a], cost[b], high[a], room[b], objective, margin)]] = True
    size_of = sizes[group_id]
    reach = np.minimum(size_of, group_cap) - 1
    rows = np.nonzero(valid & ~drop & (size_of > 2))[0]
    b = np.repeat(rows, reach[rows])
    a = starts[group_id[b]] + 1 + np.arange(b.size) - np.repeat(np.cumsum(reach[rows]) - reach[rows], reach[rows])
    keep_pair = (a != b) & valid[a]
    a, b = a[keep_pair], b[keep_pair]
    dominated = _dominates(cost[a], cost[b], high[a], room[b], objective, margin)
    a, b = a[dominated], b[dominated]
    later = member[a] > member[b]  # of equals (same costs, each fits wherever the other does), the first stays
    equal = np.zeros(a.size, dtype=bool)
    equal[later] = (cost[a[later]] == cost[b[later]]).all(axis=1) & (high[b[later]] <= room[a[later]]).all(axis=1)
    drop[b[~equal]] = True
    # A dropped node may have dominated others: they stay dominated by transitivity (its dominator
    # dominates them too), except among equals, where the first one survives.
    stats.pruned += int(drop.sum())
    return np.sort(order[~drop])


def _dominates(cost_a: np.ndarray, cost_b: np.ndarray, high_a: np.ndarray, room_b: np.ndarray, objective: str,
               margin: float) -> np.ndarray:
    """[pair] whether node A dominates node B of the same future (``drop_dominated`` states the rule):
    ``cost`` rows are (non-overlapped cycles, energy, double-buffered fetches..., cycles per fetch...),
    ``high_a`` A's largest possible occupancy per memory, ``room_b`` the room B is sure to have. The
    secondary metric is not compared when A's primary one is lower by more than ``margin`` (twice the
    tie tolerance of the incumbent; ``inf`` when there is none)."""
    no_more = cost_a <= cost_b
    fits = (high_a <= room_b).all(axis=1)
    if objective == "latency" and np.isfinite(margin):
        faster = cost_a[:, 0] < cost_b[:, 0] - margin
        return fits & no_more[:, [0] + list(range(2, cost_a.shape[1]))].all(axis=1) & (no_more[:, 1] | faster)
    if objective == "energy" and np.isfinite(margin):
        cheaper = cost_a[:, 1] < cost_b[:, 1] - margin
        return fits & no_more[:, 1] & (np.delete(no_more, 1, axis=1).all(axis=1) | cheaper)
    return fits & no_more.all(axis=1)


def _row_hash(key: np.ndarray) -> np.ndarray:
    """[row] a 64-bit hash of each row of ``key`` [row, column] (integers): equal rows, equal hashes."""
    h = np.full(len(key), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for i in range(key.shape[1]):  # multiply-xorshift per column (wraps modulo 2**64)
        h = (h ^ key[:, i].astype(np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


def _dominance_terms(nodes, additive: Optional[tuple], settled: Optional[np.ndarray]) -> tuple:
    """(cost [node, column], largest occupancy [node, memory], sure room [node, memory]) that
    ``_dominates`` compares (``drop_dominated`` says what ``additive`` and ``settled`` are)."""
    serial, energy = nodes.serial, nodes.energy
    if additive is not None:
        serial, energy = serial + additive[0], energy + additive[1]
    cost = np.column_stack([serial, energy, nodes.db_fetches, nodes.db_event])
    room = nodes.occupancy if settled is None else np.maximum(nodes.occupancy, settled)
    return cost, nodes.occupancy_max, room


class FutureArchive:
    """The futures (``drop_dominated``'s key) and costs of the nodes a search has expanded, so that a
    node taken later from the pool is dropped when an expanded node with the same future dominates it.

    Exact for the same reason as ``drop_dominated``: every completion of the dropped node costs at
    least the same completion of the expanded one, whose completions the search has explored (or
    bounded out, or left to a node dominating it in turn), and an expanded node always came first, so
    of two equal nodes the earlier stays. Rows are looked up by a hash of the key and confirmed by the
    whole key (a collision costs a comparison, never a wrong drop); each key is compared against its
    ``group_cap`` cheapest archived nodes. Runs sorted by (hash, cost) are merged as in ``NodePool``.
    At most ``max_rows`` nodes are archived (beyond that nothing is added: fewer drops, still exact).
    """

    def __init__(self, group_cap: int = 8, max_rows: int = 1 << 21):
        self.runs: list[tuple] = []  # (hash, key, cost, high), each sorted by (hash, cost)
        self.rows = 0
        self.group_cap = group_cap
        self.max_rows = max_rows

    def add(self, key: np.ndarray, cost: np.ndarray, high: np.ndarray) -> None:
        if not len(key) or self.rows >= self.max_rows:
            return
        self.rows += len(key)
        self.runs.append(self._sorted(_row_hash(key), key, cost, high))
        while len(self.runs) > 1 and 2 * len(self.runs[-1][0]) >= len(self.runs[-2][0]):
            last = self.runs.pop()
            self.runs[-1] = self._sorted(*(np.concatenate([x, y]) for x, y in zip(self.runs[-1], last)))

    @staticmethod
    def _sorted(h, key, cost, high) -> tuple:
        order = np.lexsort((cost[:, 1], cost[:, 0], h))
        return h[order], key[order], cost[order], high[order]

    def dominated(self, key: np.ndarray, cost: np.ndarray, room: np.ndarray, objective: str,
                  margin: float) -> np.ndarray:
        """[node] whether an archived node with the same key dominates it (``_dominates``)."""
        out = np.zeros(len(key), dtype=bool)
        if not self.runs or not len(key):
            return out
        h = _row_hash(key)
        for run_h, run_key, run_cost, run_high in self.runs:
            lo = np.searchsorted(run_h, h, side="left")
            n = np.minimum(np.searchsorted(run_h, h, side="right") - lo, self.group_cap)
            b = np.repeat(np.arange(len(key)), n)
            if not b.size:
                continue
            a = lo[b] + np.arange(b.size) - np.repeat(np.cumsum(n) - n, n)
            same = (run_key[a] == key[b]).all(axis=1)
            a, b = a[same], b[same]
            out[b[_dominates(run_cost[a], cost[b], run_high[a], room[b], objective, margin)]] = True
        return out


def grow(frontier, expand, finish, full_mask: int, best_key: tuple, best):
    """Expand ``frontier`` (``expand(nodes, incumbent)`` yields batches of children); complete
    children (every cut point placed) go to ``finish(leaves, incumbent)``, which returns a better
    ((primary, secondary), segment form) or None. Returns (best_key, best, [partial children])."""
    new = []
    for children in expand(frontier, best_key):
        done = children.mask == full_mask
        if done.any():
            found = finish(children.take(np.nonzero(done)[0]), best_key)
            if found is not None:
                best_key, best = found
        if not done.any():
            new.append(children)
        elif not done.all():
            new.append(children.take(np.nonzero(~done)[0]))
    return best_key, best, new


def narrow_dive(root, expand, finish, full_mask: int, incumbent: tuple, width: int):
    """A complete mapping better than ``incumbent``: expand only the ``width`` best nodes of each
    step. Returns ((primary, secondary), segment form) or None."""
    best_key, best, frontier = tuple(incumbent), None, root
    while len(frontier):
        best_key, best, new = grow(frontier, expand, finish, full_mask, best_key, best)
        if not new:
            break
        frontier = type(root).concat(new)
        frontier = frontier.take(np.lexsort((frontier.secondary, frontier.primary))[:width])
    return None if best is None else (best_key, best)


class NodePool:
    """Nodes waiting for expansion, kept as runs sorted by (primary, secondary, deeper first).

    Taking the best nodes merges the runs' heads and advances each run by what it gave (views, no
    copy); new children become a new run. Runs are merged when a newer one is at least half the
    size of the one before it (at most ``log2`` runs of the largest size), so the pool is never
    copied whole per batch. Order is total and stable (older runs first among equal keys):
    deterministic.
    """

    def __init__(self, nodes):
        self.runs: list = []
        self.add(nodes)

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    @staticmethod
    def _sorted(nodes):
        return nodes.take(np.lexsort((-nodes.depth, nodes.secondary, nodes.primary)))

    def add(self, nodes) -> None:
        if not len(nodes):
            return
        self.runs.append(self._sorted(nodes))
        while len(self.runs) > 1 and 2 * len(self.runs[-1]) >= len(self.runs[-2]):
            last = self.runs.pop()
            self.runs[-1] = self._sorted(type(last).concat([self.runs[-1], last]))

    def least_bound(self) -> float:
        return float(min(r.primary[0] for r in self.runs))

    def prune(self, incumbent: tuple) -> int:
        """Drop the nodes whose primary bound is above the incumbent's tie band (they cannot beat
        it: ``can_beat``); returns how many."""
        limit = incumbent[0] * (1 + _TIE)
        dropped, runs = 0, []
        for r in self.runs:
            n = int(np.searchsorted(r.primary, limit, side="right"))
            dropped += len(r) - n
            if n:
                runs.append(r if n == len(r) else r.take(slice(0, n)))
        self.runs = runs
        return dropped

    def pop(self, pair_count, pairs_per_batch: int, head: int = 4096):
        """The best nodes, in order, until their (node, tile) pairs reach ``pairs_per_batch``."""
        heads = [r.take(slice(0, head)) for r in self.runs]
        cand = type(heads[0]).concat(heads) if len(heads) > 1 else heads[0]
        run_of = np.repeat(np.arange(len(heads)), [len(h) for h in heads])
        order = np.lexsort((np.arange(len(cand)), -cand.depth, cand.secondary, cand.primary))[:head]
        pairs = np.cumsum(pair_count(cand.take(order)))
        order = order[:max(1, int(np.searchsorted(pairs, pairs_per_batch, side="right")))]
        taken = np.bincount(run_of[order], minlength=len(self.runs))
        self.runs = [r.take(slice(int(c), None)) for r, c in zip(self.runs, taken) if c < len(r)]
        return cand.take(order)


def best_first(root, expand, finish, full_mask: int, pair_count, same_future, best_key: tuple, best,
               deadline: Optional[float], stats: SearchStats, pairs_per_batch: int,
               objective: str = "edp") -> TemporalResult:
    """Branch and bound from ``root``: repeatedly expand the pool's nodes with the least bounds
    (deeper first among equals) until their children's (node, tile) pairs (``pair_count(nodes)``)
    reach ``pairs_per_batch``; drop what cannot beat the incumbent and what a node with the same
    future (``same_future(nodes)``: ``drop_dominated``'s key, or (key, additive, settled); None: no
    dominance) dominates (``objective`` as in ``drop_dominated``). A node taken from the pool is
    also dropped when a node expanded before it, or one of its batch, dominates it (``FutureArchive``).
    Exact when the pool empties; when ``deadline`` passes first, the least bound left is the certified
    lower bound."""
    pool = NodePool(root)
    archive = FutureArchive() if same_future is not None else None
    while True:
        stats.pruned += pool.prune(best_key)
        if not len(pool.runs):
            break
        if deadline is not None and np.isfinite(best_key[0]) and time.perf_counter() > deadline:
            return _result(best_key, best, float(min(best_key[0], pool.least_bound())), False, stats)
        batch = pool.pop(pair_count, pairs_per_batch)
        keep = can_beat(batch.primary, batch.secondary, best_key)
        if not keep.all():
            stats.pruned += int((~keep).sum())
            batch = batch.take(np.nonzero(keep)[0])
            if not len(batch):
                continue
        if archive is not None:  # nodes dominated by a batch mate or by one expanded earlier
            key, additive, settled = _future_parts(same_future(batch))
            rows = _undominated_rows(batch, key, stats, _GROUP_CAP, additive, objective, best_key, settled)
            cost, high, room = _dominance_terms(batch, additive, settled)
            gone = archive.dominated(key[rows], cost[rows], room[rows], objective, 2 * _TIE * best_key[0])
            stats.pruned += int(gone.sum())
            rows = rows[~gone]
            if not rows.size:
                continue
            if rows.size < len(batch):
                batch = batch.take(rows)
            archive.add(key[rows], cost[rows], high[rows])
        stats.nodes += len(batch)
        best_key, best, new = grow(batch, expand, finish, full_mask, best_key, best)
        if new:
            fresh = type(root).concat(new)
            if same_future is not None:  # None: no dominance rule holds (overlap: zigzag)
                key, additive, settled = _future_parts(same_future(fresh))
                fresh = drop_dominated(fresh, key, stats, additive=additive, objective=objective,
                                       incumbent=best_key, settled=settled)
            stats.levels = max(stats.levels, int(fresh.depth.max()))
            pool.add(fresh)
    return _result(best_key, best, best_key[0], True, stats)


def _future_parts(future) -> tuple:
    """(key, additive, settled) from what ``same_future`` returns (a key alone, or the triple)."""
    return future if isinstance(future, tuple) else (future, None, None)


def _result(key: tuple, best, lower: float, complete: bool, stats: SearchStats) -> TemporalResult:
    if best is None:
        return TemporalResult((np.inf, np.inf), None, None, None, float(lower), complete, stats=stats)
    return TemporalResult(key, *best, float(lower), complete, stats=stats)


def _complete_costs(t: _Tables, leaves: _Nodes) -> tuple[np.ndarray, np.ndarray]:
    """(latency, energy) [leaf] of complete mappings from their parts (the kernel call is ``U``);
    under ``overlap: zigzag`` the latency is only a lower bound (``_settle_segment_form`` knows)."""
    U = leaves.U
    compute, overhead = t.compute[U], t.overhead[U]
    energy = leaves.energy + t.kernel_energy[U]
    if t.zigzag:
        latency = latency_lower_bound(t.problem, compute, 0.0, overhead, overhead)
    elif t.db_cuts:
        n_steps = (t.total // t.point_volume[U]).astype(np.float64)
        per_call = compute / n_steps
        hidden = _pipelined_cycles(n_steps, per_call, leaves.db_fetches.T, leaves.db_event.T)
        latency = hidden + leaves.serial + overhead
    else:
        latency = compute + leaves.serial + overhead
    return latency, energy


def _segment_form(t: _Tables, nodes: _Nodes) -> tuple:
    """(segments [segment, dim, cand], leaders [segment, cand], cut_groups [cut, cand]) of complete
    mappings ``nodes``, padded to ``n_cut + 1`` segments (segments of ones above the last group)."""
    lat = t.lattice
    n = len(nodes)
    segments = np.ones((t.n_cut + 1, N_DIMS, n), dtype=np.int64)
    leaders = np.zeros((t.n_cut + 1, n), dtype=np.int64)
    groups = np.zeros((t.n_cut, n), dtype=np.int64)
    segments[0] = lat.points[nodes.U].T
    above = np.full(n, lat.top)
    for i in range(int(nodes.depth.max())):  # step i made segment and group depth - i (for those that took it)
        took = nodes.depth > i
        s = np.where(took, nodes.depth - i, 0)
        tile = np.where(took, nodes.steps_tile[:, i], above)
        cols = np.nonzero(took)[0]
        segments[s[cols], :, cols] = lat.points[above[cols]] // lat.points[tile[cols]]
        leaders[s[cols], cols] = nodes.steps_leader[cols, i]
        for p in range(t.n_cut):
            hit = took & ((nodes.steps_group[:, i] >> p & 1) == 1)
            groups[p, hit] = s[hit]
        above = tile
    return segments, leaders, groups


def search_temporal(problem: Problem, objective: str, incumbent: tuple = (np.inf, np.inf),
                    deadline: Optional[float] = None, pairs_per_batch: int = 131072,
                    tables: Optional[_Tables] = None) -> TemporalResult:
    """Best temporal mapping of ``problem`` that strictly beats ``incumbent`` (primary, secondary).

    Best-first: the nodes with the least bounds are expanded first, in batches of about
    ``pairs_per_batch`` (node, tile) pairs, after a narrow dive for a first incumbent. Exact (see
    the module docstring) unless ``deadline`` (a ``time.perf_counter()`` value) passes first: then
    the least bound left in the pool is the certified lower bound.
    """
    t = tables if tables is not None else _Tables(problem, objective)
    stats = SearchStats()
    best_key: tuple = tuple(incumbent)
    best = None
    root = _root(t)
    if not can_beat(root.primary, root.secondary, best_key)[0]:
        return TemporalResult((np.inf, np.inf), None, None, None, float(root.primary[0]), True, stats=stats)
    def expand(nodes: _Nodes, bar: tuple):
        return _expand(t, nodes, bar, stats)

    def finish(leaves: _Nodes, bar: tuple):
        return _settle_leaves(t, leaves, bar, stats)

    if not np.isfinite(best_key[0]):
        found = narrow_dive(root, expand, finish, t.full_mask, best_key, _DIVE_BEAM)
        if found is not None:  # a first incumbent from a narrow dive, then the exact search
            best_key, best = found
    below_count = t.lattice.below_count
    return best_first(root, expand, finish, t.full_mask, lambda nodes: below_count[nodes.U],
                      None if t.zigzag else lambda nodes: np.column_stack([nodes.U, nodes.mask, nodes.runs]), best_key,
                      best, deadline, stats, pairs_per_batch, t.objective)


def _settle_leaves(t: _Tables, leaves: _Nodes, best_key: tuple, stats: SearchStats):
    """Cost complete mappings; re-evaluate the ones that beat ``best_key`` with the reference cost
    model, best first, until one fits. Returns ((primary, secondary), segment form) or None."""
    latency, energy = _complete_costs(t, leaves)
    return _settle_segment_form(t, latency, energy, lambda rows: _segment_form(t, leaves.take(rows)), best_key, stats)


def _settle_segment_form(t: _Tables, latency: np.ndarray, energy: np.ndarray, segment_form, best_key: tuple,
                         stats: SearchStats):
    """Complete mappings with costs (latency, energy) [leaf] from their parts: re-evaluate those that
    beat ``best_key`` with the reference cost model (``segment_form(rows)`` gives their segment
    form), best first, until one fits. Returns ((primary, secondary), (segments, leaders, groups))
    of the best, or None."""
    primary, secondary = objective_values(t.objective, latency, energy)
    stats.complete += latency.size
    hopeful = np.nonzero(can_beat(primary, secondary, best_key))[0]
    if not hopeful.size:
        return None
    hopeful = hopeful[np.lexsort((secondary[hopeful], primary[hopeful]))]
    if t.zigzag:  # the parts' latency is a lower bound only: every hopeful leaf is evaluated
        return _settle_bounded(t, primary, secondary, hopeful, segment_form, best_key, stats)
    for lo in range(0, hopeful.size, 256):
        found = _best_evaluated(t, segment_form, hopeful[lo:lo + 256], stats)
        if found is not None:
            return found if can_beat(found[0][0], found[0][1], best_key) else None
    return None


def _best_evaluated(t: _Tables, segment_form, rows: np.ndarray, stats: SearchStats):
    """Re-evaluate the complete mappings ``rows`` with the reference cost model: ((primary, secondary),
    segment form) of the best feasible one (the least secondary among equals), or None."""
    segments, leaders, groups = segment_form(rows)
    stats.evaluated += rows.size
    cost = evaluate(t.problem, analyze_segments(t.problem, segments, t.ranks.T[:, leaders], groups))
    value = np.where(cost.feasible, cost.objective(t.objective), np.inf)
    other = cost.objective("energy" if t.objective == "latency" else "latency")
    ok = np.nonzero(np.isfinite(value))[0]
    if not ok.size:
        return None
    i = ok[np.lexsort((other[ok], value[ok]))[0]]
    return (float(value[i]), float(other[i])), (segments[:, :, i], leaders[:, i], groups[:, i])


def _settle_bounded(t: _Tables, primary, secondary, hopeful: np.ndarray, segment_form, best_key: tuple,
                    stats: SearchStats):
    """``_settle_segment_form`` when the parts give only lower bounds (``primary``, ``secondary``) [leaf]:
    re-evaluate the ``hopeful`` leaves (bound order) whose bound can still beat the best so far, keep
    the best feasible one. Returns ((primary, secondary), segment form) or None."""
    found = None
    for lo in range(0, hopeful.size, 256):
        rows = hopeful[lo:lo + 256]
        rows = rows[can_beat(primary[rows], secondary[rows], best_key)]
        if not rows.size:
            continue
        candidate = _best_evaluated(t, segment_form, rows, stats)
        if candidate is not None and can_beat(candidate[0][0], candidate[0][1], best_key):
            best_key, found = candidate[0], candidate
    return found
