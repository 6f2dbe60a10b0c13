"""Brute-force reference: every order of the prime factors x every tile boundary position.

Exponential; meant for small layers in tests, to check that ``search_module`` (which enumerates a
reduced space and prunes with bounds) finds the same optimum.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Iterator, Optional

import numpy as np

from archs.model import ExecModule
from costmodel.analysis import analyze
from costmodel.cost import evaluate
from mapper.search import build_layer_problem
from mapper.spatial import spatial_unrollings
from mapper.temporal import prime_factors
from mapper.workload import Layer


def distinct_permutations(items: list) -> Iterator[tuple]:
    """Distinct orderings of a multiset, in lexicographic order of the sorted items."""
    counts = Counter(items)
    keys = sorted(counts)
    n = len(items)

    def rec(prefix: list) -> Iterator[tuple]:
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for key in keys:
            if counts[key]:
                counts[key] -= 1
                prefix.append(key)
                yield from rec(prefix)
                prefix.pop()
                counts[key] += 1

    yield from rec([])


def brute_force(layer: Layer, module: ExecModule, objective: str = "latency", chunk: int = 50000) -> tuple[float, int]:
    """(best objective value, candidates evaluated) over the full space, all spatial unrollings."""
    best, count = brute_force_objectives(layer, module, (objective,), chunk)
    return best[objective], count


def brute_force_objectives(layer: Layer, module: ExecModule, objectives: tuple[str, ...] = ("latency", "energy", "edp"),
                           chunk: int = 50000, secondary: Optional[dict[str, float]] = None
                           ) -> tuple[dict[str, float], int]:
    """({objective: best value}, candidates evaluated) over the full space, in one pass. When a dict
    is given as ``secondary``, it receives per objective the least secondary metric (energy for
    latency, latency otherwise) among the mappings within a relative 1e-9 of the best value."""
    best, count = {o: np.inf for o in objectives}, 0
    second = {o: np.inf for o in objectives}
    for unrolling in spatial_unrollings(layer, module):
        problem = build_layer_problem(layer, module, unrolling)
        loops = [(d, p) for d in range(len(problem.remaining)) for p in prime_factors(int(problem.remaining[d]))]
        orders = np.array(list(distinct_permutations(loops)), dtype=np.int64).reshape(-1, len(loops), 2)
        n_slots = len(loops)
        positions = range(n_slots + 1)
        cut_sets = [
            cuts for cuts in itertools.product(positions, repeat=len(problem.cut_points))
            if all(cuts[i] <= cuts[j] for i, a in enumerate(problem.cut_points) for j, b in enumerate(problem.cut_points)
                   if a.operand == b.operand and a.boundary < b.boundary)
        ]
        cut_arr = np.array(cut_sets, dtype=np.int64).reshape(len(cut_sets), len(problem.cut_points))
        per_chunk = max(1, chunk // len(cut_sets))
        for lo in range(0, orders.shape[0], per_chunk):
            block = orders[lo:lo + per_chunk]
            dims = np.repeat(block[:, :, 0], len(cut_sets), axis=0)
            factors = np.repeat(block[:, :, 1], len(cut_sets), axis=0)
            cuts = np.tile(cut_arr, (block.shape[0], 1))
            cost = evaluate(problem, analyze(problem, dims, factors, cuts))
            for o in objectives:
                value = np.where(cost.feasible, cost.objective(o), np.inf)
                low = float(value.min())
                if not np.isfinite(low):
                    continue
                tied = value <= low * (1 + 1e-9)
                other = float(cost.objective("energy" if o == "latency" else "latency")[tied].min())
                if low < best[o] * (1 - 1e-9):
                    best[o], second[o] = low, other
                elif low <= best[o] * (1 + 1e-9):
                    best[o], second[o] = min(best[o], low), min(second[o], other)
            count += int(cost.feasible.size)
    if secondary is not None:
        secondary.update(second)
    return best, count
