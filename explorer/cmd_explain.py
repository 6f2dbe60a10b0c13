"""``match-mapper explain LAYER_SPEC --arch ARCH [--top N]``: why the mapper's choice for one layer
wins. LAYER_SPEC is ``MODEL:layer_name`` or inline (``conv2d:in=32x32x16,out=16,k=3,s=1``, see
``explorer.layerspec``).

The entries are, for every module that can run the layer, the best mapping of each spatial
dataflow: each assignment of one loop dim per PE-array dim (``rows:OX cols:K``...; each array dim
may also idle or unroll a smaller factor), searched exactly by ``mapper.search_module`` on the module
with its array dims restricted to that assignment. Distinct mappings are ranked by the objective;
the first is the mapper's optimum for the layer. The N shown are the top N of these per-dataflow
optima (not the N best mappings overall). Each comes with its cycle breakdown: compute, per-memory
transfer cycles and bytes, per-call overhead, transfers hidden under compute and stalls.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from typing import Any, Optional

from tabulate import tabulate

import archs
import mapper
from explorer.breakdown import cycle_breakdown, loop_text, spatial_text, tile_text
from explorer.inputs import InputError, clip, load_arch, load_model
from explorer.layerspec import is_inline, parse_layer_spec
from mapper.acceptance import padding_split, rejection_reason
from mapper.search import host_padding_cost


@dataclasses.dataclass(frozen=True)
class Candidate:
    """The best mapping of one spatial dataflow on one module."""

    module: str
    dataflow: str  # "rows:OX cols:K" (the loop dims the array dims were restricted to)
    schedule: mapper.Schedule
    host_pads: bool  # the layer runs unpadded after the host pads its input (cost included)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="the best mapping of each spatial dataflow of one layer, with cost breakdowns",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layer", help="MODEL:layer_name, or inline, e.g. conv2d:in=32x32x16,out=16,k=3,s=1")
    p.add_argument("--arch", required=True, help="ARCH: shipped name, our hardware YAML, or a ZigZag accelerator YAML")
    p.add_argument("--zigzag-mapping", help="ZigZag mapping YAML for a ZigZag accelerator ARCH")
    p.add_argument("--top", type=int, default=5, metavar="N", help="entries to show (default 5)")
    p.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency")
    p.add_argument("--modules", type=lambda s: [m for m in s.split(",") if m], help="comma-separated modules to consider")
    p.set_defaults(run=run)


def resolve_layer(spec: str) -> mapper.Layer:
    """The layer of ``MODEL:layer_name`` or of an inline spec."""
    if is_inline(spec):
        return parse_layer_spec(spec, name=spec.partition(":")[0])
    model, sep, name = spec.rpartition(":")
    if not sep or not model or not name:
        raise InputError(f"layer spec {clip(spec)}: expected MODEL:layer_name or an inline spec such as "
                         "conv2d:in=32x32x16,out=16,k=3,s=1")
    graph = load_model(model)
    if name not in graph:
        names = list(mapper.ordered_layers(graph))
        raise InputError(f"{model}: no layer {clip(name)}; layers: {clip(', '.join(names), 300)}")
    return graph.nodes[name]["layer"]


def objective_value(schedule: mapper.Schedule, objective: str) -> float:
    """Cycles, pJ or cycles x pJ."""
    if objective == "latency":
        return schedule.latency_cycles
    if objective == "energy":
        return schedule.energy_pj
    return schedule.latency_cycles * schedule.energy_pj


def _secondary(schedule: mapper.Schedule, objective: str) -> float:
    return schedule.energy_pj if objective == "latency" else schedule.latency_cycles


def dataflows(layer: mapper.Layer, module: archs.ExecModule) -> list[tuple[Optional[archs.LoopDim], ...]]:
    """Every choice of one loop dim per array dim among those the array dim may unroll and the layer
    has (extent > 1); ``None`` (the array dim idles) where it has none of them; ``[()]`` without an array.

    A loop dim of extent 1 is left out: its family would be a subset of a sibling's (every family
    includes the idle option), with the same or a worse optimum."""
    options = [[d for d in dim.unroll if layer.sizes[d] > 1] or [None] for dim in module.spatial]
    return list(itertools.product(*options))


@dataclasses.dataclass(frozen=True)
class _Family:
    module: archs.ExecModule
    restricted: archs.ExecModule
    dataflow: str
    target: mapper.Layer  # the layer, or its unpadded form when the host pads the input
    host_pads: bool
    floor: float  # latency lower bound (cycles) of every mapping of the family; 0 when unknown


def _families(layer: mapper.Layer, module: archs.ExecModule) -> tuple[list[_Family], Optional[str]]:
    """The dataflows of ``module`` for ``layer`` with their latency floors, or why it cannot run the layer."""
    reason = rejection_reason(layer, module)
    target, pads = layer, False
    if reason is not None:
        unpadded = None if module.is_host else padding_split(layer, module)
        if unpadded is None:
            return [], reason
        target, pads = unpadded, True
    out = []
    for flow in dataflows(target, module):
        restricted = dataclasses.replace(
            module, spatial=tuple(dataclasses.replace(d, unroll=(dim or d.unroll[0],)) for d, dim in zip(module.spatial, flow)))
        floor = 0.0
        if module.compute.kernel_hook is None:  # PE-costed: compute >= MACs / (peak x utilisation), latency >= compute
            best = max((u.utilization(target, module.array_size) for u in mapper.spatial_unrollings(target, restricted)), default=0.0)
            floor = target.macs / (module.compute.macs_per_cycle * best) if best else 0.0
        text = " ".join(f"{d.name}:{dim.value if dim else 'idle'}" for d, dim in zip(module.spatial, flow)) or "(no array)"
        out.append(_Family(module, restricted, text, target, pads, floor))
    return out, None


def explain(layer: mapper.Layer, soc: archs.SoC, objective: str = "latency", modules: Optional[list[str]] = None,
            top: Optional[int] = None) -> tuple[list[Candidate], dict[str, str], list[str]]:
    """The per-dataflow optima over the modules, ranked by (objective, secondary metric); the modules
    that cannot run the layer with their reasons; the dataflows not searched.

    With ``top`` and the latency objective, dataflows are searched in order of their latency floor
    (MACs / (peak x best utilisation) on PE-costed modules) and those whose floor exceeds the
    ``top``-th best latency found are skipped: they cannot enter the top ``top``.
    """
    unknown = [m for m in modules or () if m not in soc.modules]
    if unknown:
        raise InputError(f"--modules: unknown module(s) {clip(unknown)}; modules are: {', '.join(soc.modules)}")
    families: list[_Family] = []
    rejected: dict[str, str] = {}
    for module in soc.modules.values():
        if modules and module.name not in modules:
            continue
        found, reason = _families(layer, module)
        families += found
        if reason:
            rejected[module.name] = reason
    families.sort(key=lambda f: f.floor)  # stable: SoC order among equal floors
    found_by_key: dict[tuple, Candidate] = {}
    skipped: list[str] = []
    failed: dict[str, str] = {}

    def ranked() -> list[Candidate]:
        return sorted(found_by_key.values(), key=lambda c: (objective_value(c.schedule, objective), _secondary(c.schedule, objective)))

    for family in families:
        best = ranked()
        if top and objective == "latency" and len(best) >= top and family.floor > best[top - 1].schedule.latency_cycles:
            skipped.append(f"{family.module.name} [{family.dataflow}]")
            continue
        result = mapper.search_module(family.target, family.restricted, objective)
        if result.schedule is None:
            failed.setdefault(family.module.name, result.reason or "")
            continue
        s = result.schedule
        if family.host_pads:
            cycles, energy = host_padding_cost(layer, soc)
            s = dataclasses.replace(s, latency_cycles=s.latency_cycles + cycles, energy_pj=s.energy_pj + energy,
                                    host_padding=tuple(layer.padding), host_padding_cycles=cycles, host_padding_energy_pj=energy)
        key = (family.module.name, spatial_text(s), loop_text(s))
        if key not in found_by_key:
            found_by_key[key] = Candidate(family.module.name, family.dataflow, s, family.host_pads)
    candidates = ranked()
    for module, reason in failed.items():
        if not any(c.module == module for c in candidates) and not any(s.startswith(module + " ") for s in skipped):
            rejected[module] = reason
    return candidates, rejected, skipped


def _describe(rank: int, c: Candidate, soc: archs.SoC, objective: str, winner: Candidate) -> str:
    s = c.schedule
    split = cycle_breakdown(s, soc.modules[c.module])
    ratio = objective_value(s, objective) / (objective_value(winner.schedule, objective) or 1.0)
    head = (f"#{rank} {c.module} [{c.dataflow}] spatial {spatial_text(s)} (utilisation {s.utilization:.2f}): "
            f"{s.latency_cycles:,.0f} cycles, {s.energy_pj:,.0f} pJ" + ("" if rank == 1 else f", {ratio:.2f}x the winner's {objective}")
            + (" [host pads the input first]" if c.host_pads else ""))
    lines = [head,
             f"   loops {loop_text(s)}; kernel tile {tile_text(s)}",
             f"   cycles: compute {split.compute:,.0f} + overhead {split.overhead:,.0f} + serial transfers "
             f"{split.serial_transfers:,.0f} + stalls {split.stall:,.0f} + host padding {split.host_padding:,.0f} = "
             f"{split.latency:,.0f}; double-buffered transfers {split.double_buffered_transfers:,.0f} of which hidden "
             f"{split.hidden:,.0f}; bound: {split.bound}"]
    levels = [{"memory": lv.memory, "from": lv.outer_memory, "operands": ",".join(lv.operands), "bytes": f"{lv.bytes_moved:,.0f}",
               "transfers": lv.transfers, "cycles": f"{lv.cycles:,.0f}", "overlapped": "yes" if lv.double_buffered else "no"}
              for lv in split.levels]
    if levels:
        lines += ["   " + line for line in tabulate(levels, headers="keys", disable_numparse=True).splitlines()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise InputError(f"--top: must be >= 1, got {args.top}")
    soc = load_arch(args.arch, args.zigzag_mapping)
    layer = resolve_layer(args.layer)
    candidates, rejected, skipped = explain(layer, soc, args.objective, args.modules, args.top)
    sizes = " ".join(f"{d.value}={n}" for d, n in layer.sizes.items() if n > 1)
    print(f"layer {layer.name} ({layer.kind}: {sizes}, stride {layer.stride}, padding {layer.padding}, {layer.macs:,} MACs) "
          f"on {soc.name}, objective {args.objective}")
    print(f"{len(candidates)} distinct per-dataflow optima found over {len(soc.modules) - len(rejected)} module(s); "
          f"the top {min(args.top, len(candidates))} (#1 is the mapper's optimum):")
    for module, reason in rejected.items():
        print(f"  {module} cannot run it: {reason}")
    if skipped:
        print(f"  not searched ({len(skipped)}, their latency floor exceeds the #{args.top} entry's latency): "
              f"{clip(', '.join(skipped), 300)}")
    if not candidates:
        raise InputError(f"{soc.source or soc.name}: no module can run layer {layer.name!r}")
    for rank, c in enumerate(candidates[: args.top], start=1):
        print()
        print(_describe(rank, c, soc, args.objective, candidates[0]))
    return 0
