"""ZigZag's overlap of transfers with compute (a module's ``overlap: zigzag``): latency in cycles.

Under ``overlap: serial`` (the default, ``costmodel.cost.evaluate``) a transfer into a memory that
is not ``double_buffering`` stops the computation. Under ``overlap: zigzag`` every transfer runs
during the computation, as in ZigZag 3.9.1's ``latency_total2`` (``benchmarks.zigzag_latency``
is an exact reference of that formula on ZigZag's own hardware files); only what the links cannot
hide is added. Per candidate (all arrays over the candidate axis), with ``T`` the compute cycles:

- **Transfers.** Each cut point moves its tile ``c = fetches`` times, one event every period
  ``P = T / c`` cycles. Inputs and weights: one *load* per event (outer memory's read link, inner
  memory's write link). Outputs: one *write-back* per event (inner read, outer write) and, when
  partial sums come back, one *read-back* (outer read, inner write). An event's bytes are the cut's
  bytes in that direction / ``c``; on a link it takes ``r = ceil(bytes x share / link bandwidth) +
  the inner memory's fixed cycles per transfer`` (whole cycles, as ZigZag rounds). A memory's read and write links are separate, each
  with its bytes per cycle (a ``shared_port`` memory has one link for both). ``share`` is 1 unless
  the memory is split into instances (``instance_dims``): then each instance moves its part over
  its part of the bandwidth (``instance_share``: copies and idle instances make it slower).
  Input tiles count the pixels their windows touch (ZigZag's data model: a stride wider than the
  kernel skips rows), not the contiguous span ``overlap: serial`` moves.
- **The array's own traffic** (``Feed``, ZigZag's level-0 transfers): every temporal iteration
  the array takes one step's inputs and weights from their innermost memories (an operand's data
  stays while the kernel call's loops that do not index it run, taken innermost) and writes its
  outputs (and reads partial sums back) into theirs, each event within its own period. It only
  stalls; on the memory's read or write link, or on links of its own when ``array_port``.
- **Allowed cycles.** An event may take the whole period when the inner memory is double-buffered,
  else only the window ``P / block``, ``block`` being the cut's reuse block (``costmodel.analysis``:
  the reuse run above the cut and the irrelevant loops right below it; ZigZag's ``top_ir``): the
  tile is used ``block`` times in a row and can only be replaced during the last use.
  Double-buffered: the memory is ``double_buffering``, or, ZigZag's rule, its tiles (single
  copies, all operands, per instance) take at most half of it, or, cut points taken in the order
  O, I, W, this tile fits once more next to them (and then counts twice for the later ones).
- **Stall per link** (ZigZag's port rule with our links as ports): ``sum max(0, r - a)(c - 1)``
  over the link's events plus ``max(0, sum min(r, a)(c - 1) - union)``, ``union = min(T, max a x c)``
  (the busy windows of events that share a link overlap at the start of every period, so their
  union is at least the longest one's). The stall of the layer is the largest link's (``SS >= 0``).
- **On/offloading.** The first load of every input cut point and the last write-back of every
  output cut point are not hidden: per cut point the slower of its two links. A tile loaded once
  (``c = 1``) is shortened by its link's spare cycles during the computation,
  ``max(0, 1 - sum r / P of the link's periodic events) x (T + SS)``, shared among that link's
  single loads largest first, down to one instance's innermost tile of the operand over one
  instance's link. The two inputs'
  loads add up where they share links (a memory holding both I and W) and overlap elsewhere:
  ``min(S_A + max(S_B + H_B + D_B, H_A + D_A), S_B + max(S_A + H_A + D_A, H_B + D_B))`` with ``S``
  the part on links shared on both sides, ``H`` shared on one side, ``D`` on none (ZigZag's
  formula). Outputs: the sum over output cut points.
- **Latency** ``= T + SS + onloading + offloading + tile overhead + systolic drain`` (per
  ``systolic`` array dim, its unrolling factor - 1, as ZigZag adds).

Differences from ZigZag that stay (explained in the README): our memories merge ZigZag's ports
(one read and one write link each, plus the array's own with ``array_port``), the kernel call
counts as one block in the reuse block and keeps an operand's data for all its loops that do not
index it (ZigZag orders the loops inside it), ZigZag divides double-buffering utilisation by the
top relevant loops, its union of busy windows is exact where ours is the longest window, and it
truncates unrollings that do not divide a loop dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archs.dims import DIM_INDEX, OPERANDS, Operand
from costmodel.problem import Problem

#: Slack before rounding a transfer up to whole cycles (float noise of bytes / bandwidth).
_ROUNDING = 1e-9
#: Cut points are taken in this operand order by the double-buffering rule (ZigZag: O, then inputs).
_ORDER = (Operand.O, Operand.I, Operand.W)


def instance_share(problem: Problem, memory: int, operand: Operand) -> float:
    """How much longer a transfer of ``operand`` takes at memory ``memory`` per instance than over the
    aggregate (ZigZag's instances): ``instances / split``. A memory split along array dims
    (``instance_dims``) has ``instances`` = the product of their sizes, each with its share of the
    bandwidth. Each instance holds the operand's data unrolled along every array dim that the memory
    or a memory below it in the operand's chain serves (is not split along), so only the array dims
    that all of them are split along divide the data: ``split`` = the product of the factors of those
    dims that unroll a loop dim indexing the operand. Other instances hold copies (loaded in
    parallel through their own ports), and idle array positions have ports but no data. 1 when the
    memory is one instance or the problem does not know its unrolling per array dim."""
    module = problem.module
    mem = module.memories[memory]
    if not mem.instance_dims or not problem.array_unrolling:
        return 1.0
    sizes = {d.name: d.size for d in module.spatial}
    unrolled = {name: (dim, factor) for name, dim, factor in problem.array_unrolling}
    relevant = problem.relevant[OPERANDS.index(operand)]
    chain = module.chain(operand)
    below = chain[:chain.index(memory) + 1] if memory in chain else (memory,)
    split_dims = set(mem.instance_dims)
    for i in below:
        split_dims &= set(module.memories[i].instance_dims)
    instances, split = 1, 1
    for name in mem.instance_dims:
        instances *= sizes[name]
        dim, factor = unrolled.get(name, (None, 1))
        if name in split_dims and dim is not None and relevant[DIM_INDEX[dim]]:
            split *= factor
    return instances / split


def instance_count(problem: Problem, memory: int) -> int:
    """Instances of memory ``memory`` (product of its ``instance_dims``' sizes; 1 when the problem
    does not know its unrolling per array dim, as ``instance_share`` then treats it as one)."""
    mem = problem.module.memories[memory]
    if not problem.array_unrolling:
        return 1
    sizes = {d.name: d.size for d in problem.module.spatial}
    count = 1
    for name in mem.instance_dims:
        count *= sizes[name]
    return count


def double_buffered(problem: Problem, buffer_bytes: np.ndarray) -> np.ndarray:
    """[cut, cand] whether each cut point's inner memory is double-buffered for its tile (see the
    module docstring); ``buffer_bytes`` [cut, cand] single copies (x2 for ``double_buffering``)."""
    cuts = problem.cut_points
    memories = problem.module.memories
    buffer_bytes = np.stack([buffer_bytes[p] * instance_share(problem, c.inner_index, c.operand)
                             for p, c in enumerate(cuts)])  # as if every instance held the busiest one's
    occupancy = np.zeros((len(memories), buffer_bytes.shape[1]))
    for p, cut in enumerate(cuts):
        occupancy[cut.inner_index] += buffer_bytes[p]
    extra = np.zeros_like(occupancy)
    flags = np.zeros(buffer_bytes.shape, dtype=bool)
    for operand in _ORDER:
        for p, cut in enumerate(cuts):
            if cut.operand is not operand:
                continue
            if cut.inner.double_buffering:
                flags[p] = True
                continue
            size = float(memories[cut.inner_index].size_bytes)  # per instance: share x bytes / size
            shared = occupancy[cut.inner_index] + extra[cut.inner_index]
            half = shared <= size / 2
            again = ~half & (buffer_bytes[p] <= size - shared)
            extra[cut.inner_index] += np.where(again, buffer_bytes[p], 0.0)
            flags[p] = half | again
    return flags


def _reduce_once(loads: list[np.ndarray], floors: list[np.ndarray], spare: np.ndarray) -> list[np.ndarray]:
    """Shorten single loads [cand] by ``spare`` [cand] cycles in all, largest first, each down to its
    floor (ZigZag's rule for data loaded once)."""
    if not loads:
        return []
    r = np.stack(loads)
    room = np.maximum(r - np.stack(floors), 0.0)
    order = np.argsort(-r, axis=0, kind="stable")
    room_sorted = np.take_along_axis(room, order, axis=0)
    before = np.cumsum(room_sorted, axis=0) - room_sorted
    cut_sorted = np.clip(spare[None, :] - before, 0.0, room_sorted)
    cut = np.empty_like(cut_sorted)
    np.put_along_axis(cut, order, cut_sorted, axis=0)
    return list(r - cut)


@dataclass(frozen=True)
class OverlapLatency:
    """The parts of the latency under ``overlap: zigzag`` (cycles, [cand] each)."""

    compute: np.ndarray  # T
    stall: np.ndarray  # SS: the worst link's stall
    onloading: np.ndarray  # first loads of the inputs
    offloading: np.ndarray  # last write-backs of the outputs
    overhead: np.ndarray  # tile overhead
    drain: float = 0.0  # systolic drain

    @property
    def latency_cycles(self) -> np.ndarray:
        return self.compute + self.stall + self.onloading + self.offloading + self.overhead + self.drain


def systolic_drain(problem: Problem) -> float:
    """Cycles (ZigZag's systolic drain): per ``systolic`` array dim, its unrolling factor - 1."""
    systolic = {d.name for d in problem.module.spatial if d.systolic}
    return float(sum(factor - 1 for name, dim, factor in problem.array_unrolling if name in systolic and dim is not None))


@dataclass(frozen=True)
class Feed:
    """The array's own traffic with an operand's innermost memory (ZigZag's level-0 transfers): one
    event per ``period_cycles`` [cand], ``count`` [cand] of them, ``bytes`` [cand] each (the data the
    array takes in, or for outputs gives back, per event). Outputs also read partial sums back when
    ``partial``."""

    operand: Operand
    bytes: np.ndarray
    period_cycles: np.ndarray
    count: np.ndarray
    partial: bool = False


@dataclass
class _Event:
    """One recurring transfer: ``count`` events, one per ``period`` cycles, each moving ``amount``
    bytes over ``links`` [(link, bandwidth)] within ``window`` cycles ([cand] arrays)."""

    operand: Operand
    kind: str  # load, write-back, read-back (cut points) or feed (the array)
    amount: np.ndarray
    links: list
    count: np.ndarray
    period: np.ndarray
    window: np.ndarray
    fixed: float = 0.0


def zigzag_latency(problem: Problem, compute: np.ndarray, overhead: np.ndarray, fetches: np.ndarray,
                   blocks: np.ndarray, bytes_in: np.ndarray, bytes_out: np.ndarray, buffer_bytes: np.ndarray,
                   innermost_bytes: dict, feeds: tuple = ()) -> OverlapLatency:
    """Latency parts (cycles) under ``overlap: zigzag`` (module docstring).

    compute, overhead [cand] cycles; fetches, blocks (reuse blocks, ``costmodel.analysis``), bytes_in,
    bytes_out, buffer_bytes [cut, cand] (buffer bytes: one copy, or two for ``double_buffering``
    memories); ``innermost_bytes``: operand -> [cand] bytes of its innermost tile (the floor of a
    single load); ``feeds``: the array's ``Feed`` per operand (they only stall).
    """
    cuts = problem.cut_points
    n_cand = compute.shape[0]
    memories = problem.module.memories

    def side(memory: int, direction: str) -> str:  # a memory with one read-write port has one link
        return "rw" if memories[memory].shared_port else direction

    def link(memory: int, direction: str) -> tuple:
        bandwidth = memories[memory].read_bytes_per_cycle if direction == "r" else memories[memory].write_bytes_per_cycle
        return (memory, side(memory, direction)), bandwidth

    events: list[_Event] = []
    if cuts:
        c = fetches.astype(np.float64)
        period = compute / c
        window = np.where(double_buffered(problem, buffer_bytes), period, period / blocks)
    for p, cut in enumerate(cuts):
        inner, outer = cut.inner_index, cut.outer_index
        timing = (c[p], period[p], window[p], cut.inner.transfer_fixed_cycles)
        if cut.operand is Operand.O:
            events.append(_Event(cut.operand, "write-back", bytes_out[p] / c[p], [link(inner, "r"), link(outer, "w")], *timing))
            if np.any(bytes_in[p] > 0):
                events.append(_Event(cut.operand, "read-back", bytes_in[p] / c[p], [link(outer, "r"), link(inner, "w")],
                                     *timing))
        else:
            events.append(_Event(cut.operand, "load", bytes_in[p] / c[p], [link(outer, "r"), link(inner, "w")], *timing))
    for feed in feeds:
        first = problem.module.chain(feed.operand)[0]
        count = np.asarray(feed.count, dtype=np.float64)
        timing = (count, feed.period_cycles, feed.period_cycles)
        directions = (["w", "r"] if feed.partial else ["w"]) if feed.operand is Operand.O else ["r"]
        for direction in directions:
            (key, bandwidth) = link(first, direction)
            if memories[first].array_port:  # ports of its own: no contention with other transfers
                key = (first, "array-" + direction)
            events.append(_Event(feed.operand, "feed", feed.bytes, [(key, bandwidth)], *timing))

    # cycles of each event on each of its links (whole cycles), and what each link carries
    per_link: dict[tuple[int, str], list[tuple[int, np.ndarray]]] = {}
    cycles = []
    for e, event in enumerate(events):
        sides = []
        for lk, bandwidth in event.links:
            share = instance_share(problem, lk[0], event.operand)
            r = np.where(event.amount > 0, np.ceil(event.amount * share / bandwidth - _ROUNDING) + event.fixed, 0.0)
            sides.append((lk, r))
            per_link.setdefault(lk, []).append((e, r))
        cycles.append(sides)

    stall = np.zeros(n_cand)
    busy_fraction = {}
    for lk, items in per_link.items():
        positive = np.zeros(n_cand)
        hidden = np.zeros(n_cand)
        union = np.zeros(n_cand)
        fraction = np.zeros(n_cand)
        for e, r in items:
            a, n = events[e].window, events[e].count
            positive += np.maximum(r - a, 0.0) * (n - 1)
            hidden += np.minimum(r, a) * (n - 1)
            union = np.maximum(union, a * n)
            fraction += np.where(n > 1, r / events[e].period, 0.0)
        value = positive + np.maximum(hidden - np.minimum(union, compute), 0.0)
        stall = np.maximum(stall, value)
        busy_fraction[lk] = fraction
    spare = {lk: np.maximum(1.0 - f, 0.0) * (compute + stall) for lk, f in busy_fraction.items()}

    # first loads and last write-backs: single events shortened by their link's spare cycles
    edge = [[r for _, r in sides] for sides in cycles]  # [event][side] cycles counted once
    for lk, items in per_link.items():
        once = [(e, i) for e, _ in items for i, (other, _) in enumerate(cycles[e]) if other == lk
                and events[e].kind in ("load", "write-back")]
        if not once:
            continue
        loads, floors = [], []
        bandwidth = memories[lk[0]].write_bytes_per_cycle if lk[1] == "w" else memories[lk[0]].read_bytes_per_cycle
        for e, i in once:
            loads.append(np.where(events[e].count == 1, edge[e][i], np.inf))
            operand = events[e].operand
            first = problem.module.chain(operand)[0]  # one instance of it holds the floor's bytes
            per_instance = innermost_bytes[operand] * instance_share(problem, first, operand) / instance_count(problem, first)
            floors.append(per_instance * instance_count(problem, lk[0]) / bandwidth)
        shortened = _reduce_once([np.where(np.isinf(x), 0.0, x) for x in loads], floors, spare[lk])
        for (e, i), x, new in zip(once, loads, shortened):
            edge[e][i] = np.where(np.isinf(x), edge[e][i], new)

    parts = {operand: np.zeros((3, n_cand)) for operand in (Operand.I, Operand.W)}  # shared, half, individual
    offloading = np.zeros(n_cand)
    holds_both = [Operand.I in m.operands and Operand.W in m.operands for m in memories]
    for e, event in enumerate(events):
        if event.kind not in ("load", "write-back"):
            continue
        worst = np.maximum(edge[e][0], edge[e][1])
        if event.kind == "write-back":
            offloading += worst
            continue
        shared_sides = sum(holds_both[lk[0]] for lk, _ in event.links)
        parts[event.operand][2 - shared_sides] += worst
    (sa, ha, da), (sb, hb, db) = parts[Operand.I], parts[Operand.W]
    if any(o is Operand.W for o in problem.operands):
        onloading = np.minimum(sa + np.maximum(sb + hb + db, ha + da), sb + np.maximum(sa + ha + da, hb + db))
    else:
        onloading = sa + ha + da
    return OverlapLatency(compute, stall, onloading, offloading, overhead, systolic_drain(problem))
