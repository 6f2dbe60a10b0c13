"""The divisor lattice the search's bounds are built on, against brute force over all point pairs."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.lattice import divisors, tile_lattice


@pytest.mark.parametrize("extents", [[1, 4, 3, 6, 1, 1, 1, 1], [2, 1, 12, 1, 5, 1, 9, 1], [1] * 8])
def test_lattice_against_brute_force(extents):
    lat = tile_lattice(np.array(extents))
    divides = (lat.points[:, None, :] % lat.points[None, :, :] == 0).all(axis=2)  # [U, T]: T divides U
    assert lat.size == int(np.prod([len(divisors(e)) for e in extents]))
    assert (lat.points[lat.top] == extents).all() and (lat.index(lat.points) == np.arange(lat.size)).all()
    values = np.random.default_rng(1).random((2, lat.size))
    assert np.allclose(lat.downward_min(values), [[v[divides[u]].min() for u in range(lat.size)] for v in values])
    assert np.allclose(lat.upward_min(values), [[v[divides[:, u]].min() for u in range(lat.size)] for v in values])
    owner, below = lat.below(np.arange(lat.size))
    assert sorted(zip(owner, below)) == sorted(zip(*np.nonzero(divides)))
    owner, above = lat.above(np.arange(lat.size))
    assert sorted(zip(owner, above)) == sorted((u, t) for t, u in zip(*np.nonzero(divides)))
    assert (lat.below_count == divides.sum(axis=1)).all() and (lat.above_count == divides.sum(axis=0)).all()


def test_divisors():
    assert divisors(1).tolist() == [1] and divisors(12).tolist() == [1, 2, 3, 4, 6, 12]
    assert divisors(49).tolist() == [1, 7, 49]
