"""What the cost model needs to know about one (layer, module, spatial unrolling) triple.

Built by the mapper; holds only numbers and hardware dataclasses, so the cost model does not
depend on the mapper's workload types (the layer is used through a few attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

import numpy as np

from archs.dims import DIMS, OPERANDS, LoopDim, Operand
from archs.model import ExecModule, MemoryLevel


@dataclass(frozen=True)
class CutPoint:
    """The boundary between two memories of one operand's chain: tiles move ``outer -> inner``
    (and outputs back). ``boundary`` counts from the innermost (0: into the innermost level)."""

    operand: Operand
    boundary: int
    inner_index: int  # index into module.memories
    outer_index: int
    inner: MemoryLevel
    outer: MemoryLevel


@dataclass(frozen=True)
class Problem:
    """Static inputs of the cost model for one layer on one module with one spatial unrolling.

    Arrays are indexed by the fixed ``dim`` axis of ``archs.dims.DIMS``.
    """

    layer: Any  # needs: kind, sizes, stride, dilation, padding, input_size, precision, macs
    module: ExecModule
    spatial: np.ndarray  # [dim] unroll factor per loop dim (1 if not unrolled)
    remaining: np.ndarray  # [dim] temporal extent left after spatial unrolling (padded)
    relevant: np.ndarray  # [operand, dim] bool, operand axis as archs.dims.OPERANDS
    operands: tuple[Operand, ...]  # operands the layer has (pool: no W)
    cut_points: tuple[CutPoint, ...]
    #: Per array dim of the module: (array dim name, loop dim it unrolls or None, factor); empty when
    #: unknown. Used by ``overlap: zigzag`` for memories split into instances (``instance_dims``).
    array_unrolling: tuple[tuple[str, Optional[LoopDim], int], ...] = ()

    @cached_property
    def memo(self) -> dict:
        """Scratch cache for derived constants of this problem (filled by the cost model)."""
        return {}

    @property
    def real_sizes(self) -> np.ndarray:
        """[dim] the layer's true loop extents."""
        return np.array([self.layer.sizes[d] for d in DIMS], dtype=np.int64)

    @property
    def padded_sizes(self) -> np.ndarray:
        """[dim] extents covered by spatial x temporal loops (>= real when unrolling pads)."""
        return self.spatial * self.remaining

    @property
    def temporal_iterations(self) -> int:
        return int(np.prod(self.remaining))

    def relevant_dims(self, operand: Operand) -> tuple[LoopDim, ...]:
        row = self.relevant[OPERANDS.index(operand)]
        return tuple(d for d, r in zip(DIMS, row) if r)


def build_problem(
    layer: Any, module: ExecModule, spatial: dict[LoopDim, int], relevant: dict[Operand, frozenset[LoopDim]],
    array_unrolling: tuple[tuple[str, Optional[LoopDim], int], ...] = (),
) -> Problem:
    """Assemble the static cost-model inputs; ``relevant`` is the workload's relevance table,
    ``array_unrolling`` the unrolling per array dim (``Problem.array_unrolling``)."""
    spatial_arr = np.array([spatial.get(d, 1) for d in DIMS], dtype=np.int64)
    sizes = np.array([layer.sizes[d] for d in DIMS], dtype=np.int64)
    remaining = -(-sizes // spatial_arr)
    rel = np.array([[d in relevant[o] for d in DIMS] for o in OPERANDS], dtype=bool)
    operands = tuple(o for o in OPERANDS if relevant[o])
    cut_points = []
    for operand in operands:
        chain = module.chain(operand)
        for b in range(len(chain) - 1):
            cut_points.append(
                CutPoint(operand, b, chain[b], chain[b + 1], module.memories[chain[b]], module.memories[chain[b + 1]])
            )
    return Problem(layer, module, spatial_arr, remaining, rel, operands, tuple(cut_points), tuple(array_unrolling))
