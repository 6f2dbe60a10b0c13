"""The TFLite reference: LiteRT's BUILTIN_REF kernels with every intermediate tensor preserved.

``LiteRTReference(path).run(x)`` returns every tensor (by TFLite tensor name) after one inference;
``layer_tensors(graph)`` says which TFLite tensors are the inputs and the output of each layer of a
bridge layer graph (``tvm_bridge.layer_graph``), so a layer can be fed LiteRT's own input tensor and
compared with LiteRT's output tensor. The optimised (XNNPACK) kernels differ from the reference ones
by a few LSB, and without ``experimental_preserve_all_tensors`` the arena reuses buffers, so both
settings are fixed here (``docs/notes/tvm_bridge.md`` sections 4 and 5). The interpreter runs in a
child process: a LiteRT abort raises ``LiteRTError`` instead of killing the caller.
"""

from __future__ import annotations

import multiprocessing
import signal
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import networkx as nx
import numpy as np

#: TFLite builtin operator -> (layer kind, QuantParams.op values) it can become
_OP_KINDS: dict[str, tuple[set[str], set[str]]] = {
    "CONV_2D": ({"conv2d"}, {"conv2d"}),
    "DEPTHWISE_CONV_2D": ({"depthwise", "conv2d"}, {"depthwise", "conv2d"}),
    "FULLY_CONNECTED": ({"dense"}, {"dense"}),
    "ADD": ({"add"}, {"add"}),
    "AVERAGE_POOL_2D": ({"pool"}, {"avg_pool"}),
    "MAX_POOL_2D": ({"pool"}, {"max_pool"}),
}


def _stop(process, conn) -> None:
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    process.join(2)
    if process.is_alive():
        process.kill()
        process.join()
    conn.close()


@dataclass(frozen=True)
class LayerTensors:
    """The TFLite operator of a layer and the names of its activation input(s) and output tensor."""

    op_index: int
    op_name: str
    inputs: tuple[str, ...]
    output: str


class LiteRTError(RuntimeError):
    """LiteRT failed (raised an error or killed its process, e.g. SIGABRT in a reference kernel)."""


def _worker(path: str, conn) -> None:  # runs in the child process
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                                  experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
        conn.send(("ok", ([dict(t) for t in interpreter.get_tensor_details()],
                          interpreter._get_ops_details(),  # private in ai-edge-litert 2.x, index = flatbuffer op index
                          interpreter.get_input_details()[0], interpreter.get_output_details()[0])))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        request = conn.recv()
        if request is None:
            return
        x, indices = request
        try:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
            interpreter.invoke()
            conn.send(("ok", {i: interpreter.get_tensor(i).copy() for i in indices}))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class LiteRTReference:
    """A LiteRT interpreter on the reference kernels, every tensor kept after ``run``.

    The interpreter lives in a child process, so a LiteRT abort (its reference kernels call
    ``abort()`` on some inputs, e.g. a softmax input scale of ~1e-8) raises ``LiteRTError`` naming
    the model and the signal instead of killing the caller. ``close()`` (or the end of a ``with``
    block, or garbage collection) stops the process.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = str(path)
        if not Path(self.path).is_file():
            raise LiteRTError(f"{self.path}: no such model file")
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_worker, args=(self.path, child), daemon=True)
        self._process.start()
        child.close()
        self._finalizer = weakref.finalize(self, _stop, self._process, self._conn)
        tensors, self.ops, self.input, self.output = self._receive("loading the model")
        self.tensors = {t["index"]: t for t in tensors}

    def _receive(self, what: str):
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            self.close()
            raise LiteRTError(f"{self.path}: LiteRT's process died ({how}) while {what}") from None
        if status != "ok":
            raise LiteRTError(f"{self.path}: LiteRT failed while {what}: {str(value)[:300]}")
        return value

    def _call(self, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
        if not self._process.is_alive():
            raise LiteRTError(f"{self.path}: LiteRT's process is not running (closed or died earlier)")
        self._conn.send((np.asarray(x, dtype=self.input["dtype"]), indices))
        return self._receive("running an inference")

    def close(self) -> None:
        """Stop the LiteRT process."""
        self._finalizer()

    def __enter__(self) -> "LiteRTReference":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def name(self, index: int) -> str:
        return self.tensors[index]["name"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def random_input(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random int8 input of the model's input shape."""
        return rng.integers(-128, 128, size=self.input_shape, dtype=np.int8)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Run one inference; returns the model output (int8). ``LiteRTError`` if LiteRT fails or dies."""
        return self._call(x, [self.output["index"]])[self.output["index"]]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one inference; the model input and every operator output by TFLite tensor name (copies)."""
        indices = [self.input["index"]] + [i for op in self.ops for i in op["outputs"] if i >= 0]
        tensors = self._call(x, indices)
        return {self.name(i): tensors[i] for i in indices}

    def layer_tensors(self, graph: nx.DiGraph) -> dict[str, LayerTensors]:
        """Layer name -> its TFLite tensors, for every layer of a bridge ``layer_graph``.

        Layers are numbered in the module's binding order, which is the TFLite operator order, so
        each layer is matched to the next TFLite operator of a compatible type whose output shape
        (and output quantization, for MAC and add layers) agrees. Raises ``ValueError`` naming
        the layer if none does.
        """
        layers = sorted((graph.nodes[n]["layer"] for n in graph.nodes), key=lambda layer: int(layer.name.rsplit("_", 1)[1]))
        result: dict[str, LayerTensors] = {}
        position = 0
        for layer in layers:
            while position < len(self.ops):
                op = self.ops[position]
                position += 1
                if self._matches(layer, op):
                    acts = [i for i in op["inputs"][: 2 if op["op_name"] == "ADD" else 1]]
                    result[layer.name] = LayerTensors(op["index"], op["op_name"], tuple(self.name(i) for i in acts),
                                                      self.name(op["outputs"][0]))
                    break
            else:
                raise ValueError(f"layer {layer.name!r}: no matching TFLite operator in {self.path}")
        return result

    def _matches(self, layer, op: dict) -> bool:
        kinds, ops = _OP_KINDS.get(op["op_name"], (set(), set()))
        if layer.kind not in kinds or layer.quant.op not in ops:
            return False
        out = self.tensors[op["outputs"][0]]
        expected = layer.quant.extra.get("output_shape")
        if expected is not None and tuple(int(d) for d in out["shape"]) != tuple(expected):
            return False
        scale, zero_point = out["quantization"]
        if layer.quant.output_scale and not np.isclose(scale, layer.quant.output_scale, rtol=1e-6):
            return False
        return layer.quant.op in ("avg_pool", "max_pool") or zero_point == layer.quant.output_zp
