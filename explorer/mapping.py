"""Map a network on a SoC through ``mapper.map_network`` with the options the mapper supports, and
describe the result one row per layer (the ``map`` and ``compare`` commands, the sweep's points)."""

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence

import networkx as nx

import archs
import mapper
from explorer.breakdown import cycle_breakdown, inner_memories, loop_text, optimality_text, spatial_text, tile_text
from explorer.inputs import InputError, clip


def supported_options() -> set[str]:
    """Keyword arguments of ``mapper.map_network`` (``time_budget_s`` and ``strict`` when the mapper has them)."""
    return set(inspect.signature(mapper.map_network).parameters)


def check_modules(soc: archs.SoC, modules: Optional[Sequence[str]]) -> None:
    """``InputError`` naming the module names that ``soc`` does not have."""
    unknown = [m for m in modules or () if m not in soc.modules]
    if unknown:
        raise InputError(f"--modules: unknown module(s) {clip(unknown)} for SoC {soc.name!r}; modules are: {', '.join(soc.modules)}")


def map_graph(graph: nx.DiGraph, soc: archs.SoC, objective: str = "latency", policy: str = "best",
              modules: Optional[Sequence[str]] = None, time_budget_s: Optional[float] = None) -> mapper.NetworkSchedule:
    """``mapper.map_network`` with ``time_budget_s`` passed only if the mapper accepts it (``ValueError``
    otherwise: no budget is faked) and ``strict=False`` when supported, so that layers no module can
    take are listed in ``NetworkSchedule.failures`` instead of aborting the run."""
    check_modules(soc, modules)
    options = supported_options()
    kwargs: dict[str, Any] = {}
    if time_budget_s is not None:
        if "time_budget_s" not in options:
            raise InputError("--time-budget: this version of the mapper has no time budget (map_network(time_budget_s=...))")
        kwargs["time_budget_s"] = time_budget_s
    if "strict" in options:
        kwargs["strict"] = False
    try:
        return mapper.map_network(graph, soc, objective=objective, modules=modules, policy=policy, **kwargs)
    except mapper.MappingError as exc:
        raise InputError(f"{soc.source or soc.name}: {clip(str(exc), 400)}") from exc


def failures(result: mapper.NetworkSchedule) -> dict[str, str]:
    """Layers no module could take (``NetworkSchedule.failures`` when the mapper reports them)."""
    return dict(getattr(result, "failures", None) or {})


def layer_rows(result: mapper.NetworkSchedule, soc: archs.SoC) -> list[dict[str, Any]]:
    """One row per layer: module, mapping (text), cycles, energy (pJ), utilisation, limiting bound,
    bytes used per memory, optimality."""
    rows = []
    for name, s in result.schedules.items():
        module = soc.modules[s.module]
        split = cycle_breakdown(s, module)
        rows.append({
            "layer": name,
            "kind": s.kind,
            "module": s.module,
            "spatial": spatial_text(s),
            "loops (innermost first) [operands>memory]": loop_text(s),
            "kernel tile x calls": tile_text(s),
            "cycles": s.latency_cycles,
            "energy_pj": s.energy_pj,
            "utilization": s.utilization,
            "bound": split.bound,
            "bytes used": " ".join(f"{m}={s.occupancy[m]}" for m in inner_memories(module)) or "-",
            "optimality": optimality_text(s),
            "host_padding_cycles": s.host_padding_cycles,
        })
    return rows


def module_totals(result: mapper.NetworkSchedule, soc: archs.SoC) -> list[dict[str, Any]]:
    """Per module: layers, cycles, share of the latency, energy (pJ), MACs; then the total row."""
    total = result.total_latency_cycles or 1.0
    rows = [{"module": m, "layers": int(r["layers"]), "cycles": r["latency_cycles"], "share": r["latency_cycles"] / total,
             "energy_pj": r["energy_pj"], "macs": int(r["macs"])} for m, r in result.per_module().items()]
    rows.append({"module": "total", "layers": len(result.schedules), "cycles": result.total_latency_cycles,
                 "share": 1.0 if result.schedules else 0.0, "energy_pj": result.total_energy_pj, "macs": result.total_macs})
    return rows


def mac_weighted_utilization(result: mapper.NetworkSchedule) -> float:
    """Spatial utilisation of the PE arrays weighted by each layer's MACs (0 for an empty result)."""
    macs = result.total_macs
    return sum(s.utilization * s.macs for s in result.schedules.values()) / macs if macs else 0.0


def network_optimality(result: mapper.NetworkSchedule) -> tuple[Optional[bool], Optional[float]]:
    """(all layers proven optimal, largest relative gap) from ``Schedule.optimal`` / ``optimality_gap``;
    ``(None, None)`` when the mapper does not report them. The largest layer gap bounds the network's:
    each layer is within (1 + gap) of its optimum, so is their sum."""
    flags = [getattr(s, "optimal", None) for s in result.schedules.values()]
    if not flags or any(f is None for f in flags):
        return None, None
    gaps = [float(getattr(s, "optimality_gap", 0.0) or 0.0) for s in result.schedules.values()]
    return all(flags), max(gaps)
