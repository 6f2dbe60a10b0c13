"""``partition_for(soc)``: a Relax pass that offloads the layers the SoC's accelerators should run.

The pass (usable in any Relax pipeline, before ``relax.transform.RunCodegen()``):

1. recognises the layers of ``main`` (``tvm_bridge.relax_graph.layer_graph``: names ``<kind>_<index>``);
2. maps each layer with the mapper (``policy="best"``: ``mapper.map_layer``, the cheapest module
   per layer as MATCH does; ``"accelerator_first"``: ``mapper.map_layer_accelerator_first``, DORY /
   HTVM), layers of equal shape once;
3. runs ``FuseOpsByPattern(annotate_codegen=True)`` with the pattern table generated from the SoC
   (``patterns.soc_patterns``), admitting a match only if its layer's schedule is on a non-host
   module: layers whose best module is the host stay in TVM's own (LLVM) host code;
4. attaches to each offloaded function ``match.layer`` (the layer name), ``match.schedule`` (the
   ``Schedule`` as JSON), ``match.semantics`` (``quant.SEMANTICS``: whose rounding) and ``match.soc``
   (the SoC's whole description as JSON, from which ``tvm_bridge.relax_codegen`` rebuilds it; see
   ``tvm_bridge.offload_attrs``);
5. with ``exact_host=True`` (default) rewrites the recognised layers left on the host into exact
   integer Relax (``tvm_bridge.host_int``): still TVM's host code, but with TFLite's (or, for ONNX
   models, onnxruntime's) integer semantics instead of TVM's float QDQ lowering.

The module gets the attribute ``match_schedules``: JSON ``{layer: {"offloaded": bool, "schedule": {...}}}``
for every recognised layer (``schedules_of(mod)`` parses it back).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Optional, Sequence

import tvm
from tvm import relax

from archs.model import SoC
from mapper.graph import POLICIES
from mapper.schedule import Schedule
from mapper.search import MappingError, map_layer, map_layer_accelerator_first
from mapper.workload import Layer
from tvm_bridge import _compat as compat
from tvm_bridge import relax_codegen
from tvm_bridge.offload_attrs import (
    ATTR_LAYER,
    ATTR_SCHEDULE,
    ATTR_SEMANTICS,
    ATTR_SOC,
    MODULE_ATTR,
    schedule_from_dict,
    schedule_to_json,
    soc_to_json,
)
from tvm_bridge.patterns import CODEGEN, extract_from_function, layer_key, offload_reason, soc_patterns
from tvm_bridge.relax_graph import composite_function, layer_graph
from tvm_bridge.relax_import import BridgeError, main_function, semantics_of

log = logging.getLogger(__name__)

def schedules_of(mod: tvm.IRModule) -> tuple[dict[str, Schedule], dict[str, bool]]:
    """(layer -> Schedule, layer -> offloaded?) recorded by the partition pass on ``mod``."""
    attrs = mod.attrs
    if attrs is None or MODULE_ATTR not in attrs:
        raise BridgeError("module was not partitioned by tvm_bridge.partition_for (no match_schedules attribute)")
    data = json.loads(str(attrs[MODULE_ATTR]))
    return ({name: schedule_from_dict(d["schedule"]) for name, d in data.items() if d["schedule"] is not None},
            {name: bool(d["offloaded"]) for name, d in data.items()})


@tvm.transform.module_pass(opt_level=0, name="MatchPartition")
class MatchPartition:
    """The pass object returned by ``partition_for``; after running it holds ``schedules``
    (layer -> Schedule) and ``offloaded`` (layer -> bool) of the last module it partitioned."""

    def __init__(self, soc: SoC, objective: str = "latency", policy: str = "best", modules: Optional[Sequence[str]] = None,
                 exact_host: bool = True):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.soc, self.objective, self.policy = soc, objective, policy
        self.modules = list(modules) if modules is not None else None
        self.exact_host = exact_host
        self.schedules: dict[str, Schedule] = {}
        self.offloaded: dict[str, bool] = {}
        self._cache: dict[tuple, Schedule] = {}

    # ------------------------------------------------------------------ mapping
    def _map(self, layer: Layer) -> Schedule:
        """The layer's schedule (cached per shape, as ``mapper.map_network`` does)."""
        key = (layer.kind, tuple(layer.sizes.values()), layer.stride, layer.dilation, layer.padding, layer.precision)
        if key not in self._cache:
            search = map_layer if self.policy == "best" else map_layer_accelerator_first
            self._cache[key] = search(layer, self.soc, self.objective, self.modules)
        return dataclasses.replace(self._cache[key], layer=layer.name, rejected=dict(self._cache[key].rejected))

    def map_graph(self, graph: Any) -> None:
        """Map every layer of a bridge layer graph; fills ``schedules`` and ``offloaded``.

        A layer no module can hold (``MappingError``: its tensors exceed every memory) stays in
        TVM's host code without a schedule (logged).
        """
        self.schedules, self.offloaded = {}, {}
        for name in sorted(graph.nodes, key=lambda n: int(n.rsplit("_", 1)[1])):
            layer = graph.nodes[name]["layer"]
            try:
                schedule = self._map(layer)
            except MappingError as exc:
                log.warning("layer %s stays in TVM's host code unmapped: %s", name, exc)
                self.offloaded[name] = False
                continue
            self.schedules[name] = schedule
            self.offloaded[name] = schedule.module != self.soc.host
            if not self.offloaded[name]:
                reason = offload_reason(layer, self.soc) or f"the host is its best module ({self.objective}, policy {self.policy})"
                log.info("layer %s stays on the host (%s): %s", name, self.soc.host, reason)

    # ------------------------------------------------------------------ pass
    def transform_module(self, mod: tvm.IRModule, ctx: Any = None) -> tvm.IRModule:
        main_function(mod)
        graph = layer_graph(mod)
        self.map_graph(graph)
        by_key: dict[str, list[str]] = {}
        for name in sorted(graph.nodes, key=lambda n: int(n.rsplit("_", 1)[1])):
            layer = graph.nodes[name]["layer"]
            if self.offloaded[name]:
                by_key.setdefault(layer_key(layer), []).append(name)
        wanted = set(by_key)

        def accept(layer: Layer) -> bool:
            return layer_key(layer) in wanted

        semantics = semantics_of(mod)
        part = relax.transform.FuseOpsByPattern(soc_patterns(self.soc, accept, semantics), bind_constants=True,
                                                annotate_codegen=True)(mod)
        soc_content = soc_to_json(self.soc)
        names_of: dict[str, list[str]] = {}
        for block in main_function(part).body.blocks:
            for binding in block.bindings:
                call = binding.value
                if not (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.GlobalVar)):
                    continue
                func = part[call.op]
                if compat.function_attr(func, "Codegen") != CODEGEN:
                    continue
                key = layer_key(extract_from_function(composite_function(func), semantics=semantics))
                if not by_key.get(key):
                    raise BridgeError(f"offloaded function {compat.var_name(call.op)} matches no layer chosen for offload")
                names_of.setdefault(compat.var_name(call.op), []).append(by_key[key].pop(0))
        missing = [n for names in by_key.values() for n in names]
        for name in missing:  # chosen, but FuseOpsByPattern did not fuse it (e.g. an overlapping match)
            log.warning("layer %s was chosen for offload but not fused: it stays on the host", name)
            self.offloaded[name] = False
        for gv_name, names in names_of.items():
            gv = part.get_global_var(gv_name)
            func = part[gv]
            func = func.with_attr(ATTR_LAYER, ",".join(names))
            func = func.with_attr(ATTR_SCHEDULE, schedule_to_json(self.schedules[names[0]]))
            func = func.with_attr(ATTR_SOC, soc_content)
            func = func.with_attr(ATTR_SEMANTICS, semantics)
            part.update_func(gv, func)
        if self.exact_host:
            from tvm_bridge.host_int import exact_host_layers

            part = exact_host_layers(part)
        record = {n: {"offloaded": self.offloaded[n], "schedule": self.schedules[n].to_dict() if n in self.schedules else None}
                  for n in self.offloaded}
        return part.with_attr(MODULE_ATTR, json.dumps(record))


def partition_for(soc: SoC, objective: str = "latency", policy: str = "best",
                  modules: Optional[Sequence[str]] = None, exact_host: bool = True) -> tvm.transform.Pass:
    """A ``tvm.transform.Pass`` offloading the layers ``soc``'s accelerators should run.

    ``objective``: ``latency`` (cycles), ``energy`` (pJ) or ``edp``; ``policy``: ``best`` (per layer
    the cheapest module, host included) or ``accelerator_first``; ``modules`` restricts the modules
    the mapper may use (``[soc.host]`` offloads nothing). ``exact_host``: lower the recognised layers
    left on the host with TFLite's integer semantics (else TVM's float QDQ lowering). Follow it with
    ``relax.transform.RunCodegen()`` to generate the C code (``tvm_bridge.relax_codegen``).
    """
    relax_codegen.register()
    return MatchPartition(soc, objective, policy, modules, exact_host)
