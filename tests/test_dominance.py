"""drop_dominated on hand-built node batches: what it may drop, and that a group never empties."""

from dataclasses import dataclass

import numpy as np

from mapper.tree_search import NodeBatch, SearchStats, drop_dominated


@dataclass
class _Batch(NodeBatch):
    serial: np.ndarray
    overlapped: np.ndarray
    energy: np.ndarray
    db_fetches: np.ndarray
    db_event: np.ndarray
    occupancy: np.ndarray
    occupancy_max: np.ndarray
    ident: np.ndarray


def _batch(serial, energy, occupancy):
    n = len(serial)
    occ = np.array(occupancy, dtype=float).reshape(n, -1)
    return _Batch(np.array(serial, float), np.zeros(n), np.array(energy, float), np.zeros((n, 0)), np.zeros((n, 0)),
                  occ, occ.copy(), np.arange(n))


def _kept(batch, key=None, **kwargs):
    key = np.zeros((len(batch), 1), dtype=np.int64) if key is None else key
    return sorted(drop_dominated(batch, key, SearchStats(), **kwargs).serial.tolist())


def test_equal_costs_both_fitting_a_settled_memory_keep_exactly_one():
    # Same costs, different occupancy of a memory with nothing left to place: each fits wherever the
    # other does, so one of them (the first) must stay, never both dropped.
    batch = _batch([5, 5], [7, 7], [[10], [20]])
    settled = np.full((2, 1), 100.0)
    assert _kept(batch, settled=settled) == [5]


def test_occupancy_trade_off_kept_when_memory_not_settled():
    batch = _batch([5, 6], [7, 8], [[20], [10]])  # the cheaper node uses more memory
    assert _kept(batch) == [5, 6]
    assert _kept(batch, settled=np.full((2, 1), 100.0)) == [5]
    assert _kept(batch, settled=np.full((2, 1), -np.inf)) == [5, 6]


def test_tie_break_metric_ignored_only_beyond_the_tie_margin():
    batch = _batch([100.0, 200.0], [50.0, 10.0], [[1], [1]])  # faster but more energy
    assert _kept(batch) == [100.0, 200.0]  # no incumbent: both metrics compared
    assert _kept(batch, objective="latency", incumbent=(1000.0, 1e9)) == [100.0]
    assert _kept(batch, objective="edp", incumbent=(1000.0, 1e9)) == [100.0, 200.0]
    close = _batch([100.0, 100.0 + 1e-7], [50.0, 10.0], [[1], [1]])  # within 2e-9 x 1000 of each other
    assert _kept(close, objective="latency", incumbent=(1000.0, 1e9)) == [100.0, 100.0 + 1e-7]


def test_groups_are_separate_and_never_empty():
    rng = np.random.default_rng(0)
    n = 400
    batch = _batch(rng.integers(0, 4, n), rng.integers(0, 4, n), rng.integers(0, 3, (n, 2)))
    key = rng.integers(0, 20, (n, 1))
    settled = np.where(rng.random((n, 2)) < 0.5, 3.0, -np.inf)
    settled = settled[key[:, 0] % 2 * 0 + key[:, 0]]  # same mask per group: settled depends on the key only
    kept = drop_dominated(batch, key, SearchStats(), settled=settled, objective="latency", incumbent=(10.0, 10.0))
    assert set(key[kept.ident, 0]) == set(key[:, 0])
    # Every dropped node has a kept dominator in its group (costs no higher, fits where it fits).
    for b in sorted(set(range(n)) - set(kept.ident.tolist())):
        same = kept.ident[key[kept.ident, 0] == key[b, 0]]
        ok = ((batch.serial[same] <= batch.serial[b]) & (batch.energy[same] <= batch.energy[b])
              | (batch.serial[same] < batch.serial[b] - 2e-9 * 10.0))
        ok &= ((batch.occupancy_max[same] <= np.maximum(batch.occupancy[b], settled[b])).all(axis=1))
        assert ok.any(), b


def test_future_archive_equals_pairwise_check_by_hand():
    """``FutureArchive.dominated`` against a plain double loop: a later node is dropped exactly when an
    archived node with the same key has costs no higher and fits where it is sure to have room. Many
    keys share few values, so hash buckets and key confirmation are both exercised."""
    from mapper.tree_search import FutureArchive

    rng = np.random.default_rng(7)
    archive = FutureArchive(group_cap=1 << 30)
    stored = []
    for _ in range(3):  # several runs, merged as they grow
        n = 40
        key = rng.integers(0, 3, (n, 2))
        cost = rng.integers(0, 4, (n, 4)).astype(float)
        high = rng.integers(0, 4, (n, 2)).astype(float)
        archive.add(key, cost, high)
        stored += list(zip(key.tolist(), cost.tolist(), high.tolist()))
    key = rng.integers(0, 4, (200, 2))
    cost = rng.integers(0, 5, (200, 4)).astype(float)
    room = rng.integers(0, 5, (200, 2)).astype(float)
    got = archive.dominated(key, cost, room, "edp", np.inf)
    expected = [any(k == key[i].tolist() and all(a <= b for a, b in zip(c, cost[i]))
                    and all(h <= r for h, r in zip(hi, room[i])) for k, c, hi in stored)
                for i in range(len(key))]
    assert got.tolist() == expected
    assert 0 < sum(expected) < len(expected)
