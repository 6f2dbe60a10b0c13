"""Search: best spatial x temporal mapping of a layer per module, best module per layer.

Exact within the space of ``mapper.temporal``: a candidate is skipped only when lower bounds on its
cost show it cannot strictly beat the best found so far, which cannot discard the optimum. Bounds
are applied per spatial unrolling (compute of a PE-costed array), per kernel tile (compute plus
compulsory traffic) and per allocation of tiles to memories (every tile fetched once per position,
``costmodel.cost.cut_traffic_lower_bound``). Ties on the objective break by the secondary metric
(energy for latency, latency otherwise), then by visiting order (unrollings by bound, kernel tiles
by bound, then enumeration order): results are deterministic.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from archs.dims import DIMS, OPERANDS
from archs.dims import LoopDim as D
from archs.model import ExecModule, SoC
from costmodel.analysis import analyze, analyze_segments
from costmodel.cost import (
    OBJECTIVES,
    call_lower_bound,
    compulsory_energy,
    compulsory_transfer_cycles,
    compute_bound_cycles,
    cut_buffer_lower_bound,
    cut_traffic_lower_bound,
    evaluate,
    kernel_access_energy,
    kernel_cycles,
    latency_energy_lower_bounds,
    latency_lower_bound,
    occupancy_lower_bound,
    traffic_bound_cycles,
)
from costmodel.problem import Problem, build_problem
from mapper.acceptance import padding_split, rejection_reason
from mapper.bottom_up import search_bottom_up
from mapper.lattice import lattice_of
from mapper.schedule import Schedule, TileLevel
from mapper.spatial import SpatialUnrolling, spatial_unrollings
from mapper.temporal import enumerate_batches, explicit_nest, kernel_tiles, rank_table, space_plan
from mapper.tree_search import _TIE, SearchStats, TemporalResult, can_beat
from mapper.tree_search import objective_values as _objectives
from mapper.workload import Layer

log = logging.getLogger(__name__)


class MappingError(ValueError):
    """No module can run a layer (the message names the layer and each module's reason)."""

    def __init__(self, message: str, layer: str = ""):
        super().__init__(message)
        self.layer = layer  # the layer's name


@dataclass
class ModuleResult:
    """Outcome of searching one module: the best candidate, or why there is none."""

    module: ExecModule
    schedule: Optional[Schedule]
    reason: Optional[str]
    key: tuple = (np.inf, np.inf)
    complete: bool = True  # the search closed the module's whole space
    lower_bound: float = np.inf  # no mapping on the module has a smaller objective value


def build_layer_problem(layer: Layer, module: ExecModule, unrolling: SpatialUnrolling) -> Problem:
    return build_problem(layer, module, unrolling.factors, {o: layer.relevant(o) for o in OPERANDS}, unrolling.assignment)


def lower_bounds(problem: Problem, tiles: np.ndarray, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """([tile], [tile]) the (primary, secondary) objective values no mapping whose kernel call has
    temporal extents ``tiles`` can beat.

    Latency >= ``costmodel.cost.latency_lower_bound`` of the calls' compute, the compulsory traffic
    (hidden or serial) and calls x tile overhead; energy >= compulsory energy + the kernel's own accesses.
    """
    n_steps = np.prod(problem.remaining) / np.prod(tiles, axis=1)
    traffic = compulsory_transfer_cycles(problem)
    db = np.array([c.inner.double_buffering for c in problem.cut_points], dtype=bool)
    compute = n_steps * kernel_cycles(problem, tiles)
    overhead = n_steps * problem.module.tile_overhead_cycles
    if problem.module.overlap == "zigzag":
        latency = latency_lower_bound(problem, compute, 0.0, overhead, overhead)
    else:
        latency = np.maximum(compute, traffic[db].sum()) + traffic[~db].sum() + overhead
    energy = compulsory_energy(problem) + kernel_access_energy(problem, tiles)
    return _objectives(objective, latency, energy)


def _unrolling_floor(problem: Problem, objective: str) -> float:
    """The objective value no mapping with this unrolling can beat. Latency: a module costed per PE
    spends ``temporal iterations x array size / peak`` cycles computing whatever the tiles, plus
    compulsory traffic and one tile overhead (0 under a kernel hook, where compute depends on the
    tiles). Energy: the compulsory energy (MACs, every tensor across each boundary once) plus the
    least kernel access energy over every kernel call the divisor lattice allows. EDP: their product
    (both are lower bounds of positive factors)."""
    if objective == "latency":
        return _latency_floor(problem)
    energy = compulsory_energy(problem) + float(kernel_access_energy(problem, lattice_of(problem).points).min())
    return energy if objective == "energy" else _latency_floor(problem) * energy


def _latency_floor(problem: Problem) -> float:
    if problem.module.compute.kernel_hook is not None:
        return 0.0
    whole_layer = problem.remaining[None, :]  # one call: the compute part is the same for every tiling
    return float(lower_bounds(problem, whole_layer, "latency")[0][0])


def _capacities(module: ExecModule) -> np.ndarray:
    """[memory] size of each memory of ``module`` in bytes."""
    return np.array([m.size_bytes for m in module.memories], dtype=np.float64)


def _prefilter(problem: Problem, objective: str, incumbent: list):
    """Allocation masks, one per cut pattern: tiles that can fit their memories (outputs at their
    smallest precision) and whose cost lower bounds could still beat the incumbent ``incumbent[0]``
    (``_can_beat``). Per-cut pieces depend only on the cut's group, so they are computed once for
    all patterns."""
    capacity = _capacities(problem.module)
    cuts = problem.cut_points

    def hint(segments: np.ndarray, patterns: list[tuple[int, ...]]) -> list[np.ndarray]:
        n_cand = segments.shape[2]
        if not cuts:
            return [np.ones(n_cand, dtype=bool) for _ in patterns]
        prefix = [segments[0]]  # [dim, cand] tile below the top of each segment
        for s in range(1, segments.shape[0]):
            prefix.append(prefix[-1] * segments[s])
        groups = sorted({(p, g) for pattern in patterns for p, g in enumerate(pattern)})
        buffers = {(p, g): cut_buffer_lower_bound(problem, p, prefix[g - 1]) for p, g in groups}
        bounded = np.isfinite(incumbent[0][0])
        if bounded:
            traffic = {(p, g): cut_traffic_lower_bound(problem, p, prefix[g - 1]) for p, g in groups}
            call = call_lower_bound(problem, segments[0])
        masks = []
        for pattern in patterns:
            occupancy = np.zeros((len(capacity), n_cand))
            for p, g in enumerate(pattern):
                occupancy[cuts[p].inner_index] += buffers[p, g]
            mask = np.ones(n_cand, dtype=bool)
            for m, size in enumerate(capacity):
                mask &= occupancy[m] <= size
            if bounded:
                latency, energy = latency_energy_lower_bounds(problem, call, [traffic[p, g] for p, g in enumerate(pattern)])
                mask &= can_beat(*_objectives(objective, latency, energy), incumbent[0])
            masks.append(mask)
        return masks

    return hint


def _secondary(objective: str) -> str:
    return "energy" if objective == "latency" else "latency"


def _schedule(layer, module, objective, unrolling, problem, loop_dims, loop_factors, cuts, candidates, seconds):
    """Re-evaluate the winning loop nest alone and describe it."""
    stats = analyze(problem, loop_dims, loop_factors[None, :], cuts[None, :])
    cost = evaluate(problem, stats)
    keep = loop_factors > 1
    new_position = np.concatenate([[0], np.cumsum(keep)])
    loops = [{"dim": DIMS[d].value, "factor": int(f)} for d, f, k in zip(loop_dims, loop_factors, keep) if k]
    levels = []
    for p, cut in enumerate(problem.cut_points):
        ext = stats.tile[0, p] * problem.spatial
        levels.append(TileLevel(
            operand=cut.operand.value,
            memory=cut.inner.name,
            outer_memory=cut.outer.name,
            position=int(new_position[cuts[p]]),
            tile={d.value: int(ext[i]) for i, d in enumerate(DIMS) if d in problem.relevant_dims(cut.operand)},
            buffer_bytes=int(cost.buffer_bytes[0, p]),
            double_buffered=cut.inner.double_buffering,
            bytes_in=float(cost.bytes_in[0, p]),
            bytes_out=float(cost.bytes_out[0, p]),
            transfers_in=int(cost.transfers_in[0, p]),
            transfers_out=int(cost.transfers_out[0, p]),
            runs_in=int(round(cost.runs_in[0, p])),
            runs_out=int(round(cost.runs_out[0, p])),
        ))
    call = stats.compute_tile[0] * problem.spatial
    return Schedule(
        layer=layer.name,
        kind=layer.kind,
        module=module.name,
        objective=objective,
        macs=layer.macs,
        spatial=unrolling.to_dict(),
        utilization=unrolling.utilization(layer, module.array_size),
        loops=loops,
        levels=levels,
        kernel_tile={d.value: int(call[i]) for i, d in enumerate(DIMS)},
        kernel_calls=int(stats.n_steps[0]),
        kernel_cycles=float(cost.kernel_cycles[0]),
        compute_cycles=float(cost.compute_cycles[0]),
        transfer_cycles=float(cost.transfer_cycles[0]),
        overhead_cycles=float(cost.overhead_cycles[0]),
        latency_cycles=float(cost.latency_cycles[0]),
        energy_pj=float(cost.energy_pj[0]),
        compute_bound_cycles=compute_bound_cycles(problem),
        traffic_bound_cycles=traffic_bound_cycles(problem),
        occupancy={m.name: int(cost.occupancy[0, i]) for i, m in enumerate(module.memories)},
        candidates=candidates,
        search_seconds=seconds,
    )


def _padded_extent(size: int, factor: int) -> int:
    return -(-size // factor) * factor


def _dominated(layer: Layer, unrolling: SpatialUnrolling) -> bool:
    """True if dropping one array dim's factor leaves every padded extent unchanged.

    With a kernel hook the cost sees only full tile extents (spatial x temporal), so such an
    unrolling's mappings are exactly the mappings of the smaller unrolling whose kernel-call extent
    is a multiple of the factor, at identical cost: searching it again cannot find anything better.
    """
    totals = unrolling.factors
    for _, dim, factor in unrolling.assignment:
        if dim is None or factor == 1:
            continue
        size = layer.sizes[dim]
        if _padded_extent(size, totals[dim] // factor) == _padded_extent(size, totals[dim]):
            return True
    return False


_MIRROR = {D.OY: D.OX, D.OX: D.OY, D.FY: D.FX, D.FX: D.FY}


def _mirror_symmetric(layer: Layer, module: ExecModule) -> bool:
    """True when swapping rows and columns (OY <-> OX, FY <-> FX) maps every mapping of ``layer`` on
    ``module`` to one of the same cost: a square layer (sizes, input, stride, dilation, padding) on a
    module costed per PE (no kernel hook, ``overlap: serial``: the cost then sees the unrolling only
    through its factor per loop dim) whose transfers cost nothing per run (runs follow the tensor
    layout, where rows and columns differ)."""
    if module.compute.kernel_hook is not None or module.overlap != "serial":
        return False
    if any(m.transfer_cycles_per_run for m in module.memories):
        return False
    s = layer.sizes
    return (s[D.OY] == s[D.OX] and s[D.FY] == s[D.FX] and layer.stride[0] == layer.stride[1]
            and layer.dilation[0] == layer.dilation[1] and layer.padding[0] == layer.padding[2]
            and layer.padding[1] == layer.padding[3] and layer.input_size[0] == layer.input_size[1])


def _searched_unrollings(layer: Layer, module: ExecModule, unrollings: list[SpatialUnrolling]) -> list[SpatialUnrolling]:
    """Unrollings the search must visit: all of them for a module costed per PE or with ``overlap:
    zigzag`` (the array's own traffic and the instances depend on the unrolling, not only on the
    full tiles), only the non-dominated ones (``_dominated``) for a module with a kernel hook. When
    rows and columns are interchangeable (``_mirror_symmetric``), an unrolling whose mirror image
    (factors per loop dim with OY <-> OX, FY <-> FX) is already listed has the same mappings at the
    same costs, so it cannot strictly beat it: only the first of the two is kept."""
    if module.compute.kernel_hook is None or module.overlap == "zigzag":
        kept = list(unrollings)
    else:
        kept = [u for u in unrollings if not _dominated(layer, u)]
    if not _mirror_symmetric(layer, module):
        return kept
    seen, out = set(), []
    for u in kept:
        factors = {d: f for d, f in u.factors.items() if f > 1}
        mirror = frozenset((_MIRROR.get(d, d), f) for d, f in factors.items())
        if mirror in seen:
            continue
        seen.add(frozenset(factors.items()))
        out.append(u)
    return out


def _presented(layer: Layer, module: ExecModule, unrollings: list[SpatialUnrolling], unrolling: SpatialUnrolling,
               problem: Problem, loop_dims: np.ndarray, loop_factors: np.ndarray, cuts: np.ndarray) -> tuple:
    """The winner re-expressed with the most-utilising unrolling that can run the same mapping (same
    full tiles, hence the same cost under a kernel hook): factors move from the kernel call's
    temporal loops to the array. Returns (unrolling, problem, loop_dims, loop_factors, cuts). Not
    under ``overlap: zigzag``, where the cost depends on the unrolling itself."""
    if module.compute.kernel_hook is None or module.overlap == "zigzag":
        return unrolling, problem, loop_dims, loop_factors, cuts
    base = unrolling.factors
    inner = int(cuts.min()) if cuts.size else loop_factors.size  # slots of one kernel call
    call = {d: 1 for d in DIMS}
    for slot in range(inner):
        call[DIMS[loop_dims[slot]]] *= int(loop_factors[slot])
    options = []
    for rank, u in enumerate(unrollings):
        extra = {}
        same_shape = all(a[0] == b[0] and (a[1:] == b[1:] or b[1] is None) for a, b in zip(u.assignment, unrolling.assignment))
        if not same_shape:
            continue
        for dim, total in u.factors.items():
            f, rem = divmod(total, base.get(dim, 1))
            size = layer.sizes[dim]
            if rem or call[dim] % f or _padded_extent(size, total) != _padded_extent(size, base.get(dim, 1)):
                break
            if f > 1:
                extra[dim] = f
        else:
            options.append((-u.utilization(layer, module.array_size), rank, u, extra))
    if not options:
        return unrolling, problem, loop_dims, loop_factors, cuts
    _, _, chosen, extra = min(options, key=lambda o: o[:2])
    factors = loop_factors.copy()
    for dim, f in extra.items():
        for slot in range(inner):  # divide the kernel call's loops of ``dim`` by ``f``
            if DIMS[loop_dims[slot]] is dim:
                g = int(np.gcd(int(factors[slot]), f))
                factors[slot] //= g
                f //= g
    return chosen, build_layer_problem(layer, module, chosen), loop_dims, factors, cuts


def enumerate_temporal(problem: Problem, objective: str, incumbent: tuple = (np.inf, np.inf),
                       deadline: Optional[float] = None) -> TemporalResult:
    """The previous temporal search, kept as a second strategy (``temporal_search=enumerate_temporal``):
    every complete candidate of ``mapper.temporal`` above each kernel tile, in batches, skipping
    those whose cost lower bounds cannot beat the incumbent. Exact, but its work grows with the
    number of cut patterns (exponential in memory levels): for shallow hierarchies and cross-checks.
    """
    stats = SearchStats()
    best_key, best = tuple(incumbent), None
    holder = [best_key]
    tiles = kernel_tiles(problem)
    bound, bound2 = lower_bounds(problem, tiles, objective)
    order = np.lexsort((bound2, bound))
    hint = _prefilter(problem, objective, holder)
    dim_ranks = rank_table(problem)
    plan = space_plan(problem)
    pos, step = 0, 1
    stopped = False
    while pos < order.size and bound[order[pos]] <= holder[0][0] * (1 + _TIE):
        if deadline is not None and np.isfinite(holder[0][0]) and time.perf_counter() > deadline:
            stopped = True
            break
        chosen = order[pos:pos + step]
        promising = can_beat(bound[chosen], bound2[chosen], holder[0])
        ranks = pos + np.nonzero(promising)[0]
        for batch in enumerate_batches(problem, tiles[chosen[promising]], ranks, feasible_hint=hint, plan=plan):
            stats_ = analyze_segments(problem, batch.segments, dim_ranks.T[:, batch.leaders], batch.cut_groups)
            cost = evaluate(problem, stats_)
            stats.complete += len(batch)
            stats.evaluated += len(batch)
            primary = np.where(cost.feasible, cost.objective(objective), np.inf)
            if not np.isfinite(primary).any():
                continue
            secondary = cost.objective(_secondary(objective))
            i = int(np.lexsort((secondary, primary))[0])
            if can_beat(primary[i], secondary[i], holder[0]):
                holder[0] = (float(primary[i]), float(secondary[i]))
                best = (batch.segments[:, :, i], batch.leaders[:, i], batch.cut_groups[:, i])
        pos += step
        step = step * 2 if step < 8 else min(step * 8, 1024)
    lower = float(bound[order[pos]]) if stopped and pos < order.size else holder[0][0]
    if best is None:
        return TemporalResult((np.inf, np.inf), None, None, None, lower if stopped else float(bound.min(initial=np.inf)),
                              not stopped, stats=stats)
    return TemporalResult(holder[0], *best, min(lower, holder[0][0]), not stopped, stats=stats)


TemporalSearch = Callable[[Problem, str, tuple, Optional[float]], TemporalResult]
"""A temporal search strategy: ``(problem, objective, incumbent, deadline) -> TemporalResult``, the
best mapping of the problem strictly better than ``incumbent`` (see ``mapper.bottom_up``). It may
carry a ``dive`` attribute, ``(problem, objective, incumbent) -> TemporalResult``: a quick mapping
(not proven) that ``search_module`` first runs on the most promising unrollings, to seed the
incumbent every exact search then prunes with. When its ``deadline`` passes (a finite incumbent given), a
strategy returns soon with a certified ``lower_bound`` (``search_module`` gives a few unvisited
unrollings a moment each, 8 x min(0.05 s, 1 % of the budget) at most, when the budget has run out)."""

_SEED_DIVES = 16  # unrollings dived into before the exact searches
_CLOSING_ROOTS = 8  # unrollings still bounded once the budget has run out,
_CLOSING_SECONDS = 0.05  # each for this long (a certificate tighter than their floors),
_CLOSING_SHARE = 0.01  # at most this share of the budget each


def _single_call(problem: Problem, objective: str) -> TemporalResult:
    """A module with one memory level: one kernel call runs the whole layer."""
    segments = problem.remaining[:, None]
    stats = analyze_segments(problem, segments[None, :, :], np.zeros((len(DIMS), 1, 1), dtype=np.int64),
                             np.zeros((0, 1), dtype=np.int64))
    cost = evaluate(problem, stats)
    key = _objectives(objective, float(cost.latency_cycles[0]), float(cost.energy_pj[0]))
    result = TemporalResult(key, segments[None, :, 0], np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                            key[0], True)
    result.stats.complete = result.stats.evaluated = 1
    return result


def _smallest_overflow(problem: Problem) -> Optional[str]:
    """The memory that one-element tiles already overflow (with this unrolling), if any."""
    smallest = np.ones((1, len(problem.cut_points), len(DIMS)), dtype=np.int64)
    need = occupancy_lower_bound(problem, smallest)[0]
    capacity = _capacities(problem.module)
    if (need <= capacity).all():
        return None
    m = int(np.argmax(need / capacity))
    memory = problem.module.memories[m]
    return f"{memory.name!r} needs {int(need[m])} B of {memory.size_bytes} B even with one-element tiles"


def search_module(layer: Layer, module: ExecModule, objective: str = "latency", time_budget_s: Optional[float] = None,
                  *, deadline: Optional[float] = None, temporal_search: Optional[TemporalSearch] = None) -> ModuleResult:
    """Best mapping of ``layer`` on ``module`` (or the reason there is none).

    Spatial unrollings are visited by increasing latency floor (for energy and EDP, whose floors
    are nearly equal, the most utilising first), and skipped when their floor
    (``_unrolling_floor``) cannot win; each one's temporal mappings are
    searched by ``temporal_search`` (default ``mapper.bottom_up.search_bottom_up``, exact) with the
    best mapping so far as incumbent. With ``time_budget_s`` (or a ``time.perf_counter()``
    ``deadline``) the search stops when it runs out, keeping the best mapping found and a lower
    bound on the optimum (``ModuleResult.lower_bound``, ``complete`` False).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if time_budget_s is not None and not (time_budget_s > 0 and np.isfinite(time_budget_s)):
        raise ValueError(f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}")
    reason = rejection_reason(layer, module)
    if reason is not None:
        return ModuleResult(module, None, reason)
    start = time.perf_counter()
    if time_budget_s is not None:
        deadline = start + time_budget_s if deadline is None else min(deadline, start + time_budget_s)
    search = temporal_search or search_bottom_up
    all_unrollings = spatial_unrollings(layer, module)
    unrollings = _searched_unrollings(layer, module, all_unrollings)
    unrollings.sort(key=lambda u: -u.utilization(layer, module.array_size))  # stable: good incumbents first
    problems = [build_layer_problem(layer, module, u) for u in unrollings]
    floors = [_unrolling_floor(p, objective) for p in problems]
    # Latency floors rank the unrollings; energy floors are nearly equal (the compulsory energy), so
    # the most utilising unrollings stay first. Either way an unrolling whose floor cannot win is skipped.
    visit = sorted(range(len(unrollings)), key=lambda i: floors[i] if objective == "latency" else 0.0)  # stable
    incumbent: tuple = (np.inf, np.inf)
    best = None
    stats = SearchStats()
    open_bounds: list[float] = []  # lower bounds of what the budget left unexplored
    overflow = None
    dive = getattr(search, "dive", None)  # optional: a quick mapping per unrolling, to seed the incumbent
    if dive is not None:
        for spatial_rank in visit[:_SEED_DIVES]:
            problem = problems[spatial_rank]
            if floors[spatial_rank] > incumbent[0] * (1 + _TIE):
                continue
            if not problem.cut_points or _smallest_overflow(problem) is not None:
                continue
            result = dive(problem, objective, incumbent)
            stats.add(result.stats)
            if result.segments is not None:
                incumbent = result.key
                best = (unrollings[spatial_rank], problem,
                        *explicit_nest(problem, result.segments, result.leaders, result.cut_groups))
    closing = 0  # unrollings visited after the deadline, each for a moment
    closing_seconds = 0.0 if deadline is None else min(_CLOSING_SECONDS, _CLOSING_SHARE * max(deadline - start, 0.0))
    for n, spatial_rank in enumerate(visit):
        unrolling, problem = unrollings[spatial_rank], problems[spatial_rank]
        if floors[spatial_rank] > incumbent[0] * (1 + _TIE):
            continue  # this unrolling cannot be better
        if deadline is not None and best is not None and time.perf_counter() > deadline:
            # Out of time: the search still bounds (or closes) the next few unrollings for a moment
            # each, a tighter certificate than their floors; the rest count with the least floor left.
            closing += 1
            if closing > _CLOSING_ROOTS:
                open_bounds.append(min(floors[i] for i in visit[n:]))
                break
            deadline = time.perf_counter() + closing_seconds
        overflow = overflow or _smallest_overflow(problem)
        if _smallest_overflow(problem) is not None:
            continue
        if not problem.cut_points:
            result = _single_call(problem, objective)
            if not can_beat(result.key[0], result.key[1], incumbent):
                continue
        else:
            result = search(problem, objective, incumbent, deadline)
        stats.add(result.stats)
        if not result.complete:
            open_bounds.append(result.lower_bound)
        if result.segments is not None:
            incumbent = result.key
            best = (unrolling, problem, *explicit_nest(problem, result.segments, result.leaders, result.cut_groups))
    if best is None:
        detail = f"; the closest: {overflow}" if overflow else "; no tiling fits its memories"
        return ModuleResult(module, None, f"no mapping fits the memories{detail}",
                            complete=not open_bounds, lower_bound=min(open_bounds, default=np.inf))
    best = _presented(layer, module, all_unrollings, *best)
    seconds = time.perf_counter() - start
    lower = min([incumbent[0]] + open_bounds)
    schedule = _schedule(layer, module, objective, *best, candidates=stats.children + stats.complete, seconds=seconds)
    schedule = dataclasses.replace(schedule, optimal=not open_bounds, lower_bound=lower,
                                   optimality_gap=_gap(incumbent[0], lower), search_stats=stats.to_dict())
    log.debug("%s on %s: %.0f cycles, %s, %.3f s", layer.name, module.name, schedule.latency_cycles,
              stats.to_dict(), seconds)
    return ModuleResult(module, schedule, None, incumbent, complete=not open_bounds, lower_bound=lower)


def _gap(value: float, lower: float) -> float:
    """Relative distance of ``value`` from its lower bound (0 when proven optimal)."""
    if not np.isfinite(value) or value <= 0:
        return 0.0
    return max(0.0, (value - lower) / value)


def _select_modules(soc: SoC, modules: Optional[Sequence[str]]) -> list[ExecModule]:
    if modules is None:
        return list(soc.modules.values())
    unknown = [m for m in modules if m not in soc.modules]
    if unknown:
        raise ValueError(f"unknown module(s) {unknown} for SoC {soc.name!r}; modules are: {', '.join(soc.modules)}")
    return [soc.modules[m] for m in soc.modules if m in modules]


def _with_rejections(schedule: Schedule, results: list[ModuleResult]) -> Schedule:
    rejected = {}
    for r in results:
        if r.module.name == schedule.module:
            continue
        if r.schedule is None:
            rejected[r.module.name] = r.reason or ""
        else:
            rejected[r.module.name] = f"slower: {r.schedule.latency_cycles:.0f} cycles, {r.schedule.energy_pj:.0f} pJ"
    schedule.rejected.update(rejected)
    return schedule


def host_padding_cost(layer: Layer, soc: SoC) -> tuple[float, float]:
    """(cycles, pJ) for the host to pad ``layer``'s input: read the input once and write the padded
    input (zero-point fill included) through the host's memory, at its read/write bandwidth."""
    memory = soc.modules[soc.host].memories[-1]
    top, bottom, left, right = layer.padding
    s = layer.sizes
    iy, ix = layer.input_size
    channels = s[D.B] * s[D.C] * s[D.G]
    read = channels * iy * ix * layer.precision.input / 8
    written = channels * (iy + top + bottom) * (ix + left + right) * layer.precision.input / 8
    cycles = read / memory.read_bytes_per_cycle + written / memory.write_bytes_per_cycle
    return cycles, read * memory.read_energy_pj_per_byte + written * memory.write_energy_pj_per_byte


def _split_result(layer: Layer, soc: SoC, module: ExecModule, objective: str,
                  deadline: Optional[float] = None) -> Optional[ModuleResult]:
    """``module`` running ``layer`` unpadded after the host pads its input (``padding_split``)."""
    unpadded = padding_split(layer, module)
    if unpadded is None:
        return None
    result = search_module(unpadded, module, objective, deadline=deadline)
    if result.schedule is None:
        return None
    cycles, energy = host_padding_cost(layer, soc)
    s = result.schedule
    key = _objectives(objective, s.latency_cycles + cycles, s.energy_pj + energy)
    extra = {"latency": cycles, "energy": energy, "edp": 0.0}[objective]  # the pad adds at least this
    lower = result.lower_bound + extra
    schedule = dataclasses.replace(s, latency_cycles=s.latency_cycles + cycles, energy_pj=s.energy_pj + energy,
                                   host_padding=tuple(layer.padding), host_padding_cycles=cycles,
                                   host_padding_energy_pj=energy, lower_bound=lower,
                                   optimality_gap=_gap(key[0], lower))
    return ModuleResult(module, schedule, None, key, complete=result.complete, lower_bound=lower)


#: Default time budget of ``map_layer`` / ``map_network`` per layer (seconds); ``None`` runs to proof.
DEFAULT_TIME_BUDGET_S = 10.0


def _deadline(time_budget_s: Optional[float]) -> Optional[float]:
    if time_budget_s is None:
        return None
    if not (isinstance(time_budget_s, (int, float)) and time_budget_s > 0 and np.isfinite(time_budget_s)):
        raise ValueError(f"time_budget_s must be a positive number of seconds or None, got {time_budget_s!r}")
    return time.perf_counter() + float(time_budget_s)


def _certified(layer: Layer, schedule: Schedule, results: list[ModuleResult], objective: str) -> Schedule:
    """``schedule`` with its optimality over the modules searched: proven when every module's
    search closed its space; otherwise the least lower bound over them gives the gap."""
    value = _objectives(objective, schedule.latency_cycles, schedule.energy_pj)[0]
    lower = min([r.lower_bound for r in results if not r.complete or r.schedule is not None] + [value])
    optimal = all(r.complete for r in results)
    if not optimal:
        log.warning("layer %r: time budget ran out before the search closed; best %s %.6g within %.2f%% of the "
                    "lower bound %.6g", layer.name, objective, value, 100 * _gap(value, lower), lower)
    return dataclasses.replace(schedule, optimal=optimal, lower_bound=min(lower, value),
                               optimality_gap=0.0 if optimal else _gap(value, lower))


def map_layer(layer: Layer, soc: SoC, objective: str = "latency", modules: Optional[Sequence[str]] = None,
              time_budget_s: Optional[float] = DEFAULT_TIME_BUDGET_S) -> Schedule:
    """Best schedule of ``layer`` over the SoC's modules (or the ``modules`` named).

    Modules are tried in the SoC's order with the host last; on equal cost the earlier one wins.
    A module that rejects the layer only for its padding is also tried on the unpadded layer with
    the host padding the input first (``padding_split``, cost ``host_padding_cost``).
    ``time_budget_s`` bounds the whole search (all modules); when it runs out the best mapping
    found is returned with ``optimal`` False and a certified ``optimality_gap`` (a warning is
    logged); ``None`` searches to proof.
    Raises ``MappingError`` naming the layer and every module's reason when none can run it.
    """
    deadline = _deadline(time_budget_s)
    candidates = _select_modules(soc, modules)
    ordered = [m for m in candidates if not m.is_host] + [m for m in candidates if m.is_host]
    results = [search_module(layer, m, objective, deadline=deadline) for m in ordered]
    split = [_split_result(layer, soc, r.module, objective, deadline) for r in results
             if r.schedule is None and not r.module.is_host]
    found = [r for r in results if r.schedule is not None] + [r for r in split if r is not None]
    if not found:
        reasons = "; ".join(f"{r.module.name}: {r.reason}" for r in results)
        raise MappingError(f"layer {layer.name!r} ({layer.kind}) cannot be mapped on {soc.name}: {reasons}",
                           layer=layer.name)
    best = min(found, key=lambda r: r.key)  # min keeps the first of equal keys
    return _certified(layer, _with_rejections(best.schedule, results), found + [r for r in results if r.schedule is None],
                      objective)


def map_layer_accelerator_first(layer: Layer, soc: SoC, objective: str = "latency",
                                modules: Optional[Sequence[str]] = None,
                                time_budget_s: Optional[float] = DEFAULT_TIME_BUDGET_S) -> Schedule:
    """DORY/HTVM policy: the first accelerator (in SoC order) that accepts and fits the layer runs
    it, whatever it costs; the host only runs what no accelerator takes. ``time_budget_s`` as in
    ``map_layer``; optimality is that of the mapping on the module the policy picks."""
    deadline = _deadline(time_budget_s)
    candidates = _select_modules(soc, modules)
    results = []
    for module in [m for m in candidates if not m.is_host] + [m for m in candidates if m.is_host]:
        result = search_module(layer, module, objective, deadline=deadline)
        results.append(result)
        if result.schedule is not None:
            return _certified(layer, _with_rejections(result.schedule, results), [result], objective)
    reasons = "; ".join(f"{r.module.name}: {r.reason}" for r in results)
    raise MappingError(f"layer {layer.name!r} ({layer.kind}) cannot be mapped on {soc.name}: {reasons}",
                       layer=layer.name)
