"""Hardware model of a heterogeneous SoC: frozen dataclasses, built from YAML by ``archs.schema``.

A SoC is a host module plus execution modules. Each module has a spatial array, a memory hierarchy
(innermost first), the layer shapes it accepts and a compute-cost model. The host is a module too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from archs.dims import LoopDim, Operand

#: Layer kinds the workload knows; a module's ``accepts`` rules name these.
LAYER_KINDS: tuple[str, ...] = ("conv2d", "depthwise", "dense", "add", "pool")
#: Padding rules a module may impose on accepted layers.
PADDING_RULES: tuple[str, ...] = ("any", "symmetric", "none")
#: Precision roles a rule may restrict (bits allowed for each).
PRECISION_ROLES: tuple[str, ...] = ("input", "weight", "output")
#: How a module's transfers overlap its computation (``costmodel``): ``serial`` (only transfers into
#: ``double_buffering`` memories run during compute) or ``zigzag`` (ZigZag 3.9.1's semantics: every
#: transfer does, only stalls and the first loads and last write-backs add; ``costmodel.overlap``).
OVERLAP_MODES: tuple[str, ...] = ("serial", "zigzag")


@dataclass(frozen=True)
class MemoryLevel:
    """One memory of a module's hierarchy.

    Transfers into this level from its parent cost ``bytes / min(parent.read, self.write)`` cycles
    plus ``transfer_fixed_cycles`` per transfer (DMA set-up) plus ``transfer_cycles_per_run`` per
    contiguous run of each transfer (a row / plane of a 2-D / 3-D DMA transfer; runs as ``costmodel.runs``
    counts them); write-backs use ``min(self.read, parent.write)``.
    """

    name: str
    size_bytes: int
    operands: frozenset[Operand]
    read_bytes_per_cycle: float
    write_bytes_per_cycle: float
    transfer_fixed_cycles: float = 0.0
    transfer_cycles_per_run: float = 0.0  # cycles per contiguous run of a transfer into / out of this level
    double_buffering: bool = False
    read_energy_pj_per_byte: float = 0.0
    write_energy_pj_per_byte: float = 0.0
    accumulates: bool = False  # outputs here are accumulators (accumulator precision), e.g. PE registers
    #: Array dims along which the memory is split into separate instances, one per PE position on
    #: them (ZigZag: the dims not in ``served_dimensions``). Size and bandwidths above are the sum
    #: over instances. Only ``overlap: zigzag`` uses it: a transfer there takes each instance's
    #: share over each instance's bandwidth (``costmodel.overlap``).
    instance_dims: tuple[str, ...] = ()
    #: Reads and writes go through one port (ZigZag's read_write port); only ``overlap: zigzag`` uses
    #: it: the memory's read and write transfers then share one link (the read bandwidth).
    shared_port: bool = False
    #: The array's own reads (and, for outputs, writes) of this memory use ports of their own (ZigZag:
    #: the ports of the level-0 directions carry nothing else); only ``overlap: zigzag`` uses it:
    #: they then do not compete with transfers to and from other memories.
    array_port: bool = False


@dataclass(frozen=True)
class SpatialDim:
    """One dimension of a PE array: ``size`` PEs along it, unrolling one of the ``unroll`` loop dims
    (an empty ``unroll``: the dimension always idles, e.g. a ZigZag mapping that unrolls nothing there)."""

    name: str
    size: int
    unroll: tuple[LoopDim, ...]
    #: Data move through the array along this dim (a systolic dim): under ``overlap: zigzag`` a layer
    #: ends with a drain of (its unrolling factor - 1) cycles (ZigZag's ``systolic_dimensions``).
    systolic: bool = False


@dataclass(frozen=True)
class LayerRule:
    """One family of layers a module accepts. ``None`` means "any value"."""

    kind: str
    kernel_sizes: Optional[tuple[tuple[int, int], ...]] = None  # (FY, FX) pairs
    strides: Optional[tuple[int, ...]] = None  # allowed for both axes
    dilations: Optional[tuple[int, ...]] = None
    padding: str = "any"
    channel_multiple: tuple[tuple[LoopDim, int], ...] = ()  # e.g. ((K, 16),)
    max_sizes: tuple[tuple[LoopDim, int], ...] = ()
    precision: tuple[tuple[str, tuple[int, ...]], ...] = ()  # role -> allowed bits


KernelHook = Callable[..., Any]


@dataclass(frozen=True)
class ComputeModel:
    """Compute cost of a module.

    Without ``kernel``, one call on a tile costs ``temporal iterations * array PEs / macs_per_cycle``
    cycles. With ``kernel`` (``"package.module:function"``), the hook gets the tile extents per loop
    dim as int arrays over candidates and the layer, and returns cycles per call.
    """

    macs_per_cycle: float
    energy_pj_per_mac: float = 0.0
    kernel: Optional[str] = None
    kernel_hook: Optional[KernelHook] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ExecModule:
    """An execution module (the host included)."""

    name: str
    spatial: tuple[SpatialDim, ...]
    memories: tuple[MemoryLevel, ...]  # innermost first; the last one holds the layer's tensors
    compute: ComputeModel
    accepts: tuple[LayerRule, ...] = ()
    allow_padded_unrolling: bool = False
    tile_overhead_cycles: float = 0.0
    is_host: bool = False
    overlap: str = "serial"  # one of OVERLAP_MODES

    def chain(self, operand: Operand) -> tuple[int, ...]:
        """Indices into ``memories`` of the levels holding ``operand``, innermost first."""
        return tuple(i for i, m in enumerate(self.memories) if operand in m.operands)

    @property
    def array_size(self) -> int:
        """Number of PEs (product of the spatial dims' sizes)."""
        size = 1
        for d in self.spatial:
            size *= d.size
        return size


@dataclass(frozen=True)
class SoC:
    """A system on chip: the host and the execution modules, by name (host first)."""

    name: str
    clock_mhz: float
    host: str
    modules: dict[str, ExecModule] = field(hash=False)
    source: str = ""
    description: str = ""

    @property
    def host_module(self) -> ExecModule:
        return self.modules[self.host]

    @property
    def accelerators(self) -> tuple[ExecModule, ...]:
        """The non-host modules, in file order."""
        return tuple(m for m in self.modules.values() if not m.is_host)

    def cycles_to_ms(self, cycles: float) -> float:
        """Convert cycles at the SoC clock to milliseconds."""
        return cycles / (self.clock_mhz * 1e3)
