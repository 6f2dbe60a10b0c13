"""Resolve the command line's MODEL and ARCH arguments into layer graphs and SoCs.

MODEL: a ``.tflite`` / ``.onnx`` file (through ``tvm_bridge`` when TVM is importable, else
``mapper.from_onnx`` for ``.onnx``), a ZigZag workload YAML, our layer-graph JSON, or one of the
MLPerf Tiny names ``kws``, ``vww``, ``ic``, ``ad`` (``benchmarks/networks/<name>.json``).

ARCH: a shipped name (``archs.load``), one of our hardware YAMLs, or a ZigZag accelerator YAML
(detected by its top-level ``operational_array`` / ``memories`` keys, read with
``archs.from_zigzag``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Optional, Union

import networkx as nx
import yaml

import archs
import mapper

log = logging.getLogger(__name__)

#: MLPerf Tiny networks by name (layer graphs of the reference .tflite models, shipped with the benchmarks).
MLPERF_TINY = ("kws", "vww", "ic", "ad")
#: Keys that only a ZigZag accelerator file has at its top level.
ZIGZAG_ARCH_KEYS = ("operational_array", "memories")


class InputError(ValueError):
    """Bad user input (a file, a field, a name); the command line exits with status 2."""


def clip(value: Any, limit: int = 80) -> str:
    """``repr(value)`` truncated to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def networks_dir() -> Path:
    """Folder of the shipped MLPerf Tiny layer graphs (found without importing ``benchmarks``)."""
    spec = importlib.util.find_spec("benchmarks")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the MLPerf Tiny networks need the 'benchmarks' package of match-mapper, which is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "networks"


def _tvm_available() -> bool:
    return importlib.util.find_spec("tvm") is not None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML: {clip(str(exc), 200)}") from exc


def model_kind(model: str) -> str:
    """``mlperf``, ``tflite``, ``onnx``, ``zigzag`` (workload YAML) or ``graph`` (layer-graph JSON)."""
    if model in MLPERF_TINY:
        return "mlperf"
    suffix = Path(model).suffix.lower()
    kinds = {".tflite": "tflite", ".onnx": "onnx", ".yaml": "zigzag", ".yml": "zigzag", ".json": "graph"}
    if suffix not in kinds:
        raise InputError(f"{model}: unknown model format {clip(suffix or '(no suffix)')}; allowed: .tflite, .onnx, "
                         f".yaml/.yml (ZigZag workload), .json (layer graph), or one of {', '.join(MLPERF_TINY)}")
    return kinds[suffix]


def load_model(model: Union[str, Path]) -> nx.DiGraph:
    """The layer graph of MODEL (see the module docstring); raises ``InputError`` for bad input."""
    model = str(model)
    kind = model_kind(model)
    if kind == "mlperf":
        path = networks_dir() / f"{model}.json"
        return mapper.load_graph(path)
    path = Path(model)
    if not path.is_file():
        raise InputError(f"{model}: no such model file")
    if kind == "graph":
        return mapper.load_graph(path)
    if kind == "zigzag":
        return mapper.from_zigzag_workload(path)
    if kind == "tflite" or _tvm_available():
        if not _tvm_available():
            raise InputError(f"{model}: reading .tflite needs TVM (apache-tvm); use an .onnx or layer-graph .json instead")
        import tvm_bridge  # lazily: TVM is heavy

        module = tvm_bridge.from_tflite(path) if kind == "tflite" else tvm_bridge.from_onnx(path)
        return tvm_bridge.layer_graph(module, name=path.stem)
    return mapper.from_onnx(path)


def is_zigzag_arch(data: Any) -> bool:
    """True for a parsed ZigZag accelerator file (a mapping with ``operational_array`` or ``memories``)."""
    return isinstance(data, dict) and any(key in data for key in ZIGZAG_ARCH_KEYS)


def load_arch(arch: Union[str, Path], zigzag_mapping: Optional[str] = None) -> archs.SoC:
    """The SoC named or described by ARCH; raises ``archs.ArchError`` / ``InputError``."""
    arch = str(arch)
    path = Path(arch)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml") and is_zigzag_arch(_read_yaml(path)):
        return archs.from_zigzag(path, mapping=zigzag_mapping)
    if zigzag_mapping is not None:
        raise InputError(f"--zigzag-mapping {zigzag_mapping}: only for a ZigZag accelerator file, and {arch} is not one")
    return archs.load(arch)


def arch_data(arch: Union[str, Path]) -> tuple[dict, str]:
    """(parsed YAML, source path) of a shipped name or one of our YAML files, for sweeps that edit it."""
    arch = str(arch)
    path = Path(arch)
    if "/" not in arch and not path.is_file():
        builtin = Path(archs.__file__).resolve().parent / f"{arch}.yaml"
        if not builtin.is_file():
            raise InputError(f"{arch}: no such file or built-in SoC; built-ins are: {', '.join(archs.builtin_names())}")
        path = builtin
    if not path.is_file():
        raise InputError(f"{arch}: no such file")
    data = _read_yaml(path)
    if is_zigzag_arch(data):
        raise InputError(f"{arch}: a ZigZag accelerator file; a sweep varies one of our hardware YAMLs (convert it with "
                         "archs.from_zigzag first)")
    if not isinstance(data, dict):
        raise InputError(f"{arch}: expected a mapping at the top level, got {type(data).__name__}")
    return data, str(path)


def dump_json(data: Any, path: Union[str, Path]) -> None:
    """Write ``data`` as indented JSON."""
    Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n")
