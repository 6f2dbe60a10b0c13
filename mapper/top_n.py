"""The N best mappings of a layer overall: across modules, spatial unrollings and temporal mappings.

Same space as ``mapper.search.search_module`` with its default temporal search
(``mapper.bottom_up``): every spatial unrolling of every module (under a kernel hook, the
unrollings ``search_module`` visits: the others re-express the same mappings at the same cost, and
each mapping is shown with the most-utilising unrolling that runs it; on a square layer of a module
costed per PE, an unrolling whose row/column mirror image was visited is skipped as
``search_module`` skips it, so a mapping's mirror image, of the same cost, is not listed again),
every temporal mapping of
``mapper.temporal``'s space (``explicit_nest`` form, loops of extent 1 dropped, so a mapping is
counted once however the search reaches it). The branch and bound of ``mapper.bottom_up`` (or ``mapper.tree_search``) runs with
the N-th best key found so far (``TopN.bar``) as its incumbent: a node is dropped only if its bound
cannot strictly beat the N-th best, so the N kept are exactly the N best. Dominance between nodes
(``tree_search.drop_dominated``) is off: a dominated node's completions can still be 2nd..N-th.
Order: objective, then the secondary metric (energy for latency, latency otherwise), then visiting
order (modules in SoC order, unrollings by floor, search order): deterministic.

With ``time_budget_s`` the search stops once it runs out (after N mappings are found), returning the
best found with ``optimal`` False and ``lower_bound`` the least bound of what was left unexplored.
``mapper.tree_search``'s branch and bound runs the same way on request (``temporal_search``);
``enumerate_temporal`` is not wired for top N.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from archs.dims import DIMS
from archs.model import ExecModule, SoC
from costmodel.analysis import analyze_segments
from costmodel.cost import OBJECTIVES, evaluate
from costmodel.problem import Problem
from mapper import tree_search
from mapper.acceptance import padding_split, rejection_reason
from mapper.bottom_up import _as_leaves, _finish, _root, _root_bound, _segment_form, _tables, search_bottom_up
from mapper.bottom_up import _expand as _expand_up
from mapper.schedule import Schedule
from mapper.search import (
    _gap,
    _presented,
    _schedule,
    _searched_unrollings,
    _smallest_overflow,
    _unrolling_floor,
    build_layer_problem,
    host_padding_cost,
)
from mapper.spatial import SpatialUnrolling, spatial_unrollings
from mapper.temporal import explicit_nest
from mapper.tree_search import (
    _TIE,
    SearchStats,
    _complete_costs,
    best_first,
    can_beat,
    narrow_dive,
    objective_values,
)
from mapper.workload import Layer

_DIVE_WIDTH = 8
_COLLECTED = (None, None, None)  # ``best_first``'s "found something": the mappings are in the ``TopN``


@dataclass
class _Entry:
    key: tuple  # (primary, secondary)
    seq: int  # visiting order, the last tie-break
    identity: tuple  # (module, unrolling, canonical nest): a mapping is kept once
    payload: tuple  # (layer, module, all unrollings, unrolling, problem, loop_dims, loop_factors, cuts, shift)


@dataclass
class TopN:
    """The ``n`` best complete mappings found so far, by (primary, secondary, visiting order)."""

    n: int
    entries: list = field(default_factory=list)
    seen: set = field(default_factory=set)
    seq: int = 0

    def bar(self) -> tuple:
        """The key a mapping must strictly beat to enter: the n-th best's, (inf, inf) until n are found."""
        return self.entries[-1].key if len(self.entries) >= self.n else (np.inf, np.inf)

    def offer(self, key: tuple, identity: tuple, payload: tuple) -> bool:
        """Keep the mapping if it beats the bar and is not kept already; True if kept."""
        if identity in self.seen or not can_beat(key[0], key[1], self.bar()):
            return False
        self.seq += 1
        self.entries.append(_Entry(key, self.seq, identity, payload))
        self.seen.add(identity)
        self.entries.sort(key=lambda e: (e.key, e.seq))
        for dropped in self.entries[self.n:]:
            self.seen.discard(dropped.identity)
        del self.entries[self.n:]
        return True


def shifted_bar(bar: tuple, objective: str, shift: tuple) -> tuple:
    """A bar for mappings whose cost gets ``shift`` = (cycles, pJ) added (the host pads the input):
    a mapping of unshifted key ``k`` that cannot strictly beat it cannot beat ``bar`` once shifted.
    Latency and energy shift by a constant; EDP ``(l + c)(e + d) >= (sqrt(l e) + sqrt(c d))^2``.
    The secondary is left open (inf): ties on the primary are never pruned."""
    cycles, energy = shift
    if not np.isfinite(bar[0]) or (cycles == 0 and energy == 0):
        return bar
    if objective == "latency":
        return (bar[0] - cycles, np.inf)
    if objective == "energy":
        return (bar[0] - energy, np.inf)
    root = np.sqrt(bar[0]) - np.sqrt(cycles * energy)
    return (root * root if root > 0 else 0.0, np.inf)


def shifted_bound(lower: float, objective: str, shift: tuple) -> float:
    """A lower bound on the shifted objective (``shifted_bar``'s ``shift``) from one on the unshifted."""
    cycles, energy = shift
    if objective == "latency":
        return lower + cycles
    if objective == "energy":
        return lower + energy
    return (np.sqrt(max(lower, 0.0)) + np.sqrt(cycles * energy)) ** 2


def _canonical(loop_dims: np.ndarray, loop_factors: np.ndarray, cuts: np.ndarray) -> tuple:
    """An explicit nest without its loops of extent 1 (cut positions renumbered)."""
    keep = loop_factors > 1
    position = np.concatenate([[0], np.cumsum(keep)])
    return tuple(loop_dims[keep].tolist()), tuple(loop_factors[keep].tolist()), tuple(position[cuts].tolist())


@dataclass
class _Context:
    """What ``_settle_top`` needs to file a mapping of one problem."""

    layer: Layer  # as searched (unpadded when the host pads the input)
    module: ExecModule
    all_unrollings: list  # every unrolling of the module (``_presented`` picks among them)
    unrolling: SpatialUnrolling
    problem: Problem
    shift: tuple  # (cycles, pJ) added to every mapping's cost (host padding)
    objective: str
    top: TopN

    def bar(self) -> tuple:
        return shifted_bar(self.top.bar(), self.objective, self.shift)

    def offer(self, latency: float, energy: float, segments, leaders, groups) -> bool:
        nest = explicit_nest(self.problem, segments, leaders, groups)
        key = objective_values(self.objective, latency + self.shift[0], energy + self.shift[1])
        identity = (self.module.name, self.unrolling.assignment, _canonical(*nest))
        return self.top.offer((float(key[0]), float(key[1])), identity,
                              (self.layer, self.module, self.all_unrollings, self.unrolling, self.problem, *nest, self.shift))


def _settle_top(t: tree_search._Tables, latency: np.ndarray, energy: np.ndarray, segment_form, context: _Context,
                stats: SearchStats) -> bool:
    """Offer every complete mapping (costs from its parts) that beats the bar, best first,
    re-evaluated by the reference cost model; True if any was kept."""
    primary, secondary = objective_values(t.objective, latency, energy)
    stats.complete += latency.size
    hopeful = np.nonzero(can_beat(primary, secondary, context.bar()))[0]
    hopeful = hopeful[np.lexsort((secondary[hopeful], primary[hopeful]))]
    kept = False
    for lo in range(0, hopeful.size, 256):
        rows = hopeful[lo:lo + 256]
        rows = rows[can_beat(primary[rows], secondary[rows], context.bar())]
        if not rows.size:
            break  # in bound order: the rest cannot beat the bar either
        segments, leaders, groups = segment_form(rows)
        stats.evaluated += rows.size
        cost = evaluate(t.problem, analyze_segments(t.problem, segments, t.ranks.T[:, leaders], groups))
        for i in np.nonzero(cost.feasible)[0]:
            kept |= context.offer(float(cost.latency_cycles[i]), float(cost.energy_pj[i]),
                                  segments[:, :, i], leaders[:, i], groups[:, i])
    return kept


def _bottom_up_steps(context: _Context, stats: SearchStats):
    """(root, expand, finish, full mask, pair count) of ``mapper.bottom_up`` for ``best_first``."""
    t = _tables(context.problem, context.objective)
    root = _root(t)
    root.primary, root.secondary = _root_bound(t, root)

    def expand(nodes, bar: tuple):
        return _expand_up(t, nodes, bar, stats)

    def finish(leaves, bar: tuple):
        full = _finish(t, leaves, stats)
        latency, energy = _complete_costs(t, _as_leaves(full))
        kept = _settle_top(t, latency, energy, lambda rows: _segment_form(t, full.take(rows)), context, stats)
        return (context.bar(), _COLLECTED) if kept else None

    return root, expand, finish, t.full_mask, lambda nodes: t.lattice.above_count[nodes.P]


def _tree_steps(context: _Context, stats: SearchStats):
    """(root, expand, finish, full mask, pair count) of ``mapper.tree_search`` for ``best_first``."""
    t = tree_search._Tables(context.problem, context.objective)

    def expand(nodes, bar: tuple):
        return tree_search._expand(t, nodes, bar, stats)

    def finish(leaves, bar: tuple):
        latency, energy = _complete_costs(t, leaves)
        kept = _settle_top(t, latency, energy, lambda rows: tree_search._segment_form(t, leaves.take(rows)), context,
                           stats)
        return (context.bar(), _COLLECTED) if kept else None

    return tree_search._root(t), expand, finish, t.full_mask, lambda nodes: t.lattice.below_count[nodes.U]


#: Temporal searches wired for top N: ``temporal_search`` of ``best_mappings`` -> their steps.
STRATEGIES = {search_bottom_up: _bottom_up_steps, tree_search.search_temporal: _tree_steps}


def _temporal_top(context: _Context, deadline: Optional[float], stats: SearchStats,
                  temporal_search: Callable = search_bottom_up) -> tuple[float, bool]:
    """Offer every temporal mapping of ``context.problem`` that can enter the top N (branch and
    bound of ``temporal_search``, the N-th best as incumbent, no dominance). Returns (lower bound
    of what was left unexplored, or inf; complete)."""
    local = SearchStats()
    root, expand, finish, full_mask, pair_count = STRATEGIES[temporal_search](context, local)
    bar = context.bar()
    if not can_beat(root.primary, root.secondary, bar)[0]:
        return np.inf, True
    if not np.isfinite(bar[0]):
        narrow_dive(root, expand, finish, full_mask, bar, _DIVE_WIDTH)
    result = best_first(root, expand, finish, full_mask, pair_count, None, context.bar(), None, deadline, local,
                        131072, context.objective)
    stats.add(local)
    return (np.inf if result.complete else result.lower_bound), result.complete


def _module_top(layer: Layer, module: ExecModule, objective: str, top: TopN, shift: tuple,
                deadline: Optional[float], stats: SearchStats, open_bounds: list,
                temporal_search: Callable) -> Optional[str]:
    """Offer the mappings of ``layer`` on ``module`` that can enter ``top``; the reason the module
    has none, if every unrolling overflows a memory (not when the search stops for the bar or the
    budget)."""
    all_unrollings = spatial_unrollings(layer, module)
    unrollings = _searched_unrollings(layer, module, all_unrollings)  # under a kernel hook: no re-expressions
    unrollings.sort(key=lambda u: -u.utilization(layer, module.array_size))  # stable
    problems = [build_layer_problem(layer, module, u) for u in unrollings]
    floors = [_unrolling_floor(p, objective) for p in problems]
    overflow, fitted = None, False
    for i in sorted(range(len(unrollings)), key=lambda i: floors[i]):
        context = _Context(layer, module, all_unrollings, unrollings[i], problems[i], shift, objective, top)
        floor = floors[i] + shift[0] if floors[i] else 0.0  # floors are latencies, 0 for other objectives
        if floor > top.bar()[0] * (1 + _TIE):
            return None  # the remaining unrollings cannot enter the top N (runnable or not)
        if deadline is not None and np.isfinite(top.bar()[0]) and time.perf_counter() > deadline:
            open_bounds.append(floor)
            return None
        problem = problems[i]
        reason = _smallest_overflow(problem)
        if reason is not None:
            overflow = overflow or reason
            continue
        fitted = True
        if not problem.cut_points:
            segments = problem.remaining[None, :, None]
            none = np.zeros((0, 1), dtype=np.int64)
            cost = evaluate(problem, analyze_segments(problem, segments, np.zeros((len(DIMS), 1, 1), dtype=np.int64), none))
            stats.complete += 1
            if cost.feasible[0]:
                context.offer(float(cost.latency_cycles[0]), float(cost.energy_pj[0]), segments[:, :, 0],
                              np.zeros(1, dtype=np.int64), none[:, 0])
            continue
        lower, complete = _temporal_top(context, deadline, stats, temporal_search)
        if not complete:
            open_bounds.append(shifted_bound(lower, objective, shift))
    if fitted:
        return None
    return f"no mapping fits the memories; the closest: {overflow}" if overflow else "no tiling fits its memories"


def best_mappings(layer: Layer, target: Union[SoC, ExecModule], objective: str = "latency", n: int = 5,
                  time_budget_s: Optional[float] = None, modules: Optional[list[str]] = None,
                  temporal_search: Callable = search_bottom_up) -> tuple[list[Schedule], dict[str, str]]:
    """The ``n`` best mappings of ``layer`` on ``target`` (an SoC: all its modules, or those named in
    ``modules``; or one module), best first, and the modules that cannot run the layer with their
    reasons. On an SoC, a module that rejects the layer only for its padding runs it unpadded after
    the host pads the input (``mapper.search.host_padding_cost`` added, as ``map_layer`` does).
    ``temporal_search``: ``mapper.bottom_up.search_bottom_up`` (default) or
    ``mapper.tree_search.search_temporal`` (``STRATEGIES``), run with the n-th best as incumbent.
    Every schedule's ``optimal`` says whether the list is proven to be the n best; ``lower_bound``
    is then its own objective value, else the least bound of what the budget left unexplored.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if time_budget_s is not None and not (time_budget_s > 0 and np.isfinite(time_budget_s)):
        raise ValueError(f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}")
    if temporal_search not in STRATEGIES:
        raise ValueError(f"temporal_search must be one of {', '.join(f.__module__ + '.' + f.__name__ for f in STRATEGIES)}")
    start = time.perf_counter()
    deadline = None if time_budget_s is None else start + time_budget_s
    soc = target if isinstance(target, SoC) else None
    candidates = list(soc.modules.values()) if soc is not None else [target]
    if modules is not None:
        unknown = [m for m in modules if all(c.name != m for c in candidates)]
        if unknown:
            raise ValueError(f"unknown module(s) {unknown}; modules are: {', '.join(c.name for c in candidates)}")
        candidates = [c for c in candidates if c.name in modules]
    ordered = [m for m in candidates if not m.is_host] + [m for m in candidates if m.is_host]
    top, stats, open_bounds, rejected = TopN(n), SearchStats(), [], {}
    for module in ordered:
        target_layer, shift = layer, (0.0, 0.0)
        reason = rejection_reason(layer, module)
        if reason is not None:
            unpadded = None if module.is_host or soc is None else padding_split(layer, module)
            if unpadded is None:
                rejected[module.name] = reason
                continue
            target_layer, shift = unpadded, host_padding_cost(layer, soc)
        reason = _module_top(target_layer, module, objective, top, shift, deadline, stats, open_bounds, temporal_search)
        if reason is not None:
            rejected[module.name] = reason
    seconds = time.perf_counter() - start
    optimal = not open_bounds
    schedules = []
    for entry in top.entries:
        searched, module, all_unrollings, *mapping, shift = entry.payload
        s = _schedule(searched, module, objective, *_presented(searched, module, all_unrollings, *mapping),
                      candidates=stats.children + stats.complete, seconds=seconds)
        if shift != (0.0, 0.0):
            s = dataclasses.replace(s, latency_cycles=s.latency_cycles + shift[0], energy_pj=s.energy_pj + shift[1],
                                    host_padding=tuple(layer.padding), host_padding_cycles=shift[0],
                                    host_padding_energy_pj=shift[1])
        value = entry.key[0]
        lower = value if optimal else min([value] + open_bounds)
        schedules.append(dataclasses.replace(s, optimal=optimal, lower_bound=lower,
                                             optimality_gap=0.0 if optimal else _gap(value, lower),
                                             search_stats=stats.to_dict()))
    return schedules, rejected
