"""Verification step of ``python -m benchmarks.mlperf_tiny``: compile the model-aware mapping with the
TVM bridge and check what it runs against LiteRT's reference kernels.

For one model and target, ``verify_model`` compiles the .tflite with
``tvm_bridge.compile(path, soc, policy="best")`` and, for a few seeded random int8 inputs, runs the
compiled model and LiteRT (``tvm_bridge.LiteRTReference``, every intermediate tensor kept). It passes
when

- the compiled model runs the schedules the benchmark reports (same module and predicted cycles per
  layer as ``mapper.map_network(graph, soc, policy="best")``), with every layer on a non-host module
  offloaded to generated code;
- every offloaded layer's generated code, fed LiteRT's own input tensor(s) of that layer, reproduces
  LiteRT's output tensor bit for bit;
- the bytes, transfers and contiguous runs the generated code counted during a whole-model run equal the mapper's
  prediction (per schedule level).

The end-to-end output difference (LSB) and top-1 agreement with LiteRT are recorded, not judged
(host layers run TVM's own lowering). Any exception from the bridge is a failed verification with
its message.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from archs.model import SoC
from mapper.schedule import NetworkSchedule

log = logging.getLogger(__name__)

#: relative tolerance when comparing the compiled model's predicted cycles with the benchmark's
LATENCY_RTOL = 1e-9


@dataclass
class Verification:
    """Outcome of verifying one model on one target.

    ``passed``: the verdict; ``failures``: one message per failed check (empty when passed);
    ``offloaded_layers`` / ``host_layers``: layer counts of the compiled model; ``inputs``: random
    inputs run; ``layer_checks``: offloaded-layer comparisons made (layers x inputs);
    ``output_max_abs_diff``: largest end-to-end |compiled - LiteRT| over the inputs (int8 LSB);
    ``top1_agree``: inputs whose top-1 class agrees with LiteRT; ``compile_seconds`` /
    ``check_seconds``: wall time of ``tvm_bridge.compile`` and of the comparisons (s);
    ``compile_timings``: the bridge's own per-step timings (s); ``memory_peak_bytes``: the compiled
    model's ``memory_plan().peak_bytes`` (the benchmark checks it equals its own plan's).
    """

    passed: bool
    failures: list[str] = field(default_factory=list)
    offloaded_layers: int = 0
    host_layers: int = 0
    inputs: int = 0
    layer_checks: int = 0
    output_max_abs_diff: Optional[int] = None
    top1_agree: Optional[int] = None
    compile_seconds: float = 0.0
    check_seconds: float = 0.0
    compile_timings: dict[str, float] = field(default_factory=dict)
    memory_peak_bytes: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _schedule_mismatches(compiled: Any, best: NetworkSchedule, host: str) -> list[str]:
    """Layers where the compiled model's schedule or offload flag differs from the benchmark's ``best``."""
    failures = []
    for name, expected in best.schedules.items():
        got = compiled.schedules.get(name)
        if got is None:
            failures.append(f"{name}: not in the compiled model")
            continue
        if got.module != expected.module or not math.isclose(got.latency_cycles, expected.latency_cycles, rel_tol=LATENCY_RTOL):
            failures.append(f"{name}: compiled on {got.module} ({got.latency_cycles:.0f} cycles), "
                            f"benchmark mapped it on {expected.module} ({expected.latency_cycles:.0f} cycles)")
        if compiled.offloaded.get(name) != (expected.module != host):
            failures.append(f"{name}: offloaded={compiled.offloaded.get(name)} but mapped on {expected.module}")
    return failures


def verify_model(model_path: Path, soc: SoC, best: NetworkSchedule, inputs: int = 2, seed: int = 0) -> Verification:
    """Compile ``model_path`` for ``soc`` with the model-aware policy and compare it with LiteRT.

    ``best``: the benchmark's ``policy="best"`` mapping of the same model on ``soc`` (what the compiled
    model must run); ``inputs``: random int8 inputs to run (>= 1); ``seed``: their generator's seed.
    Never raises for a bridge failure: it is reported in ``Verification.failures``.
    """
    import tvm_bridge
    from tvm_bridge.litert_ref import LiteRTReference

    result = Verification(passed=False, inputs=inputs)
    start = time.perf_counter()
    try:
        compiled = tvm_bridge.compile(model_path, soc, policy="best", memory_overflow="warn")  # the plan reports it
    except Exception as exc:  # noqa: BLE001 - any bridge failure is a failed verification, reported
        log.exception("%s on %s: compilation failed", model_path.name, soc.name)
        result.failures.append(f"compilation failed: {type(exc).__name__}: {exc}")
        result.compile_seconds = time.perf_counter() - start
        return result
    result.compile_seconds = time.perf_counter() - start
    result.compile_timings = {k: float(v) for k, v in compiled.timings.items()}
    result.offloaded_layers = sum(bool(v) for v in compiled.offloaded.values())
    result.host_layers = len(compiled.offloaded) - result.offloaded_layers
    result.memory_peak_bytes = compiled.memory_plan().peak_bytes

    start = time.perf_counter()
    try:
        result.failures.extend(_schedule_mismatches(compiled, best, soc.host))
        reference = LiteRTReference(model_path)
        tensors_of = reference.layer_tensors(tvm_bridge.layer_graph(tvm_bridge.from_tflite(model_path)))
        rng = np.random.default_rng(seed)
        max_diff, agree = 0, 0
        for index in range(inputs):
            x = reference.random_input(rng)
            tensors = reference.run(x)
            expected = tensors[reference.name(reference.output["index"])]
            y = compiled.run(x)
            if compiled.counters() != compiled.predicted_counters():
                result.failures.append(f"input {index}: measured bytes/transfers/runs differ from the mapper's prediction")
            max_diff = max(max_diff, int(np.abs(y.astype(np.int32) - expected.astype(np.int32).reshape(y.shape)).max()))
            agree += int(np.argmax(y) == np.argmax(expected))
            for name, offloaded in compiled.offloaded.items():
                if not offloaded:
                    continue
                where = tensors_of[name]
                out = compiled.run_layer(name, *(tensors[t] for t in where.inputs))
                result.layer_checks += 1
                if not np.array_equal(out, tensors[where.output].reshape(out.shape)):
                    wrong = int(np.count_nonzero(out != tensors[where.output].reshape(out.shape)))
                    result.failures.append(f"input {index}: layer {name} differs from LiteRT in {wrong}/{out.size} values")
        result.output_max_abs_diff, result.top1_agree = max_diff, agree
    except Exception as exc:  # noqa: BLE001 - reported as a failed verification
        log.exception("%s on %s: verification raised", model_path.name, soc.name)
        result.failures.append(f"verification raised {type(exc).__name__}: {exc}")
    result.check_seconds = time.perf_counter() - start
    result.passed = not result.failures
    for failure in result.failures:
        log.error("verification %s on %s: %s", model_path.name, soc.name, failure)
    return result
