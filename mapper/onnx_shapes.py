"""Read an ONNX model's layer shapes as a layer graph for mapping (needs the ``onnx`` package).

This is the workload reader (like ZigZag's ONNX parser): layer kinds, loop extents, strides,
dilations and padding, with the graph's data dependences. It needs neither TVM nor quantization
parameters, and reads float and QDQ int8 models alike (``DequantizeLinear``/``QuantizeLinear`` and
other shape-preserving ops are looked through). To compile a model use ``tvm_bridge``.

Layers: ``Conv`` (NCHW; ``group == channels`` -> depthwise, other ``group > 1`` -> a grouped
``conv2d``: G groups of K/G output and C/G input channels), ``ConvInteger``/``QLinearConv``,
``Gemm``/``MatMul`` with a 2-D constant weight -> dense, ``Add`` of two same-shape activations,
``AveragePool``/``MaxPool``/``GlobalAveragePool``/``GlobalMaxPool`` -> pool. Other compute ops are
logged and left out of the graph (``graph.graph["skipped"]`` lists them); an op we cannot size is
an error naming the node and what is allowed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import networkx as nx

from mapper.graph import layer_graph
from mapper.workload import Layer, LayerError, Precision, add, conv2d, dense, depthwise, pool

log = logging.getLogger(__name__)

#: Element-wise and shape-only ops looked through when tracing which layer produced a tensor.
PASS_THROUGH = frozenset({"DequantizeLinear", "QuantizeLinear", "Relu", "Clip", "Cast", "Identity", "LeakyRelu",
                          "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "BatchNormalization", "Dropout",
                          "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
_CONV = ("Conv", "ConvInteger", "QLinearConv")
_POOL = ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool")
_DENSE = ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul")


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load(source: Any):
    """(shape-inferred ``ModelProto``, name for messages). Weights stored as external data are not
    read (only their shapes are needed), so a model whose external data files are missing loads."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError as exc:  # pragma: no cover - exercised only without onnx
        raise LayerError("mapper.from_onnx needs the 'onnx' package (pip install onnx)") from exc
    if isinstance(source, (str, Path)):
        where, path = str(source), Path(source)
        if not path.is_file():
            raise LayerError(f"{where}: no such file")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        where, data = "<onnx bytes>", bytes(source)
    elif isinstance(source, onnx.ModelProto):
        where, data = "<onnx model>", None
    else:
        raise LayerError(f"mapper.from_onnx: expected an .onnx path, model bytes or an onnx.ModelProto, got "
                         f"{_clip(type(source).__name__)}")
    if data is not None:
        if not data:
            raise LayerError(f"{where}: not an ONNX model (the file is empty)")
        try:
            model = onnx.load_model_from_string(data)  # external data is not loaded
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others for non-models
            raise LayerError(f"{where}: not an ONNX model ({_clip(str(exc))})") from exc
    else:
        model = source
    if model.ir_version < 1 or not model.opset_import or not model.graph.node:
        raise LayerError(f"{where}: not an ONNX model (ir_version {model.ir_version}, {len(model.opset_import)} opset "
                         f"imports, {len(model.graph.node)} graph nodes; a model has an IR version, an opset and nodes)")
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for inconsistent models
        raise LayerError(f"{where}: ONNX shape inference failed: {type(exc).__name__}: {_clip(str(exc))}") from exc
    return inferred, where


def _shapes(model) -> dict[str, tuple[int, ...]]:
    out = {}
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    for v in values:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[v.name] = tuple(int(d.dim_value) for d in dims)
    for init in model.graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(node, attrs: dict) -> Union[str, tuple[int, int, int, int]]:
    """ONNX ``auto_pad``/``pads`` (begin_h, begin_w, end_h, end_w) -> ours (top, bottom, left, right)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if auto == "SAME_LOWER":
            raise LayerError(f"node {node.name!r}: auto_pad SAME_LOWER is not supported (allowed: NOTSET, VALID, SAME_UPPER)")
        return "same"
    if auto == "VALID":
        return "valid"
    top, left, bottom, right = (list(attrs.get("pads", [0, 0, 0, 0])) + [0, 0, 0, 0])[:4]
    return (int(top), int(bottom), int(left), int(right))


def _pair(attrs: dict, key: str, default: int = 1) -> tuple[int, int]:
    value = list(attrs.get(key, [default, default]))
    return (int(value[0]), int(value[1]))


def from_onnx(source: Any, name: Optional[str] = None, precision: Optional[Precision] = None) -> nx.DiGraph:
    """Layer graph of an ONNX model (path, model bytes or ``onnx.ModelProto``); see the module docstring.

    Raises ``LayerError`` naming the file for anything that is not an ONNX model with at least one
    layer the mapper models. External weight data is never read: only shapes are needed.

    Layers get ``precision`` (default int8 operands, 32-bit accumulators: the MCU deployment the
    mapper targets, whatever the model's own data types).
    """
    model, where = _load(source)
    shapes = _shapes(model)
    initializers = {init.name for init in model.graph.initializer}
    producer: dict[str, Any] = {out: node for node in model.graph.node for out in node.output}
    layer_of: dict[str, str] = {}  # tensor -> layer producing it (through pass-through ops)
    layers: list[Layer] = []
    edges: list[tuple[str, str, str]] = []
    skipped: list[str] = []

    def source_layer(tensor: str) -> Optional[str]:
        seen = set()
        while tensor not in layer_of and tensor in producer and tensor not in seen:
            seen.add(tensor)
            node = producer[tensor]
            if node.op_type not in PASS_THROUGH or not node.input:
                return None
            tensor = node.input[0]
        return layer_of.get(tensor)

    def shape(tensor: str, node) -> tuple[int, ...]:
        if tensor not in shapes:
            raise LayerError(f"{where}: node {node.name!r} ({node.op_type}): shape of {tensor!r} unknown (dynamic shapes are "
                             "not supported)")
        return shapes[tensor]

    for index, node in enumerate(model.graph.node):
        op = node.op_type
        label = node.name or f"{op.lower()}_{index}"
        attrs = _attrs(node)
        data = [t for t in node.input if t and t not in initializers]
        out = node.output[0]
        layer = None
        if op in _CONV:
            x = node.input[0]
            w = node.input[3] if op == "QLinearConv" else node.input[1]
            n, c, ih, iw = shape(x, node)
            k, c_per_group, fy, fx = shape(w, node)
            group = int(attrs.get("group", 1))
            stride, dilation = _pair(attrs, "strides"), _pair(attrs, "dilations")
            padding = _pads(node, attrs)
            if group == 1:
                layer = conv2d(label, input_size=(ih, iw), in_channels=c, out_channels=k, kernel=(fy, fx), stride=stride,
                               dilation=dilation, padding=padding, batch=n)
            elif group == c and c_per_group == 1 and k % c == 0:
                layer = depthwise(label, input_size=(ih, iw), channels=c, kernel=(fy, fx), stride=stride, dilation=dilation,
                                  padding=padding, multiplier=k // c, batch=n)
            elif group >= 1 and c_per_group * group == c and k % group == 0:
                layer = conv2d(label, input_size=(ih, iw), in_channels=c, out_channels=k, kernel=(fy, fx), stride=stride,
                               dilation=dilation, padding=padding, groups=group, batch=n)
            else:
                raise LayerError(f"{where}: node {label!r} (Conv): group {group} does not fit its {c} input channels, weight "
                                 f"shape {(k, c_per_group, fy, fx)} (allowed: group >= 1 dividing the input and output "
                                 "channels, weight input channels = input channels / group)")
            data = [x]
        elif op in _DENSE:
            a = node.input[0]
            b = node.input[3] if op == "QLinearMatMul" else node.input[1]
            a_shape, b_shape = shape(a, node), shape(b, node)
            if len(b_shape) != 2 or len(a_shape) != 2:
                skipped.append(f"{label} ({op} of shapes {a_shape} x {b_shape})")
            else:
                trans_b = int(attrs.get("transB", 0)) if op == "Gemm" else 0
                out_features = b_shape[0] if trans_b else b_shape[1]
                layer = dense(label, in_features=a_shape[1], out_features=out_features, batch=a_shape[0])
                data = [a]
        elif op == "Add" and len(data) == 2 and shape(data[0], node) == shape(data[1], node) and len(shape(out, node)) == 4:
            n, c, h, w = shape(out, node)
            layer = add(label, size=(h, w), channels=c, batch=n)
        elif op in _POOL:
            n, c, ih, iw = shape(node.input[0], node)
            if op.startswith("Global"):
                layer = pool(label, input_size=(ih, iw), channels=c, kernel=(ih, iw), batch=n)
            else:
                kernel = _pair(attrs, "kernel_shape")
                stride = _pair(attrs, "strides")
                layer = pool(label, input_size=(ih, iw), channels=c, kernel=kernel, stride=stride,
                             padding=_pads(node, attrs), batch=n)
            data = [node.input[0]]
        elif op not in PASS_THROUGH and op not in ("Softmax", "Shape", "Gather", "Concat", "Constant"):
            skipped.append(f"{label} ({op})")
        if layer is None:
            continue
        if precision is not None:
            layer = Layer(layer.name, layer.kind, layer.sizes, layer.stride, layer.dilation, layer.padding, precision)
        layers.append(layer)
        layer_of[out] = label
        for tensor in data:
            src = source_layer(tensor)
            if src is not None:
                edges.append((src, label, tensor))
    for entry in skipped:
        log.warning("%s: %s is not a layer the mapper models; it is left out of the graph", where, entry)
    if not layers:
        skipped_text = _clip(", ".join(skipped) or "none")
        raise LayerError(f"{where}: no layer the mapper models (allowed: {', '.join(_CONV + _DENSE + _POOL)}, Add); "
                         f"ops left out: {skipped_text}")
    graph = layer_graph(layers, edges=edges, name=name or (Path(where).stem if not where.startswith("<") else "onnx"))
    graph.graph["skipped"] = skipped
    return graph

