"""Static memory plan of ``python -m benchmarks.mlperf_tiny``: per model and target, the plan of the
SoC's outermost memory (L2 on GAP9 and DIANA) for the ``best`` mapping (``tvm_bridge.plan_memory``,
the plan ``CompiledModel.memory_plan()`` gives; the verification compiles the model and checks both
agree). Bytes throughout.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from archs.model import SoC
from benchmarks._mlperf_common import Case
from mapper.memory_plan import MemoryPlan
from mapper.schedule import NetworkSchedule

log = logging.getLogger("benchmarks.mlperf_tiny")


def plan_best(mod: Any, soc: SoC, best: NetworkSchedule) -> tuple[Optional[MemoryPlan], str]:
    """(plan, "") for the imported module ``mod`` mapped as ``best`` on ``soc``, or (None, reason) when
    the bridge cannot generate a layer (the reason is logged)."""
    from tvm_bridge.c_emitter import CodegenError
    from tvm_bridge.memory import plan_memory
    from tvm_bridge.relax_import import BridgeError

    offloaded = {name: schedule.module != soc.host for name, schedule in best.schedules.items()}
    try:
        return plan_memory(mod, soc, best.schedules, offloaded), ""
    except (BridgeError, CodegenError) as exc:
        log.warning("no memory plan on %s: %s", soc.name, exc)
        return None, f"{type(exc).__name__}: {exc}"


def memory_json(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """One object per model x target: the plan's summary (``MemoryPlan.to_dict`` without the tensor list)
    and per layer its bytes per memory, or ``error``."""
    rows = []
    for case in cases:
        row: dict[str, Any] = {"model": case.model, "target": case.target.label, "strategy": "best"}
        if case.memory_plan is None:
            row["error"] = case.memory_error
        else:
            row.update({k: v for k, v in case.memory_plan.to_dict().items() if k != "tensors"})
        rows.append(row)
    return rows


def memory_table(cases: Sequence[Case], table: Any) -> str:
    """Printed table: peak bytes of the planned memory per model and target (``table``: the report's
    table formatter)."""
    rows = []
    for case in cases:
        plan = case.memory_plan
        if plan is None:
            rows.append([case.model, case.target.label, "-", "-", "-", "-", "-", f"no plan: {case.memory_error[:60]}"])
            continue
        step = plan.largest_live_step
        rows.append([case.model, case.target.label, plan.memory, f"{plan.peak_bytes:,}", f"{plan.capacity_bytes:,}",
                     f"{plan.weight_bytes:,}", f"{plan.activation_bytes:,}",
                     f"{'yes' if plan.fits else 'NO'} (largest live set {plan.live_bytes(step.index):,} at {step.name})"])
    return table(rows, ["model", "target", "memory", "peak B", "capacity B", "weights B", "activations B", "fits"], "lllrrrrl")
