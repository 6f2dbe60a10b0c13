"""``compile(model, soc)``: the whole flow, and ``CompiledModel`` to run, inspect and export the result.

import -> ``partition_for(soc)`` (mapper schedules attached) -> ``RunCodegen`` (``relax.ext.match``:
generated C per offloaded layer) -> ``tvm.compile(target="llvm")`` for everything left on the host
-> ``export_library`` (g++) into a private directory -> loaded back and run by TVM's VM. The
loaded library is kept so the per-layer entry points and run-time counters can be called directly.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import tvm
from tvm import relax

import archs
from archs.model import SoC
from mapper.memory_plan import MemoryPlan
from mapper.schedule import Schedule
from tvm_bridge import _compat as compat
from tvm_bridge.build import PrecompiledSource, linker
from tvm_bridge.c_emitter import N_COUNTERS
from tvm_bridge.memory import MemoryOverflowError, plan_memory
from tvm_bridge.onnx_layout import layout_transposes
from tvm_bridge.partition import partition_for
from tvm_bridge.relax_codegen import CodegenSink, OffloadedFunction
from tvm_bridge.relax_import import BridgeError, ModelLike, load_model, main_function
from tvm_bridge.toolchain import c_compiler

log = logging.getLogger(__name__)

#: LLVM optimisation level of TVM's host code when convolutions/matmuls of at least
#: ``HOST_MACS_FOR_OPT`` multiply-accumulates run there (level 1: ~3 s faster builds than TVM's default,
#: same run time) ...
HOST_OPT_LEVEL = 1
HOST_MACS_FOR_OPT = 1_000_000
#: ... and otherwise (element-wise integer ops, reductions, data movement, tiny convs): level 0 builds
#: MobileNetV2-0.35 in 4-6 s instead of 17-19 s (loaded 2-core machine) with the same run time
HOST_OPT_LEVEL_FEW_MACS = 0


def host_macs(mod: tvm.IRModule) -> int:
    """Multiply-accumulates of the conv2d/matmul calls left in ``mod``'s host (non-offloaded) functions."""
    total = [0]

    def visit(expr) -> None:
        if not isinstance(expr, relax.Call):
            return
        name = compat.op_name(expr)
        if name in ("relax.nn.conv2d", "relax.matmul"):
            out, weight = compat.tensor_shape(expr), compat.tensor_shape(expr.args[1])
            if out is None or weight is None:
                total[0] += HOST_MACS_FOR_OPT  # unknown: count as heavy
            elif name == "relax.matmul":
                total[0] += int(np.prod(out)) * int(weight[-2])
            else:
                layout = str(expr.attrs.kernel_layout)
                reduce = [d for axis, d in zip(layout, weight) if axis in "HWI"]
                total[0] += int(np.prod(out)) * int(np.prod(reduce))

    for func in mod.functions.values():
        if isinstance(func, relax.Function) and compat.function_attr(func, "Codegen") is None:
            relax.analysis.post_order_visit(func.body, visit)
    return total[0]


def _host_opt_level(mod: tvm.IRModule) -> int:
    return HOST_OPT_LEVEL if host_macs(mod) >= HOST_MACS_FOR_OPT else HOST_OPT_LEVEL_FEW_MACS


#: what ``compile`` does when the model does not fit the SoC's outermost memory (``MemoryPlan.fits``)
MEMORY_OVERFLOW_ACTIONS = ("raise", "warn")
DEFAULT_CC_OPTIONS = ("-O3",)  # -O3 vectorises the kernels: ~3x faster runs than -O2, same build time


@dataclass(frozen=True)
class LevelCounters:
    """Traffic of one schedule ``TileLevel`` (operand tile in ``memory``, filled from ``outer_memory``)."""

    operand: str
    memory: str
    outer_memory: str
    bytes_in: int
    bytes_out: int
    transfers_in: int
    transfers_out: int
    runs_in: int  # contiguous runs of the transfers (rows / planes of 2-D / 3-D transfers)
    runs_out: int


class CompiledModel:
    """A model compiled for ``soc``: offloaded layers run the generated C, the rest TVM's host code.

    ``schedules``: layer -> ``Schedule`` for every recognised layer (host layers: their host
    schedule); ``offloaded``: layer -> whether it runs generated code; ``functions``: what the codegen
    produced per offloaded function; ``timings``: seconds per compilation step; ``memory_plan()``: the
    static plan of the SoC's outermost memory; ``layout_transposes``: the NCHW<->NHWC int8 transposes
    an ONNX model's layers need, which run in TVM's host code ((direction, shape, bytes) each,
    ``tvm_bridge.onnx_layout``).
    """

    def __init__(self, mod: tvm.IRModule, soc: SoC, schedules: dict[str, Schedule], offloaded: dict[str, bool],
                 functions: list[OffloadedFunction], library_path: Path, workdir: Path, timings: dict[str, float],
                 plan: MemoryPlan):
        self.mod, self.soc = mod, soc  # mod: the partitioned module (before RunCodegen)
        self._plan = plan
        self.schedules, self.offloaded = schedules, offloaded
        self.functions = functions
        self.timings = timings
        self._workdir = workdir
        self._library_path = library_path
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(workdir), True)
        self.library = tvm.runtime.load_module(str(library_path))
        self.vm = compat.virtual_machine(self.library)
        self._function_of = {name: f for f in functions for name in f.layers}
        main = main_function(mod)
        self.input_shapes = [compat.tensor_shape(p) for p in main.params]
        self.input_dtypes = [compat.tensor_dtype(p) for p in main.params]
        self.layout_transposes = layout_transposes(mod)

    # ------------------------------------------------------------------ running
    def run(self, *inputs: np.ndarray, reset_counters: bool = True) -> np.ndarray:
        """Run the model on numpy input(s) (shapes/dtypes of ``main``'s parameters); returns numpy.

        Counters are reset first unless ``reset_counters`` is false (then they accumulate).
        """
        if len(inputs) != len(self.input_shapes):
            raise BridgeError(f"the model takes {len(self.input_shapes)} input(s), got {len(inputs)}")
        args = []
        for i, (x, shape, dtype) in enumerate(zip(inputs, self.input_shapes, self.input_dtypes)):
            x = np.asarray(x)
            if tuple(x.shape) != tuple(shape) or str(x.dtype) != dtype:
                raise BridgeError(f"model input {i}: expected {dtype} {tuple(shape)}, got {x.dtype} {tuple(x.shape)}")
            if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
                bad = x[~np.isfinite(x)].flat[0]
                raise BridgeError(f"model input {i}: expected finite {dtype} values, got {bad} "
                                  f"({int(np.count_nonzero(~np.isfinite(x)))} non-finite elements)")
            args.append(compat.to_runtime_tensor(x))
        if reset_counters:
            self.reset_counters()
        result = self.vm["main"](*args)
        return result.numpy() if hasattr(result, "numpy") else np.asarray([r.numpy() for r in result])

    def run_layer(self, name: str, *inputs: np.ndarray) -> np.ndarray:
        """Run one offloaded layer's generated code alone on int8 input(s) with as many elements as its
        Relax inputs (e.g. LiteRT's tensors; for an add, the left operand first). Counters accumulate.

        Inputs of another dtype are accepted only if every value is an integer in -128..127;
        NaN, infinities, fractions, out-of-range values and wrong sizes raise ``BridgeError``."""
        from tvm_bridge.relax_graph import input_order

        func = self._offloaded_function(name)
        external = self.mod[func.symbol]
        params = [compat.tensor_shape(p) for p in external.params]
        order = input_order(external)
        if len(inputs) != len(params):
            raise BridgeError(f"layer {name!r} takes {len(params)} input(s), got {len(inputs)}")
        by_param = [None] * len(params)
        for layer_index, param_index in enumerate(order):
            by_param[param_index] = _int8_input(name, layer_index, inputs[layer_index], params[param_index])
        args = [compat.to_runtime_tensor(x) for x in by_param]
        out_shape = func.layer.quant.extra["output_shape"]
        out = compat.to_runtime_tensor(np.zeros(out_shape, np.int8))
        self._entry(func.symbol)(*args, out)
        return out.numpy()

    # ------------------------------------------------------------------ memory
    def memory_plan(self) -> MemoryPlan:
        """The static plan of the SoC's outermost on-chip memory (L2 on GAP9 and DIANA), ``mapper.memory_plan``:
        activations and scratch placed by liveness, weights, peak bytes vs capacity (``fits``), per layer
        the bytes of each on-chip memory it uses (``level_bytes``); ``print`` it for a table.
        Built by ``tvm_bridge.memory.plan_memory`` during ``compile``."""
        return self._plan

    # ------------------------------------------------------------------ counters
    def counters(self) -> dict[str, list[LevelCounters]]:
        """Measured traffic per offloaded layer and schedule level since the last reset (bytes, transfers, runs).

        A function TVM shared between several identical layers counts all their calls; each of those
        layers is reported with the total divided by the number of layers.
        """
        out = {}
        for func in self.functions:
            read = self._entry(f"{func.symbol}_counter")
            values = [int(read(i)) for i in range(int(self._entry(f"{func.symbol}_num_counters")()))]
            share = len(func.layers)
            levels = [LevelCounters(lv.operand, lv.memory, lv.outer_memory,
                                    *(values[N_COUNTERS * i + k] // share for k in range(N_COUNTERS)))
                      for i, lv in enumerate(func.schedule.levels)]
            for name in func.layers:
                out[name] = levels
        return out

    def predicted_counters(self) -> dict[str, list[LevelCounters]]:
        """The mapper's predicted traffic per offloaded layer and level (what ``counters`` must equal after one run)."""
        return {name: [LevelCounters(lv.operand, lv.memory, lv.outer_memory, _exact_int(lv.bytes_in), _exact_int(lv.bytes_out),
                                     lv.transfers_in, lv.transfers_out, lv.runs_in, lv.runs_out)
                      for lv in self.schedules[name].levels]
                for name, on in self.offloaded.items() if on}

    def reset_counters(self) -> None:
        for func in self.functions:
            self._entry(f"{func.symbol}_reset_counters")()

    # ------------------------------------------------------------------ export
    def export(self, path: Union[str, Path]) -> Path:
        """Write the shared library and the generated sources; returns the library path.

        ``path`` ending in ``.so``: the library there and the sources in ``<stem>_src/`` beside it;
        otherwise ``path`` is a directory receiving ``model.so`` and ``src/``. ``src/`` holds one C file
        per offloaded layer (as ``c_emitter`` emits it, including ``match_target.h``), the header, the
        whole C++ translation unit TVM compiled (``tvm_module.cc``: layers + TVM-FFI wrappers) and
        ``schedules.json``.
        """
        from tvm_bridge.c_emitter import HEADER_PATH, emit_layer

        path = Path(path)
        if path.suffix == ".so":
            library, sources = path, path.parent / f"{path.stem}_src"
        else:
            library, sources = path / "model.so", path / "src"
        sources.mkdir(parents=True, exist_ok=True)
        library.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._library_path, library)
        shutil.copyfile(HEADER_PATH, sources / HEADER_PATH.name)
        for func in self.functions:
            readable = emit_layer(func.layer, func.schedule, self.soc, f"{func.symbol}_layer", inline_target=False)
            (sources / f"{'_'.join(func.layers)}.c").write_text(readable.source)
        (sources / "tvm_module.cc").write_text(self.module_source())
        (sources / "schedules.json").write_text(json.dumps(
            {name: {"offloaded": self.offloaded[name], "schedule": s.to_dict()} for name, s in self.schedules.items()}, indent=1))
        return library

    def module_source(self) -> str:
        """The C++ source TVM compiled for the offloaded layers."""
        return _module_source(self.functions)

    # ------------------------------------------------------------------ helpers
    def _offloaded_function(self, name: str) -> OffloadedFunction:
        if name not in self.schedules:
            raise BridgeError(f"no layer {name!r} (layers: {', '.join(self.schedules)})")
        if name not in self._function_of:
            raise BridgeError(f"layer {name!r} is not offloaded: it runs on the host ({self.soc.host})")
        return self._function_of[name]

    def _entry(self, symbol: str):
        func = compat.get_module_function(self.library, symbol)
        if func is None:
            raise BridgeError(f"the compiled library exports no function {symbol!r}")
        return func


def _module_source(functions: Sequence[OffloadedFunction]) -> str:
    """The C++ translation unit ``relax.ext.match`` produces for ``functions`` (same text, same order)."""
    from tvm_bridge.relax_codegen import FFI_PRELUDE

    return "\n".join([FFI_PRELUDE] + [p for f in functions for p in (f.generated.source, f.wrapper)])


def _int8_input(layer: str, index: int, x: object, shape: Sequence[int]) -> np.ndarray:
    """Input ``index`` of ``layer`` as an int8 array of ``shape``; ``BridgeError`` if its size differs or
    a value is not an integer in -128..127 (never a silent cast)."""
    x = np.asarray(x)
    expected = f"int8 {tuple(shape)} ({int(np.prod(shape))} elements)"
    given = f"{x.dtype} {tuple(x.shape)}"
    if x.size != int(np.prod(shape)):
        raise BridgeError(f"layer {layer!r} input {index}: expected {expected}, got {given}")
    if x.dtype == np.int8:
        return x.reshape(shape)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise BridgeError(f"layer {layer!r} input {index}: expected {expected}, got {given} (not numeric)")
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x) | (np.where(np.isfinite(x), x, 0) != np.round(np.where(np.isfinite(x), x, 0)))
    else:
        bad = np.zeros(x.shape, bool)
    bad |= (np.where(bad, 0, x) < -128) | (np.where(bad, 0, x) > 127)
    if bad.any():
        raise BridgeError(f"layer {layer!r} input {index}: expected {expected} values (integers in -128..127), got "
                          f"{given} with {int(np.count_nonzero(bad))} other value(s), e.g. {x[bad].flat[0]}")
    return x.astype(np.int8).reshape(shape)


def _exact_int(value: float):
    """An integral prediction as int; a fractional one stays float (so it never equals a measured count)."""
    return int(value) if float(value).is_integer() else float(value)


def compile(model: ModelLike, soc: Union[SoC, str, Path], objective: str = "latency", policy: str = "best",  # noqa: A001
            modules: Optional[Sequence[str]] = None, exact_host: bool = True,
            cc_options: Sequence[str] = DEFAULT_CC_OPTIONS, memory_overflow: str = "raise") -> CompiledModel:
    """Import ``model`` (.tflite/.onnx path, bytes or Relax IRModule), offload the layers ``soc``'s
    accelerators should run (``objective``/``policy``/``modules``/``exact_host`` as in ``partition_for``),
    generate their C code, compile everything for the host and load it.

    ``soc``: an ``archs.SoC`` or a name/path for ``archs.load``. ``cc_options``: flags for g++
    building the shared library; the generated C++ compiles while LLVM builds the host code and its
    object is cached by content (``tvm_bridge.build``). Timings per step are in
    ``CompiledModel.timings`` (seconds; ``cxx_cache_hit`` is 1.0 when the C++ object came from the cache).
    Needs a C/C++ compiler (``tvm_bridge.toolchain.c_compiler``: ``BridgeError`` saying what to
    install when there is none).

    After code generation the SoC's outermost memory is planned (``CompiledModel.memory_plan``). A model
    whose weights, live activations and scratch exceed it raises ``tvm_bridge.MemoryOverflowError`` (a ``BridgeError``)
    naming the largest live set (step, layer, tensors, bytes vs capacity) before the host build;
    ``memory_overflow="warn"`` logs that message as a warning and builds anyway.
    """
    if memory_overflow not in MEMORY_OVERFLOW_ACTIONS:
        raise ValueError(f"memory_overflow must be one of {', '.join(MEMORY_OVERFLOW_ACTIONS)}, got {memory_overflow!r}")
    c_compiler()  # fail before the import and mapping work when nothing can build the result
    timings: dict[str, float] = {}
    start = time.perf_counter()
    mod = load_model(model)
    soc = soc if isinstance(soc, SoC) else archs.load(soc)
    timings["import_s"] = time.perf_counter() - start

    start = time.perf_counter()
    partition = partition_for(soc, objective, policy, modules, exact_host)
    part = partition(mod)
    timings["partition_and_mapping_s"] = time.perf_counter() - start

    start = time.perf_counter()
    sink = CodegenSink()
    built = relax.transform.RunCodegen({"match": {"sink": sink.key}})(part)
    timings["codegen_s"] = time.perf_counter() - start

    start = time.perf_counter()
    plan = plan_memory(mod, soc, partition.schedules, partition.offloaded,
                       {name: f.generated for f in sink.functions for name in f.layers})
    timings["memory_plan_s"] = time.perf_counter() - start
    if not plan.fits:
        if memory_overflow == "raise":
            raise MemoryOverflowError(plan.overflow_message() + " (compile(..., memory_overflow=\"warn\") builds anyway)")
        log.warning("%s", plan.overflow_message())

    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="match_bridge_"))
    library = workdir / "model.so"
    pre = None
    try:
        if sink.functions:  # g++ on the generated C++ runs while LLVM builds the host code
            pre = PrecompiledSource(_module_source(sink.functions), workdir, list(cc_options))
        try:
            executable = compat.compile_relax(built, "llvm", opt_level=_host_opt_level(built))
        except Exception as exc:  # noqa: BLE001 - TVM raises InternalError/TVMError for ops it cannot lower
            last = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ""
            raise BridgeError(f"TVM cannot build the host code of this model ({type(exc).__name__}: {last}); "
                              "an op left on the host has no lowering (see the import warnings)") from exc
        executable.export_library(str(library), fcompile=linker(pre), options=list(cc_options))
    except Exception:
        if pre is not None:
            pre.cancel()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    timings["build_s"] = time.perf_counter() - start
    timings["cxx_cache_hit"] = float(bool(pre is not None and pre.cache_hit))

    model_ = CompiledModel(part, soc, dict(partition.schedules), dict(partition.offloaded), list(sink.functions), library,
                           workdir, timings, plan)
    host = [n for n, on in model_.offloaded.items() if not on]
    log.info("compiled for %s: %d layers offloaded, %d on the host (%s); %s", soc.name, len(model_.functions),
             len(host), ", ".join(host) or "none", ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    return model_
