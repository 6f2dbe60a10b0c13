"""Latency (cycles) and energy (pJ) of a batch of mappings: pure array formulas over candidates.

Model, per candidate:
- compute: ``n_steps`` kernel calls of ``kernel_cycles`` each (the module's hook, or temporal
  iterations x PEs / peak MAC per cycle).
- traffic per cut point: bytes actually moved (input halos clipped at the image border, outputs
  written once at output precision plus partial sums at accumulator precision when a reduction loop
  sits above the cut; an output tile is sized at accumulator precision whenever it holds partial
  sums), transfers counted per tile, contiguous runs per transfer (``costmodel.runs``); cycles =
  bytes / link bandwidth + transfers x the inner memory's fixed cycles per transfer + runs x its
  cycles per run.
- overlap: transfers into a double-buffered memory run during compute. Their events recur with
  nested periods (every tile fetch recurs every ``n_steps / fetches`` kernel calls), so the sum
  over calls of ``max(compute, transfers due at that call)`` has a closed form; the first call's
  loads and the last write-back are not hidden (prologue, epilogue). Transfers into memories
  without double buffering, and the per-tile overhead, add serially.
- energy: MACs x E_mac + moved bytes x (read energy of the source + write energy of the
  destination) + the kernel's accesses to the innermost memories (each call reads its input and
  weight tiles and reads+writes its output tile once).

That is the ``overlap: serial`` model (a module's default). Under ``overlap: zigzag`` the latency
is ZigZag's (``costmodel.overlap``) and input tiles count the pixels their windows touch (ZigZag's
data model) in traffic, capacity and energy alike; the energy formula is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from archs.dims import DIM_INDEX, DIMS, OPERANDS, LoopDim, Operand
from costmodel.analysis import MappingStats, candidate_last
from costmodel.overlap import Feed, zigzag_latency
from costmodel.problem import Problem
from costmodel.runs import transfer_runs

N_DIMS = len(DIMS)

D = LoopDim
OBJECTIVES = ("latency", "energy", "edp")


@dataclass(frozen=True)
class CostBreakdown:
    """Per-candidate costs (axis names in brackets)."""

    latency_cycles: np.ndarray  # [cand]
    energy_pj: np.ndarray  # [cand]
    kernel_cycles: np.ndarray  # [cand] cycles of one kernel call
    compute_cycles: np.ndarray  # [cand] all kernel calls
    transfer_cycles: np.ndarray  # [cand] all transfers, hidden or not
    overhead_cycles: np.ndarray  # [cand] per-tile overhead
    bytes_in: np.ndarray  # [cand, cut] bytes moved outer -> inner
    bytes_out: np.ndarray  # [cand, cut] bytes moved inner -> outer (outputs)
    transfers_in: np.ndarray  # [cand, cut]
    transfers_out: np.ndarray  # [cand, cut]
    runs_in: np.ndarray  # [cand, cut] contiguous runs of the transfers in (``costmodel.runs``)
    runs_out: np.ndarray  # [cand, cut]
    buffer_bytes: np.ndarray  # [cand, cut] space the tile takes in the inner memory (x2 if double buffered)
    occupancy: np.ndarray  # [cand, memory] bytes used in each memory of the module
    feasible: np.ndarray  # [cand] every tile fits its memory

    def objective(self, name: str) -> np.ndarray:
        """The array to minimise for ``latency``, ``energy`` or ``edp``."""
        if name == "latency":
            return self.latency_cycles
        if name == "energy":
            return self.energy_pj
        if name == "edp":
            return self.latency_cycles * self.energy_pj
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")


@lru_cache(maxsize=65536)
def _window_valid_sum(tile_out: int, tile_k: int, n_out: int, n_k: int, stride: int, dilation: int,
                      pad_lo: int, in_size: int) -> int:
    """Input pixels inside the image, summed over every (output tile, kernel tile) position."""
    length = (tile_out - 1) * stride + (tile_k - 1) * dilation + 1
    starts = (np.arange(n_out)[:, None] * tile_out * stride + np.arange(n_k)[None, :] * tile_k * dilation - pad_lo)
    valid = np.clip(np.minimum(starts + length, in_size) - np.maximum(starts, 0), 0, None)
    return int(valid.sum())


@lru_cache(maxsize=4096)
def _window_table(out: int, kernel: int, stride: int, dilation: int, pad_lo: int, in_size: int) -> np.ndarray:
    """[tile_out, tile_k] ``_window_valid_sum`` for every pair of divisors of the padded extents."""
    table = np.zeros((out + 1, kernel + 1))
    for a in (t for t in range(1, out + 1) if out % t == 0):
        for b in (t for t in range(1, kernel + 1) if kernel % t == 0):
            table[a, b] = _window_valid_sum(a, b, out // a, kernel // b, stride, dilation, pad_lo, in_size)
    return table


def _window_rows(ext_out: np.ndarray, ext_k: np.ndarray, stride: int, dilation: int, in_size: int) -> np.ndarray:
    """Input rows (or columns) a tile spans, capped by the image."""
    return np.minimum((ext_out - 1) * stride + (ext_k - 1) * dilation + 1, in_size)


def _touched_rows(ext_out: np.ndarray, ext_k: np.ndarray, stride: int, dilation: int, in_size: int) -> np.ndarray:
    """Input rows (or columns) a tile's windows touch, capped by the image: ZigZag's count
    ``a b - max(0, b - s/g) (a - d/g)`` (``g = gcd(s, d)``), which skips the rows a stride wider than
    the kernel jumps over (``overlap: zigzag`` counts input tiles so)."""
    g = math.gcd(stride, dilation)
    rows = ext_out * ext_k - np.maximum(0, ext_k - stride // g) * (ext_out - dilation // g)
    return np.minimum(rows, in_size)


_WINDOW_MASK = np.array([d in (D.OY, D.OX, D.FY, D.FX) for d in DIMS])
_ALL = np.ones(N_DIMS, dtype=bool)
_OY, _OX, _FY, _FX = (DIM_INDEX[d] for d in (D.OY, D.OX, D.FY, D.FX))


def _tproduct(problem: Problem, tile: np.ndarray, mask, spatial: bool = True) -> np.ndarray:
    """[cand] product over the dims in ``mask`` of temporal extents ``tile`` [dim, cand] (times the
    spatial unrolling when ``spatial``). Dims without temporal loops hold 1: only constants there.
    The result may be a view of ``tile``: do not modify it in place."""
    key = ("tproduct", np.asarray(mask, dtype=bool).tobytes(), spatial)
    plan = problem.memo.get(key)
    if plan is None:  # (dims with loops, constant factor of the others)
        dims = [int(d) for d in np.flatnonzero(mask)]
        scale = int(np.prod([problem.spatial[d] for d in dims])) if spatial and dims else 1
        plan = problem.memo[key] = ([d for d in dims if problem.remaining[d] > 1], scale)
    dims, scale = plan
    out = None
    for d in dims:
        out = tile[d] if out is None else out * tile[d]
    if out is None:
        return np.full(tile.shape[1], scale, dtype=np.int64)
    return out * scale if scale != 1 else out


def _extent(problem: Problem, tile: np.ndarray, d: int) -> np.ndarray:
    """[cand] full extent (spatial x temporal) of dim ``d``."""
    return tile[d] * int(problem.spatial[d]) if problem.spatial[d] != 1 else tile[d]


def _tile_elements(problem: Problem, operand: Operand, tile: np.ndarray) -> np.ndarray:
    """[cand] elements of a tile of ``operand`` with temporal extents ``tile`` [dim, cand]."""
    rel = problem.relevant[OPERANDS.index(operand)]
    if not rel.any():
        return np.zeros(tile.shape[1], dtype=np.int64)
    if operand is not Operand.I:
        return _tproduct(problem, tile, rel)
    layer = problem.layer
    iy, ix = layer.input_size
    window = _touched_rows if problem.module.overlap == "zigzag" else _window_rows
    rows = window(_extent(problem, tile, _OY), _extent(problem, tile, _FY), layer.stride[0], layer.dilation[0], iy)
    cols = window(_extent(problem, tile, _OX), _extent(problem, tile, _FX), layer.stride[1], layer.dilation[1], ix)
    return _tproduct(problem, tile, rel & ~_WINDOW_MASK) * rows * cols


def _moved_elements(problem: Problem, operand: Operand, tile: np.ndarray, fetches: np.ndarray) -> np.ndarray:
    """[cand] elements moved by ``fetches`` transfers of tiles of temporal extents ``tile`` [dim,
    cand]: every tile position is visited equally often, so the total is fetches / positions x
    (valid elements summed over all positions)."""
    rel = problem.relevant[OPERANDS.index(operand)]
    positions = None
    for d in np.flatnonzero(rel):
        if problem.remaining[d] > 1:
            count = problem.remaining[d] // tile[d]
            positions = count if positions is None else positions * count
    if positions is None:
        positions = 1
    real = problem.real_sizes
    if operand is not Operand.I:
        valid_sweep = float(np.prod(np.where(rel, real, 1)))
        return fetches * valid_sweep / positions
    if problem.module.overlap == "zigzag":  # ZigZag's data model: every fetch moves a whole (touched) tile
        return fetches * _tile_elements(problem, operand, tile)
    layer = problem.layer
    iy, ix = layer.input_size
    padded = problem.padded_sizes
    rows = _window_table(int(padded[_OY]), int(padded[_FY]), layer.stride[0], layer.dilation[0], layer.padding[0], iy)
    cols = _window_table(int(padded[_OX]), int(padded[_FX]), layer.stride[1], layer.dilation[1], layer.padding[2], ix)
    others = float(np.prod(np.where(rel & ~_WINDOW_MASK, real, 1)))
    window = rows[_extent(problem, tile, _OY), _extent(problem, tile, _FY)] * cols[_extent(problem, tile, _OX),
                                                                                  _extent(problem, tile, _FX)]
    return fetches * (others * window) / positions


def _kernel_cycles(problem: Problem, compute_tile: np.ndarray) -> np.ndarray:
    """[cand] cycles of one kernel call on a tile of temporal extents ``compute_tile`` [dim, cand]."""
    compute = problem.module.compute
    if compute.kernel_hook is not None:
        tile = {d: compute_tile[i] * problem.spatial[i] for i, d in enumerate(DIMS)}
        return np.asarray(compute.kernel_hook(tile, problem.layer), dtype=np.float64)
    return _tproduct(problem, compute_tile, _ALL, spatial=False) * (problem.module.array_size / compute.macs_per_cycle)


def kernel_cycles(problem: Problem, compute_tile: np.ndarray) -> np.ndarray:
    """[cand] cycles of one kernel call on a tile of temporal extents ``compute_tile`` [cand, dim]."""
    return _kernel_cycles(problem, np.ascontiguousarray(np.asarray(compute_tile).T))


def _buffer(elements: np.ndarray, bits, double_buffered: bool) -> np.ndarray:
    """Bytes a tile takes in its memory (two copies when double buffered)."""
    return np.ceil(elements * bits / 8) * (2 if double_buffered else 1)


def _occupancy_lower_bound(problem: Problem, tiles: np.ndarray) -> np.ndarray:
    """[memory, cand] bytes used by tiles of temporal extents ``tiles`` [cut, dim, cand], outputs
    counted at output precision unless the memory accumulates (partial sums can only need more)."""
    occupancy = np.zeros((len(problem.module.memories), tiles.shape[2]))
    for p, cut in enumerate(problem.cut_points):
        occupancy[cut.inner_index] += cut_buffer_lower_bound(problem, p, tiles[p])
    return occupancy


def occupancy_lower_bound(problem: Problem, tiles: np.ndarray) -> np.ndarray:
    """[cand, memory] bytes used by tiles of temporal extents ``tiles`` [cand, cut, dim], outputs
    counted at output precision (partial sums can only need more)."""
    return _occupancy_lower_bound(problem, np.ascontiguousarray(np.asarray(tiles).transpose(1, 2, 0))).T


def _kernel_access_energy(problem: Problem, compute_tile: np.ndarray) -> np.ndarray:
    """[cand] pJ of the kernel's accesses to each operand's innermost memory (``compute_tile`` [dim,
    cand]): every call reads its input and weight tiles and reads and writes its output tile once."""
    module, prec = problem.module, problem.layer.precision
    n_steps = np.prod(problem.remaining) / _tproduct(problem, compute_tile, _ALL, spatial=False)
    energy = np.zeros(compute_tile.shape[1])
    for operand in problem.operands:
        inner = module.memories[module.chain(operand)[0]]
        call_bytes = _tile_elements(problem, operand, compute_tile) * prec.bits(operand) / 8
        per_byte = inner.read_energy_pj_per_byte + (inner.write_energy_pj_per_byte if operand is Operand.O else 0.0)
        energy += n_steps * call_bytes * per_byte
    return energy


def kernel_access_energy(problem: Problem, compute_tile: np.ndarray) -> np.ndarray:
    """[cand] ``_kernel_access_energy`` for ``compute_tile`` [cand, dim]."""
    return _kernel_access_energy(problem, np.ascontiguousarray(np.asarray(compute_tile).T))


def _pipelined_cycles(n_steps, compute, fetches, event_cycles) -> np.ndarray:
    """Sum over kernel calls of max(compute, transfers due at that call) for double-buffered
    transfers with nested periods, plus the unhidden first loads (prologue).

    fetches, event_cycles: [event, cand]. An event with f fetches is due every n_steps / f calls;
    periods are products of loop-nest prefixes, so they divide one another.
    """
    if fetches.shape[0] == 1:
        f, x = fetches.astype(np.float64), event_cycles
    else:
        order = np.argsort(-fetches, axis=0, kind="stable")
        f = np.take_along_axis(fetches, order, axis=0).astype(np.float64)
        x = np.take_along_axis(event_cycles, order, axis=0)
    due = np.cumsum(x, axis=0)  # [event, cand] load at calls where the first j+1 events are due
    busy = np.zeros_like(compute)
    for j in range(f.shape[0]):
        f_next = f[j + 1] if j + 1 < f.shape[0] else 0.0
        busy += (f[j] - f_next) * np.maximum(compute, due[j])
    idle = (n_steps - f[0]) * compute
    prologue = np.minimum(compute, due[-1])
    return idle + busy + prologue


def _feeds(problem: Problem, compute_tile: np.ndarray, compute: np.ndarray) -> tuple[Feed, ...]:
    """The array's traffic with each operand's innermost memory (``costmodel.overlap.Feed``) for
    kernel calls of temporal extents ``compute_tile`` [dim, cand] taking ``compute`` [cand] cycles in
    all: per temporal iteration the array takes (inputs, weights) or gives (outputs) the data one
    step of the unrolled array holds; an input or weight stays while the kernel's loops that do not
    index it run (taken innermost), an output changes every iteration (ZigZag's level 0)."""
    prec = problem.layer.precision
    ones = np.ones_like(compute_tile)
    iterations = float(np.prod(problem.remaining))
    per_iteration = compute / iterations
    reduction = ~problem.relevant[OPERANDS.index(Operand.O)] & (problem.real_sizes > 1)
    feeds = []
    for operand in problem.operands:
        step = _tile_elements(problem, operand, ones)
        if operand is Operand.O:
            partial = bool(reduction.any())
            bits = prec.accumulator if partial else prec.output
            stay = np.ones(compute.shape[0])
        else:
            partial = False
            bits = prec.bits(operand)
            rel = problem.relevant[OPERANDS.index(operand)]
            stay = _tproduct(problem, compute_tile, ~rel, spatial=False).astype(np.float64)
        feeds.append(Feed(operand, step * bits / 8, stay * per_iteration, iterations / stay, partial))
    return tuple(feeds)


@dataclass(frozen=True)
class CutTraffic:
    """Traffic across one cut point for a batch of tiles and fetch counts (axis ``cand``)."""

    bytes_in: np.ndarray  # [cand] bytes moved outer -> inner
    bytes_out: np.ndarray  # [cand] bytes moved inner -> outer (outputs and partial sums)
    transfers_in: np.ndarray  # [cand]
    transfers_out: np.ndarray  # [cand]
    runs_in: np.ndarray  # [cand] contiguous runs of the transfers in (``costmodel.runs``)
    runs_out: np.ndarray  # [cand]
    cycles: np.ndarray  # [cand] link cycles of all those transfers (bandwidth + fixed cycles each +
    # cycles per run)
    energy_pj: np.ndarray  # [cand] read energy at the source + write energy at the destination


def cut_traffic(problem: Problem, p: int, tile: np.ndarray, fetches: np.ndarray, distinct: np.ndarray) -> CutTraffic:
    """Traffic of cut point ``p`` when its tile of temporal extents ``tile`` [dim, cand] is brought in
    ``fetches`` [cand] times and the operand has ``distinct`` [cand] different tiles there.

    Inputs and weights: every fetch moves one tile (input halos clipped at the image border).
    Outputs: every fetch ends with a write-back (all of them together write the output once at output
    precision, the ``fetches - distinct`` earlier ones carry partial sums at accumulator precision),
    and each of those partial write-backs is read back in. Every transfer moves the tile's valid box
    in ``runs.box_runs`` contiguous runs. Every quantity grows with ``fetches`` (the search's bounds
    rely on it: fetches >= distinct gives a lower bound).
    """
    cut = problem.cut_points[p]
    prec = problem.layer.precision
    if cut.operand is Operand.O:
        out_elements = float(problem.layer.tensor_elements(Operand.O))
        partial_elements = (fetches - distinct) / distinct * out_elements
        bytes_out = out_elements * prec.output / 8 + partial_elements * prec.accumulator / 8
        bytes_in = partial_elements * prec.accumulator / 8
        transfers_out = np.asarray(fetches)
        transfers_in = fetches - distinct
        runs_out = transfer_runs(problem, cut.operand, tile, fetches)
        runs_in = transfer_runs(problem, cut.operand, tile, transfers_in)
    else:
        bytes_in = _moved_elements(problem, cut.operand, tile, fetches) * prec.bits(cut.operand) / 8
        bytes_out = np.zeros_like(bytes_in, dtype=np.float64)
        transfers_in = np.asarray(fetches)
        transfers_out = np.zeros_like(transfers_in)
        runs_in = transfer_runs(problem, cut.operand, tile, fetches)
        runs_out = np.zeros_like(runs_in)
    fixed, per_run = cut.inner.transfer_fixed_cycles, cut.inner.transfer_cycles_per_run
    cycles = (bytes_in / _link(cut, False) + transfers_in * fixed + bytes_out / _link(cut, True) + transfers_out * fixed
              + (runs_in + runs_out) * per_run)
    energy = (bytes_in * (cut.outer.read_energy_pj_per_byte + cut.inner.write_energy_pj_per_byte)
              + bytes_out * (cut.inner.read_energy_pj_per_byte + cut.outer.write_energy_pj_per_byte))
    return CutTraffic(bytes_in, bytes_out, transfers_in, transfers_out, runs_in, runs_out, cycles, energy)


def writeback_epilogue_cycles(problem: Problem, p: int, traffic: CutTraffic, fetches) -> np.ndarray:
    """[cand] cycles of one write-back of output cut point ``p`` (the last one, which no compute
    hides behind double buffering): its average bytes, one fixed cost and its average runs."""
    cut = problem.cut_points[p]
    return (traffic.bytes_out / fetches / _link(cut, True) + cut.inner.transfer_fixed_cycles
            + traffic.runs_out / fetches * cut.inner.transfer_cycles_per_run)


def evaluate(problem: Problem, stats) -> CostBreakdown:
    """Latency, energy and traffic of every candidate of ``stats`` (either layout)."""
    if isinstance(stats, MappingStats):
        stats = candidate_last(stats)
    module, layer = problem.module, problem.layer
    prec = layer.precision
    n_cand = stats.n_steps.shape[0]
    n_cut = len(problem.cut_points)
    bytes_in = np.zeros((n_cut, n_cand))
    bytes_out = np.zeros((n_cut, n_cand))
    transfers_in = np.zeros((n_cut, n_cand), dtype=np.int64)
    transfers_out = np.zeros((n_cut, n_cand), dtype=np.int64)
    runs_in = np.zeros((n_cut, n_cand))
    runs_out = np.zeros((n_cut, n_cand))
    buffer_bytes = np.zeros((n_cut, n_cand))
    cycles = np.zeros((n_cut, n_cand))
    energy = np.full(n_cand, layer.macs * module.compute.energy_pj_per_mac)

    for p, cut in enumerate(problem.cut_points):
        fetches, distinct = stats.fetches[p], stats.distinct[p]
        elements = _tile_elements(problem, cut.operand, stats.tile[p])
        if cut.operand is Operand.O:
            # The tile holds partial sums when they leave and come back, when the memory
            # accumulates, when the level below hands it partial sums, or (innermost output level)
            # when reduction loops add several kernel calls' results into it while it stays:
            # loops between the kernel call and this cut and the reuse run right above the cut.
            if cut.boundary == 0:
                reduction = ~problem.relevant[OPERANDS.index(Operand.O)]
                run = np.prod(problem.remaining) // (fetches * _tproduct(problem, stats.tile[p], _ALL, spatial=False))
                receives = (_tproduct(problem, stats.tile[p], reduction, spatial=False) * run
                            > _tproduct(problem, stats.compute_tile, reduction, spatial=False))
            else:
                receives = stats.fetches[p - 1] > stats.distinct[p - 1]  # the O cut just below sends partials
            partial = (fetches > distinct) | cut.inner.accumulates | receives
            bits = np.where(partial, prec.accumulator, prec.output)
        else:
            bits = prec.bits(cut.operand)
        traffic = cut_traffic(problem, p, stats.tile[p], fetches, distinct)
        bytes_in[p], bytes_out[p] = traffic.bytes_in, traffic.bytes_out
        transfers_in[p], transfers_out[p] = traffic.transfers_in, traffic.transfers_out
        runs_in[p], runs_out[p] = traffic.runs_in, traffic.runs_out
        cycles[p] = traffic.cycles
        energy += traffic.energy_pj
        buffer_bytes[p] = _buffer(elements, bits, cut.inner.double_buffering)

    occupancy = np.zeros((len(module.memories), n_cand))
    for p, cut in enumerate(problem.cut_points):
        occupancy[cut.inner_index] += buffer_bytes[p]
    feasible = np.ones(n_cand, dtype=bool)
    for i, m in enumerate(module.memories):
        feasible &= occupancy[i] <= m.size_bytes

    per_call = _kernel_cycles(problem, stats.compute_tile)
    n_steps = stats.n_steps.astype(np.float64)
    compute = n_steps * per_call
    overhead = n_steps * module.tile_overhead_cycles

    db = [p for p, c in enumerate(problem.cut_points) if c.inner.double_buffering]
    serial = [p for p in range(n_cut) if p not in db]
    if module.overlap == "zigzag":
        if stats.reuse_block is not None:
            runs = stats.reuse_block
        else:  # the reuse runs alone (the loops right below the cut unknown)
            volume = _tproduct(problem, stats.tile.transpose(1, 0, 2).reshape(N_DIMS, -1), _ALL, spatial=False)
            runs = np.prod(problem.remaining) / (stats.fetches * volume.reshape(n_cut, n_cand))
        innermost = {c.operand: buffer_bytes[p] / (2 if c.inner.double_buffering else 1)
                     for p, c in enumerate(problem.cut_points) if c.boundary == 0}
        latency = zigzag_latency(problem, compute, overhead, stats.fetches, runs, bytes_in, bytes_out, buffer_bytes,
                                 innermost, _feeds(problem, stats.compute_tile, compute)).latency_cycles
    elif db:
        event = cycles[db] / stats.fetches[db]
        hidden = _pipelined_cycles(n_steps, per_call, stats.fetches[db], event)
        epilogue = 0.0
        for p in db:
            if problem.cut_points[p].operand is Operand.O:
                traffic = CutTraffic(bytes_in[p], bytes_out[p], transfers_in[p], transfers_out[p], runs_in[p], runs_out[p],
                                     cycles[p], np.zeros(n_cand))
                epilogue = epilogue + writeback_epilogue_cycles(problem, p, traffic, stats.fetches[p])
        latency = hidden + epilogue
    else:
        latency = compute.copy()
    if module.overlap != "zigzag":
        for p in serial:
            latency += cycles[p]
        latency += overhead

    energy += _kernel_access_energy(problem, stats.compute_tile)

    return CostBreakdown(
        latency_cycles=latency,
        energy_pj=energy,
        kernel_cycles=per_call,
        compute_cycles=compute,
        transfer_cycles=cycles.sum(axis=0),
        overhead_cycles=overhead,
        bytes_in=bytes_in.T,
        bytes_out=bytes_out.T,
        transfers_in=transfers_in.T,
        transfers_out=transfers_out.T,
        runs_in=runs_in.T,
        runs_out=runs_out.T,
        buffer_bytes=buffer_bytes.T,
        occupancy=occupancy.T,
        feasible=feasible,
    )


def cut_buffer_lower_bound(problem: Problem, p: int, tile: np.ndarray) -> np.ndarray:
    """[cand] bytes cut point ``p``'s tile of temporal extents ``tile`` [dim, cand] takes in its inner
    memory, outputs at output precision unless the memory accumulates (partial sums need more)."""
    cut = problem.cut_points[p]
    elements = _tile_elements(problem, cut.operand, tile)
    bits = problem.layer.precision.bits(cut.operand)
    if cut.operand is Operand.O and cut.inner.accumulates:
        bits = problem.layer.precision.accumulator
    return _buffer(elements, bits, cut.inner.double_buffering)


def partial_sum_buffer(problem: Problem, p: int, tile: np.ndarray) -> np.ndarray:
    """[cand] bytes output cut point ``p``'s tile of temporal extents ``tile`` [dim, cand] takes when it
    holds partial sums (accumulator precision): the most an output tile can take."""
    cut = problem.cut_points[p]
    elements = _tile_elements(problem, cut.operand, tile)
    return _buffer(elements, problem.layer.precision.accumulator, cut.inner.double_buffering)


def cut_traffic_lower_bound(problem: Problem, p: int, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cycles [cand], pJ [cand]) no loop order can go below across cut point ``p`` with tiles of
    temporal extents ``tile`` [dim, cand]: each tile position is fetched at least once (``fetches >=
    distinct``) and outputs leave once at output precision."""
    cut = problem.cut_points[p]
    prec = problem.layer.precision
    rel = problem.relevant[OPERANDS.index(cut.operand)]
    distinct = int(np.prod(problem.remaining[rel])) // _tproduct(problem, tile, rel, spatial=False)
    runs = transfer_runs(problem, cut.operand, tile, distinct)
    if cut.operand is Operand.O:
        moved = np.full(tile.shape[1], float(problem.layer.tensor_elements(Operand.O)) * prec.output / 8)
        link = _link(cut, True)
        per_byte = cut.inner.read_energy_pj_per_byte + cut.outer.write_energy_pj_per_byte
    else:
        moved = _moved_elements(problem, cut.operand, tile, distinct) * prec.bits(cut.operand) / 8
        link = _link(cut, False)
        per_byte = cut.outer.read_energy_pj_per_byte + cut.inner.write_energy_pj_per_byte
    return moved / link + distinct * cut.inner.transfer_fixed_cycles + runs * cut.inner.transfer_cycles_per_run, moved * per_byte


def call_lower_bound(problem: Problem, compute_tile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(compute cycles, overhead cycles, pJ of MACs and kernel accesses) [cand] for kernel calls of
    temporal extents ``compute_tile`` [dim, cand]: exact, they do not depend on the loop order."""
    module = problem.module
    n_steps = np.prod(problem.remaining) / _tproduct(problem, compute_tile, _ALL, spatial=False)
    energy = problem.layer.macs * module.compute.energy_pj_per_mac + _kernel_access_energy(problem, compute_tile)
    return n_steps * _kernel_cycles(problem, compute_tile), n_steps * module.tile_overhead_cycles, energy


def latency_lower_bound(problem: Problem, compute, overlapped, serial, overhead):
    """[cand] the latency (cycles) no completion can beat, from lower bounds on its compute cycles,
    on the cycles of transfers into ``double_buffering`` memories (``overlapped``), of the other
    transfers plus the tile overhead (``serial``) and on the tile overhead alone (``overhead``, part
    of ``serial``). The one place the searches' latency bound depends on the module's ``overlap``:

    - ``serial``: ``max(compute, overlapped) + serial``: the pipelined sum of ``evaluate`` is at
      least the compute and at least the double-buffered transfers; the other transfers and the
      overhead add.
    - ``zigzag``: ``compute + overhead``. ``costmodel.overlap`` makes the latency ``T + SS +
      onloading + offloading + overhead + drain`` with ``T`` the compute; the stall ``SS`` is a
      maximum that includes 0, the on/offloading terms are sums and minima of maxima of
      non-negative cycle counts and the systolic drain a sum of (factor - 1) >= 0, so each is >= 0.
      Transfer cycles give no further bound there: a transfer may hide entirely behind compute,
      and traffic summed over cut points is not a bound (links run in parallel, and the stall of
      a link is its busy time minus the compute it overlaps).
    """
    if problem.module.overlap == "zigzag":
        return compute + overhead
    return np.maximum(compute, overlapped) + serial


def latency_energy_lower_bounds(problem: Problem, call: tuple, cuts: list[tuple[np.ndarray, np.ndarray]]
                                ) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, pJ) [cand] bounds: latency >= ``latency_lower_bound`` of the compute, the traffic of
    every tile moved once (double-buffered or not) and the tile overhead; energy >= MACs + kernel
    accesses + every tile moved once (energy does not depend on the overlap mode)."""
    compute, overhead, energy = call
    hidden = 0.0
    serial = overhead
    for (cycles, pj), cut in zip(cuts, problem.cut_points):
        energy = energy + pj
        if cut.inner.double_buffering:
            hidden = hidden + cycles
        else:
            serial = serial + cycles
    return latency_lower_bound(problem, compute, hidden, serial, overhead), energy


def compute_bound_cycles(problem: Problem) -> float:
    """MACs / peak MAC per cycle: no mapping is faster (for hooks that respect the declared peak)."""
    return problem.layer.macs / problem.module.compute.macs_per_cycle


@lru_cache(maxsize=4096)
def _pixels_read(out: int, kernel: int, stride: int, dilation: int, pad_lo: int, in_size: int) -> int:
    """Distinct input rows (or columns) some output reads (strides wider than the kernel skip some)."""
    rows = {o * stride + k * dilation - pad_lo for o in range(out) for k in range(kernel)}
    return sum(1 for r in rows if 0 <= r < in_size)


def compulsory_bytes(problem: Problem, operand: Operand) -> float:
    """Bytes of ``operand`` that must cross each of its boundaries at least once."""
    layer = problem.layer
    if operand is not Operand.I:
        return float(layer.tensor_bytes(operand))
    s = layer.sizes
    iy, ix = layer.input_size
    rows = _pixels_read(s[D.OY], s[D.FY], layer.stride[0], layer.dilation[0], layer.padding[0], iy)
    cols = _pixels_read(s[D.OX], s[D.FX], layer.stride[1], layer.dilation[1], layer.padding[2], ix)
    return s[D.B] * s[D.C] * s[D.G] * rows * cols * layer.precision.input / 8


def _link(cut, outgoing: bool) -> float:
    """Bytes per cycle of the link across ``cut`` (outgoing: inner -> outer)."""
    if outgoing:
        return min(cut.inner.read_bytes_per_cycle, cut.outer.write_bytes_per_cycle)
    return min(cut.outer.read_bytes_per_cycle, cut.inner.write_bytes_per_cycle)


def compulsory_transfer_cycles(problem: Problem) -> np.ndarray:
    """[cut] cycles to move each operand's tensor once across the cut (one transfer, one run)."""
    return np.array([compulsory_bytes(problem, c.operand) / _link(c, c.operand is Operand.O)
                     + c.inner.transfer_fixed_cycles + c.inner.transfer_cycles_per_run for c in problem.cut_points])


def compulsory_energy(problem: Problem) -> float:
    """pJ no mapping avoids: the MACs and every tensor crossing each boundary once."""
    energy = problem.layer.macs * problem.module.compute.energy_pj_per_mac
    for c in problem.cut_points:
        if c.operand is Operand.O:
            per_byte = c.inner.read_energy_pj_per_byte + c.outer.write_energy_pj_per_byte
        else:
            per_byte = c.outer.read_energy_pj_per_byte + c.inner.write_energy_pj_per_byte
        energy += compulsory_bytes(problem, c.operand) * per_byte
    return energy


def traffic_bound_cycles(problem: Problem) -> float:
    """Cycles to move each tensor once across each of its boundaries (compulsory traffic)."""
    return float(compulsory_transfer_cycles(problem).sum())
