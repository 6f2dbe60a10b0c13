"""Where a schedule's cycles go: per-memory transfer cycles, the limiting bound, hidden and exposed
transfers, and compact text forms of a mapping (spatial unrolling, loop order with tile levels).

All cycle figures are at the SoC clock; they re-derive, from a ``Schedule``'s ``levels`` and the
module's memories, the per-level terms that ``costmodel.cost.evaluate`` sums into
``Schedule.transfer_cycles``: a level's cycles are ``bytes_in / link_in + bytes_out / link_out +
(transfers_in + transfers_out) x transfer_fixed_cycles + (runs_in + runs_out) x
transfer_cycles_per_run`` (links: ``min`` of the two memories'
read/write bandwidths in bytes per cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from archs.model import ExecModule, MemoryLevel
from mapper.schedule import Schedule


@dataclass(frozen=True)
class LevelTraffic:
    """Transfers into (and out of) one memory of a module over a layer."""

    memory: str
    outer_memory: str
    operands: tuple[str, ...]
    bytes_moved: float  # bytes, both directions
    transfers: int
    cycles: float  # cycles at the SoC clock, hidden or not
    double_buffered: bool  # overlapped with compute (every level under overlap: zigzag)


@dataclass(frozen=True)
class CycleBreakdown:
    """A schedule's latency split (cycles): ``latency = compute + overhead + serial_transfers + stall
    + host_padding`` where ``stall`` is the part of the double-buffered transfers compute does not hide
    (under ``overlap: zigzag`` every transfer counts as overlapped: the stall is then ZigZag's stall,
    first loads, last write-backs and systolic drain together)."""

    compute: float
    overhead: float
    serial_transfers: float  # transfers into memories without double buffering (never hidden)
    double_buffered_transfers: float  # all cycles of double-buffered transfers
    stall: float  # exposed part of the double-buffered transfers (prologue, epilogue, slower than compute)
    host_padding: float
    latency: float
    levels: tuple[LevelTraffic, ...]
    bound: str  # "compute" or the memory whose transfers take the most cycles

    @property
    def hidden(self) -> float:
        """Cycles of double-buffered transfers overlapped with compute."""
        return max(self.double_buffered_transfers - self.stall, 0.0)


def _memory(module: ExecModule, name: str) -> MemoryLevel:
    for m in module.memories:
        if m.name == name:
            return m
    raise KeyError(f"module {module.name!r} has no memory {name!r}")


def level_traffic(schedule: Schedule, module: ExecModule) -> tuple[LevelTraffic, ...]:
    """Per inner memory (innermost first), the traffic of every operand tiled into it."""
    grouped: dict[str, list] = {}
    for lv in schedule.levels:
        grouped.setdefault(lv.memory, []).append(lv)
    out = []
    for memory in [m.name for m in module.memories if m.name in grouped]:
        inner = _memory(module, memory)
        cycles = moved = 0.0
        transfers = 0
        outers = []
        for lv in grouped[memory]:
            outer = _memory(module, lv.outer_memory)
            link_in = min(outer.read_bytes_per_cycle, inner.write_bytes_per_cycle)
            link_out = min(inner.read_bytes_per_cycle, outer.write_bytes_per_cycle)
            cycles += (lv.bytes_in / link_in + lv.bytes_out / link_out
                       + (lv.transfers_in + lv.transfers_out) * inner.transfer_fixed_cycles
                       + (lv.runs_in + lv.runs_out) * inner.transfer_cycles_per_run)
            moved += lv.bytes_in + lv.bytes_out
            transfers += lv.transfers_in + lv.transfers_out
            if lv.outer_memory not in outers:
                outers.append(lv.outer_memory)
        overlapped = inner.double_buffering or module.overlap == "zigzag"  # zigzag: every transfer runs during compute
        out.append(LevelTraffic(memory, "/".join(outers), tuple(lv.operand for lv in grouped[memory]), moved, transfers,
                                cycles, overlapped))
    return tuple(out)


def cycle_breakdown(schedule: Schedule, module: ExecModule) -> CycleBreakdown:
    """Split ``schedule``'s latency (see ``CycleBreakdown``) and name its limiting bound: compute when
    ``compute_cycles`` is at least every memory's transfer cycles, else that memory."""
    levels = level_traffic(schedule, module)
    serial = sum(lv.cycles for lv in levels if not lv.double_buffered)
    buffered = sum(lv.cycles for lv in levels if lv.double_buffered)
    core = schedule.latency_cycles - schedule.host_padding_cycles
    stall = max(core - schedule.compute_cycles - schedule.overhead_cycles - serial, 0.0)
    bound = "compute"
    busiest = max(levels, key=lambda lv: lv.cycles, default=None)
    if busiest is not None and busiest.cycles > schedule.compute_cycles:
        bound = busiest.memory
    return CycleBreakdown(schedule.compute_cycles, schedule.overhead_cycles, serial, buffered, stall,
                          schedule.host_padding_cycles, schedule.latency_cycles, levels, bound)


def spatial_text(schedule: Schedule) -> str:
    """``rows:OX16 cols:K32`` (idle array dims omitted; ``-`` for none)."""
    parts = [f"{name}:{e['dim']}{e['factor']}" for name, e in schedule.spatial.items() if e.get("dim")]
    return " ".join(parts) or "-"


def loop_text(schedule: Schedule) -> str:
    """Temporal loops innermost first; ``[I,W>sram]`` after the loops inside the tile that operands
    I and W hold in ``sram`` (a tile boundary), e.g. ``C2 FY3 [O>accumulators] OX4 [I,W,O>sram]``."""
    marks: dict[int, list[tuple[str, str]]] = {}
    for lv in schedule.levels:
        marks.setdefault(lv.position, []).append((lv.memory, lv.operand))

    def marker(position: int) -> list[str]:
        by_memory: dict[str, list[str]] = {}
        for memory, operand in marks.get(position, []):
            by_memory.setdefault(memory, []).append(operand)
        return [f"[{','.join(ops)}>{memory}]" for memory, ops in by_memory.items()]

    parts = marker(0)
    for i, loop in enumerate(schedule.loops):
        parts.append(f"{loop['dim']}{loop['factor']}")
        parts += marker(i + 1)
    return " ".join(parts) or "-"


def tile_text(schedule: Schedule) -> str:
    """One kernel call's extents (dims > 1) and the number of calls: ``K32 C16 OX16 x64``."""
    dims = " ".join(f"{d}{n}" for d, n in schedule.kernel_tile.items() if n > 1) or "1"
    return f"{dims} x{schedule.kernel_calls}"


def inner_memories(module: ExecModule) -> tuple[str, ...]:
    """The module's memories below the outermost one (the one holding the layer's tensors), innermost first."""
    return tuple(m.name for m in module.memories[:-1])


def optimality_text(schedule: Schedule) -> str:
    """``proven``, ``gap 3.2%`` or ``-`` (``Schedule.optimal`` / ``optimality_gap``, when the mapper reports them)."""
    optimal: Optional[bool] = getattr(schedule, "optimal", None)
    gap: Optional[float] = getattr(schedule, "optimality_gap", None)
    if optimal is None:
        return "-"
    if optimal:
        return "proven"
    return f"gap {100 * gap:.1f}%" if gap is not None else "not proven"
