"""What ``partition_for`` attaches to an offloaded Relax function and ``relax.ext.match`` reads back.

Shared by ``tvm_bridge.partition`` (writes) and ``tvm_bridge.relax_codegen`` (reads), so neither
imports the other for it. Per offloaded function:

- ``match.layer``: the layer name(s), comma-separated;
- ``match.schedule``: the ``Schedule`` as JSON (``schedule_to_json`` / ``schedule_from_dict``);
- ``match.semantics``: whose integer semantics the layer follows (``quant.SEMANTICS``: ``"tflite"``, ``"onnx"``,
  ``"onnx_qlinear"``, ``"onnx_qlinear_uint8"``);
- ``match.soc``: the whole hardware description as JSON (``soc_to_json`` / ``soc_from_json``,
  through ``archs.to_dict`` / ``archs.from_dict``). The codegen rebuilds the SoC from this content,
  never from a registry or the YAML file, so a SoC modified in memory is generated for as partitioned.

The module gets ``match_schedules``: ``{layer: {"offloaded": bool, "schedule": {...} | null}}``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings

import archs
from archs.model import SoC
from mapper.schedule import Schedule, TileLevel
from tvm_bridge.patterns import CODEGEN
from tvm_bridge.relax_import import BridgeError

ATTR_LAYER = f"{CODEGEN}.layer"
ATTR_SCHEDULE = f"{CODEGEN}.schedule"
ATTR_SOC = f"{CODEGEN}.soc"
ATTR_SEMANTICS = f"{CODEGEN}.semantics"
MODULE_ATTR = "match_schedules"


def schedule_to_json(schedule: Schedule) -> str:
    return json.dumps(schedule.to_dict())


def schedule_from_dict(data: dict) -> Schedule:
    """Inverse of ``Schedule.to_dict``."""
    fields = {f.name for f in dataclasses.fields(Schedule)}
    values = {k: v for k, v in data.items() if k in fields}
    values["levels"] = [TileLevel(**level) for level in data["levels"]]
    if "host_padding" in values:
        values["host_padding"] = tuple(values["host_padding"])
    return Schedule(**values)


def soc_to_json(soc: SoC) -> str:
    """The full content of ``soc`` (and its source, for messages) as JSON."""
    return json.dumps({"source": soc.source, "description": archs.to_dict(soc)})


@functools.lru_cache(maxsize=32)
def soc_from_json(text: str) -> SoC:
    """The SoC ``soc_to_json`` wrote (validated again; its load-time warnings were already shown)."""
    try:
        data = json.loads(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", archs.ArchWarning)
            return archs.from_dict(data["description"], data.get("source") or "<match.soc>")
    except (ValueError, KeyError, TypeError) as exc:  # ArchError is a ValueError
        raise BridgeError(f"the {ATTR_SOC} attribute of an offloaded function is not a valid SoC: {exc}") from exc
