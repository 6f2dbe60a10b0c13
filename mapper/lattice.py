"""The divisor lattice of a problem's temporal extents: every tile a loop nest can leave below a point.

A tile of a loop nest (the product of the loops below some position) has, per dim, an extent that
divides the dim's temporal extent, and the tiles along one nest form a chain under per-dim
divisibility. ``TileLattice`` enumerates every such extent vector once ("points"), indexes them, lists
for each point ``U`` the points ``T`` that divide it (``T <= U``), and takes minima over those
down-sets (``downward_min``), which the search's cost-to-go bounds are built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archs.dims import DIMS

N_DIMS = len(DIMS)


def divisors(n: int) -> np.ndarray:
    """Divisors of ``n`` in ascending order."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return np.array(sorted(set(small + [n // d for d in small])), dtype=np.int64)


@dataclass(frozen=True)
class TileLattice:
    """Every tile extent vector of a problem's temporal extents, indexed in mixed radix.

    Point index ``sum(position[a] * stride[a])`` over the active dims ``a`` (first active dim
    slowest), ``position[a]`` the rank of the extent among the dim's divisors.
    """

    active: tuple[int, ...]  # dims (axes of DIMS) with a temporal extent above 1
    divisors: tuple[np.ndarray, ...]  # per active dim, its divisors ascending
    strides: np.ndarray  # [active] index stride of each active dim
    points: np.ndarray  # [point, dim] extents of each tile (1 on inactive dims)
    below_start: tuple[np.ndarray, ...]  # per active dim: [position + 1] offsets into below_flat
    below_flat: tuple[np.ndarray, ...]  # per active dim: positions of the divisors of each divisor
    above_start: tuple[np.ndarray, ...]  # per active dim: [position + 1] offsets into above_flat
    above_flat: tuple[np.ndarray, ...]  # per active dim: positions of the multiples of each divisor

    @property
    def size(self) -> int:
        return int(self.points.shape[0])

    @property
    def top(self) -> int:
        """Index of the whole temporal extent (the largest point)."""
        return self.size - 1

    def index(self, extents: np.ndarray) -> np.ndarray:
        """[n] point indices of extent vectors ``extents`` [n, dim] (each extent a divisor)."""
        idx = np.zeros(extents.shape[0], dtype=np.int64)
        for a, d in enumerate(self.active):
            idx += np.searchsorted(self.divisors[a], extents[:, d]) * self.strides[a]
        return idx

    @property
    def below_count(self) -> np.ndarray:
        """[point] how many points are at or below each point."""
        return self._count(self.below_start)

    def below(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair (i, T) with ``T <= U[i]`` (``U`` included), grouped by ``i`` in order: (i [pair], T [pair])."""
        return self._pairs(U, self.below_start, self.below_flat)

    def above(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair (i, T) with ``T >= U[i]`` (``U`` included), grouped by ``i`` in order: (i [pair], T [pair])."""
        return self._pairs(U, self.above_start, self.above_flat)

    def above_admitted(self, U: np.ndarray, admit) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of ``above(U)`` that ``admit(i, T)`` ([pair] bool) accepts, for a test monotone in
        ``T`` (rejecting ``T`` rejects every point above it). The points are built one dim at a time,
        the dims not yet built at ``U[i]``'s extents, and each partial point is tested: a rejected one
        is below all its completions, so they are never listed. Same pairs, same order as filtering
        ``above(U)`` with ``admit``."""
        return self._pairs(U, self.above_start, self.above_flat, admit)

    @property
    def above_count(self) -> np.ndarray:
        """[point] how many points are at or above each point."""
        return self._count(self.above_start)

    def _count(self, starts) -> np.ndarray:
        count = np.ones(self.size, dtype=np.int64)
        for a, dv in enumerate(self.divisors):
            position = (np.arange(self.size) // self.strides[a]) % len(dv)
            count *= np.diff(starts[a])[position]
        return count

    def _pairs(self, U: np.ndarray, starts, flats, admit=None) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, T) with T related to ``U[i]`` by ``starts``/``flats``, built one active dim at a
        time from ``U[i]`` (each step replaces one dim's extent); ``admit`` filters after each step."""
        owner = np.arange(U.shape[0])
        T = U.copy()
        for a, dv in enumerate(self.divisors):
            position = (U[owner] // self.strides[a]) % len(dv)
            start, flat = starts[a], flats[a]
            count = start[position + 1] - start[position]
            total = int(count.sum())
            local = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
            j = flat[np.repeat(start[position], count) + local]
            owner = np.repeat(owner, count)
            T = np.repeat(T - position * self.strides[a], count) + j * self.strides[a]
            if admit is not None:
                keep = admit(owner, T)
                owner, T = owner[keep], T[keep]
        return owner, T

    def downward_min(self, values: np.ndarray) -> np.ndarray:
        """[..., point] for each point ``U`` the minimum of ``values`` [..., point] over points ``T <= U``."""
        return self._closed_min(values, self.below_start, self.below_flat)

    def upward_min(self, values: np.ndarray) -> np.ndarray:
        """[..., point] for each point ``U`` the minimum of ``values`` [..., point] over points ``T >= U``."""
        return self._closed_min(values, self.above_start, self.above_flat)

    def _closed_min(self, values: np.ndarray, starts, flats) -> np.ndarray:
        shape = values.shape[:-1] + tuple(len(dv) for dv in self.divisors)
        out = values.reshape(shape)
        lead = values.ndim - 1
        for a, dv in enumerate(self.divisors):
            axis = lead + a
            parts = [np.take(out, flats[a][starts[a][i]:starts[a][i + 1]], axis=axis).min(axis=axis)
                     for i in range(len(dv))]
            out = np.stack(parts, axis=axis)
        return out.reshape(values.shape)


def tile_lattice(remaining: np.ndarray) -> TileLattice:
    """The lattice of tiles of temporal extents ``remaining`` [dim]."""
    active = tuple(int(d) for d in range(N_DIMS) if remaining[d] > 1)
    divs = tuple(divisors(int(remaining[d])) for d in active)
    sizes = [len(dv) for dv in divs]
    strides = np.ones(len(active), dtype=np.int64)
    for a in range(len(active) - 2, -1, -1):
        strides[a] = strides[a + 1] * sizes[a + 1]
    n_points = int(np.prod(sizes)) if sizes else 1
    points = np.ones((n_points, N_DIMS), dtype=np.int64)
    if active:
        grid = np.meshgrid(*divs, indexing="ij")
        for a, d in enumerate(active):
            points[:, d] = grid[a].reshape(-1)
    tables = []
    for relation in (lambda dv, i: dv[i] % dv == 0, lambda dv, i: dv % dv[i] == 0):  # divisors, multiples
        starts, flats = [], []
        for dv in divs:
            lists = [np.nonzero(relation(dv, i))[0] for i in range(len(dv))]
            starts.append(np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64))
            flats.append(np.concatenate(lists).astype(np.int64))
        tables += [tuple(starts), tuple(flats)]
    return TileLattice(active, divs, strides, points, *tables)


def lattice_of(problem) -> TileLattice:
    """The lattice of ``problem.remaining`` (a ``costmodel.problem.Problem``), built once per problem
    (kept in ``problem.memo``): the search's tables and the unrolling floors share it."""
    memo = problem.memo
    if "tile_lattice" not in memo:
        memo["tile_lattice"] = tile_lattice(problem.remaining)
    return memo["tile_lattice"]
