"""``match-mapper explain LAYER_SPEC --arch ARCH [--top N]``: why the mapper's choice for one layer
wins. LAYER_SPEC is ``MODEL:layer_name`` or inline (``conv2d:in=32x32x16,out=16,k=3,s=1``, see
``explorer.layerspec``).

The entries are the N best mappings of the layer overall, across modules, spatial unrollings and
temporal mappings (``mapper.top_n.best_mappings``: exact, the N-th best prunes the search), in
order of the objective, ties broken by the secondary metric (energy for latency, latency
otherwise). #1 is the mapper's optimum. Each comes with its cycle breakdown: compute, per-memory
transfer cycles and bytes, per-call overhead, transfers hidden under compute and stalls. With
``--time-budget`` the search stops when it runs out and the list is the best found (said so).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Optional

from tabulate import tabulate

import archs
import mapper
from explorer.breakdown import cycle_breakdown, loop_text, spatial_text, tile_text
from explorer.inputs import InputError, clip, load_arch, load_model
from explorer.layerspec import is_inline, parse_layer_spec
from mapper.top_n import best_mappings


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One of the N best mappings of the layer."""

    module: str
    schedule: mapper.Schedule
    host_pads: bool  # the layer runs unpadded after the host pads its input (cost included)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="the N best mappings of one layer overall, with cost breakdowns",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layer", help="MODEL:layer_name, or inline, e.g. conv2d:in=32x32x16,out=16,k=3,s=1")
    p.add_argument("--arch", required=True, help="ARCH: shipped name, our hardware YAML, or a ZigZag accelerator YAML")
    p.add_argument("--zigzag-mapping", help="ZigZag mapping YAML for a ZigZag accelerator ARCH")
    p.add_argument("--top", type=int, default=5, metavar="N", help="mappings to show (default 5)")
    p.add_argument("--time-budget", type=float, metavar="S", help="search time budget in seconds (default: search to proof)")
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


def explain(layer: mapper.Layer, soc: archs.SoC, objective: str = "latency", modules: Optional[list[str]] = None,
            top: int = 5, time_budget_s: Optional[float] = None) -> tuple[list[Candidate], dict[str, str]]:
    """The ``top`` best mappings of ``layer`` over the SoC's modules (or those in ``modules``),
    best first (``mapper.top_n.best_mappings``), and the modules that cannot run it with their
    reasons."""
    unknown = [m for m in modules or () if m not in soc.modules]
    if unknown:
        raise InputError(f"--modules: unknown module(s) {clip(unknown)}; modules are: {', '.join(soc.modules)}")
    schedules, rejected = best_mappings(layer, soc, objective, top, time_budget_s, modules or None)
    return [Candidate(s.module, s, s.host_padding_cycles > 0 or s.host_padding_energy_pj > 0) for s in schedules], rejected


def _describe(rank: int, c: Candidate, soc: archs.SoC, objective: str, winner: Candidate) -> str:
    s = c.schedule
    split = cycle_breakdown(s, soc.modules[c.module])
    ratio = objective_value(s, objective) / (objective_value(winner.schedule, objective) or 1.0)
    head = (f"#{rank} {c.module} spatial {spatial_text(s)} (utilisation {s.utilization:.2f}): "
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
    if args.time_budget is not None and not args.time_budget > 0:
        raise InputError(f"--time-budget: must be > 0 seconds, got {args.time_budget}")
    soc = load_arch(args.arch, args.zigzag_mapping)
    layer = resolve_layer(args.layer)
    candidates, rejected = explain(layer, soc, args.objective, args.modules, args.top, args.time_budget)
    sizes = " ".join(f"{d.value}={n}" for d, n in layer.sizes.items() if n > 1)
    print(f"layer {layer.name} ({layer.kind}: {sizes}, stride {layer.stride}, padding {layer.padding}, {layer.macs:,} MACs) "
          f"on {soc.name}, objective {args.objective}")
    proven = all(c.schedule.optimal for c in candidates)
    print(f"the {len(candidates)} best mappings overall (modules, spatial unrollings, temporal mappings), "
          + ("proven" if proven else "best found within the time budget, not proven") + "; #1 is the mapper's optimum:")
    for module, reason in rejected.items():
        print(f"  {module} cannot run it: {reason}")
    if not candidates:
        raise InputError(f"{soc.source or soc.name}: no module can run layer {layer.name!r}")
    for rank, c in enumerate(candidates, start=1):
        print()
        print(_describe(rank, c, soc, args.objective, candidates[0]))
    return 0
