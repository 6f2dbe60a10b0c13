"""Spatial unrollings: every legal assignment of loop dims (and factors) to the PE array's dims."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from archs.dims import LoopDim
from archs.model import ExecModule
from mapper.workload import Layer


@dataclass(frozen=True)
class SpatialUnrolling:
    """Per array dim the loop dim and factor it unrolls (``None``: the array dim idles)."""

    assignment: tuple[tuple[str, LoopDim | None, int], ...]  # (array dim, loop dim, factor)

    @property
    def factors(self) -> dict[LoopDim, int]:
        """Total unroll factor per loop dim."""
        out: dict[LoopDim, int] = {}
        for _, dim, factor in self.assignment:
            if dim is not None:
                out[dim] = out.get(dim, 1) * factor
        return out

    def utilization(self, layer: Layer, array_size: int) -> float:
        """Fraction of PE-cycles doing useful MACs: real extents over padded extents x array use."""
        padded = 1
        for dim, factor in self.factors.items():
            padded *= factor * math.ceil(layer.sizes[dim] / factor) / layer.sizes[dim]
        used = math.prod(self.factors.values()) if self.factors else 1
        return used / array_size / padded

    def to_dict(self) -> dict:
        return {name: {"dim": dim.value if dim else None, "factor": factor} for name, dim, factor in self.assignment}


def _options(layer: Layer, size: int, unroll: tuple[LoopDim, ...], padded: bool) -> list[tuple[LoopDim | None, int]]:
    options: list[tuple[LoopDim | None, int]] = [(None, 1)]
    for dim in unroll:
        extent = layer.sizes[dim]
        factors = [f for f in range(2, min(size, extent) + 1) if extent % f == 0]
        if padded and min(size, extent) > 1 and min(size, extent) not in factors:
            factors.append(min(size, extent))
        options += [(dim, f) for f in factors]
    return options


def spatial_unrollings(layer: Layer, module: ExecModule) -> list[SpatialUnrolling]:
    """Every legal unrolling, in a stable order: divisors of the loop extent up to the array dim's
    size, plus (when the module allows padded unrolling) the array size over a non-dividing extent.

    Two array dims may unroll the same loop dim if their factors' product is legal too.
    """
    per_dim = [_options(layer, d.size, d.unroll, module.allow_padded_unrolling) for d in module.spatial]
    result = []
    for combo in itertools.product(*per_dim):
        totals: dict[LoopDim, int] = {}
        for dim, factor in combo:
            if dim is not None:
                totals[dim] = totals.get(dim, 1) * factor
        if module.allow_padded_unrolling:
            legal = all(f <= layer.sizes[d] for d, f in totals.items())
        else:
            legal = all(layer.sizes[d] % f == 0 for d, f in totals.items())
        if not legal:
            continue
        result.append(SpatialUnrolling(tuple((s.name, dim, f) for s, (dim, f) in zip(module.spatial, combo))))
    return result
