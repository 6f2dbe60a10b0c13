"""Cost of ONE explicit mapping in our cost model, and translators into that representation.

An ``ExplicitMapping`` is what the search picks for a layer on a module:

- ``spatial``: a ``SpatialUnrolling`` (per array dim: the loop dim and factor it unrolls);
- ``loops``: the temporal loops ``(LoopDim, factor)``, innermost first; the factors of each dim
  must multiply to its temporal extent after unrolling (``ceil(size / unroll factor)``);
- ``cuts``: per operand, one slot position per boundary of its memory chain (innermost boundary
  first): the number of innermost loops inside the tile held by the inner memory of that boundary.
  Positions of one operand are non-decreasing (its tiles nest).

``evaluate_mapping`` runs it through the public cost model (``costmodel.build_problem``,
``analyze``, ``evaluate``) and describes it as a ``Schedule``, exactly as ``search_module`` describes
its winner. ``mapping_from_schedule`` turns a ``Schedule`` back into an ``ExplicitMapping``;
``zigzag_mapping_dict`` / ``mapping_from_zigzag`` translate the mapping ZigZag chose (a
``CostModelEvaluation``: its spatial mapping and ``temporal_mapping.mapping_dic_origin``) so that
ZigZag's choice can be costed in our model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from archs.dims import DIMS, OPERANDS, LoopDim, Operand
from archs.model import ExecModule
from costmodel import analyze, build_problem, evaluate
from costmodel.problem import Problem
from mapper.schedule import Schedule
from mapper.search import _schedule
from mapper.spatial import SpatialUnrolling
from mapper.workload import Layer

DimLike = Union[LoopDim, str]


@dataclass(frozen=True)
class ExplicitMapping:
    """One spatial unrolling + temporal loop nest + memory allocation (see the module docstring)."""

    spatial: SpatialUnrolling
    loops: tuple[tuple[LoopDim, int], ...]  # temporal loops, innermost first
    cuts: Mapping[Operand, tuple[int, ...]]  # per operand, per boundary of its chain (innermost first): slot position


@dataclass(frozen=True)
class MappingEvaluation:
    """Cost of one explicit mapping: the ``Schedule`` (cycles, pJ, bytes) and whether it fits."""

    schedule: Schedule
    feasible: bool  # every tile fits its memory
    overflows: dict[str, str] = field(default_factory=dict)  # memory -> "needs N B of M B"

    @property
    def latency_cycles(self) -> float:
        return self.schedule.latency_cycles

    @property
    def energy_pj(self) -> float:
        return self.schedule.energy_pj


def make_unrolling(module: ExecModule, assignment: Mapping[str, Optional[tuple[DimLike, int]]]) -> SpatialUnrolling:
    """``{"D1": ("K", 16), "D2": ("C", 16)}`` -> ``SpatialUnrolling`` in the module's array-dim order
    (array dims not named idle). Raises ``ValueError`` for unknown array dims or factors above a dim's size."""
    names = [d.name for d in module.spatial]
    unknown = [a for a in assignment if a not in names]
    if unknown:
        raise ValueError(f"spatial: unknown array dim(s) {unknown} of module {module.name!r}; array dims: {names}")
    rows = []
    for dim in module.spatial:
        entry = assignment.get(dim.name)
        if entry is None or entry[1] == 1:
            rows.append((dim.name, None, 1))
            continue
        loop_dim, factor = LoopDim(entry[0]), int(entry[1])
        if not 1 <= factor <= dim.size:
            raise ValueError(f"spatial.{dim.name}: factor {factor} outside 1..{dim.size} (the array dim's size)")
        rows.append((dim.name, loop_dim, factor))
    return SpatialUnrolling(tuple(rows))


def _problem(layer: Layer, module: ExecModule, mapping: ExplicitMapping) -> tuple[Problem, np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``mapping`` and build (problem, loop_dims, loop_factors, cuts) for the cost model."""
    problem = build_problem(layer, module, mapping.spatial.factors, {o: layer.relevant(o) for o in OPERANDS},
                            mapping.spatial.assignment)
    loop_dims = np.array([DIMS.index(LoopDim(d)) for d, _ in mapping.loops], dtype=np.int64)
    loop_factors = np.array([int(f) for _, f in mapping.loops], dtype=np.int64)
    if (loop_factors < 1).any():
        raise ValueError(f"loops: factors must be >= 1, got {[f for _, f in mapping.loops]}")
    for i, dim in enumerate(DIMS):
        product = int(np.prod(loop_factors[loop_dims == i])) if loop_dims.size else 1
        if product != problem.remaining[i]:
            raise ValueError(f"loops: the factors of {dim.value} multiply to {product}, but {layer.name!r} needs "
                             f"{int(problem.remaining[i])} temporal iterations of {dim.value} after unrolling it by "
                             f"{int(problem.spatial[i])}")
    n_slots = len(mapping.loops)
    cuts = []
    for operand in problem.operands:
        chain = module.chain(operand)
        given = tuple(mapping.cuts.get(operand, ()))
        if len(given) != len(chain) - 1:
            names = [module.memories[i].name for i in chain]
            raise ValueError(f"cuts.{operand.value}: {len(chain) - 1} position(s) expected (boundaries of {names}), got {given}")
        if any(not 0 <= p <= n_slots for p in given) or list(given) != sorted(given):
            raise ValueError(f"cuts.{operand.value}: positions must be non-decreasing within 0..{n_slots}, got {given}")
    for cut in problem.cut_points:
        cuts.append(mapping.cuts[cut.operand][cut.boundary])
    return problem, loop_dims, loop_factors, np.array(cuts, dtype=np.int64)


def evaluate_mapping(layer: Layer, module: ExecModule, mapping: ExplicitMapping, objective: str = "latency") -> MappingEvaluation:
    """Latency (cycles), energy (pJ) and traffic (bytes) of ``mapping`` for ``layer`` on ``module``.

    The ``Schedule`` is built like the search's (``candidates`` = 1); ``feasible`` says whether every
    tile fits its memory (an infeasible mapping is still costed). Raises ``ValueError`` when the
    mapping does not describe the layer (wrong loop factors, cut positions, array dims).
    """
    start = time.perf_counter()
    problem, loop_dims, loop_factors, cuts = _problem(layer, module, mapping)
    cost = evaluate(problem, analyze(problem, loop_dims, loop_factors[None, :], cuts[None, :]))
    schedule = _schedule(layer, module, objective, mapping.spatial, problem, loop_dims, loop_factors, cuts,
                         candidates=1, seconds=time.perf_counter() - start)
    overflows = {m.name: f"needs {int(cost.occupancy[0, i])} B of {m.size_bytes} B"
                 for i, m in enumerate(module.memories) if cost.occupancy[0, i] > m.size_bytes}
    return MappingEvaluation(schedule, bool(cost.feasible[0]), overflows)


def mapping_from_schedule(schedule: Schedule, module: ExecModule) -> ExplicitMapping:
    """The ``ExplicitMapping`` a ``Schedule`` (from ``search_module`` / ``map_layer``) describes."""
    if schedule.module != module.name:
        raise ValueError(f"schedule is for module {schedule.module!r}, not {module.name!r}")
    assignment = {name: (entry["dim"], entry["factor"]) if entry["dim"] else None for name, entry in schedule.spatial.items()}
    loops = tuple((LoopDim(lp["dim"]), int(lp["factor"])) for lp in schedule.loops)
    cuts = {Operand(o.value): tuple(lv.position for lv in schedule.levels if lv.operand == o.value)
            for o in OPERANDS if any(lv.operand == o.value for lv in schedule.levels)}
    return ExplicitMapping(make_unrolling(module, assignment), loops, cuts)


# --------------------------------------------------------------------------- ZigZag
def zigzag_mapping_dict(cme: Any) -> dict[str, Any]:
    """JSON-ready description of the mapping in a ZigZag 3.x ``CostModelEvaluation`` (attribute access
    only, so it runs wherever ZigZag does)::

        {"layer": "conv", "spatial": {"D1": {"K": 16}, "D2": {"C": 16}},
         "temporal": {"O": [[["FX", 3], ["FY", 3]], [["OY", 8], ...], []], "W": [...], "I": [...]},
         "memories": {"O": ["rf_2B", "sram_2MB", "dram"], "W": [...], "I": [...]},
         "latency_cycles": 11296.0, "energy_pj": 3909296.9}

    ``temporal``: per layer operand, per memory level (innermost first) the loops allocated there,
    innermost first (``temporal_mapping.mapping_dic_origin``); ``memories``: those levels' names.
    """
    layer = cme.layer
    links = layer.memory_operand_links
    hierarchy = cme.accelerator.memory_hierarchy
    temporal: dict[str, list] = {}
    memories: dict[str, list[str]] = {}
    for operand, levels in cme.temporal_mapping.mapping_dic_origin.items():
        temporal[str(operand)] = [[[str(dim), int(size)] for dim, size in level] for level in levels]
        memories[str(operand)] = [m.name for m in hierarchy.get_memory_levels(links.layer_to_mem_op(operand))]
    spatial = {str(oa_dim): {str(dim): float(factor) for dim, factor in single.items()}
               for oa_dim, single in layer.spatial_mapping.items()}
    return {"layer": layer.name, "spatial": spatial, "temporal": temporal, "memories": memories,
            "latency_cycles": float(cme.latency_total2), "energy_pj": float(cme.energy_total)}


def _loop_dim(name: str, where: str) -> LoopDim:
    if name not in LoopDim.__members__:
        raise ValueError(f"{where}: ZigZag loop dim {name!r} has no counterpart; ours: {', '.join(LoopDim.__members__)}")
    return LoopDim(name)


def mapping_from_zigzag(data: Mapping[str, Any], layer: Layer, module: ExecModule) -> ExplicitMapping:
    """Translate ``zigzag_mapping_dict(cme)`` into an ``ExplicitMapping`` on ``module`` (the module
    ``archs.from_zigzag`` built from the same accelerator file: memory names are matched per operand).

    Raises ``ValueError`` naming what does not translate (mixed unrolling on one array dim, loop
    dims we do not have, memory levels that differ from the module's).
    """
    assignment: dict[str, Optional[tuple[DimLike, int]]] = {}
    for oa_dim, unrolled in data["spatial"].items():
        used = {d: f for d, f in unrolled.items() if round(float(f)) > 1}
        if len(used) > 1:
            raise ValueError(f"spatial.{oa_dim}: mixed unrolling {used} cannot be expressed (one loop dim per array dim)")
        for dim, factor in used.items():
            assignment[oa_dim] = (_loop_dim(str(dim), f"spatial.{oa_dim}"), int(round(float(factor))))
    nests = {}
    cuts: dict[Operand, tuple[int, ...]] = {}
    for operand_name, levels in data["temporal"].items():
        operand = Operand(operand_name)
        if not layer.has_operand(operand):
            continue
        chain = [module.memories[i].name for i in module.chain(operand)]
        theirs = list(data.get("memories", {}).get(operand_name, chain))
        if theirs != chain:
            raise ValueError(f"memories.{operand_name}: ZigZag's levels {theirs} differ from module {module.name!r}'s {chain}")
        if len(levels) != len(chain):
            raise ValueError(f"temporal.{operand_name}: {len(levels)} levels for the {len(chain)} memories {chain}")
        kept = [[(_loop_dim(str(d), f"temporal.{operand_name}"), int(s)) for d, s in level if int(s) != 1] for level in levels]
        nests[operand_name] = tuple(loop for level in kept for loop in level)
        cuts[operand] = tuple(int(x) for x in np.cumsum([len(level) for level in kept[:-1]]))
    orders = set(nests.values())
    if len(orders) != 1:
        raise ValueError(f"temporal: the operands' loop nests differ: {nests}")
    loops = orders.pop()
    return ExplicitMapping(make_unrolling(module, assignment), loops, cuts)


def mapping_from_zigzag_cme(cme: Any, layer: Layer, module: ExecModule) -> ExplicitMapping:
    """``mapping_from_zigzag(zigzag_mapping_dict(cme), layer, module)`` for a live ZigZag result."""
    return mapping_from_zigzag(zigzag_mapping_dict(cme), layer, module)


__all__ = [
    "ExplicitMapping", "MappingEvaluation", "make_unrolling", "evaluate_mapping", "mapping_from_schedule",
    "zigzag_mapping_dict", "mapping_from_zigzag", "mapping_from_zigzag_cme",
]
