"""Vectorised latency (cycles) and energy (pJ) models over batches of candidate mappings."""

from costmodel.analysis import MappingStats, analyze
from costmodel.cost import (
    OBJECTIVES,
    CostBreakdown,
    compute_bound_cycles,
    evaluate,
    kernel_cycles,
    traffic_bound_cycles,
)
from costmodel.problem import CutPoint, Problem, build_problem

__all__ = [
    "MappingStats", "analyze", "OBJECTIVES", "CostBreakdown", "compute_bound_cycles", "evaluate", "kernel_cycles",
    "traffic_bound_cycles", "CutPoint", "Problem", "build_problem",
]
