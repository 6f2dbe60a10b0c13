"""Data shared by ``benchmarks.mlperf_tiny`` and its report and plot modules (imports none of them).

The models, the strategies, a ``Target`` (a SoC under a label) and a ``Case`` (one model on one
target: a ``NetworkSchedule`` per strategy and the verification), and the layer order of tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from archs.model import SoC
from benchmarks._mlperf_verify import Verification
from mapper.memory_plan import MemoryPlan
from mapper.schedule import NetworkSchedule

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: model key -> (file in benchmarks/models, task, network)
MODELS: dict[str, tuple[str, str, str]] = {
    "kws": ("kws_ref_model.tflite", "keyword spotting", "DS-CNN"),
    "vww": ("vww_96_int8.tflite", "visual wake words", "MobileNetV1 0.25"),
    "ic": ("pretrainedResnet_quant.tflite", "image classification", "ResNet-8"),
    "ad": ("ad01_int8.tflite", "anomaly detection", "FC autoencoder"),
}
STRATEGIES = ("host_only", "accelerator_first", "best")
HOST_COLOUR = "#9a9a9a"


@dataclass(frozen=True)
class Target:
    """A SoC the benchmark maps on: ``label`` (its name in tables and JSON) and where it came from."""

    label: str
    soc: SoC
    source: str  # "shipped" or the YAML path given to --arch


@dataclass
class Case:
    """One model on one target: a ``NetworkSchedule`` per strategy, the verification (None: skipped) and
    the static memory plan of the ``best`` mapping (None, with ``memory_error`` saying why, when there is none)."""

    model: str
    target: Target
    networks: dict[str, NetworkSchedule]
    verification: Optional[Verification] = None
    violations: list[str] = field(default_factory=list)
    memory_plan: Optional[MemoryPlan] = None
    memory_error: str = ""


def model_path(model: str) -> Path:
    """The shipped .tflite file of ``model`` (kws, vww, ic, ad)."""
    return MODELS_DIR / MODELS[model][0]


def _layer_order(name: str) -> tuple[int, str]:
    """Bridge layers are named ``<kind>_<binding index>``: sort by that index (TFLite operator order)."""
    prefix, _, index = name.rpartition("_")
    return (int(index), prefix) if index.isdigit() else (1 << 30, name)


def ordered(schedules: dict) -> list[str]:
    """Layer names of a ``NetworkSchedule.schedules`` dict in TFLite operator order."""
    return sorted(schedules, key=_layer_order)
