"""Layer graphs: a ``networkx.DiGraph`` whose nodes carry a ``Layer`` (attribute ``layer``) and
whose edges carry the tensor name (attribute ``tensor``); JSON read/write; network mapping.

JSON format (``"format": "layer-graph"``, ``"version": 1``)::

    {"format": "layer-graph", "version": 1, "name": "resnet8",
     "layers": [{"name": "conv1", "kind": "conv2d", "sizes": {"K": 16, "C": 3, "OY": 32, ...},
                 "stride": [1, 1], "dilation": [1, 1], "padding": [1, 1, 1, 1],
                 "precision": {"input": 8, "weight": 8, "output": 8, "accumulator": 32}}, ...],
     "edges": [{"src": "conv1", "dst": "conv2", "tensor": "t1"}, ...]}
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import networkx as nx
from tqdm import tqdm

from archs.model import SoC
from mapper.schedule import NetworkSchedule, Schedule
from mapper.search import DEFAULT_TIME_BUDGET_S, MappingError, map_layer, map_layer_accelerator_first
from mapper.workload import Layer, LayerError

log = logging.getLogger(__name__)

GRAPH_FORMAT = "layer-graph"
GRAPH_VERSION = 1
POLICIES = ("best", "accelerator_first")


class GraphError(ValueError):
    """A malformed layer-graph file or graph (the message names the file, layer or edge)."""


def layer_graph(layers: Iterable[Layer], edges: Optional[Iterable[tuple]] = None, name: str = "") -> nx.DiGraph:
    """Build a graph from layers and (src, dst[, tensor]) edges; ``edges=None`` chains the layers
    in the given order."""
    graph = nx.DiGraph(name=name)
    layers = list(layers)
    for layer in layers:
        if layer.name in graph:
            raise GraphError(f"duplicate layer name {layer.name!r}")
        graph.add_node(layer.name, layer=layer)
    edges = list(edges) if edges is not None else [(a.name, b.name) for a, b in zip(layers, layers[1:])]
    for src, dst, *tensor in edges:
        for end in (src, dst):
            if end not in graph:
                raise GraphError(f"edge {src!r} -> {dst!r} names unknown layer {end!r}")
        graph.add_edge(src, dst, tensor=tensor[0] if tensor else f"{src}:out")
    if not nx.is_directed_acyclic_graph(graph):
        raise GraphError(f"graph {name!r} has a cycle")
    return graph


def graph_to_dict(graph: nx.DiGraph) -> dict[str, Any]:
    return {
        "format": GRAPH_FORMAT,
        "version": GRAPH_VERSION,
        "name": graph.graph.get("name", ""),
        "layers": [graph.nodes[n]["layer"].to_dict() for n in ordered_layers(graph)],
        "edges": [{"src": a, "dst": b, "tensor": d.get("tensor", "")} for a, b, d in sorted(graph.edges(data=True))],
    }


def graph_from_dict(data: Any, source: str = "<dict>") -> nx.DiGraph:
    if not isinstance(data, dict) or data.get("format") != GRAPH_FORMAT:
        raise GraphError(f"{source}: not a layer graph (expected \"format\": \"{GRAPH_FORMAT}\")")
    if data.get("version") != GRAPH_VERSION:
        raise GraphError(f"{source}: version {data.get('version')!r} unsupported; supported: {GRAPH_VERSION}")
    try:
        layers = [Layer.from_dict(d) for d in data.get("layers", [])]
        edges = [(e["src"], e["dst"], e.get("tensor", "")) for e in data.get("edges", [])]
    except (LayerError, KeyError, TypeError) as exc:
        raise GraphError(f"{source}: {exc}") from exc
    try:
        graph = layer_graph(layers, edges, name=data.get("name", ""))
    except GraphError as exc:
        raise GraphError(f"{source}: {exc}") from exc
    return graph


def save_graph(graph: nx.DiGraph, path: Union[str, Path]) -> None:
    Path(path).write_text(json.dumps(graph_to_dict(graph), indent=1))


def load_graph(path: Union[str, Path]) -> nx.DiGraph:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise GraphError(f"{path}: not JSON ({exc})") from exc
    return graph_from_dict(data, str(path))


def ordered_layers(graph: nx.DiGraph) -> list[str]:
    """Layer names in a deterministic topological order (ties by name)."""
    return list(nx.lexicographical_topological_sort(graph))


def _shape_key(layer: Layer) -> tuple:
    return (layer.kind, tuple(layer.sizes.values()), layer.stride, layer.dilation, layer.padding, layer.precision)


def map_network(
    graph: nx.DiGraph, soc: SoC, objective: str = "latency", modules: Optional[Sequence[str]] = None,
    policy: str = "best", time_budget_s: Optional[float] = DEFAULT_TIME_BUDGET_S, strict: bool = False,
    progress: Optional[bool] = None,
) -> NetworkSchedule:
    """Map every layer of ``graph`` (``policy`` "best": cheapest module per layer; "accelerator_first":
    every layer an accelerator accepts goes to it). Layers of identical shape are searched once.

    ``time_budget_s`` bounds each layer's search (see ``map_layer``; ``None``: to proof). A layer
    no module can run is recorded in ``NetworkSchedule.failures`` (layer name -> reason, logged)
    and the others are still mapped; ``strict=True`` raises ``MappingError`` instead. ``progress``
    shows a progress bar (default: when standard error is a terminal; otherwise one log line per
    layer at INFO level).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    mapper = map_layer if policy == "best" else map_layer_accelerator_first
    start = time.perf_counter()
    cache: dict[tuple, Union[Schedule, MappingError]] = {}
    schedules: dict[str, Schedule] = {}
    failures: dict[str, str] = {}
    names = ordered_layers(graph)
    show = sys.stderr.isatty() if progress is None else progress
    for name in tqdm(names, desc=f"mapping on {soc.name}", unit="layer", disable=not show, leave=False):
        layer = graph.nodes[name].get("layer")
        if not isinstance(layer, Layer):
            raise GraphError(f"node {name!r} has no 'layer' attribute holding a Layer")
        key = _shape_key(layer)
        if key not in cache:
            try:
                cache[key] = mapper(layer, soc, objective, modules, time_budget_s=time_budget_s)
            except MappingError as exc:
                cache[key] = exc
        cached = cache[key]
        if isinstance(cached, MappingError):
            reason = str(cached) if cached.layer == name else f"same shape as {cached.layer!r}: {cached}"
            if strict:
                raise MappingError(reason, layer=name) from cached
            failures[name] = reason
            log.warning("layer %r left unmapped: %s", name, reason)
            continue
        schedules[name] = dataclasses.replace(cached, layer=name, rejected=dict(cached.rejected))
        log.info("%s: %s, %.0f cycles%s", name, cached.module, cached.latency_cycles,
                 "" if cached.optimal else f" (gap {cached.optimality_gap:.2%})")
    return NetworkSchedule(soc.name, objective, policy, schedules, time.perf_counter() - start, host=soc.host,
                           failures=failures)

