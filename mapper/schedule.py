"""Mapping spec and results: ``Schedule`` per layer, ``NetworkSchedule`` for a graph (JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class TileLevel:
    """One operand's tile in one memory, and the traffic that fills (and empties) it."""

    operand: str
    memory: str  # the inner memory holding the tile
    outer_memory: str  # where the tiles come from
    position: int  # loops of ``Schedule.loops`` (innermost first) inside the tile
    tile: dict[str, int]  # extent per loop dim the operand uses, spatial unrolling included
    buffer_bytes: int  # space taken in ``memory`` (x2 when double buffered)
    double_buffered: bool
    bytes_in: float  # bytes moved outer -> inner over the layer
    bytes_out: float  # bytes moved inner -> outer (outputs and partial sums)
    transfers_in: int
    transfers_out: int
    runs_in: int = 0  # contiguous runs of the transfers in (rows / planes of 2-D / 3-D transfers)
    runs_out: int = 0


@dataclass(frozen=True)
class Schedule:
    """The chosen mapping of one layer and its predicted cost (cycles, pJ, bytes)."""

    layer: str
    kind: str
    module: str
    objective: str
    macs: int
    spatial: dict[str, Any]  # array dim -> {"dim", "factor"}
    utilization: float  # spatial utilisation of the PE array (1.0 for no array)
    loops: list[dict[str, Any]]  # temporal loops innermost first: {"dim", "factor"}
    levels: list[TileLevel]
    kernel_tile: dict[str, int]  # extents of one kernel call (spatial included)
    kernel_calls: int
    kernel_cycles: float  # one call
    compute_cycles: float
    transfer_cycles: float  # all transfers, hidden by double buffering or not
    overhead_cycles: float
    latency_cycles: float
    energy_pj: float
    compute_bound_cycles: float  # MACs / peak MAC per cycle
    traffic_bound_cycles: float  # compulsory traffic at full bandwidth
    occupancy: dict[str, int]  # bytes used per memory of the module
    candidates: int  # temporal candidates evaluated by the cost model
    search_seconds: float
    rejected: dict[str, str] = field(default_factory=dict)  # other modules and why they lost or failed
    # Padding (top, bottom, left, right) the host applies to the input before the module runs the
    # layer unpadded (``mapper.acceptance.padding_split``); its cycles and pJ are included in
    # ``latency_cycles`` and ``energy_pj``, the levels describe the unpadded layer.
    host_padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    host_padding_cycles: float = 0.0
    host_padding_energy_pj: float = 0.0
    # Optimality: proven when the search closed the whole space (every module, every unrolling);
    # otherwise (time budget) ``optimality_gap`` = (objective - lower_bound) / objective, where no
    # mapping in the space has an objective value below ``lower_bound``.
    optimal: bool = True
    optimality_gap: float = 0.0
    lower_bound: Optional[float] = None  # of the objective, over the modules searched
    search_stats: dict[str, Any] = field(default_factory=dict)  # work done (see mapper.tree_search.SearchStats)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def achieved_macs_per_cycle(self) -> float:
        return self.macs / self.latency_cycles if self.latency_cycles else 0.0


@dataclass(frozen=True)
class NetworkSchedule:
    """Schedules of every layer of a graph, in topological order, with totals per module.

    Layers run one after another, so the network latency is the sum of the layers' latencies.
    """

    soc: str
    objective: str
    policy: str
    schedules: dict[str, Schedule]
    search_seconds: float = 0.0
    host: Optional[str] = None  # the SoC's host module: host-side padding is booked to it in per_module()
    failures: dict[str, str] = field(default_factory=dict)  # layers no module could run -> why (not strict)

    @property
    def total_latency_cycles(self) -> float:
        return float(sum(s.latency_cycles for s in self.schedules.values()))

    @property
    def total_energy_pj(self) -> float:
        return float(sum(s.energy_pj for s in self.schedules.values()))

    @property
    def total_macs(self) -> int:
        return sum(s.macs for s in self.schedules.values())

    def per_module(self) -> dict[str, dict[str, float]]:
        """Layers, latency (cycles), energy (pJ) and MACs per module; the cycles and pJ of host-side
        padding (``Schedule.host_padding``) count for the host when ``host`` is known."""
        out: dict[str, dict[str, float]] = {}

        def row_of(module: str) -> dict[str, float]:
            return out.setdefault(module, {"layers": 0, "latency_cycles": 0.0, "energy_pj": 0.0, "macs": 0})

        for s in self.schedules.values():
            row = row_of(s.module)
            row["layers"] += 1
            row["latency_cycles"] += s.latency_cycles
            row["energy_pj"] += s.energy_pj
            row["macs"] += s.macs
            if self.host and s.host_padding_cycles:
                row["latency_cycles"] -= s.host_padding_cycles
                row["energy_pj"] -= s.host_padding_energy_pj
                host = row_of(self.host)
                host["latency_cycles"] += s.host_padding_cycles
                host["energy_pj"] += s.host_padding_energy_pj
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "soc": self.soc,
            "objective": self.objective,
            "policy": self.policy,
            "total_latency_cycles": self.total_latency_cycles,
            "total_energy_pj": self.total_energy_pj,
            "total_macs": self.total_macs,
            "search_seconds": self.search_seconds,
            "host": self.host,
            "failures": dict(self.failures),
            "optimal": all(s.optimal for s in self.schedules.values()),
            "per_module": self.per_module(),
            "schedules": {name: s.to_dict() for name, s in self.schedules.items()},
        }

    def summary(self, clock_mhz: Optional[float] = None) -> str:
        """A plain-text table: one row per layer, then totals per module."""
        lines = [f"{'layer':<28} {'kind':<10} {'module':<10} {'MACs':>10} {'cycles':>12} {'MAC/cyc':>8} {'util':>5}"]
        for s in self.schedules.values():
            lines.append(f"{s.layer[:28]:<28} {s.kind:<10} {s.module:<10} {s.macs:>10} {s.latency_cycles:>12.0f} "
                         f"{s.achieved_macs_per_cycle:>8.2f} {s.utilization:>5.2f}")
        for module, row in self.per_module().items():
            lines.append(f"{'total on ' + module:<50} {row['macs']:>10.0f} {row['latency_cycles']:>12.0f}")
        total = f"{'total':<50} {self.total_macs:>10} {self.total_latency_cycles:>12.0f}"
        if clock_mhz:
            total += f"  ({self.total_latency_cycles / (clock_mhz * 1e3):.3f} ms at {clock_mhz:g} MHz)"
        lines.append(total)
        return "\n".join(lines)
