"""The three deployment strategies of ``benchmarks.mlperf_tiny``, built from one set of per-module
searches: every (layer shape, module, objective) is searched once per run with the public
``mapper.search_module``, whichever strategies need it.

The selection rules are those of ``mapper.map_network`` (tests check both give the same schedules):

- ``host_only``: the host module's schedule (``map_network(graph, soc, modules=[soc.host])``);
- ``accelerator_first``: the first accelerator in SoC order with a schedule, else the host
  (``policy="accelerator_first"``);
- ``best``: the lowest (objective, secondary metric) over every module, with the host last on ties,
  and for an accelerator that rejects a layer only for its padding, the unpadded layer on it after
  the host pads the input (``mapper.acceptance.padding_split``, cost
  ``mapper.search.host_padding_cost``; ``policy="best"``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Optional

import networkx as nx

import mapper
from archs.model import ExecModule, SoC
from mapper.acceptance import padding_split
from mapper.schedule import NetworkSchedule, Schedule
from mapper.search import MappingError, ModuleResult, host_padding_cost


def shape_key(layer: mapper.Layer) -> tuple:
    """What a search depends on besides the module: every field of the layer but its name."""
    return (layer.kind, tuple(sorted((d.value, n) for d, n in layer.sizes.items())), tuple(layer.stride),
            tuple(layer.dilation), tuple(layer.padding), layer.precision)


@dataclass
class SearchCache:
    """``mapper.search_module`` results of one run, keyed by (SoC, module, layer shape, objective).

    ``searches`` counts the searches run, ``seconds`` their wall time; ``seconds_of`` gives each
    cached search's wall time (what a strategy that needs it would cost alone)."""

    results: dict[tuple, tuple[ModuleResult, float]] = field(default_factory=dict)
    searches: int = 0
    seconds: float = 0.0

    def search(self, soc: SoC, module: ExecModule, layer: mapper.Layer, objective: str) -> tuple[tuple, ModuleResult]:
        """(cache key, result) of ``layer`` on ``module`` of ``soc``; searched on the first request only."""
        key = (soc.name, id(soc), module.name, shape_key(layer), objective)
        if key not in self.results:
            start = time.perf_counter()
            result = mapper.search_module(layer, module, objective)
            seconds = time.perf_counter() - start
            self.results[key] = (result, seconds)
            self.searches += 1
            self.seconds += seconds
        return key, self.results[key][0]

    def seconds_of(self, keys: set[tuple]) -> float:
        """Wall time (s) of the cached searches ``keys``."""
        return sum(self.results[k][1] for k in keys)


def _key(objective: str, latency: float, energy: float) -> tuple[float, float]:
    """(primary, secondary) of ``objective`` for a schedule (as the search ranks them)."""
    if objective == "latency":
        return latency, energy
    if objective == "energy":
        return energy, latency
    return latency * energy, latency


def _rejections(chosen: str, results: list[ModuleResult]) -> dict[str, str]:
    """Why each other module lost (or could not run the layer)."""
    return {r.module.name: (r.reason or "") if r.schedule is None else
            f"slower: {r.schedule.latency_cycles:.0f} cycles, {r.schedule.energy_pj:.0f} pJ"
            for r in results if r.module.name != chosen}


def _cannot_map(layer: mapper.Layer, soc: SoC, results: list[ModuleResult]) -> MappingError:
    reasons = "; ".join(f"{r.module.name}: {r.reason}" for r in results)
    return MappingError(f"layer {layer.name!r} ({layer.kind}) cannot be mapped on {soc.name}: {reasons}")


def _order(soc: SoC) -> list[ExecModule]:
    """Accelerators in SoC order, then the host."""
    return [m for m in soc.modules.values() if not m.is_host] + [m for m in soc.modules.values() if m.is_host]


def _layer_schedules(layer: mapper.Layer, soc: SoC, cache: SearchCache, objective: str,
                     used: dict[str, set]) -> dict[str, Schedule]:
    """The three strategies' schedules of one layer; ``used[strategy]`` collects the cache keys each consults."""
    searched = [cache.search(soc, m, layer, objective) for m in _order(soc)]
    results = [r for _, r in searched]
    out: dict[str, Schedule] = {}

    host_key, host = searched[-1]
    if host.schedule is None:
        raise _cannot_map(layer, soc, [host])
    used["host_only"].add(host_key)
    out["host_only"] = dataclasses.replace(host.schedule, layer=layer.name, rejected={})

    for i, (key, result) in enumerate(searched):
        used["accelerator_first"].add(key)
        if result.schedule is not None:
            out["accelerator_first"] = dataclasses.replace(result.schedule, layer=layer.name,
                                                           rejected=_rejections(result.module.name, results[:i + 1]))
            break
    else:
        raise _cannot_map(layer, soc, results)

    used["best"].update(key for key, _ in searched)
    found: list[tuple[tuple, Schedule]] = [(r.key, r.schedule) for r in results if r.schedule is not None]
    for result in results:
        unpadded = None if result.schedule is not None else padding_split(layer, result.module)
        if unpadded is None:
            continue
        key, split = cache.search(soc, result.module, unpadded, objective)
        used["best"].add(key)
        if split.schedule is None:
            continue
        cycles, energy = host_padding_cost(layer, soc)
        s = split.schedule
        padded = dataclasses.replace(s, latency_cycles=s.latency_cycles + cycles, energy_pj=s.energy_pj + energy,
                                     host_padding=tuple(layer.padding), host_padding_cycles=cycles,
                                     host_padding_energy_pj=energy)
        found.append((_key(objective, padded.latency_cycles, padded.energy_pj), padded))
    _, best = min(found, key=lambda item: item[0])  # min keeps the first of equal keys
    out["best"] = dataclasses.replace(best, layer=layer.name, rejected=_rejections(best.module, results))
    return out


def map_strategies(graph: nx.DiGraph, soc: SoC, cache: Optional[SearchCache] = None,
                   objective: str = "latency") -> dict[str, NetworkSchedule]:
    """``host_only``, ``accelerator_first`` and ``best`` mappings of ``graph`` on ``soc``, each
    (layer shape, module) searched once through ``cache`` (a fresh one if None). Each strategy's
    ``search_seconds`` is the wall time of the searches it consults (shared searches count for each)."""
    cache = cache if cache is not None else SearchCache()
    used: dict[str, set] = {s: set() for s in ("host_only", "accelerator_first", "best")}
    per_strategy: dict[str, dict[str, Schedule]] = {s: {} for s in used}
    for name in mapper.ordered_layers(graph):
        layer = graph.nodes[name].get("layer")
        if not isinstance(layer, mapper.Layer):
            raise mapper.GraphError(f"node {name!r} has no 'layer' attribute holding a Layer")
        for strategy, schedule in _layer_schedules(layer, soc, cache, objective, used).items():
            per_strategy[strategy][name] = schedule
    policies = {"host_only": "best", "accelerator_first": "accelerator_first", "best": "best"}  # as map_network records them
    return {s: NetworkSchedule(soc.name, objective, policies[s], per_strategy[s], cache.seconds_of(used[s]), host=soc.host)
            for s in per_strategy}
