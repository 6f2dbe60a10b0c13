"""Pareto fronts of two objectives to minimise (latency, energy)."""

from __future__ import annotations

from typing import Sequence


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points not dominated by another (minimising both ``xs`` and ``ys``), sorted by
    x then y. A point dominates another if it is no worse in both and better in one; of identical
    points the first is kept."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i], i))
    front: list[int] = []
    best_y = float("inf")
    for i in order:
        if ys[i] < best_y:
            front.append(i)
            best_y = ys[i]
    return front
