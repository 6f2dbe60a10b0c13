"""The TFLite reference: LiteRT's BUILTIN_REF kernels with every intermediate tensor preserved.

``LiteRTReference(path).run(x)`` returns every tensor (by TFLite tensor name) after one inference;
``layer_tensors(graph)`` says which TFLite tensors are the inputs and the output of each layer of a
bridge layer graph (``tvm_bridge.layer_graph``), so a layer can be fed LiteRT's own input tensor and
compared with LiteRT's output tensor. The optimised (XNNPACK) kernels differ from the reference ones
by a few LSB, and without ``experimental_preserve_all_tensors`` the arena reuses buffers, so both
settings are fixed here (with buffer reuse, 10 of ResNet-8's 16 op outputs read back wrong). The
interpreter runs in a child process (``tvm_bridge.litert_worker``): a LiteRT abort raises ``LiteRTError``
instead of killing the caller. Op details come from the interpreter's private ``_get_ops_details()``
(present in ai-edge-litert 2.x; an op's index is its flatbuffer operator index).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
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


def _worker_env() -> dict[str, str]:
    """The environment of the LiteRT child: this one, with the directory holding ``tvm_bridge`` first on
    PYTHONPATH (so the child runs the same ``tvm_bridge`` as the parent)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _stop(process: subprocess.Popen) -> None:
    try:
        pickle.dump(None, process.stdin)
        process.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        process.wait(2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


@dataclass(frozen=True)
class LayerTensors:
    """The TFLite operator of a layer and the names of its activation input(s) and output tensor."""

    op_index: int
    op_name: str
    inputs: tuple[str, ...]
    output: str


class LiteRTError(RuntimeError):
    """LiteRT failed (raised an error or killed its process, e.g. SIGABRT in a reference kernel)."""


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
        self._process = subprocess.Popen([sys.executable, "-m", "tvm_bridge.litert_worker", self.path],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_worker_env())
        self._finalizer = weakref.finalize(self, _stop, self._process)
        tensors, self.ops, self.input, self.output = self._receive("loading the model")
        self.tensors = {t["index"]: t for t in tensors}

    def _receive(self, what: str):
        try:
            status, value = pickle.load(self._process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            code = self._process.poll()
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            self.close()
            raise LiteRTError(f"{self.path}: LiteRT's process died ({how}) while {what}") from None
        if status != "ok":
            raise LiteRTError(f"{self.path}: LiteRT failed while {what}: {str(value)[:300]}")
        return value

    def _call(self, x: np.ndarray, indices: list[int]) -> dict[int, np.ndarray]:
        if self._process.poll() is not None:
            raise LiteRTError(f"{self.path}: LiteRT's process is not running (closed or died earlier)")
        try:
            pickle.dump((np.asarray(x, dtype=self.input["dtype"]), indices), self._process.stdin)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: _receive reports how
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
