"""C code generator: one offloaded layer, running exactly the mapper's ``Schedule``.

``emit_layer(layer, schedule, soc, symbol)`` returns a ``GeneratedLayer`` whose ``source`` defines

    int <symbol>(const int8_t* in, const int8_t* in2, int8_t* out);   /* 0 on success, -1 on NULL */
    int64_t <symbol>_counters[max(1, 6 * len(schedule.levels))];
    void <symbol>_reset_counters(void);                                /* zero the counters */
    int <symbol>_num_counters(void);                                   /* 6 * len(schedule.levels) */
    void <symbol>_set_trace(match_event_t* events, int64_t capacity);  /* record events (NULL: off) */
    int64_t <symbol>_trace_count(void);                                /* events since set_trace */

(``extern "C"`` under C++; the source compiles as C11 and as C++). ``in``, ``in2`` (second input of
``add``, else NULL) and ``out`` are whole int8 NHWC tensors in the module's outermost memory (L2),
shaped as in ``tvm_bridge.quant``'s docstring. Each call adds to the counters: six int64 per
``TileLevel`` in ``schedule.levels`` order, ``[6*i + 0]`` bytes_in, ``[6*i + 1]`` bytes_out,
``[6*i + 2]`` transfers_in, ``[6*i + 3]`` transfers_out, ``[6*i + 4]`` runs_in, ``[6*i + 5]``
runs_out (``in``: outer -> inner memory, ``out``: inner -> outer; runs: contiguous runs of each
transfer as ``costmodel.runs`` counts them); ``GeneratedLayer.counter_names`` names them. They
equal the schedule's predicted bytes, transfers and runs per level. The trace (``match_event_t``,
``c/match_target.h``) records every transfer issue and wait, every tile becoming current and every
kernel call, with level and tile indices (tiles of a level are numbered in fetch order).

What the generated function does:

- One static ``int8_t`` arena per on-chip memory of the module (every memory but the last), of
  exactly the memory's ``size_bytes``. Each ``TileLevel``'s buffer sits in its memory's arena right
  after the previous levels' buffers (``schedule.levels`` order); a double-buffered level has two
  halves used in turn (ping-pong). Buffers are dense boxes of the tile's full extents: inputs
  ``[B][rows][cols][G][C]`` (the window clipped to the image), outputs ``[B][OY][OX][G][K]``, weights
  as their L2 layout below. Output buffers that ever hold partial sums use one int32 slot per
  element (then a final int8 value sits in the slot's first byte); where that exceeds
  ``TileLevel.buffer_bytes`` (the cost model sizes an output tile at output precision unless the
  tile itself is written back as partial sums) ``GeneratedLayer.notes`` says so, and generation
  fails if the buffers do not fit their memory.
- The temporal loops of ``schedule.loops`` (innermost first) nest in that order; one kernel call
  runs the loops below the lowest innermost-boundary tile (``schedule.kernel_tile``).
- A tile moves only through ``match_dma_start`` / ``match_dma_wait`` (``c/match_target.h``; one
  2-D / 3-D transfer per tile), exactly when the cost model counts a fetch: the tile becomes current
  in the body of the first loop above the tile that indexes its operand (the tile is reused across
  the irrelevant loops in between). Input tiles are clipped at the image border (padding is never
  moved: the kernel treats out-of-image pixels as the input zero point); with padded spatial
  unrolling only valid elements move and are computed. A fetch whose window lies wholly in the
  padding is still issued (zero bytes, one transfer, no run), as the cost model counts it.
- Double buffering: when a double-buffered level's tile becomes current, the next tile's transfer
  (fetch order: the odometer of the loops from the fetch loop up) is issued into the other half
  before the kernel runs on the current one; the processor waits for an innermost tile just before
  the kernel needs it, and for a double-buffered write-back only before it reuses that half (or at
  the end). Transfers complete in issue order, so a prefetch may read an outer double-buffered
  tile whose own prefetch was issued earlier. A next tile whose source is the next tile of an
  outer level without double buffering is fetched when it becomes current (issue, then wait), as
  are all tiles of levels without double buffering (and their write-backs: issue, then wait).
- Outputs: a tile stays resident for a visit; at the end of the visit it is written back at output
  precision when final, else at accumulator precision (int32) as partial sums, read back at the
  start of the tile's next visit. Partial sums that leave the last on-chip level go to a static
  int32 scratch copy of the output tensor (``<symbol>_psum``). Requantization (bias, TFLite
  ``MultiplyByQuantizedMultiplier``, single rounding for the ops in ``quant.SINGLE_ROUNDING_OPS``,
  ties-to-even single rounding for ONNX layers, onnxruntime's float32 requantization emulated in
  int64 for QOperator layers (``QuantParams.rounding``), zero point, clamp)
  runs in the kernel when one call covers the whole reduction, else on the
  innermost tile just before its final write-back.

The arenas and the partial-sum scratch are static: one call at a time per symbol (not re-entrant).

Constants (``static const``): weights int8 in TFLite layout, which is also the layout of their tiles
(conv2d ``[K][FY][FX][C]`` (OHWI), depthwise ``[FY][FX][G*M]``, dense ``[K][C]``), bias, multiplier
and shift int32 per output channel. Grouped convolution and precisions other than int8 operands with
int32 accumulators are refused (``CodegenError``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from archs.dims import DIMS, LoopDim, Operand
from archs.model import ExecModule, SoC
from mapper.schedule import Schedule, TileLevel
from mapper.workload import Layer
from tvm_bridge import quant
from tvm_bridge.quant import QuantParams

D = LoopDim
HEADER_PATH = Path(__file__).resolve().parent / "c" / "match_target.h"
COUNTER_FIELDS = ("bytes_in", "bytes_out", "transfers_in", "transfers_out", "runs_in", "runs_out")
N_COUNTERS = len(COUNTER_FIELDS)  # per schedule level (MATCH_COUNTERS_PER_LEVEL in match_target.h)
_OPS = {"conv2d": "MATCH_OP_CONV2D", "depthwise": "MATCH_OP_DEPTHWISE", "dense": "MATCH_OP_DENSE", "add": "MATCH_OP_ADD",
        "avg_pool": "MATCH_OP_AVG_POOL", "max_pool": "MATCH_OP_MAX_POOL"}
_KIND_OF_OP = {"conv2d": "conv2d", "depthwise": "depthwise", "dense": "dense", "add": "add", "avg_pool": "pool",
               "max_pool": "pool"}
_ROW, _COL = "row", "col"  # window axes of input tiles (OY+FY, OX+FX)


def _current(li: int) -> str:
    """C name of the current index of temporal loop ``li``."""
    return f"i{li}"


class CodegenError(ValueError):
    """The layer or schedule cannot be generated (message names the layer and the reason)."""


@dataclass(frozen=True)
class TileBuffer:
    """Where one ``TileLevel``'s tile lives in its memory's arena (bytes)."""

    level: int  # index into ``schedule.levels``
    operand: str
    memory: str
    offset: int  # bytes from the start of the memory's arena
    size: int  # bytes, both halves when double buffered
    schedule_bytes: int  # ``TileLevel.buffer_bytes`` (the cost model's size)
    halves: int  # 2 when double buffered (ping-pong)
    slot_bytes: int  # 1: int8 elements, 4: int32 slots (partial sums)


@dataclass(frozen=True)
class GeneratedLayer:
    """C source of one layer plus what a caller needs to run it and read its counters."""

    symbol: str
    source: str
    counter_names: tuple[str, ...]  # 4 per TileLevel: "<i>:<operand>:<outer>-><inner>:<field>"
    arena_bytes: dict[str, int]  # on-chip memory -> static arena size (bytes) = the memory's size
    arena_used: dict[str, int]  # on-chip memory -> bytes taken by the tile buffers
    buffers: tuple[TileBuffer, ...]
    tensor_shapes: dict[str, tuple[int, ...]]  # "in", "in2" (add only), "out": NHWC (dense: [B, C]) int8 shapes
    psum_bytes: int  # int32 partial-sum scratch in L2 (0 if the schedule keeps no partial sums there)
    notes: tuple[str, ...] = field(default=())  # differences from the schedule's buffer sizes

    @property
    def counters_symbol(self) -> str:
        return f"{self.symbol}_counters"

    @property
    def reset_symbol(self) -> str:
        return f"{self.symbol}_reset_counters"

    @property
    def num_counters(self) -> int:
        return len(self.counter_names)

    @property
    def signature(self) -> str:
        return f"int {self.symbol}(const int8_t* in, const int8_t* in2, int8_t* out)"


def target_header() -> str:
    """Text of ``c/match_target.h`` (the target API the generated code calls)."""
    return HEADER_PATH.read_text()


def predicted_counters(schedule: Schedule) -> list[int]:
    """The schedule's bytes, transfers and runs per level in the counters' layout (6 per level)."""
    out = []
    for lv in schedule.levels:
        for name in COUNTER_FIELDS:
            value = getattr(lv, name)
            if value != int(value):
                raise CodegenError(f"layer {schedule.layer!r}: predicted {name} {value} is not an integer")
            out.append(int(value))
    return out


def tensor_shapes(layer: Layer) -> dict[str, tuple[int, ...]]:
    """Shapes of the generated function's int8 tensors: ``in``, ``in2`` (add only) and ``out``."""
    s = layer.sizes
    b = s[D.B]
    if layer.kind == "dense":
        return {"in": (b, s[D.C]), "out": (b, s[D.K])}
    out = (b, s[D.OY], s[D.OX], s[D.G] * s[D.K])
    if layer.kind == "add":
        return {"in": out, "in2": out, "out": out}
    iy, ix = layer.input_size
    return {"in": (b, iy, ix, s[D.G] * s[D.C]), "out": out}


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Axis:
    """One axis of an operand's buffer layout: a loop dim, or an input window (rows / columns)."""

    name: str  # loop dim value, or _ROW / _COL
    slot: LoopDim  # index in match_view_t (rows use OY's slot, columns OX's)

    @property
    def dim(self) -> Optional[LoopDim]:
        return None if self.name in (_ROW, _COL) else LoopDim(self.name)


def _axes(kind: str, operand: Operand) -> tuple[_Axis, ...]:
    """Buffer layout of ``operand`` (outermost axis first); also its L2 tensor layout."""
    def plain(*dims: LoopDim) -> tuple[_Axis, ...]:
        return tuple(_Axis(d.value, d) for d in dims)

    if operand is Operand.I:
        return (_Axis(D.B.value, D.B), _Axis(_ROW, D.OY), _Axis(_COL, D.OX)) + plain(D.G, D.C)
    if operand is Operand.O or kind == "add":
        return plain(D.B, D.OY, D.OX, D.G, D.K)
    if kind == "depthwise":
        return plain(D.FY, D.FX, D.G, D.K)
    return plain(D.K, D.FY, D.FX, D.C)  # conv2d (G = 1) and dense


def _dense_strides(extents: Sequence[int], slot_bytes: int) -> list[int]:
    strides, step = [], slot_bytes
    for n in reversed(extents):
        strides.append(step)
        step *= n
    return strides[::-1]


@dataclass
class _Level:
    """A TileLevel with what the generator derives from it."""

    index: int
    tl: TileLevel
    operand: Operand
    chain: int  # 0 = innermost boundary of the operand
    position: int
    run_end: int  # loop where the tile's reuse run ends (fetch / visit point); len(loops) = never
    extents: list[int]  # per axis (window axes clipped to the image)
    windows: dict[str, int]  # window axis -> unclipped window length (input pixels)
    slot_bytes: int = 1
    halves: int = 1
    offset: int = 0
    memory_name: str = ""

    @property
    def elements(self) -> int:
        return math.prod(self.extents)

    @property
    def half_bytes(self) -> int:
        return self.elements * self.slot_bytes

    @property
    def strides(self) -> list[int]:
        return _dense_strides(self.extents, self.slot_bytes)


def _if_else(condition: str, then: list[str], otherwise: list[str]) -> list[str]:
    """C ``if (condition) { then } else { otherwise }`` as indented lines."""
    return [f"if ({condition}) {{", *("    " + x for x in then), "} else {", *("    " + x for x in otherwise), "}"]


class _Gen:
    """Builds the C text of one layer."""

    def __init__(self, layer: Layer, schedule: Schedule, soc: SoC, symbol: str, inline_target: bool):
        self.layer, self.schedule, self.symbol, self.inline_target = layer, schedule, symbol, inline_target
        self.fail = lambda msg: CodegenError(f"layer {layer.name!r} ({schedule.module}): {msg}")
        if schedule.module not in soc.modules:
            raise self.fail(f"module {schedule.module!r} is not in SoC {soc.name!r}")
        self.module: ExecModule = soc.modules[schedule.module]
        self._check_layer()
        self.s = layer.sizes
        self.kind = layer.kind
        self.loops = [(LoopDim(lp["dim"]), int(lp["factor"])) for lp in schedule.loops]
        self.spatial = {d: 1 for d in DIMS}
        for entry in schedule.spatial.values():
            if entry.get("dim") is not None:
                self.spatial[LoopDim(entry["dim"])] *= int(entry["factor"])
        self._check_loops()
        self.n = len(self.loops)
        self.levels = self._levels()
        inner = [lv.position for lv in self.levels if lv.chain == 0]
        self.pc = min(inner) if inner else self.n
        self.kernel_ext = {d: self.spatial[d] * math.prod(f for dd, f in self.loops[:self.pc] if dd == d) for d in DIMS}
        if any(self.kernel_ext[d] != int(schedule.kernel_tile.get(d.value, self.kernel_ext[d])) for d in DIMS):
            raise self.fail(f"kernel tile {schedule.kernel_tile} does not follow from the loops below position {self.pc}")
        self._slot_types()
        self.notes: list[str] = []
        self._place()

    # ------------------------------------------------------------------ checks
    def _check_layer(self) -> None:
        q = self.layer.quant
        if not isinstance(q, QuantParams):
            raise self.fail("no QuantParams attached (layer.quant)")
        if _KIND_OF_OP[q.op] != self.layer.kind:
            raise self.fail(f"QuantParams.op {q.op!r} does not match the layer kind {self.layer.kind!r}")
        p = self.layer.precision
        if (p.input, p.weight, p.output, p.accumulator) != (8, 8, 8, 32):
            raise self.fail(f"only int8 operands with int32 accumulators are generated, got {p}")
        if self.layer.kind == "conv2d" and self.layer.sizes[D.G] != 1:
            raise self.fail("grouped convolution (G > 1) is not generated")
        if q.weights is not None:
            s = self.layer.sizes
            expected = {"conv2d": (s[D.K], s[D.FY], s[D.FX], s[D.C]), "dense": (s[D.K], s[D.C]),
                        "depthwise": (s[D.FY], s[D.FX], s[D.G] * s[D.K])}.get(q.op)
            if expected is not None and tuple(q.weights.shape) != expected:
                raise self.fail(f"weights have shape {tuple(q.weights.shape)}, expected {expected}")
        channels = self._out_channels()
        for name in ("bias", "multiplier", "shift"):
            arr = getattr(q, name)
            if arr is not None and q.op in ("conv2d", "depthwise", "dense") and np.asarray(arr).size != channels:
                raise self.fail(f"QuantParams.{name} has {np.asarray(arr).size} entries, expected {channels}")

    def _out_channels(self) -> int:
        s = self.layer.sizes
        return s[D.G] * s[D.K]

    def _check_loops(self) -> None:
        for d in DIMS:
            covered = self.spatial[d] * math.prod(f for dd, f in self.loops if dd == d)
            if not self.s[d] <= covered < self.s[d] + self.spatial[d]:
                raise self.fail(f"loops and unrolling cover {covered} of {d.value} = {self.s[d]}")

    # ------------------------------------------------------------------ levels
    def _relevant(self, operand: Operand) -> frozenset[LoopDim]:
        return self.layer.relevant(operand)

    def _levels(self) -> list[_Level]:
        chains: dict[Operand, int] = {}
        levels = []
        last = self.module.memories[-1].name
        for i, tl in enumerate(self.schedule.levels):
            operand = Operand(tl.operand)
            j = chains.get(operand, 0)
            chains[operand] = j + 1
            chain = self.module.chain(operand)
            if self.module.memories[chain[j]].name != tl.memory or self.module.memories[chain[j + 1]].name != tl.outer_memory:
                raise self.fail(f"level {i} ({tl.operand} in {tl.memory}) does not match the module's memory chain")
            if j + 2 == len(chain) and tl.outer_memory != last:
                raise self.fail(f"{tl.operand}'s outermost memory {tl.outer_memory!r} is not the module's last memory")
            rel = self._relevant(operand)
            below = {d: self.spatial[d] * math.prod(f for dd, f in self.loops[:tl.position] if dd == d) for d in DIMS}
            if any(below[d] != int(tl.tile.get(d.value, below[d])) for d in DIMS) or set(tl.tile) != {d.value for d in rel}:
                raise self.fail(f"level {i} tile {tl.tile} does not follow from the loops below position {tl.position}")
            run_end = next((li for li in range(tl.position, len(self.loops)) if self.loops[li][0] in rel), len(self.loops))
            extents, windows = [], {}
            iy, ix = self.layer.input_size
            for ax in _axes(self.kind, operand):
                if ax.name == _ROW:
                    length = (below[D.OY] - 1) * self.layer.stride[0] + (below[D.FY] - 1) * self.layer.dilation[0] + 1
                    windows[ax.name] = length
                    extents.append(min(length, iy))
                elif ax.name == _COL:
                    length = (below[D.OX] - 1) * self.layer.stride[1] + (below[D.FX] - 1) * self.layer.dilation[1] + 1
                    windows[ax.name] = length
                    extents.append(min(length, ix))
                else:
                    extents.append(below[ax.dim])
            levels.append(_Level(i, tl, operand, j, tl.position, run_end, extents, windows, memory_name=tl.memory))
        self.levels = levels
        for lv in levels:
            if lv.chain > 0:
                inner = self._level(lv.operand, lv.chain - 1)
                if inner.position > lv.position:
                    raise self.fail(f"{lv.operand.value} tiles are not nested (level {inner.index} above level {lv.index})")
        return levels

    def _level(self, operand: Operand, chain: int) -> Optional[_Level]:
        return next((lv for lv in self.levels if lv.operand is operand and lv.chain == chain), None)

    def _reductions_from(self, position: int) -> list[int]:
        """Loops at or above ``position`` that do not index the output (reductions)."""
        rel = self._relevant(Operand.O)
        return [li for li in range(position, self.n) if self.loops[li][0] not in rel]

    def _slot_types(self) -> None:
        """int32 slots for output levels that ever hold partial sums (or accumulate)."""
        for lv in self.levels:
            memory = self.module.memories[self.module.chain(lv.operand)[lv.chain]]
            lv.halves = 2 if memory.double_buffering else 1
            if lv.operand is not Operand.O:
                continue
            if lv.chain == 0:
                partial = bool(self._reductions_from(self.pc))
            else:
                partial = bool(self._reductions_from(self._level(Operand.O, lv.chain - 1).run_end))
            lv.slot_bytes = 4 if partial or memory.accumulates else 1
        last = self._level(Operand.O, max((lv.chain for lv in self.levels if lv.operand is Operand.O), default=-1))
        self.psum = last is not None and bool(self._reductions_from(last.run_end))
        inner = self._level(Operand.O, 0)
        self.out_acc32 = inner is not None and inner.slot_bytes == 4

    def _place(self) -> None:
        used = {m.name: 0 for m in self.module.memories[:-1]}
        for lv in self.levels:
            size = lv.half_bytes * lv.halves
            if size != lv.tl.buffer_bytes:
                self.notes.append(f"level {lv.index} ({lv.operand.value} in {lv.memory_name}) needs {size} B "
                                  f"({'int32' if lv.slot_bytes == 4 else 'int8'} x {lv.elements} x {lv.halves}), "
                                  f"the schedule counts {lv.tl.buffer_bytes} B")
            lv.offset = used[lv.memory_name]
            used[lv.memory_name] += size
        for m in self.module.memories[:-1]:
            if used[m.name] > m.size_bytes:
                detail = "; ".join(self.notes)
                raise self.fail(f"tile buffers need {used[m.name]} B in {m.name!r} of {m.size_bytes} B"
                                + (f" ({detail})" if detail else ""))
        self.used = used

    # ------------------------------------------------------------------ C expressions
    def _loop_stride(self, li: int) -> int:
        d = self.loops[li][0]
        return self.spatial[d] * math.prod(f for dd, f in self.loops[:li] if dd == d)

    def _origin(self, d: LoopDim, position: int, idx: Callable[[int], str] = _current) -> str:
        terms = [f"{idx(li)} * {self._loop_stride(li)}" if self._loop_stride(li) != 1 else idx(li)
                 for li in range(position, self.n) if self.loops[li][0] == d]
        return " + ".join(terms) if terms else "0"

    def _box(self, lv: Optional[_Level], operand: Operand, idx: Callable[[int], str] = _current) -> tuple[list[str], list[str]]:
        """(first valid coordinate, valid count) per axis of a tile as C expressions (loop indices
        named by ``idx``); ``lv`` None: the whole L2 tensor."""
        firsts, counts = [], []
        iy, ix = self.layer.input_size
        sy, sx = self.layer.stride
        dy, dx = self.layer.dilation
        top, left = self.layer.padding[0], self.layer.padding[2]
        for a, ax in enumerate(_axes(self.kind, operand)):
            if lv is None:
                firsts.append("0")
                counts.append(str(self._l2_extents(operand)[a]))
                continue
            pos = lv.position
            if ax.name in (_ROW, _COL):
                o_out, o_k = (D.OY, D.FY) if ax.name == _ROW else (D.OX, D.FX)
                s, dl, pad, size = (sy, dy, top, iy) if ax.name == _ROW else (sx, dx, left, ix)
                start = f"({self._origin(o_out, pos, idx)}) * {s} + ({self._origin(o_k, pos, idx)}) * {dl} - {pad}"
                first = f"match_max32({start}, 0)"
                firsts.append(first)
                counts.append(f"match_max32(0, match_min32({start} + {lv.windows[ax.name]}, {size}) - {first})")
            else:
                o = self._origin(ax.dim, pos, idx)
                firsts.append(o)
                counts.append(f"match_max32(0, match_min32({o} + {lv.extents[a]}, {self.s[ax.dim]}) - ({o}))")
        return firsts, counts

    def _l2_extents(self, operand: Operand) -> list[int]:
        iy, ix = self.layer.input_size
        out = []
        for ax in _axes(self.kind, operand):
            out.append(iy if ax.name == _ROW else ix if ax.name == _COL else self.s[ax.dim])
        return out

    def _l2_pointer(self, operand: Operand, psum: bool = False) -> str:
        if operand is Operand.I:
            return "(int8_t*)in"
        if operand is Operand.O:
            return f"{self.symbol}_psum" if psum else "out"
        return "(int8_t*)in2" if self.kind == "add" else f"(int8_t*){self.symbol}_w"

    def _stride_name(self, lv: Optional[_Level], operand: Operand, psum: bool = False) -> str:
        if lv is not None:
            return f"{self.symbol}_st{lv.index}"
        return f"{self.symbol}_st_{operand.value}{'_psum' if psum else ''}"

    def _arena(self, memory: str) -> str:
        """C name of the static arena of on-chip memory ``memory``."""
        index = [m.name for m in self.module.memories].index(memory)
        return f"{self.symbol}_arena{index}_{re.sub(r'[^A-Za-z0-9_]', '_', memory)}"

    def _pointer(self, lv: _Level) -> str:
        return f"p{lv.index}"

    # ------------------------------------------------------------------ events
    def _half(self, lv: _Level, tile: str) -> str:
        """Pointer to the buffer half of ``lv`` holding tile number ``tile`` (C expression)."""
        base = f"{self._arena(lv.memory_name)} + {lv.offset}"
        return base if lv.halves == 1 else f"{base} + (({tile}) & 1) * {lv.half_bytes}"

    def _handle(self, lv: _Level, tile: str) -> str:
        return f"&hd{lv.index}[0]" if lv.halves == 1 else f"&hd{lv.index}[({tile}) & 1]"

    def _copy(self, inner: _Level, outer: Optional[_Level], load: bool, elem: int, psum: bool = False, *,
              tile: str = "", inner_ptr: str = "", outer_ptr: str = "",
              idx: Callable[[int], str] = _current) -> list[str]:
        """Issue one transfer of tile ``tile`` of ``inner`` (its valid box, loop indices named by
        ``idx``) between the buffer half ``inner_ptr`` and ``outer``'s ``outer_ptr`` (None: L2)."""
        operand = inner.operand
        tile = tile or f"t{inner.index}"
        inner_ptr = inner_ptr or self._pointer(inner)
        firsts, counts = self._box(inner, operand, idx)
        lines = ["{"]
        for a, (f, c) in enumerate(zip(firsts, counts)):
            lines.append(f"    const int32_t f{a} = {f};")
            lines.append(f"    const int32_t n{a} = {c};")
        k = len(firsts)
        lines.append(f"    const int32_t n[{k}] = {{{', '.join(f'n{a}' for a in range(k))}}};")
        if outer is None:
            outer_ptr = self._l2_pointer(operand, psum)
            outer_strides = _dense_strides(self._l2_extents(operand), 4 if psum else 1)
            outer_bases = ["0"] * k
        else:
            outer_ptr = outer_ptr or self._pointer(outer)
            outer_strides = outer.strides
            outer_bases = self._box(outer, operand, idx)[0]
        outer_off = " + ".join(f"(int64_t)(f{a} - ({b})) * {st}" if b != "0" else f"(int64_t)f{a} * {st}"
                               for a, (b, st) in enumerate(zip(outer_bases, outer_strides)))
        stride_outer = self._stride_name(outer, operand, psum)
        stride_inner = self._stride_name(inner, operand)
        head = (f"match_dma_start({self._handle(inner, tile)}, &{self.symbol}_trace, {inner.index}, {tile}, {int(not load)}, "
                f"{self.symbol}_counters + {N_COUNTERS * inner.index}")
        ext = f"{self.symbol}_ext_{operand.value}"
        if load:
            lines.append(f"    {head}, {inner_ptr}, 0, {outer_ptr}, {outer_off}, {elem}, {k}, n, {stride_inner}, {stride_outer}, {ext});")
        else:
            lines.append(f"    {head}, {outer_ptr}, {outer_off}, {inner_ptr}, 0, {elem}, {k}, n, {stride_outer}, {stride_inner}, {ext});")
        lines.append("}")
        return lines

    def _wait_all(self, lv: _Level) -> str:
        waits = " ".join(f"match_dma_wait(&hd{lv.index}[{h}], &{self.symbol}_trace);" for h in range(lv.halves))
        return waits + "  /* drain */"

    def _wait(self, lv: _Level, tile: str = "") -> str:
        return f"match_dma_wait({self._handle(lv, tile or f't{lv.index}')}, &{self.symbol}_trace);"

    def _cond(self, position: int, final: bool, idx: Callable[[int], str] = _current) -> Optional[str]:
        loops = self._reductions_from(position)
        if not loops:
            return None
        return " && ".join(f"{idx(li)} == {self.loops[li][1] - 1 if final else 0}" for li in loops)

    def _fetch(self, lv: _Level, outer: Optional[_Level], **kw) -> list[str]:
        """Issue the transfer that fills ``lv``'s tile (a load, or an output's partial-sum read-back);
        ``None`` when an output tile's visit is its first (nothing to read)."""
        if lv.operand is not Operand.O:
            return self._copy(lv, outer, load=True, elem=1, **kw)
        return self._copy(lv, outer, load=True, elem=4, psum=outer is None, **kw)

    def _prefetch(self, lv: _Level) -> list[str]:
        """Double buffering: issue the next tile's transfer into the other half now (before the
        kernel runs on the current tile). The next tile follows the odometer of loops ``run_end``
        and above; it is issued when it exists, needs a transfer (outputs: not a first visit) and
        its source is ready: the tensor, the same outer tile, or the next tile of a double-buffered
        outer level that was itself prefetched (transfers complete in issue order)."""
        r = lv.run_end
        loops = list(range(r, self.n))
        if lv.halves == 1 or not loops:
            return []
        outer = self._level(lv.operand, lv.chain + 1)
        nxt: Callable[[int], str] = lambda li: f"q[{li - r}]" if li >= r else f"i{li}"  # noqa: E731
        factors = ", ".join(str(self.loops[li][1]) for li in loops)
        lines = ["{",
                 f"    int32_t q[{len(loops)}] = {{{', '.join(f'i{li}' for li in loops)}}};",
                 f"    static const int32_t qf[{len(loops)}] = {{{factors}}};",
                 "    int32_t a = 0;",
                 f"    while (a < {len(loops)} && ++q[a] == qf[a]) q[a++] = 0;  /* a: the loop that moves (carry) */"]
        ready = [f"a < {len(loops)}"]
        if lv.operand is Operand.O:
            first = self._cond(r, final=False, idx=nxt)
            if first is None:
                return []  # every visit is a first one: nothing to read
            ready.append(f"!({first})")
        outer_ptr = ""
        if outer is not None:
            crossing = f"a >= {outer.run_end - r}"
            if outer.halves == 1:
                ready.append(f"!({crossing})")
            else:
                ready.append(f"(!({crossing}) || pf{outer.index})")
                outer_ptr = f"({crossing} ? {self._half(outer, f't{outer.index} + 1')} : p{outer.index})"
        tile = f"t{lv.index} + 1"
        body = self._fetch(lv, outer, tile=tile, inner_ptr=self._half(lv, tile), outer_ptr=outer_ptr, idx=nxt)
        lines.append(f"    if ({' && '.join(ready)}) {{")
        lines += ["        " + x for x in body]
        lines.append(f"        pf{lv.index} = 1;")
        lines += ["    }", "}"]
        return lines

    def _begin(self, lv: _Level) -> list[str]:
        """The tile of ``lv`` becomes current: fetch it unless prefetched, prefetch the next one, and
        (innermost levels, which the processor touches) wait for it."""
        i = lv.index
        lines = [f"/* level {i}: {lv.operand.value} tile {lv.tl.outer_memory} -> {lv.memory_name} */",
                 f"t{i}++;", f"p{i} = {self._half(lv, f't{i}')};",
                 f"match_trace_event(&{self.symbol}_trace, MATCH_EV_TILE, {i}, t{i});"]
        outer = self._level(lv.operand, lv.chain + 1)
        fetch = self._fetch(lv, outer)
        first = self._cond(lv.run_end, final=False) if lv.operand is Operand.O else None
        if lv.operand is Operand.O and first is None:
            fetch = []  # one visit per tile: never read back
        elif first is not None:
            fetch = [f"if (!({first})) {{"] + ["    " + x for x in fetch] + ["}"]
        if lv.halves == 2 and fetch:
            fetch = [f"if (!pf{i}) {{"] + ["    " + x for x in fetch] + ["}"]
        lines += fetch
        if lv.halves == 2:
            lines.append(f"pf{i} = 0;")
            lines += self._prefetch(lv)
        if lv.chain == 0 or lv.halves == 1:
            lines.append(self._wait(lv))
        if lv.operand is Operand.O and lv.chain == 0 and lv.slot_bytes == 4:
            value = "INT32_MIN" if self.layer.quant.op == "max_pool" else "0"
            fill = [f"match_fill32(p{i}, {lv.elements}, {value});"]
            lines += fill if first is None else [f"if ({first}) {{", "    " + fill[0], "}"]
        return lines

    def _end(self, lv: _Level) -> list[str]:
        if lv.operand is not Operand.O:
            return []
        outer = self._level(lv.operand, lv.chain + 1)
        lines = [f"/* level {lv.index}: write back O tile {lv.memory_name} -> {lv.tl.outer_memory} */"]
        final = []
        if lv.chain == 0 and lv.slot_bytes == 4:
            final += ["{"] + ["    " + x for x in self._view_decl("vf", Operand.O, lv)]
            org, end = self._tile_range(lv)
            final += [f"    const int32_t org[8] = {{{', '.join(org)}}};",
                      f"    const int32_t end[8] = {{{', '.join(end)}}};",
                      f"    match_finalize(&{self.symbol}_layer, org, end, &vf);", "}"]
        final += self._copy(lv, outer, load=False, elem=1)
        last = self._cond(lv.run_end, final=True)
        if last is None:
            lines += final
        else:
            partial = self._copy(lv, outer, load=False, elem=4, psum=outer is None)
            lines += _if_else(last, final, partial)
        if lv.halves == 1:
            lines.append(self._wait(lv))  # synchronous level; double-buffered stores are waited for when the half is reused
        return lines

    def _tile_range(self, lv: _Level) -> tuple[list[str], list[str]]:
        """Origin and valid end per loop dim of an output tile (8 entries; 0..1 where unused)."""
        org, end = [], []
        for d in DIMS:
            if d in self._relevant(Operand.O):
                o = self._origin(d, lv.position)
                org.append(o)
                end.append(f"match_min32({o} + {lv.tl.tile[d.value]}, {self.s[d]})")
            else:
                org.append("0")
                end.append("1")
        return org, end

    def _view_decl(self, name: str, operand: Operand, lv: Optional[_Level]) -> list[str]:
        """A ``match_view_t`` of ``operand``'s innermost tile (``lv``) or its L2 tensor."""
        if operand is Operand.W and self.kind == "pool":
            return [f"const match_view_t {name} = {{NULL, {{0, 0, 0, 0, 0, 0, 0, 0}}, {{0, 0, 0, 0, 0, 0, 0, 0}}}};"]
        axes = _axes(self.kind, operand)
        firsts = self._box(lv, operand)[0] if lv is not None else ["0"] * len(axes)
        strides = lv.strides if lv is not None else _dense_strides(self._l2_extents(operand), 1)
        base, step = ["0"] * 8, ["0"] * 8
        for ax, f, st in zip(axes, firsts, strides):
            base[DIMS.index(ax.slot)] = f
            step[DIMS.index(ax.slot)] = str(st)
        ptr = self._pointer(lv) if lv is not None else self._l2_pointer(operand)
        return [f"const match_view_t {name} = {{{ptr}, {{{', '.join(base)}}}, {{{', '.join(step)}}}}};"]

    def _kernel_call(self) -> list[str]:
        lines = ["{"]
        org = [self._origin(d, self.pc) for d in DIMS]
        end = [f"match_min32({o} + {self.kernel_ext[d]}, {self.s[d]})" for d, o in zip(DIMS, org)]
        lines.append(f"    const int32_t org[8] = {{{', '.join(org)}}};")
        lines.append(f"    const int32_t end[8] = {{{', '.join(end)}}};")
        for name, operand in (("vi", Operand.I), ("vw", Operand.W), ("vo", Operand.O)):
            lines += ["    " + x for x in self._view_decl(name, operand, self._level(operand, 0))]
        lines.append(f"    match_trace_event(&{self.symbol}_trace, MATCH_EV_COMPUTE, -1, kc++);")
        lines.append(f"    match_kernel(&{self.symbol}_layer, org, end, &vi, &vw, &vo, {int(self.out_acc32)});")
        lines.append("}")
        return lines

    def _nest(self, li: int, indent: int) -> list[str]:
        """Code with loops ``li..n-1`` open (``li == n``: the top level)."""
        pad = "    " * indent
        lines: list[str] = []
        begins = sorted((lv for lv in self.levels if lv.run_end == li), key=lambda lv: -lv.chain)
        for lv in begins:
            lines += [pad + x for x in self._begin(lv)]
        if li == self.pc:
            lines += [pad + x for x in self._kernel_call()]
        else:
            d, factor = self.loops[li - 1]
            lines.append(f"{pad}for (i{li - 1} = 0; i{li - 1} < {factor}; i{li - 1}++) {{  /* {d.value} */")
            lines += self._nest(li - 1, indent + 1)
            lines.append(f"{pad}}}")
        for lv in reversed(begins):
            lines += [pad + x for x in self._end(lv)]
        return lines

    # ------------------------------------------------------------------ file
    def _array(self, ctype: str, name: str, values: np.ndarray) -> list[str]:
        flat = [int(v) for v in np.asarray(values).reshape(-1)]
        if not flat:
            flat = [0]
        body = [", ".join(str(v) for v in flat[i:i + 24]) for i in range(0, len(flat), 24)]
        return [f"static const {ctype} {name}[{len(flat)}] = {{"] + [f"    {row}," for row in body] + ["};"]

    def _constants(self) -> list[str]:
        q: QuantParams = self.layer.quant
        sym = self.symbol
        lines: list[str] = []
        if q.weights is not None and self.kind != "add":
            lines += self._array("int8_t", f"{sym}_w", np.asarray(q.weights, dtype=np.int64))
        ptrs = {}
        for name in ("bias", "multiplier", "shift"):
            arr = getattr(q, name)
            if arr is None:
                ptrs[name] = "NULL"
                continue
            lines += self._array("int32_t", f"{sym}_{name}", np.asarray(arr, dtype=np.int64))
            ptrs[name] = f"{sym}_{name}"
        tables = "NULL, NULL, NULL"
        if q.op == "add" and q.semantics in quant.ONNX_SEMANTICS:  # integer tables of onnxruntime's float32 add
            try:
                values = quant.onnx_add_tables(q) if q.semantics == "onnx" else quant.qlinear_add_tables(q)[1:]
            except ValueError as exc:
                raise self.fail(str(exc)) from exc
            for name, table in zip(("t1", "t2", "thr"), values):
                lines += self._array("int64_t", f"{sym}_{name}", table)
            tables = f"{sym}_t1, {sym}_t2, {sym}_thr"
        s = self.s
        iy, ix = self.layer.input_size
        sizes = ", ".join(str(s[d]) for d in DIMS)
        lines.append(f"static const match_layer_t {sym}_layer = {{")
        lines.append(f"    {_OPS[q.op]}, {{{sizes}}}, {{{self.layer.stride[0]}, {self.layer.stride[1]}}}, "
                     f"{{{self.layer.dilation[0]}, {self.layer.dilation[1]}}}, {{{self.layer.padding[0]}, {self.layer.padding[2]}}}, "
                     f"{{{iy}, {ix}}},")
        lines.append(f"    {q.input_zp}, {q.output_zp}, {q.act_min}, {q.act_max}, {ptrs['bias']}, {ptrs['multiplier']}, {ptrs['shift']},")
        rounding = {"double": "MATCH_ROUND_DOUBLE", "single": "MATCH_ROUND_SINGLE", "half_even": "MATCH_ROUND_HALF_EVEN",
                    "float32": "MATCH_ROUND_FLOAT32"}[q.rounding]
        lines.append(f"    {q.input2_zp}, {q.input1_multiplier}, {q.input1_shift}, {q.input2_multiplier}, {q.input2_shift}, "
                     f"{q.left_shift}, {rounding}, {tables}")
        lines.append("};")
        return lines

    def _strides_decl(self) -> list[str]:
        lines = []
        for lv in self.levels:
            lines.append(f"static const int64_t {self.symbol}_st{lv.index}[{len(lv.extents)}] = "
                         f"{{{', '.join(str(x) for x in lv.strides)}}};  /* {lv.operand.value} in {lv.memory_name}: "
                         f"extents {lv.extents} */")
        for operand in dict.fromkeys(lv.operand for lv in self.levels):
            ext = self._l2_extents(operand)
            lines.append(f"static const int32_t {self.symbol}_ext_{operand.value}[{len(ext)}] = "
                         f"{{{', '.join(str(x) for x in ext)}}};  /* {operand.value} tensor extents (runs) */")
        top = {lv.operand: lv for lv in self.levels if self._level(lv.operand, lv.chain + 1) is None}
        for operand, lv in top.items():
            ext = self._l2_extents(operand)
            lines.append(f"static const int64_t {self._stride_name(None, operand)}[{len(ext)}] = "
                         f"{{{', '.join(str(x) for x in _dense_strides(ext, 1))}}};  /* L2 tensor {ext} */")
            if operand is Operand.O and self.psum:
                lines.append(f"static const int64_t {self._stride_name(None, operand, True)}[{len(ext)}] = "
                             f"{{{', '.join(str(x) for x in _dense_strides(ext, 4))}}};  /* int32 partial sums */")
        return lines

    def _comment(self) -> list[str]:
        sch = self.schedule
        loops = ", ".join(f"{d.value}x{f}" for d, f in self.loops) or "none"
        lines = [f"/* {self.symbol}: layer {self.layer.name!r} ({self.layer.quant.op}) on module {sch.module!r}",
                 f" * spatial {sch.spatial}",
                 f" * temporal loops, innermost first: {loops}; kernel call below loop position {self.pc}: {sch.kernel_tile}"]
        for lv in self.levels:
            lines.append(f" * level {lv.index}: {lv.operand.value} {lv.tl.outer_memory} -> {lv.memory_name} at position {lv.position}, "
                         f"fetch point {lv.run_end}, {lv.halves} x {lv.half_bytes} B at offset {lv.offset}"
                         f"{' (int32 slots)' if lv.slot_bytes == 4 else ''}; "
                         f"counters [{N_COUNTERS * lv.index}..{N_COUNTERS * (lv.index + 1) - 1}]")
        for note in self.notes:
            lines.append(f" * note: {note}")
        lines.append(" */")
        return lines

    def source(self) -> str:
        sym = self.symbol
        n_counters = N_COUNTERS * len(self.levels)
        out = ["/* Generated by tvm_bridge.c_emitter: do not edit. */"]
        out += self._comment()
        if self.inline_target:
            out += ["", target_header().rstrip("\n"), ""]
        else:
            out += ['#include "match_target.h"']
        out += ["#include <stddef.h>", "#include <stdint.h>", "#include <string.h>", "",
                "#ifdef __cplusplus", 'extern "C" {', "#endif", ""]
        out += self._constants()
        for m in self.module.memories[:-1]:
            out.append(f"static int8_t {self._arena(m.name)}[{m.size_bytes}] __attribute__((aligned(16), unused));  "
                       f"/* {m.name}: {self.used[m.name]} B used */")
        if self.psum:
            out.append(f"static int8_t {sym}_psum[{4 * self.layer.tensor_elements(Operand.O)}] __attribute__((aligned(16)));  "
                       "/* int32 partial sums in L2 */")
        out += self._strides_decl()
        out += ["", f"int64_t {sym}_counters[{max(1, n_counters)}];", "",
                f"int {sym}_num_counters(void) {{ return {n_counters}; }}", "",
                f"void {sym}_reset_counters(void) {{ memset({sym}_counters, 0, sizeof {sym}_counters); }}", "",
                f"static match_trace_t {sym}_trace;", "",
                f"void {sym}_set_trace(match_event_t* events, int64_t capacity) {{",
                f"    {sym}_trace.events = events;", f"    {sym}_trace.capacity = events ? capacity : 0;",
                f"    {sym}_trace.count = 0;", "}", "",
                f"int64_t {sym}_trace_count(void) {{ return {sym}_trace.count; }}", "",
                f"int {sym}(const int8_t* in, const int8_t* in2, int8_t* out) {{"]
        body = []
        needs_in2 = self.kind == "add"
        body.append(f"if (in == NULL || out == NULL{' || in2 == NULL' if needs_in2 else ''}) return -1;")
        if not needs_in2:
            body.append("(void)in2;")
        body.append("int64_t kc = 0;  /* kernel calls so far */")
        for lv in self.levels:
            i = lv.index
            body.append(f"int64_t t{i} = -1;  /* level {i}: index of the current tile (fetch order) */")
            body.append(f"int8_t* p{i} = {self._half(lv, '0')};")
            body.append(f"match_dma_handle_t hd{i}[{lv.halves}];")
            body.append(f"memset(hd{i}, 0, sizeof hd{i});")
            if lv.halves == 2:
                body.append(f"int32_t pf{i} = 0;  /* the next tile's transfer is already issued */")
        if self.n > self.pc:
            body.append(f"int32_t {', '.join(f'i{li}' for li in range(self.pc, self.n))};")
        body += self._nest(self.n, 0)
        for lv in self.levels:
            body += [self._wait_all(lv)]
        body += ["(void)kc;"] + [f"(void)p{lv.index};" for lv in self.levels]
        body += [f"(void)pf{lv.index};" for lv in self.levels if lv.halves == 2]
        body.append("return 0;")
        out += ["    " + x for x in body]
        out += ["}", "", "#ifdef __cplusplus", "}", "#endif", ""]
        return "\n".join(out)


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset("""alignas alignof and asm auto bool break case catch char class const constexpr continue default delete do
double else enum explicit export extern false float for friend goto if inline int long mutable namespace new noexcept not
operator or private protected public register restrict return short signed sizeof static struct switch template this
throw true try typedef typeid typename union unsigned using virtual void volatile while main""".split())


def _with_host_padding(source: str, layer: Layer, symbol: str) -> str:
    """Turn the generated unpadded layer into a static helper and add the entry point: the host
    writes the input into a padded copy (zero-point fill) and runs the unpadded schedule on it."""
    signature = f"int {symbol}(const int8_t* in, const int8_t* in2, int8_t* out) {{"
    if source.count(signature) != 1:
        raise CodegenError(f"layer {layer.name!r}: cannot find the entry point of the generated code")
    source = source.replace(signature, f"static int {symbol}_unpadded(const int8_t* in, const int8_t* in2, int8_t* out) {{")
    top, bottom, left, right = layer.padding
    s = layer.sizes
    iy, ix = layer.input_size
    channels = s[D.C] * s[D.G]
    py, px = iy + top + bottom, ix + left + right
    zp = int(layer.quant.input_zp)
    wrapper = [
        f"/* {symbol}: the host pads the input (top, bottom, left, right) = {tuple(layer.padding)} with the input",
        f" * zero point {zp}; the module runs the layer unpadded on the {py}x{px} copy. */",
        f"static int8_t {symbol}_padded_input[{s[D.B] * py * px * channels}];",
        "",
        "#ifdef __cplusplus", 'extern "C" {', "#endif",
        f"int {symbol}(const int8_t* in, const int8_t* in2, int8_t* out) {{",
        "    if (in == NULL || out == NULL) return -1;",
        f"    memset({symbol}_padded_input, {zp}, sizeof {symbol}_padded_input);",
        f"    for (int32_t b = 0; b < {s[D.B]}; ++b)",
        f"        for (int32_t y = 0; y < {iy}; ++y)",
        f"            memcpy({symbol}_padded_input + ((size_t)(b * {py} + y + {top}) * {px} + {left}) * {channels},",
        f"                   in + ((size_t)(b * {iy} + y) * {ix}) * {channels}, {ix * channels});",
        f"    return {symbol}_unpadded({symbol}_padded_input, in2, out);",
        "}",
        "#ifdef __cplusplus", "}", "#endif", "",
    ]
    return source + "\n".join(wrapper)


def emit_layer(layer: Layer, schedule: Schedule, soc: SoC, symbol: str, inline_target: bool = True) -> GeneratedLayer:
    """C source running ``layer`` (with ``layer.quant``) as ``schedule`` prescribes on ``soc``.

    ``inline_target``: paste ``c/match_target.h`` into the source (self-contained, the default) or
    ``#include "match_target.h"`` (a SoC port's header). Raises ``CodegenError`` when the layer is
    not supported or the tile buffers do not fit their memories.
    """
    if not _SYMBOL.match(symbol) or symbol in _RESERVED or symbol.startswith("match_"):
        raise CodegenError(f"layer {layer.name!r}: symbol {symbol!r} is not a C identifier free for a layer "
                           "(C/C++ keyword or match_ prefix)")
    host_padding = tuple(getattr(schedule, "host_padding", (0, 0, 0, 0)))
    inner = dataclasses.replace(layer, padding=(0, 0, 0, 0)) if any(host_padding) else layer
    if any(host_padding) and tuple(layer.padding) != host_padding:
        raise CodegenError(f"layer {layer.name!r}: schedule pads {host_padding} on the host, the layer has {layer.padding}")
    gen = _Gen(inner, schedule, soc, symbol, inline_target)
    source = gen.source()
    if any(host_padding):
        source = _with_host_padding(source, layer, symbol)
    names = tuple(f"{lv.index}:{lv.operand.value}:{lv.tl.outer_memory}->{lv.memory_name}:{name}"
                  for lv in gen.levels for name in COUNTER_FIELDS)
    buffers = tuple(TileBuffer(lv.index, lv.operand.value, lv.memory_name, lv.offset, lv.half_bytes * lv.halves,
                               lv.tl.buffer_bytes, lv.halves, lv.slot_bytes) for lv in gen.levels)
    return GeneratedLayer(
        symbol=symbol,
        source=source,
        counter_names=names,
        arena_bytes={m.name: m.size_bytes for m in gen.module.memories[:-1]},
        arena_used=dict(gen.used),
        buffers=buffers,
        tensor_shapes=tensor_shapes(layer),
        psum_bytes=4 * layer.tensor_elements(Operand.O) if gen.psum else 0,
        notes=tuple(gen.notes),
    )
