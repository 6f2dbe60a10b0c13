"""Rewrites of a TFLite flatbuffer before TVM's TFLite frontend reads it.

TVM 0.27's frontend refuses or mis-lowers some ops the TFLite converter emits; ``rewrite_tflite``
turns them into ops it handles, with TFLite's integer semantics kept exactly:

- ``RESHAPE`` whose shape comes from a dynamic-batch ``SHAPE -> STRIDED_SLICE -> PACK`` chain: the
  shape input becomes a constant (the output tensor's static shape, batch 1) and the chain, now
  unused, is dropped;
- ``TRANSPOSE_CONV``: becomes an input dilation (zeros = the input zero point inserted between the
  input pixels, plus padding; exact int8 data movement, ``tflite_convert.MatchConverter``) followed by a
  stride-1 ``VALID`` ``CONV_2D`` with the spatially flipped kernel. Summing ``(x - zp) * w`` over the
  dilated input adds nothing at the inserted zero points, so the int32 accumulators, and hence the
  requantized outputs, equal TFLite's reference transpose convolution;
- operators whose outputs nothing reads any more are removed.

Only the TVM import sees the rewritten model; LiteRT (the reference) runs the original file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np

_FILE_ID = b"TFL3"


class RewriteError(ValueError):
    """A TFLite operator the rewrite cannot express (the message names the op and the reason)."""


@dataclass(frozen=True)
class InputDilation:
    """Zero-point insertion for a rewritten TRANSPOSE_CONV: ``stride - 1`` zero points between pixels,
    then ``pads`` = (top, bottom, left, right) rows/columns of zero points (negative: cropped)."""

    stride: tuple[int, int]
    pads: tuple[int, int, int, int]


@dataclass
class Rewritten:
    """The rewritten flatbuffer and what the converter needs to import it."""

    data: bytes
    input_dilations: dict[str, InputDilation] = field(default_factory=dict)  # output tensor name -> dilation
    notes: list[str] = field(default_factory=list)  # one line per rewrite (TFLite op names)


def _schema():
    from ai_edge_litert import schema_py_generated as schema  # the TFLite schema with the object API

    return schema


def _op_name(schema, model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


def _opcode_index(schema, model, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _add_buffer(schema, model, array: np.ndarray) -> int:
    buf = schema.BufferT()
    buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
    model.buffers.append(buf)
    return len(model.buffers) - 1


def _add_tensor(schema, model, graph, name: str, shape, dtype: int, buffer: int = 0, quant: Any = None) -> int:
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), np.asarray(shape, np.int32), dtype, buffer
    tensor.quantization = quant
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _const(model, graph, index: int) -> np.ndarray | None:
    tensor = graph.tensors[index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = {2: np.int32, 9: np.int8, 0: np.float32, 4: np.int64}.get(int(tensor.type))
    if dtype is None:
        return None
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype).reshape(tuple(int(d) for d in tensor.shape))


def _producers(graph) -> dict[int, int]:
    return {int(t): i for i, op in enumerate(graph.operators) for t in (op.outputs if op.outputs is not None else [])}


def _resolve_reshapes(schema, model, graph, out: Rewritten) -> None:
    producers = _producers(graph)
    reshape = schema.BuiltinOperator.RESHAPE
    for op in graph.operators:
        if _op_name(schema, model, op) != "RESHAPE" or op.inputs is None or len(op.inputs) < 2:
            continue
        shape_index = int(op.inputs[1])
        if shape_index < 0 or shape_index not in producers:
            continue  # already constant
        target = [int(d) for d in graph.tensors[int(op.outputs[0])].shape]
        if any(d < 1 for d in target):
            raise RewriteError(f"RESHAPE to {graph.tensors[int(op.outputs[0])].name!r}: output shape {target[:8]} is not static")
        name = graph.tensors[shape_index].name.decode() + "/match_static_shape"
        index = _add_tensor(schema, model, graph, name, [len(target)], schema.TensorType.INT32,
                            _add_buffer(schema, model, np.asarray(target, np.int32)))
        op.inputs = np.asarray([int(op.inputs[0]), index], np.int32)
        out.notes.append(f"RESHAPE {graph.tensors[int(op.outputs[0])].name.decode()!r}: dynamic-batch shape chain resolved to {target}")
    del reshape


def _same_pads(in_size: int, out_size: int, kernel: int, stride: int, padding: int, schema) -> int:
    """TFLite's leading padding of a transpose convolution (``ComputePaddingHeightWidth`` on the output size)."""
    if padding == schema.Padding.SAME:
        n = (out_size + stride - 1) // stride
    else:
        n = (out_size - kernel + stride) // stride
    return max((n - 1) * stride + kernel - out_size, 0) // 2


def _rewrite_transpose_convs(schema, model, graph, out: Rewritten) -> None:
    new_ops = []
    conv_code = _opcode_index(schema, model, schema.BuiltinOperator.CONV_2D)
    for op in graph.operators:
        if _op_name(schema, model, op) != "TRANSPOSE_CONV":
            new_ops.append(op)
            continue
        inputs = [int(i) for i in op.inputs]
        output = graph.tensors[int(op.outputs[0])]
        what = f"TRANSPOSE_CONV {output.name.decode()!r}"
        weights = _const(model, graph, inputs[1])
        if weights is None or weights.ndim != 4 or weights.dtype != np.int8:
            raise RewriteError(f"{what}: weights must be a constant int8 OHWI tensor")
        x = graph.tensors[inputs[2]]
        opts = op.builtinOptions
        stride = (int(opts.strideH), int(opts.strideW))
        _, in_h, in_w, _ = (int(d) for d in x.shape)
        _, out_h, out_w, _ = (int(d) for d in output.shape)
        k_h, k_w = int(weights.shape[1]), int(weights.shape[2])
        pads = []
        for in_size, out_size, k, s in ((in_h, out_h, k_h, stride[0]), (in_w, out_w, k_w, stride[1])):
            lead = _same_pads(in_size, out_size, k, s, int(opts.padding), schema)
            front = k - 1 - lead
            if front < 0:
                raise RewriteError(f"{what}: padding {lead} larger than kernel - 1 ({k - 1}) is not supported")
            pads += [front, out_size + k - 1 - ((in_size - 1) * s + 1) - front]
        dilation = InputDilation(stride, (pads[0], pads[1], pads[2], pads[3]))
        dilated_shape = [1, (in_h - 1) * stride[0] + 1 + pads[0] + pads[1], (in_w - 1) * stride[1] + 1 + pads[2] + pads[3],
                         int(x.shape[3])]
        name = x.name.decode() + "/match_input_dilation"
        dilated = _add_tensor(schema, model, graph, name, dilated_shape, x.type, 0, x.quantization)
        out.input_dilations[name] = dilation
        move = schema.OperatorT()
        move.opcodeIndex, move.inputs, move.outputs = op.opcodeIndex, np.asarray([inputs[2]], np.int32), np.asarray([dilated], np.int32)
        flipped = np.ascontiguousarray(weights[:, ::-1, ::-1, :])
        w_tensor = graph.tensors[inputs[1]]
        w_index = _add_tensor(schema, model, graph, w_tensor.name.decode() + "/match_flipped", flipped.shape, w_tensor.type,
                              _add_buffer(schema, model, flipped), w_tensor.quantization)
        conv = schema.OperatorT()
        conv.opcodeIndex = conv_code
        bias = inputs[3] if len(inputs) > 3 and inputs[3] >= 0 else -1
        conv.inputs = np.asarray([dilated, w_index] + ([bias] if bias >= 0 else []), np.int32)
        conv.outputs = np.asarray([int(op.outputs[0])], np.int32)
        conv.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
        conv_opts = schema.Conv2DOptionsT()
        conv_opts.padding, conv_opts.strideH, conv_opts.strideW = schema.Padding.VALID, 1, 1
        conv_opts.dilationHFactor = conv_opts.dilationWFactor = 1
        conv_opts.fusedActivationFunction = int(getattr(opts, "fusedActivationFunction", 0))
        conv.builtinOptions = conv_opts
        new_ops += [move, conv]
        out.notes.append(f"{what}: input dilation (stride {stride}, pads {dilation.pads}) + CONV_2D with the flipped kernel")
    graph.operators = new_ops


def _drop_dead(schema, model, graph, out: Rewritten) -> None:
    outputs = {int(t) for t in graph.outputs}
    while True:
        read = {int(t) for op in graph.operators for t in (op.inputs if op.inputs is not None else [])} | outputs
        dead = [op for op in graph.operators if op.outputs is not None and all(int(t) not in read for t in op.outputs)]
        if not dead:
            return
        for op in dead:
            out.notes.append(f"{_op_name(schema, model, op)} {graph.tensors[int(op.outputs[0])].name.decode()!r}: unused, dropped")
        graph.operators = [op for op in graph.operators if op not in dead]


def needs_rewrite(data: bytes) -> bool:
    """Whether ``rewrite_tflite`` would change anything (cheap check on the flatbuffer)."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == 67:  # TRANSPOSE_CONV
            return True
        if builtin == 22 and op.InputsLength() > 1:  # RESHAPE with a shape input produced by an op
            shape_index = op.Inputs(1)
            for j in range(graph.OperatorsLength()):
                other = graph.Operators(j)
                if any(other.Outputs(k) == shape_index for k in range(other.OutputsLength())):
                    return True
    return False


def rewrite_tflite(data: bytes) -> Rewritten:
    """The model with the rewrites above applied to subgraph 0 (``data`` unchanged if none applies)."""
    if not needs_rewrite(data):
        return Rewritten(data)
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    out = Rewritten(b"")
    _resolve_reshapes(schema, model, graph, out)
    _rewrite_transpose_convs(schema, model, graph, out)
    _drop_dead(schema, model, graph, out)
    builder = flatbuffers.Builder(max(1024, len(data) + 4096))
    builder.Finish(model.Pack(builder), file_identifier=_FILE_ID)
    out.data = bytes(builder.Output())
    return out
