"""Read (and write) ZigZag 3.x workload YAML: a list of layers -> our layer graph.

A ZigZag layer (zigzag-dse 3.9.1 format) gives ``operator_type``, an ``equation`` such as
``O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]``, ``dimension_relations``
(``ix=stride*ox+dilation*fx``), ``loop_dims``/``loop_sizes``, ``operand_precision`` in bits
(``O`` = partial sums -> our accumulator precision, ``O_final`` -> our output precision),
``operand_source`` (producing layer id per input; the layer's own id = a constant) and optionally
``pr_loop_dims``/``pr_loop_sizes``/``padding`` (per input dim ``[low, high]``).

Kinds: ``Conv``/``Conv_downsample`` -> ``conv2d`` (``depthwise`` when the equation's channels are
groups: G > 1 and C = 1), ``Gemm`` -> ``dense``, ``Add`` -> ``add``, ``Pooling``/``Pool``/
``MaxPool``/``AveragePool``/``GlobalAveragePool``/``Max`` -> ``pool``. The equation's operand
indices are checked against our relevance table for that kind (dims of size 1 aside), so an
equation we would cost differently is refused. Loop dims must be ours (B, K, C, OY, OX, FY, FX, G);
ZigZag's free dim names (``D0``...) are refused unless their size is 1. Padding: with
``pr_loop_sizes`` the trailing pad is trimmed to what the last window reads (as ``mapper.conv2d``
does); without it, ZigZag's rule applies (input = covered extent - low - high). Every error is a
``mapper.LayerError`` naming the file, the layer and the field.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import networkx as nx
import yaml

from archs.dims import LoopDim, Operand
from archs.kernel_hooks import quote
from archs.schema import MAX_YAML_BYTES
from archs.zigzag import MAX_EXPANDED_NODES, expanded_yaml_nodes
from mapper.graph import layer_graph, ordered_layers
from mapper.workload import Layer, LayerError, Precision, relevant_dims

log = logging.getLogger(__name__)
D = LoopDim

POOL_TYPES = ("Pooling", "Pool", "MaxPool", "AveragePool", "GlobalAveragePool", "Max")
KIND_OF_OPERATOR: dict[str, str] = {"Conv": "conv2d", "Conv_downsample": "conv2d", "Gemm": "dense", "Add": "add",
                                    **{t: "pool" for t in POOL_TYPES}}
_LAYER_KEYS = ("id", "name", "operator_type", "equation", "dimension_relations", "loop_dims", "loop_sizes",
               "operand_precision", "operand_source", "pr_loop_dims", "pr_loop_sizes", "padding")
_REQUIRED = ("id", "operator_type", "equation", "loop_dims", "loop_sizes", "operand_precision")
_TERM = re.compile(r"([A-Za-z]\w*)((?:\[\w*\])+)")
_RELATION = re.compile(r"^(\w+)\s*=\s*(?:(\d+)\s*\*\s*)?(\w+)\s*\+\s*(?:(\d+)\s*\*\s*)?(\w+)$")
#: Output dim and kernel dim of each input axis (Y, X).
_AXES = {"y": (D.OY, D.FY), "x": (D.OX, D.FX)}


class _Fail:
    def __init__(self, source: str, name: str):
        self.prefix = f"{source}: layer {quote(name)}"

    def __call__(self, field: str, message: str) -> LayerError:
        return LayerError(f"{self.prefix}: {field}: {message}")


def _parse_equation(equation: Any, fail: _Fail) -> tuple[list[str], str, dict[str, list[str]]]:
    """(input operand letters in order, operator '*' or '+', indices per operand)."""
    if not isinstance(equation, str) or "=" not in equation:
        raise fail("equation", f"must look like 'O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]', got {quote(equation)}")
    text = equation.replace(" ", "")
    lhs, rhs = text.split("=", 1)
    lhs = lhs[:-1] if lhs.endswith("+") else lhs
    out = _TERM.fullmatch(lhs)
    if out is None or out.group(1) != "O":
        raise fail("equation", f"the left-hand side must be the output O[...], got {quote(lhs)}")
    terms = list(_TERM.finditer(rhs))
    if len(terms) != 2 or terms[0].start() != 0 or terms[1].end() != len(rhs) or terms[0].end() + 1 != terms[1].start():
        raise fail("equation", f"the right-hand side must be two operands joined by '*' or '+', got {quote(rhs)}")
    operator = rhs[terms[0].end()]
    if operator not in "*+":
        raise fail("equation", f"operator must be '*' (MAC) or '+' (element-wise), got {quote(operator)}")
    indices = {"O": re.findall(r"\[(\w*)\]", out.group(2))}
    letters = []
    for term in terms:
        letters.append(term.group(1))
        indices[term.group(1)] = [i for i in re.findall(r"\[(\w*)\]", term.group(2)) if i]
    if sorted(letters) != ["I", "W"]:
        raise fail("equation", f"the inputs must be I and W (the operands ZigZag's memory_operand_links name), got {letters}")
    return letters, operator, indices


def _parse_relations(relations: Any, fail: _Fail) -> dict[str, tuple[str, int, int]]:
    """Input index (``ix``) -> (axis 'x'/'y', stride, dilation)."""
    out: dict[str, tuple[str, int, int]] = {}
    if relations is None:
        return out
    if not isinstance(relations, list):
        raise fail("dimension_relations", f"must be a list like ['ix=1*ox+1*fx'], got {quote(relations)}")
    for i, relation in enumerate(relations):
        match = _RELATION.match(str(relation).strip())
        if not match:
            raise fail(f"dimension_relations[{i}]", f"must look like 'ix=1*ox+1*fx', got {quote(relation)}")
        target, c1, a, c2, b = match.groups()
        terms = {a.lower(): int(c1 or 1), b.lower(): int(c2 or 1)}
        axis = next((ax for ax, (o, f) in _AXES.items() if set(terms) == {o.value.lower(), f.value.lower()}), None)
        if axis is None:
            raise fail(f"dimension_relations[{i}]", f"must relate an input index to ox and fx, or oy and fy, got {quote(relation)}")
        out_dim, kernel_dim = _AXES[axis]
        out[target.lower()] = (axis, terms[out_dim.value.lower()], terms[kernel_dim.value.lower()])
    return out


def _sizes(entry: Mapping, fail: _Fail) -> dict[LoopDim, int]:
    dims, sizes = entry["loop_dims"], entry["loop_sizes"]
    if not isinstance(dims, list) or not isinstance(sizes, list) or len(dims) != len(sizes):
        raise fail("loop_sizes", f"loop_dims and loop_sizes must be lists of equal length, got {quote(dims)} and {quote(sizes)}")
    out: dict[LoopDim, int] = {}
    for dim, size in zip(dims, sizes):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise fail("loop_sizes", f"size of {dim} must be an integer >= 1, got {quote(size)}")
        name = str(dim).upper()
        if name not in LoopDim.__members__:
            if size == 1:
                continue
            raise fail("loop_dims", f"unknown loop dim {quote(dim)} (size {size}); allowed: {', '.join(LoopDim.__members__)}")
        if LoopDim(name) in out:
            raise fail("loop_dims", f"lists {name} twice")
        out[LoopDim(name)] = size
    return out


def _operand_dims(indices: list[str], relations: dict[str, tuple[str, int, int]], fail: _Fail, operand: str
                  ) -> set[LoopDim]:
    dims: set[LoopDim] = set()
    for index in indices:
        if index.lower() in relations:
            dims |= set(_AXES[relations[index.lower()][0]])
        elif index.upper() in LoopDim.__members__:
            dims.add(LoopDim(index.upper()))
        else:
            raise fail("equation", f"index {quote(index)} of {operand} is neither a loop dim ({', '.join(LoopDim.__members__)}) "
                                   "nor defined in dimension_relations")
    return dims


def _padding(entry: Mapping, relations: dict[str, tuple[str, int, int]], sizes: dict[LoopDim, int],
             stride: tuple[int, int], dilation: tuple[int, int], fail: _Fail) -> tuple[int, int, int, int]:
    pr_dims, pads, pr_sizes = entry.get("pr_loop_dims"), entry.get("padding"), entry.get("pr_loop_sizes")
    if pads is None and pr_sizes is None:
        return (0, 0, 0, 0)
    if not isinstance(pr_dims, list):
        raise fail("pr_loop_dims", f"padding and pr_loop_sizes need pr_loop_dims (e.g. [IX, IY]), got {quote(pr_dims)}")
    for key, value in (("padding", pads), ("pr_loop_sizes", pr_sizes)):
        if value is not None and (not isinstance(value, list) or len(value) != len(pr_dims)):
            raise fail(key, f"must have one entry per pr_loop_dims {pr_dims}, got {quote(value)}")
    result = {"y": [0, 0], "x": [0, 0]}
    for i, pr_dim in enumerate(pr_dims):
        relation = relations.get(str(pr_dim).lower())
        if relation is None:
            raise fail("pr_loop_dims", f"{quote(pr_dim)} is not defined in dimension_relations")
        axis = relation[0]
        lo, hi = 0, 0
        if pads is not None:
            pair = pads[i]
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) and v >= 0 for v in pair)):
                raise fail(f"padding[{i}]", f"must be [low, high] integers >= 0, got {quote(pair)}")
            lo, hi = pair
        if pr_sizes is not None:
            total = pr_sizes[i]
            if isinstance(total, bool) or not isinstance(total, int) or total < 1:
                raise fail(f"pr_loop_sizes[{i}]", f"must be an integer >= 1, got {quote(total)}")
            a = 0 if axis == "y" else 1
            out_dim, kernel_dim = _AXES[axis]
            covered = (sizes.get(out_dim, 1) - 1) * stride[a] + (sizes.get(kernel_dim, 1) - 1) * dilation[a] + 1
            needed = max(covered - lo - total, 0)
            if needed > hi:
                log.warning("%s: windows read %d row(s) past the padded input along %s; padding them with zeros",
                            fail.prefix, needed - hi, pr_dim)
            hi = needed
        result[axis] = [lo, hi]
    return (result["y"][0], result["y"][1], result["x"][0], result["x"][1])


def layer_from_zigzag(entry: Mapping[str, Any], source: str = "<workload>") -> Layer:
    """One ZigZag workload layer (a parsed YAML mapping) -> our ``Layer``; raises ``LayerError``."""
    if not isinstance(entry, dict):
        raise LayerError(f"{source}: a workload layer must be a mapping, got {quote(entry)}")
    name = entry.get("name") or f"Layer{entry.get('id')}"
    fail = _Fail(source, str(name))
    for key in entry:
        if key not in _LAYER_KEYS:
            raise fail(str(key), f"unknown key; allowed: {', '.join(_LAYER_KEYS)}")
    for key in _REQUIRED:
        if key not in entry:
            raise fail(key, "required key is missing")
    operator_type = entry["operator_type"]
    if operator_type not in KIND_OF_OPERATOR:
        raise fail("operator_type", f"unknown operator type {quote(operator_type)}; allowed: {', '.join(KIND_OF_OPERATOR)}")
    kind = KIND_OF_OPERATOR[operator_type]
    letters, operator, indices = _parse_equation(entry["equation"], fail)
    if (operator == "+") != (kind == "add"):
        raise fail("equation", f"operator {quote(operator)} does not match operator_type {quote(operator_type)} "
                               "(element-wise '+' is an Add, '*' a MAC)")
    relations = _parse_relations(entry.get("dimension_relations"), fail)
    sizes = _sizes(entry, fail)
    operand_dims = {op: _operand_dims(indices[op], relations, fail, op) for op in ("O", "I", "W")}
    if kind in ("add", "pool") and sizes.get(D.G, 1) == 1 and sizes.get(D.C, 1) == 1 and sizes.get(D.K, 1) > 1:
        sizes[D.G] = sizes.pop(D.K)  # channels of element-wise ops and pools live in G
        for dims in operand_dims.values():
            if D.K in dims:
                dims.discard(D.K)
                dims.add(D.G)
    if kind == "conv2d" and sizes.get(D.G, 1) > 1 and sizes.get(D.C, 1) == 1:
        kind = "depthwise"
    if kind == "dense":
        spatial = [d.value for d in (D.OY, D.OX, D.FY, D.FX) if sizes.get(d, 1) > 1]
        if spatial:
            raise fail("loop_dims", f"a Gemm has no {', '.join(spatial)} loops (use Conv)")
    strides = {axis: (s, d) for axis, s, d in relations.values()}
    stride = (strides.get("y", (1, 1))[0], strides.get("x", (1, 1))[0])
    dilation = (strides.get("y", (1, 1))[1], strides.get("x", (1, 1))[1])
    for operand, letter in ((Operand.O, "O"), (Operand.I, "I"), (Operand.W, "W")):
        if kind == "pool" and operand is Operand.W:
            continue  # the window "weights" of a ZigZag pooling layer carry no data
        ours = {d for d in relevant_dims(kind, operand) if sizes.get(d, 1) > 1}
        theirs = {d for d in operand_dims[letter] if sizes.get(d, 1) > 1}
        if ours != theirs:
            raise fail("equation", f"{letter} is indexed by {sorted(d.value for d in theirs)} but a {kind} layer's "
                                   f"{letter} is indexed by {sorted(d.value for d in ours)} (dims of size 1 aside)")
    precision = entry["operand_precision"]
    if not isinstance(precision, dict):
        raise fail("operand_precision", f"must map I, W, O, O_final to bits, got {quote(precision)}")
    for key in ("O", "O_final", "I") + (("W",) if kind != "pool" else ()):
        if key not in precision:
            raise fail(f"operand_precision.{key}", "required key is missing")
        if isinstance(precision[key], bool) or not isinstance(precision[key], int) or not 1 <= precision[key] <= 64:
            raise fail(f"operand_precision.{key}", f"must be an integer number of bits in 1..64, got {quote(precision[key])}")
    bits = Precision(input=precision["I"], weight=precision.get("W") if kind != "pool" else 8,
                     output=precision["O_final"], accumulator=precision["O"])
    padding = _padding(entry, relations, sizes, stride, dilation, fail)
    try:
        return Layer(str(name), kind, sizes, stride, dilation, padding, bits)
    except LayerError as exc:
        raise LayerError(f"{source}: {exc}") from exc


def from_zigzag_workload(source: Union[str, Path, Sequence[Mapping[str, Any]]], name: Optional[str] = None) -> nx.DiGraph:
    """A ZigZag workload YAML (path, or its parsed list of layers) -> layer graph (``mapper.layer_graph``).

    Edges follow ``operand_source`` (I first, then W: the second input of an Add); an operand whose
    source is the layer's own id is a constant. Raises ``LayerError`` naming the layer and field.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise LayerError(f"{path}: no such workload file")
        if path.stat().st_size > MAX_YAML_BYTES:
            raise LayerError(f"{path}: file is {path.stat().st_size} bytes; workload files may have at most {MAX_YAML_BYTES} "
                             "bytes (archs.schema.MAX_YAML_BYTES)")
        text = path.read_text()
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            expanded = expanded_yaml_nodes(root) if root is not None else 0
            if expanded > MAX_EXPANDED_NODES:
                raise LayerError(f"{path}: its aliases expand to {expanded} YAML nodes; at most {MAX_EXPANDED_NODES} are "
                                 "allowed (archs.zigzag.MAX_EXPANDED_NODES)")
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LayerError(f"{path}: malformed YAML: {exc}") from exc
        src, default_name = str(path), path.stem
    else:
        data, src, default_name = source, "<workload>", "workload"
    if not isinstance(data, list) or not data:
        raise LayerError(f"{src}: a ZigZag workload is a non-empty list of layers, got {type(data).__name__}")
    layers = [layer_from_zigzag(entry, src) for entry in data]
    names: dict[Any, str] = {}
    for entry, layer in zip(data, layers):
        if entry["id"] in names:
            raise LayerError(f"{src}: layer {quote(layer.name)}: id: {quote(entry['id'])} is also the id of {quote(names[entry['id']])}")
        names[entry["id"]] = layer.name
    edges = []
    for entry, layer in zip(data, layers):
        sources = entry.get("operand_source") or {}
        if not isinstance(sources, dict):
            raise LayerError(f"{src}: layer {quote(layer.name)}: operand_source: must map I/W to layer ids, got {quote(sources)}")
        for operand in ("I", "W"):
            producer = sources.get(operand)
            if producer is None or producer == entry["id"]:
                continue
            if producer not in names:
                raise LayerError(f"{src}: layer {quote(layer.name)}: operand_source.{operand}: no layer has id {quote(producer)}")
            if (names[producer], layer.name) not in [(a, b) for a, b, _ in edges]:
                edges.append((names[producer], layer.name, f"{names[producer]}:out"))
    return layer_graph(layers, edges, name=name or default_name)


# --------------------------------------------------------------------------- writer
def _equation(layer: Layer) -> tuple[str, str, list[str]]:
    """(operator_type, equation, loop dims) of ``layer`` in ZigZag's notation."""
    s = layer.sizes
    g = "[g]" if s[D.G] > 1 else ""
    k = "[k]" if s[D.K] > 1 or layer.kind in ("conv2d", "dense") else ""
    if layer.kind == "conv2d":
        return "Conv", f"O[b]{g}[k][oy][ox]+=W{g}[k][c][fy][fx]*I[b]{g}[c][iy][ix]", ["B", "G", "K", "C", "OY", "OX", "FY", "FX"]
    if layer.kind == "depthwise":
        return "Conv", f"O[b][g]{k}[oy][ox]+=W[g]{k}[fy][fx]*I[b][g][iy][ix]", ["B", "G", "K", "OY", "OX", "FY", "FX"]
    if layer.kind == "dense":
        return "Gemm", "O[b][k]+=W[k][c]*I[b][c]", ["B", "K", "C"]
    if layer.kind == "add":
        return "Add", "O[b][g][oy][ox]=W[b][g][oy][ox]+I[b][g][oy][ox]", ["B", "G", "OY", "OX"]
    return "Pooling", "O[b][g][oy][ox]+=W[fy][fx]*I[b][g][iy][ix]", ["B", "G", "OY", "OX", "FY", "FX"]


def to_zigzag_workload(layers: Union[nx.DiGraph, Iterable[Layer]]) -> list[dict[str, Any]]:
    """Our layers as a ZigZag 3.x workload (list of dicts, ``yaml.safe_dump`` it to a file).

    Layer ids follow the graph's topological order (or the iterable's order). In a graph, a layer's
    I comes from its first predecessor and an Add's W from its second; a plain iterable is treated
    as a chain. Partial sums are written at the accumulator precision (ZigZag's ``O``).
    """
    if isinstance(layers, nx.DiGraph):
        order = ordered_layers(layers)
        items = [layers.nodes[n]["layer"] for n in order]
        preds = {n: sorted(layers.predecessors(n), key=order.index) for n in order}
    else:
        items = list(layers)
        preds = {b.name: [a.name] for a, b in zip(items, items[1:])}
    ids = {layer.name: i for i, layer in enumerate(items)}
    out = []
    for i, layer in enumerate(items):
        operator_type, equation, dims = _equation(layer)
        if layer.kind == "conv2d" and layer.sizes[D.G] == 1 or layer.kind == "depthwise" and layer.sizes[D.K] == 1:
            dims.remove("G" if layer.kind == "conv2d" else "K")
        sizes = [layer.sizes[LoopDim(d)] for d in dims]
        inputs = [ids[p] for p in preds.get(layer.name, [])]
        entry: dict[str, Any] = {
            "id": i,
            "name": layer.name,
            "operator_type": operator_type,
            "equation": equation,
            "dimension_relations": [],
            "loop_dims": dims,
            "loop_sizes": sizes,
            "operand_precision": {"W": layer.precision.weight if layer.kind != "pool" else 0, "I": layer.precision.input,
                                  "O": layer.precision.accumulator, "O_final": layer.precision.output},
            "operand_source": {"I": inputs[0] if inputs else i,
                               "W": inputs[1] if layer.kind == "add" and len(inputs) > 1 else i},
        }
        if layer.kind in ("conv2d", "depthwise", "pool"):
            (sy, sx), (dy, dx) = layer.stride, layer.dilation
            entry["dimension_relations"] = [f"ix={sx}*ox+{dx}*fx", f"iy={sy}*oy+{dy}*fy"]
            top, bottom, left, right = layer.padding
            iy, ix = layer.input_size
            entry["pr_loop_dims"] = ["IX", "IY"]
            entry["pr_loop_sizes"] = [ix, iy]
            entry["padding"] = [[left, right], [top, bottom]]
        out.append(entry)
    return out
