"""Import a ZigZag 3.x accelerator description (zigzag-dse 3.9.1 YAML) as an ``archs.SoC``.

``from_zigzag("tpu_like.yaml", mapping="tpu_like_mapping.yaml")`` reads the file the way ZigZag does
(``yaml.safe_load``: a duplicated key keeps its last value; we log a warning naming it), checks it
against the 3.9.1 format and translates it. Everything that cannot be translated raises
``archs.ArchError`` naming the file, the key path and what is allowed.

Translation (ZigZag -> ours; units in brackets):

- Operands: memory operands ``I1``/``I2``/``O`` map to layer operands through the mapping's
  ``memory_operand_links`` (ZigZag's default ``{I: I1, W: I2, O: O}``: I1 = input activations,
  I2 = weights, O = outputs and partial sums).
- ``memories`` (innermost first, as in ZigZag; one operand's n-th memory is its level n) become one
  ``MemoryLevel`` each. A ZigZag memory is one *instance*; ``served_dimensions`` lists the array
  dims one instance is shared over, so there are ``prod(sizes of the dims not served)`` instances.
  Our memory is the aggregate: ``size_bytes = size [bit] x instances / 8`` (rounded down) and
  ``read/write_bytes_per_cycle = bandwidth_max [bit/cycle] x instances / 8``. (Tiles spread over
  fewer instances than exist, e.g. an under-used array, are therefore not limited per instance.)
- Ports: read bandwidth = ``bandwidth_max`` of the ports carrying a read direction (``tl``,
  ``th``), write bandwidth = of those carrying a write direction (``fh``, ``fl``). When ports of
  one direction differ, the narrowest one is used (with a warning): our model has one read and one
  write link per memory. ``bandwidth_min`` (access granularity) is not modelled.
- Energy: ``r_cost``/``w_cost`` are pJ per access of one port word (``bandwidth_max`` bits), so
  ``read/write_energy_pj_per_byte = cost [pJ] / (bandwidth_max [bit] / 8)`` of that same port.
  ``operational_array.unit_energy`` [pJ per MAC] -> ``compute.energy_pj_per_mac`` (optional, as in
  ZigZag's schema: absent = 0 pJ per MAC, with a warning).
- Array: ``dimensions``/``sizes`` -> ``SpatialDim``s (``macs_per_cycle`` = product of the sizes).
  The loop dims each array dim may unroll come from, in this order: the ``mapping`` file, read as
  ZigZag 3.9.1 reads it (per ``default`` and operator-type entry: the entry's ``spatial_mapping`` for
  that array dim, an empty one meaning idle; else its ``spatial_mapping_hint``; else every loop dim;
  the union over those entries; per-layer entries are skipped; loop dim names that are not ours,
  such as the ``D0``/``D1``/``D2`` of ZigZag's GEMM examples, are dropped with a warning, as ZigZag
  drops them for layers without such dims; hints for array dims the accelerator does not have are
  ignored with a warning), else the hardware's ``dataflows``, else every loop dim (ZigZag's own
  default hint). Our search tries every divisor up to the array size of the listed dims (one loop
  dim per array dim), a superset of a fixed ZigZag spatial mapping.
- ``force_double_buffering`` -> ``double_buffering``; the innermost memory holding outputs is
  marked ``accumulates`` (partial sums at accumulator precision, ZigZag's ``O`` precision).
- For ``overlap: zigzag`` (ZigZag's overlap semantics, ``costmodel.overlap``; ``overlap=`` argument,
  default ``serial``): the array dims not in ``served_dimensions`` -> ``instance_dims``; a port
  carrying both read and write directions -> ``shared_port``; ports carrying only the array's own
  (level-0) directions -> ``array_port``.
- Ignored (no counterpart, logged at debug level): ``area``, ``unit_area``, ``latency`` (unused by
  ZigZag 3.9.1's latency model too), ``mem_type``, ``input_precision``. ``systolic_dimensions`` ->
  ``systolic`` array dims, whose drain (a few cycles per layer) only ``overlap: zigzag`` adds
  (a warning says so under ``serial``).
- Errors: in-memory computing arrays (``is_imc``: one error naming it, whatever else the file lacks), CACTI cost extraction
  (``auto_cost_extraction: true``), a mapping file's ``spatial_mapping`` for an array dim the
  accelerator does not have (ZigZag fails on it too) or keyed other than D1..D4, a last memory that does not hold all three operands, ports
  without read or write allocations, and anything the 3.9.1 format rejects (unknown keys such as
  ZigZag 2.x ``r_bw``/``min_r_granularity``, bad types, bad port names or allocations).

Our SoC also needs a host module (one that accepts every layer). ZigZag describes an accelerator
only, so a stand-in host is added: module ``host`` (``host_cpu`` if the accelerator is called
``host``) holding everything in a copy of the accelerator's outermost memory, computing at
``host_macs_per_cycle`` (default 1 MAC/cycle) with ``unit_energy`` pJ per MAC. Map on the
accelerator alone with ``modules=[<accelerator name>]`` (or ``search_module``) to compare with
ZigZag. ZigZag has no clock: ``clock_mhz`` (default 1000, i.e. 1 cycle = 1 ns) only converts cycles
to time.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import yaml

from archs.dims import LoopDim, Operand
from archs.kernel_hooks import quote
from archs.model import LAYER_KINDS, SoC
from archs.schema import MAX_YAML_BYTES, ArchError, from_dict

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: ZigZag's default link of layer operands to memory operands (``memory_operand_links``).
DEFAULT_LINKS: dict[str, str] = {"O": "O", "I": "I1", "W": "I2"}
MEMORY_OPERANDS: tuple[str, ...] = ("I1", "I2", "O")
READ_DIRECTIONS = ("tl", "th")
WRITE_DIRECTIONS = ("fh", "fl")
#: ZigZag operator types (workload ``operator_type``); mapping entries with these names apply to
#: every layer of that type and are merged into the module's unroll options.
OPERATOR_TYPES: tuple[str, ...] = (
    "Max", "Conv", "Pooling", "Add", "Conv_downsample", "Gemm", "Pool", "MaxPool", "AveragePool", "GlobalAveragePool",
)
_PORT_NAME = re.compile(r"^[r]?[w]?_port_\d+$")
_ALLOCATION = re.compile(r"^(I[12]|O), (fh|tl|fl|th)$")
_OA_DIM = re.compile(r"^D\d$")
_UNROLLING = re.compile(r"^([A-Z]+\d*), *(\d+)$")
_HINT = re.compile(r"^[A-Z]+\d*")
#: Array dims a ZigZag 3.9.1 mapping file may name (its mapping schema lists exactly these).
MAPPING_OA_DIMS: tuple[str, ...] = ("D1", "D2", "D3", "D4")
#: Keys of the ZigZag 2.x format, rejected by 3.x: named in the error with their replacement.
_LEGACY_KEYS = {
    "r_bw": "ports[].bandwidth_max", "w_bw": "ports[].bandwidth_max", "r_port": "ports", "w_port": "ports",
    "rw_port": "ports", "min_r_granularity": "ports[].bandwidth_min", "min_w_granularity": "ports[].bandwidth_min",
    "multiplier_energy": "operational_array.unit_energy",
}

# --------------------------------------------------------------------------- ZigZag 3.9.1 format
_TOP_KEYS = ("name", "memories", "operational_array", "dataflows")
_MEMORY_KEYS = ("size", "r_cost", "w_cost", "area", "latency", "mem_type", "auto_cost_extraction", "operands", "ports",
                "served_dimensions", "force_double_buffering")
_PORT_KEYS = ("name", "type", "bandwidth_min", "bandwidth_max", "allocation")
_ARRAY_KEYS = ("dimensions", "sizes", "unit_energy", "unit_area", "is_imc", "systolic_dimensions", "input_precision",
               "imc_type", "adc_resolution", "bit_serial_precision")
_MAPPING_KEYS = ("name", "spatial_mapping", "spatial_mapping_hint", "memory_operand_links", "temporal_ordering")


class _Errors:
    """Collects (key path, message) pairs; raised at once as one ``ArchError``."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ArchError(self.source, self.items)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_keys(data: Mapping, allowed: Sequence[str], required: Sequence[str], path: str, errors: _Errors) -> None:
    for key in data:
        if key not in allowed:
            hint = f" (a ZigZag 2.x key; 3.x uses {_LEGACY_KEYS[key]})" if key in _LEGACY_KEYS else ""
            errors.add(_join(path, str(key)), f"unknown key{hint}; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            errors.add(_join(path, key), "required key is missing")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------- YAML with duplicate-key warnings
def _duplicate_keys(node: yaml.Node, path: str = "") -> list[tuple[str, str, int, int]]:
    """(parent path, key, first line, last line) of every key repeated in a mapping (1-based lines)."""
    found: list[tuple[str, str, int, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append((path, key, seen[key], line))
            else:
                seen[key] = line
            found += _duplicate_keys(value_node, _join(path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{path}[{i}]")
    return found


#: Most YAML nodes a ZigZag file may expand to once aliases (``*name``) are resolved.
MAX_EXPANDED_NODES = 100_000


def expanded_yaml_nodes(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (linear in the file: shared nodes counted once each)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            sizes[id(node)] = 1 + sum(size(child) for child in children)
        return sizes[id(node)]

    return size(root)


def _read_yaml(source: Union[PathLike, Any], what: str) -> tuple[Any, str]:
    """Parse a YAML file like ZigZag (``yaml.safe_load``: last duplicate wins) and warn about
    duplicated keys; non-path inputs (already parsed data) are returned as they are."""
    if not isinstance(source, (str, Path)):
        return source, f"<{what} data>"
    path = Path(source)
    if not path.is_file():
        raise ArchError(str(path), [("", f"no such {what} file")])
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ArchError(str(path), [("", f"file is {path.stat().st_size} bytes; {what} files may have at most "
                                         f"{MAX_YAML_BYTES} bytes (archs.schema.MAX_YAML_BYTES)")])
    text = path.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        expanded = expanded_yaml_nodes(root) if root is not None else 0
        if expanded > MAX_EXPANDED_NODES:
            raise ArchError(str(path), [("", f"its aliases expand to {expanded} YAML nodes; at most {MAX_EXPANDED_NODES} "
                                             "are allowed (archs.zigzag.MAX_EXPANDED_NODES)")])
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ArchError(str(path), [(where, f"malformed YAML: {getattr(exc, 'problem', None) or exc}")]) from exc
    for parent, key, first, last in _duplicate_keys(root) if root is not None else []:
        log.warning("%s: duplicate key %r in %s (lines %d and %d): the last one is used, as ZigZag's yaml.safe_load does",
                    path, key, parent or "(top level)", first, last)
    return data, str(path)


# --------------------------------------------------------------------------- mapping file
#: Per mapping entry (``default`` and operator types): (array dim -> loop dims its ``spatial_mapping`` unrolls,
#: array dim -> loop dims its ``spatial_mapping_hint`` names); only loop dims we know, see ``_entry_dims``.
Rules = list[tuple[dict[str, list[str]], dict[str, list[str]]]]


def _entry_dims(entry: Mapping, key: str, i: int, source: str, errors: _Errors) -> dict[str, list[str]]:
    """Array dim -> loop dims that ``entry[key]`` (``spatial_mapping`` or ``spatial_mapping_hint``) names.

    Read as ZigZag 3.9.1 reads it: keys must be D1..D4 (its mapping schema); ``spatial_mapping`` items
    look like ``'K, 16'`` (a factor of 1 unrolls nothing). A loop dim name that is not one of ours
    (e.g. ``D0`` of ZigZag's GEMM examples, whose workloads name their loops D0, D1, D2) is dropped
    with a warning: ZigZag drops unrollings of loop dims a layer does not have, and none of our layers
    has such a dim. An array dim whose ``spatial_mapping`` is left empty idles, as in ZigZag.
    """
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(f"[{i}].{key}", f"must map array dims (D1, D2, ...) to lists, got {_short(value)}")
        return {}
    out: dict[str, list[str]] = {}
    for oa_dim, items in value.items():
        path = f"[{i}].{key}.{oa_dim}"
        if oa_dim not in MAPPING_OA_DIMS:
            errors.add(path, f"unknown array dimension; allowed: {', '.join(MAPPING_OA_DIMS)} (ZigZag's mapping schema)")
            continue
        if not isinstance(items, list):
            errors.add(path, f"must be a list, got {_short(items)}")
            continue
        dims: list[str] = []
        foreign: list[str] = []
        for j, item in enumerate(items):
            if key == "spatial_mapping":
                match = _UNROLLING.match(str(item))
                if not match:
                    errors.add(f"{path}[{j}]", f"must look like 'K, 16', got {_short(item)}")
                    continue
                dim, factor = match.group(1), int(match.group(2))
                if factor <= 1:
                    continue  # "C, 1": nothing unrolled
            else:
                dim = str(item)
                if not _HINT.match(dim):
                    errors.add(f"{path}[{j}]", f"must be a loop dim name like 'K', got {_short(item)}")
                    continue
            if dim not in LoopDim.__members__:
                foreign.append(dim)
            elif dim not in dims:
                dims.append(dim)
        if foreign:
            log.warning("%s: %s names loop dim(s) %s, which none of our layers has (ours: %s); ZigZag drops them for "
                        "layers without them, and so do we%s", source, path, foreign, ", ".join(LoopDim.__members__),
                        "" if dims or key != "spatial_mapping" else f": array dim {oa_dim} idles under this entry")
        if key == "spatial_mapping" and len(dims) > 1:
            log.warning("%s: %s mixes %s on one array dim; our model unrolls one loop dim per array dim, "
                        "so they are searched as alternatives", source, path, dims)
        out[str(oa_dim)] = dims
    return out


def _mapping_info(mapping: Union[PathLike, Sequence[Mapping], None]) -> tuple[dict[str, str], Rules, str]:
    """(memory_operand_links, unroll rules of the default and operator-type entries, source) from a
    ZigZag mapping file."""
    if mapping is None:
        return dict(DEFAULT_LINKS), [], ""
    data, source = _read_yaml(mapping, "mapping")
    errors = _Errors(source)
    if not isinstance(data, list) or not data:
        errors.add("", f"a ZigZag mapping is a non-empty list of entries, got {type(data).__name__}")
        errors.raise_if_any()
    entries: list[tuple[int, Mapping]] = []
    for i, entry in enumerate(data):
        path = f"[{i}]"
        if not isinstance(entry, dict):
            errors.add(path, f"must be a mapping, got {quote(entry)}")
            continue
        _check_keys(entry, _MAPPING_KEYS, ("name",), path, errors)
        entries.append((i, entry))
    names = [e.get("name") for _, e in entries]
    if "default" not in names:
        errors.add("", "no entry named 'default' (ZigZag requires one)")
    errors.raise_if_any()
    default = next(e for _, e in entries if e.get("name") == "default")
    links = dict(DEFAULT_LINKS)
    given = default.get("memory_operand_links")
    if given is not None:
        path = f"[{names.index('default')}].memory_operand_links"
        if not isinstance(given, dict) or set(given) != {"O", "I", "W"}:
            errors.add(path, f"must map each of O, I, W to a memory operand, got {quote(given)}")
        elif sorted(given.values()) != sorted(MEMORY_OPERANDS) or given["O"] != "O":
            errors.add(path, f"must link O to O and I, W to I1, I2 (in either order), got {quote(given)}")
        else:
            links = dict(given)
    rules: list[tuple[dict[str, list[str]], dict[str, list[str]]]] = []
    for i, entry in entries:
        name = entry.get("name")
        if name != "default" and name not in OPERATOR_TYPES:
            log.debug("%s: mapping entry %r is for one layer; not used for the module's unroll options", source, name)
            continue
        rules.append((_entry_dims(entry, "spatial_mapping", i, source, errors),
                      _entry_dims(entry, "spatial_mapping_hint", i, source, errors)))
    errors.raise_if_any()
    return links, rules, source


# --------------------------------------------------------------------------- validation + translation
def _check_array(array: Any, errors: _Errors) -> Optional[tuple[list[str], list[int], float]]:
    path = "operational_array"
    if not isinstance(array, dict):
        errors.add(path, f"must be a mapping, got {quote(array)}")
        return None
    _check_keys(array, _ARRAY_KEYS, ("dimensions", "sizes"), path, errors)
    if array.get("is_imc"):
        kind = array.get("imc_type")
        errors.add(f"{path}.is_imc", f"in-memory-computing arrays{f' ({kind})' if isinstance(kind, str) else ''} cannot "
                   "be translated (our cost model has no in-memory-computing model); allowed: false")
        return None
    for key in ("imc_type", "adc_resolution", "bit_serial_precision"):
        if array.get(key) not in (None, 0):
            errors.add(f"{path}.{key}", "in-memory-computing parameters cannot be translated; allowed: absent or null")
    dims, sizes, energy = array.get("dimensions"), array.get("sizes"), array.get("unit_energy")
    if energy is None:
        # optional in ZigZag's schema (IMC arrays derive it); a digital array without it has no MAC energy
        log.warning("%s: %s.unit_energy not given: MACs are costed at 0 pJ (energies exclude compute; "
                    "latencies are unaffected)", errors.source, path)
        energy = 0.0
    ok = True
    if not isinstance(dims, list) or not dims or not all(isinstance(d, str) and _OA_DIM.match(d) for d in dims):
        errors.add(f"{path}.dimensions", f"must be a non-empty list of D1, D2, ..., got {quote(dims)}")
        ok = False
    elif len(set(dims)) != len(dims):
        errors.add(f"{path}.dimensions", f"lists a dimension twice: {quote(dims)}")
        ok = False
    if not isinstance(sizes, list) or not all(_is_int(s) and s >= 1 for s in sizes):
        errors.add(f"{path}.sizes", f"must be a list of integers >= 1, got {quote(sizes)}")
        ok = False
    elif ok and len(sizes) != len(dims):
        errors.add(f"{path}.sizes", f"has {len(sizes)} entries for {len(dims)} dimensions")
        ok = False
    if energy is not None and (not _is_number(energy) or energy < 0):
        errors.add(f"{path}.unit_energy", f"must be a number >= 0 (pJ per MAC), got {quote(energy)}")
        ok = False
    systolic = array.get("systolic_dimensions")
    if systolic is not None and not (isinstance(systolic, list) and all(d in (dims or []) for d in systolic)):
        errors.add(f"{path}.systolic_dimensions", f"must be a list of the array's dimensions {dims}, got {quote(systolic)}")
        ok = False
    return (dims, sizes, float(energy)) if ok else None


def _check_port(port: Any, path: str, held: list[str], errors: _Errors) -> Optional[dict]:
    if not isinstance(port, dict):
        errors.add(path, f"must be a mapping with {', '.join(_PORT_KEYS)}, got {quote(port)}")
        return None
    _check_keys(port, _PORT_KEYS, _PORT_KEYS, path, errors)
    ok = all(k in port for k in _PORT_KEYS)
    name, kind = port.get("name"), port.get("type")
    if "name" in port and not (isinstance(name, str) and _PORT_NAME.match(name)):
        errors.add(f"{path}.name", f"must look like r_port_1, w_port_1 or rw_port_1, got {quote(name)}")
        ok = False
    if "type" in port and kind not in ("read", "write", "read_write"):
        errors.add(f"{path}.type", f"must be one of read, write, read_write, got {quote(kind)}")
        ok = False
    for key in ("bandwidth_min", "bandwidth_max"):
        if key in port and not (_is_int(port[key]) and port[key] >= 1):
            errors.add(f"{path}.{key}", f"must be an integer >= 1 (bits per cycle), got {quote(port[key])}")
            ok = False
    if ok and port["bandwidth_min"] > port["bandwidth_max"]:
        errors.add(f"{path}.bandwidth_min", f"must not exceed bandwidth_max ({port['bandwidth_max']}), got {port['bandwidth_min']}")
        ok = False
    directions: list[tuple[str, str]] = []
    allocation = port.get("allocation")
    if "allocation" in port and not isinstance(allocation, list):
        errors.add(f"{path}.allocation", f"must be a list like ['I1, tl', 'O, fl'], got {quote(allocation)}")
        ok = False
    for j, item in enumerate(allocation if isinstance(allocation, list) else []):
        match = _ALLOCATION.match(str(item))
        if not match:
            errors.add(f"{path}.allocation[{j}]", f"must be '<I1|I2|O>, <fh|tl|fl|th>', got {quote(item)}")
            ok = False
            continue
        operand, direction = match.groups()
        if operand not in held:
            errors.add(f"{path}.allocation[{j}]", f"operand {operand} is not in this memory's operands {held}")
            ok = False
        if kind == "read" and direction in WRITE_DIRECTIONS or kind == "write" and direction in READ_DIRECTIONS:
            errors.add(f"{path}.allocation[{j}]", f"a {kind} port cannot carry direction {quote(direction)}")
            ok = False
        directions.append((operand, direction))
    if not ok:
        return None
    return {"name": name, "bw": port["bandwidth_max"], "directions": directions}


def _link_of(ports: list[dict], wanted: tuple[str, ...], cost: float, cost_key: str, mem: str, path: str,
             instances: int, errors: _Errors) -> Optional[tuple[float, float]]:
    """(bytes per cycle of all instances, pJ per byte) of the narrowest port carrying ``wanted``."""
    carrying = [p for p in ports if any(d in wanted for _, d in p["directions"])]
    if not carrying:
        kind = "read (tl, th)" if wanted == READ_DIRECTIONS else "write (fh, fl)"
        errors.add(f"{path}.ports", f"no port carries a {kind} allocation; our model needs both a read and a write link")
        return None
    narrow = min(carrying, key=lambda p: p["bw"])
    if len({p["bw"] for p in carrying}) > 1:
        log.warning("%s: memory %s has %s ports of different widths %s; using the narrowest (%s, %d bit/cycle, %s "
                    "per %d-bit word) for every operand", errors.source, mem, "/".join(wanted),
                    {p["name"]: p["bw"] for p in carrying}, narrow["name"], narrow["bw"], cost_key, narrow["bw"])
    return narrow["bw"] * instances / 8.0, cost / (narrow["bw"] / 8.0)


def _translate_memory(name: str, mem: Any, oa: tuple[list[str], list[int], float], mem_to_layer: dict[str, str],
                      errors: _Errors) -> Optional[dict]:
    path = f"memories.{name}"
    if not isinstance(mem, dict):
        errors.add(path, f"must be a mapping, got {quote(mem)}")
        return None
    _check_keys(mem, _MEMORY_KEYS, ("size", "operands", "ports", "served_dimensions"), path, errors)
    ok = True
    if mem.get("auto_cost_extraction"):
        errors.add(f"{path}.auto_cost_extraction", "CACTI cost extraction is not supported; give r_cost and w_cost "
                   "(pJ per access) instead; allowed: false")
        ok = False
    else:
        for key in ("r_cost", "w_cost"):
            if key not in mem or mem[key] is None:
                errors.add(f"{path}.{key}", "required key is missing (pJ per access of one port word)")
                ok = False
            elif not _is_number(mem[key]) or mem[key] < 0:
                errors.add(f"{path}.{key}", f"must be a number >= 0 (pJ per access), got {quote(mem[key])}")
                ok = False
    size = mem.get("size")
    if "size" in mem and not (_is_int(size) and size >= 1):
        errors.add(f"{path}.size", f"must be an integer >= 1 (bits), got {quote(size)}")
        ok = False
    operands = mem.get("operands")
    if "operands" in mem and not (isinstance(operands, list) and operands
                                  and all(o in MEMORY_OPERANDS for o in operands)):
        errors.add(f"{path}.operands", f"must be a non-empty list of {', '.join(MEMORY_OPERANDS)}, got {quote(operands)}")
        ok = False
    elif isinstance(operands, list) and len(set(operands)) != len(operands):
        errors.add(f"{path}.operands", f"lists an operand twice: {quote(operands)}")
        ok = False
    served = mem.get("served_dimensions")
    oa_dims, oa_sizes, _ = oa
    if "served_dimensions" in mem:
        if not isinstance(served, list) or not all(d in oa_dims for d in served):
            errors.add(f"{path}.served_dimensions", f"must be a list of the array's dimensions {oa_dims}, got {quote(served)}")
            ok = False
    double = mem.get("force_double_buffering", False)
    if not isinstance(double, bool):
        errors.add(f"{path}.force_double_buffering", f"must be true or false, got {quote(double)}")
        ok = False
    for key in ("area", "latency", "mem_type"):
        if key in mem:
            log.debug("%s: %s.%s ignored (no counterpart in our model)", errors.source, path, key)
    ports_data = mem.get("ports")
    ports: list[dict] = []
    if "ports" in mem:
        if not isinstance(ports_data, list) or not ports_data:
            errors.add(f"{path}.ports", f"must be a non-empty list of ports, got {quote(ports_data)}")
            ok = False
        else:
            held = operands if isinstance(operands, list) else []
            for i, port in enumerate(ports_data):
                checked = _check_port(port, f"{path}.ports[{i}]", held, errors)
                ok = ok and checked is not None
                if checked is not None and checked["directions"]:
                    ports.append(checked)
    if not ok or not all(k in mem for k in ("size", "operands", "ports", "served_dimensions")):
        return None
    instances = math.prod(s for d, s in zip(oa_dims, oa_sizes) if d not in served)
    read = _link_of(ports, READ_DIRECTIONS, float(mem["r_cost"]), "r_cost", name, path, instances, errors)
    write = _link_of(ports, WRITE_DIRECTIONS, float(mem["w_cost"]), "w_cost", name, path, instances, errors)
    size_bytes = size * instances // 8
    if size_bytes < 1:
        errors.add(f"{path}.size", f"{size} bit x {instances} instance(s) is less than one byte")
        return None
    if read is None or write is None:
        return None
    return {
        "name": name,
        "size_bytes": size_bytes,
        "operands": [mem_to_layer[o] for o in operands],
        "read_bytes_per_cycle": read[0],
        "write_bytes_per_cycle": write[0],
        "double_buffering": double,
        "read_energy_pj_per_byte": read[1],
        "write_energy_pj_per_byte": write[1],
        "instance_dims": [d for d in oa_dims if d not in served],
        "shared_port": any(any(d in READ_DIRECTIONS for _, d in p["directions"])
                           and any(d in WRITE_DIRECTIONS for _, d in p["directions"]) for p in ports),
        "_memory_operands": list(operands),
        "_port_directions": [list(p["directions"]) for p in ports],
    }


def _array_port(mem: dict, innermost: list[str]) -> bool:
    """Whether the array's own accesses to ``mem`` (the level-0 directions of the memory operands
    ``innermost`` here: ``tl``, and ``fl`` for outputs) use ports that carry nothing else."""
    feeds = {(op, "tl") for op in innermost} | {(op, "fl") for op in innermost if op == "O"}
    used = [port for port in mem["_port_directions"] if feeds & set(port)]
    return bool(used) and all(set(port) <= feeds for port in used)


def _unroll_options(oa_dims: list[str], dataflows: Any, rules: Rules, mapping_source: str,
                    errors: _Errors) -> dict[str, list[str]]:
    """Loop dims each array dim may unroll. With a mapping file, per array dim the union over its
    ``default`` and operator-type entries of what ZigZag would let that entry unroll there: the
    entry's ``spatial_mapping`` for that dim (empty: idle), else its hint (if it names a loop dim of
    ours), else every loop dim (ZigZag's default hint). Hints for array dims the accelerator does not
    have are ignored (as ZigZag does, with a warning); a ``spatial_mapping`` for one is an error (ZigZag
    fails on it with a ``KeyError``)."""
    all_dims = [d.value for d in LoopDim]
    if mapping_source:
        for i, (fixed, hinted) in enumerate(rules):
            extra = [d for d in fixed if d not in oa_dims]
            if extra:
                raise ArchError(mapping_source, [("spatial_mapping", f"unrolls array dimension(s) {extra}, which the "
                                                  f"accelerator does not have (its dimensions: {oa_dims})")])
            ignored = [d for d in hinted if d not in oa_dims]
            if ignored:
                log.warning("%s: spatial_mapping_hint for array dimension(s) %s ignored: the accelerator has %s (ZigZag "
                            "ignores them too)", mapping_source, ignored, oa_dims)
        out: dict[str, list[str]] = {}
        for oa_dim in oa_dims:
            row: list[str] = []
            for fixed, hinted in rules:
                dims = fixed[oa_dim] if oa_dim in fixed else hinted.get(oa_dim) or all_dims
                row += [d for d in dims if d not in row]
            out[oa_dim] = row
        return out
    if dataflows is None:
        return {d: all_dims for d in oa_dims}
    if not isinstance(dataflows, dict):
        errors.add("dataflows", f"must map array dims to lists like ['K, 16'], got {quote(dataflows)}")
        return {}
    out: dict[str, list[str]] = {}
    for oa_dim, items in dataflows.items():
        path = f"dataflows.{oa_dim}"
        if oa_dim not in oa_dims:
            errors.add(path, f"not one of the array's dimensions {oa_dims}")
            continue
        if not isinstance(items, list):
            errors.add(path, f"must be a list like ['K, 16'], got {quote(items)}")
            continue
        dims: list[str] = []
        for j, item in enumerate(items):
            match = _UNROLLING.match(str(item))
            if not match or match.group(1) not in LoopDim.__members__:
                errors.add(f"{path}[{j}]", f"must be '<loop dim>, <factor>' with a loop dim of {', '.join(all_dims)}, got {quote(item)}")
                continue
            if int(match.group(2)) > 1 and match.group(1) not in dims:
                dims.append(match.group(1))
        out[oa_dim] = dims
    return {d: out.get(d) or all_dims for d in oa_dims}


def from_zigzag(
    source: Union[PathLike, Mapping[str, Any]],
    mapping: Union[PathLike, Sequence[Mapping[str, Any]], None] = None,
    *,
    host_macs_per_cycle: float = 1.0,
    clock_mhz: float = 1000.0,
    overlap: str = "serial",
) -> SoC:
    """Translate a ZigZag 3.x accelerator YAML (path, or its parsed dict) into a ``SoC``.

    ``mapping`` (optional): a ZigZag mapping YAML (path or parsed list) whose ``default`` and
    operator-type entries give the loop dims each array dim may unroll and the
    ``memory_operand_links``. The SoC holds a stand-in host (``host``, ``host_macs_per_cycle``
    MACs per cycle, the accelerator's outermost memory) and the accelerator, named after the
    file's ``name``. ``clock_mhz`` (MHz) only converts cycles to time. ``overlap`` is the
    accelerator's overlap mode (``serial`` or ``zigzag``: ZigZag's semantics, for numbers comparable
    with ZigZag's; the search prunes little under it). Raises ``ArchError``.
    """
    data, src = _read_yaml(source, "accelerator")
    links, rules, mapping_source = _mapping_info(mapping)
    mem_to_layer = {mem_op: layer_op for layer_op, mem_op in links.items()}
    errors = _Errors(src)
    if not isinstance(data, dict):
        errors.add("", f"a ZigZag accelerator is a mapping with {', '.join(_TOP_KEYS[:3])}, got {type(data).__name__}")
        errors.raise_if_any()
    _check_keys(data, _TOP_KEYS, _TOP_KEYS[:3], "", errors)
    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and name):
        errors.add("name", f"must be a non-empty string, got {quote(name)}")
    oa = _check_array(data.get("operational_array"), errors) if "operational_array" in data else None
    memories_data = data.get("memories")
    if "memories" in data and not (isinstance(memories_data, dict) and memories_data):
        errors.add("memories", f"must be a non-empty mapping of memory name to memory, innermost first, got {quote(memories_data)}")
        memories_data = None
    errors.raise_if_any()
    assert oa is not None and memories_data is not None
    memories = [_translate_memory(str(n), m, oa, mem_to_layer, errors) for n, m in memories_data.items()]
    unroll = _unroll_options(oa[0], data.get("dataflows"), rules, mapping_source, errors)
    errors.raise_if_any()
    checked = [m for m in memories if m is not None]
    last = checked[-1]
    if sorted(last["_memory_operands"]) != sorted(MEMORY_OPERANDS):
        errors.add(f"memories.{last['name']}.operands",
                   "the last (outermost) memory must hold I1, I2 and O: our model keeps a layer's tensors in one "
                   f"outermost memory; got {last['_memory_operands']}")
    errors.raise_if_any()
    innermost_of: dict[str, str] = {}
    for mem in checked:
        for op in mem["_memory_operands"]:
            innermost_of.setdefault(op, mem["name"])
    for mem in checked:
        mem["array_port"] = _array_port(mem, [op for op, name in innermost_of.items() if name == mem["name"]])
        mem["accumulates"] = False
        del mem["_memory_operands"], mem["_port_directions"]
    first_output = next(m for m in checked if Operand.O.value in m["operands"])
    first_output["accumulates"] = True

    oa_dims, oa_sizes, unit_energy = oa
    systolic = list(data["operational_array"].get("systolic_dimensions") or [])
    if systolic and overlap != "zigzag":
        log.warning("%s: operational_array.systolic_dimensions %s: the systolic drain (ZigZag adds a few cycles per "
                    "layer for it) is modelled under overlap zigzag only", src, systolic)
    host_name = "host" if name != "host" else "host_cpu"
    outer = {k: last[k] for k in ("name", "size_bytes", "read_bytes_per_cycle", "write_bytes_per_cycle",
                                  "read_energy_pj_per_byte", "write_energy_pj_per_byte")}
    outer["operands"] = ["I", "W", "O"]
    soc_data = {
        "name": name,
        "description": (f"ZigZag accelerator {name!r} imported from {src}"
                        + (f" with mapping {mapping_source}" if mapping_source else "")),
        "clock_mhz": clock_mhz,
        "host": host_name,
        "modules": [
            {"name": host_name, "memories": [outer],
             "compute": {"macs_per_cycle": host_macs_per_cycle, "energy_pj_per_mac": unit_energy}},
            {
                "name": name,
                "spatial": [{"name": d, "size": s, "unroll": unroll[d], "systolic": d in systolic}
                            for d, s in zip(oa_dims, oa_sizes)],
                "allow_padded_unrolling": True,
                "accepts": [{"kind": kind} for kind in LAYER_KINDS],
                "memories": checked,
                "compute": {"macs_per_cycle": float(math.prod(oa_sizes)), "energy_pj_per_mac": unit_energy},
                "overlap": overlap,
            },
        ],
    }
    return from_dict(soc_data, source=src)


#: Directory of the ZigZag example files shipped with this package (MIT, (c) MICAS KU Leuven).
EXAMPLES_DIR = Path(__file__).resolve().parent / "zigzag_examples"


def zigzag_example(name: str, kind: str = "hardware") -> Path:
    """Path of a shipped ZigZag example: ``kind`` is ``hardware`` or ``mapping``, ``name`` e.g. ``tpu_like``."""
    path = EXAMPLES_DIR / kind / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (EXAMPLES_DIR / kind).glob("*.yaml"))
        raise ArchError(str(path), [("", f"no shipped ZigZag {kind} example {quote(name)}; shipped: {', '.join(shipped)}")])
    return path
