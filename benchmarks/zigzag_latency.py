"""ZigZag 3.9.1's latency of ONE explicit mapping: a specification and an independent reference.

``zigzag_latency(hardware, layer, mapping)`` computes, without importing ZigZag, the latency
(``latency_total2``, cycles) that ZigZag 3.9.1's ``CostModelEvaluation`` gives a mapping, so that
a mapping (ZigZag's chosen one, or ours via ``mapping_dict_from_explicit``) can be costed with
ZigZag's semantics next to our cost model. ``hardware`` is the ZigZag accelerator YAML (path or
parsed dict: memories innermost first, ports, served dimensions, array), ``mapping`` the form
``mapper.evaluate.zigzag_mapping_dict`` writes: ``spatial`` {array dim: {loop dim: factor}} and
``temporal`` {O, W, I: per memory level of that operand (innermost first) the loops allocated
there, innermost first}. Layers: ``conv2d``, ``depthwise``, ``dense`` (ZigZag's Conv/Gemm).

Specification (ZigZag 3.9.1: ``mapping/temporal_mapping.py``, ``spatial_mapping_internal.py``,
``mapping_assist_funcs.py``, ``mapping.py``, ``cost_model/cost_model.py``). Units: cycles, bits.

1. **Relevance.** Per operand a loop dim is relevant (r), irrelevant (ir) or, for the input of a
   windowed layer, partially relevant (pr: OY, FY make IY; OX, FX make IX). A pr tile of ``a``
   outputs and ``b`` kernel taps covers ``a*b - max(0, b - s/g) * (a - d/g)`` inputs (s stride,
   d dilation, g = gcd(s, d)), clipped to the layer's input extent.
2. **Stationarity.** Per operand, the ir loops at the bottom of a memory level move down to the
   top of the level below (repeated to a fixed point); those at the bottom of level 0 stay and
   their product is the operand's MAC-level stationary cycles ``st`` (1 for O).
   ``cabl[m]`` = product of the loops of levels 0..m; ``T`` = total temporal cycles.
   ``top_r[m+1]`` / ``top_ir[m+1]`` = product of the consecutive r / ir loops at the top of level m.
3. **Spatial levels.** The unrolled loops of an array dim belong to the lowest memory level of the
   operand whose ``served_dimensions`` include that dim (leftovers above the top). Arch level 0 is
   the array, arch level m+1 is memory m.
4. **Tile sizes.** ``elem[k]`` (data in one instance at arch level k) = product of the r loops
   (pr loops through rule 1) of the temporal loops of memories 0..k-1 and the spatial loops at
   arch levels 0..k-1. Output precision per arch level: partial sums (``O``) while an O-ir loop
   (> 1) sits above (in that level's temporal or spatial loops, or higher), else ``O_final``.
   ``bits[k] = elem[k] x precision``; effective bits ``eff[k] = bits[k] // top_r[k]``.
   ``boost[k]`` = unique instances at arch level k / at k+1 (r spatial loops of levels >= k).
5. **Transfers per memory m** (4 directions: ``tl`` read to low, ``fl`` write in by low, ``th``
   read out to high, ``fh`` write in by high), ``cyc = [st] + cabl`` (O: ``[1] + cabl``):
   inputs: ``tl``: amount ``elem[m] x boost[m]``, period ``cyc[m]``, count ``T // cyc[m]``, average
   bandwidth ``int(elem[m] x prec / cyc[m] x boost[m])``; ``fh``: amount ``elem[m+1]``, period
   ``cyc[m+1]``, count ``T // cyc[m+1]``, bandwidth ``int(elem[m+1] x prec / cyc[m+1])``.
   Output: ``fl`` like an input's ``tl`` and ``th`` like its ``fh``; ``tl`` (= ``fl``) only while
   level m holds partial sums, ``fh`` (= ``th``) only while level m+1 does. Precisions per
   direction: inputs ``tl``/``fh`` their precision; output ``fl``/``tl`` partial-sum precision if
   ``tl`` is active, else ``fl`` at ``O_final`` (``tl`` 0); ``th``/``fh`` partial-sum precision if
   ``fh`` is active, else ``th`` at ``O_final`` (``fh`` 0). The top memory's ``th``/``fh`` are
   disabled (all attributes 0). Instant window = ``int(period / top_ir)``, ``top_ir`` of level m
   for ``tl``/``fl`` and of level m+1 for ``th``/``fh``.
6. **Double buffering.** Utilisation ``u = eff[m+1] / size`` (bits of one instance); memories
   holding several operands sum their operands' ``u`` (shared). In operand order (O, then the
   inputs in equation order), level m is double-buffered if shared ``u <= 0.5``, or if the
   operand's ``u <= 1 - shared u`` (then its ``u`` is added to every sharer's shared ``u``).
   The array level (index 0) is never double-buffered.
7. **Per direction:** real cycles ``ceil(amount x precision / bandwidth_max)`` of the port carrying
   it; allowed cycles = period if the level on the far side of the transfer is double-buffered
   (``tl``/``fl``: level m-1, i.e. flag index m; ``th``/``fh``: level m, index m+1), else the
   instant window. Stall (+) or slack (-) ``(real - allowed) x (count - 1)``; memory updating
   window ``allowed x (count - 1)``; directions with count 0 are skipped.
8. **Per physical port:** one direction: its stall/slack; several: positive stalls + max(0,
   slacks + sum of windows - union of windows), the union being the covered length of the
   windows laid out over the longest period (each direction busy the first ``allowed`` cycles of
   each of its periods) times that direction's count; a direction whose allowed cycles equal its
   period makes the union its ``period x count``. ``SS = max(0, every port's value)``.
9. **On/off-loading per port** (output ``tl``/``fh`` left out): directions with count 1 (loaded
   once) cost their real cycles reduced, largest first, by the port's spare cycles during the
   computation, ``max(0, (bw - sum of ceil(average bandwidth) of its count > 1 directions) / bw x
   (T + SS))``, down to ``ceil(bits[1] / bw)`` each; directions with count > 1 cost their real
   cycles. Onloading, per input operand and link (m, m+1): ``max`` of ``fh`` at m and ``tl`` at m+1,
   summed per operand into individual / shared / half-shared parts (by whether the two ports serve
   both inputs; the half-shared part keeps the last link only, as ZigZag does); with two inputs A, B:
   ``min(sh_A + max(sh_B + half_B + ind_B, half_A + ind_A), sh_B + max(sh_A + half_A + ind_A,
   half_B + ind_B))``. Offloading: per output link, ``max`` of ``th`` at m and ``fl`` at m+1, summed.
10. **Latency** ``= T + SS + onloading + offloading + systolic drain`` (per systolic array dim,
   its unrolling - 1).

Rule 3's unrolling of a loop dim it does not divide (ZigZag's "greedy" mapping, ours padded) is
spread evenly as ZigZag does: ``size / ceil(size / unrolling)``, truncated to an integer for rules
4-10, kept fractional for rule 6's utilisation.
Not covered: IMC arrays, ``cycles_per_op`` other than 1, add and pooling layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import yaml

from archs.dims import LoopDim, Operand
from archs.model import ExecModule
from mapper.evaluate import ExplicitMapping
from mapper.workload import Layer, relevant_dims
from mapper.zigzag_workload import to_zigzag_workload

#: Data directions: read out to low, write in by low, read out to high, write in by high.
TL, FL, TH, FH = "tl", "fl", "th", "fh"
DIRECTIONS = (TL, FL, TH, FH)
DEFAULT_LINKS = {"O": "O", "I": "I1", "W": "I2"}
_WINDOWED = ("conv2d", "depthwise")
_KINDS = ("conv2d", "depthwise", "dense")
_PR = {"IY": ("OY", "FY"), "IX": ("OX", "FX")}
Loops = list[tuple[str, float]]


@dataclass(frozen=True)
class ZigZagLatency:
    """ZigZag 3.9.1's latency of one mapping and its parts (cycles)."""

    latency_cycles: float  # latency_total2
    temporal_cycles: int  # T: product of the temporal loops
    stall_slack_cycles: float  # SS (rule 8)
    onloading_cycles: float
    offloading_cycles: float
    systolic_drain_cycles: int
    double_buffered: dict[str, list[bool]] = field(default_factory=dict)  # operand -> per memory level
    port_stall_slack: dict[str, float] = field(default_factory=dict)  # "memory/port" -> rule 8 value


@dataclass
class _Move:
    """One direction of one operand at one memory level (rule 5)."""

    amount: float = 0
    precision: int = 0
    period: int = 0
    count: int = 0
    bw_aver: int = 0
    window: int = 0


class _Operand:
    """Rules 1-5 for one layer operand."""

    def __init__(self, name: str, layer: Layer, levels: list[Loops], spatial: list[Loops], precision: int,
                 final_precision: int, pr_limits: dict[str, int]):
        self.name = name
        self.layer = layer
        self.n = len(levels)
        ours = {d.value for d in relevant_dims(layer.kind, Operand(name))}
        self.pr = {k: v for k, v in _PR.items() if name == "I" and layer.kind in _WINDOWED}
        pr_dims = {d for pair in self.pr.values() for d in pair}
        self.r = ours - pr_dims
        self.ir = {d.value for d in LoopDim} - ours
        self.pr_limits = pr_limits
        self.stationary, self.st = self._merge_down(levels)
        per_level = [math.prod(f for _, f in level) for level in self.stationary]
        self.cabl = [math.prod(per_level[: m + 1]) for m in range(self.n)]
        self.total = self.cabl[-1] if self.cabl else 1
        self.top_r = [1] + [self._top(level, self.r) for level in self.stationary]
        self.top_ir = [1] + [self._top(level, self.ir) for level in self.stationary]
        self.spatial = spatial  # arch levels 0..n (n: leftovers)
        # arch level k >= 1 in the "1s2t" view: temporal loops of memory k-1 + spatial loops at arch level k-1
        view = [[]] + [self.stationary[k - 1] + spatial[k - 1] for k in range(1, self.n + 1)]
        self.elem = [round(x) for x in self._r_cabl(view)]
        ir_flag = [any(d in self.ir and f > 1 for d, f in ([] if k == 0 else self.stationary[k - 1]) + spatial[k])
                   for k in range(self.n + 1)]
        self.psum = [any(ir_flag[k + 1:]) for k in range(self.n)] + [False]
        self.precision = [precision if (name != "O" or self.psum[k]) else final_precision for k in range(self.n + 1)]
        self.bits = [e * p for e, p in zip(self.elem, self.precision)]
        self.eff = [b // t for b, t in zip(self.bits, self.top_r)]
        unique = self._r_sizes(spatial)
        self.unit_unique = [math.prod(unique[k:]) for k in range(self.n + 1)]
        self.boost = [round(self.unit_unique[k] / self.unit_unique[k + 1]) for k in range(self.n)] + [1]

    def _merge_down(self, levels: list[Loops]) -> tuple[list[Loops], int]:
        current = [list(level) for level in levels]
        while True:
            merged: list[Loops] = [[] for _ in current]
            st = 1
            for m, level in enumerate(current):
                i = 0
                while i < len(level) and level[i][0] in self.ir:
                    if m == 0:
                        st *= level[i][1]
                        merged[0].append(level[i])
                    else:
                        merged[m - 1].append(level[i])
                    i += 1
                merged[m].extend(level[i:])
            if merged == current:
                return merged, st
            current = merged

    @staticmethod
    def _top(level: Loops, dims: set[str]) -> float:
        out = 1
        for d, f in reversed(level):
            if d not in dims:
                break
            out *= f
        return out

    def _pr_size(self, data_dim: str, a: float, b: float) -> int:
        out_dim = self.pr[data_dim][0]
        axis = 0 if out_dim == "OY" else 1
        s, d = self.layer.stride[axis], self.layer.dilation[axis]
        g = math.gcd(s, d)
        a, b = int(a), int(b)
        return min(self.pr_limits[data_dim], a * b - max(0, b - s // g) * (a - d // g))

    def _r_cabl(self, view: list[Loops]) -> list[float]:
        """Per level k, product of the r loops of levels 0..k (pr loops through rule 1)."""
        out = []
        plain = 1.0
        pr_sizes = {x: {o: 1.0, f: 1.0} for x, (o, f) in self.pr.items()}
        for level in view:
            for d, f in level:
                if d in self.r:
                    plain *= f
                for sizes in pr_sizes.values():
                    if d in sizes:
                        sizes[d] *= f
            pr = math.prod(self._pr_size(x, *(pr_sizes[x][d] for d in self.pr[x])) for x in self.pr)
            out.append(plain * pr)
        return out

    def _r_sizes(self, levels: list[Loops]) -> list[float]:
        """Per level, the r part of its loops (pr loops: the growth of the pr data size at that level)."""
        cabl = self._r_cabl(levels)
        return [cabl[0]] + [cabl[k] / cabl[k - 1] for k in range(1, len(cabl))]

    def moves(self) -> list[dict[str, _Move]]:
        """Rule 5: per memory level, the four directions."""
        cyc = ([self.st] if self.name != "O" else [1]) + self.cabl
        out = []
        for m in range(self.n):
            low_amount = self.elem[m] * self.boost[m]
            low_bw = int(self.elem[m] * self.precision[m] / cyc[m] * self.boost[m])
            high_bw = int(self.elem[m + 1] * self.precision[m + 1] / cyc[m + 1])
            low = _Move(low_amount, 0, int(cyc[m]), int(self.total // cyc[m]), low_bw)
            high = _Move(self.elem[m + 1], 0, int(cyc[m + 1]), int(self.total // cyc[m + 1]), high_bw)
            if self.name != "O":
                low.precision = high.precision = self.precision[0]
                row = {TL: low, FL: _Move(), TH: _Move(), FH: high}
            else:
                low.amount = int(low.amount)
                p_acc = self.layer.precision.accumulator
                p_final = self.layer.precision.output
                fl = _Move(low.amount, p_acc if self.psum[m] else p_final, low.period, low.count, low.bw_aver)
                tl = _Move(low.amount, p_acc, low.period, low.count, low.bw_aver) if self.psum[m] else _Move()
                th = _Move(high.amount, p_acc if self.psum[m + 1] else p_final, high.period, high.count, high.bw_aver)
                fh = _Move(high.amount, p_acc, high.period, high.count, high.bw_aver) if self.psum[m + 1] else _Move()
                row = {TL: tl, FL: fl, TH: th, FH: fh}
            for direction, move in row.items():
                factor = int(self.top_ir[m] if direction in (TL, FL) else self.top_ir[m + 1])
                move.window = int(move.period / factor)
            if m == self.n - 1:
                row[TH], row[FH] = _Move(), _Move()
            out.append(row)
        return out


# --------------------------------------------------------------------------- hardware
@dataclass
class _Port:
    memory: str
    name: str
    bw: int
    served: list[tuple[str, int, str]]  # (memory operand, its level at this memory, direction)

    @property
    def shared_by_two_inputs(self) -> bool:
        return len({op for op, _, _ in self.served if op in ("I1", "I2")}) > 1


def _hardware(hardware: Union[str, Path, Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(hardware, (str, Path)):
        return yaml.safe_load(Path(hardware).read_text())
    return dict(hardware)


def _memories(data: Mapping[str, Any]) -> tuple[list[dict], dict[str, list[str]]]:
    """(memories innermost first with their ports, memory operand -> its memories)."""
    levels: dict[str, list[str]] = {}
    out = []
    for name, mem in data["memories"].items():
        operands = list(mem["operands"])
        for op in operands:
            levels.setdefault(op, []).append(name)
        ports = [_Port(name, p["name"], int(p["bandwidth_max"]), []) for p in mem["ports"]]
        bw: dict[tuple[str, str], int] = {}
        for op in operands:
            level = len(levels[op]) - 1
            for port, raw in zip(ports, mem["ports"]):
                for item in raw.get("allocation") or []:
                    alloc_op, direction = (s.strip() for s in str(item).split(","))
                    if alloc_op == op:
                        port.served.append((op, level, direction))
                        bw[(op, direction)] = port.bw
        out.append({"name": name, "size": int(mem["size"]), "operands": operands, "served": list(mem["served_dimensions"]),
                    "ports": [p for p in ports if p.served], "bw": bw,
                    "levels": {op: len(levels[op]) - 1 for op in operands}})
    return out, levels


def _spatial_levels(spatial: Mapping[str, Mapping[str, float]], memories: list[dict], chain: list[str]) -> list[Loops]:
    """Rule 3: per arch level (0 .. len(chain)) the unrolled loops."""
    left = {oa: dict(loops) for oa, loops in spatial.items()}
    by_name = {m["name"]: m for m in memories}
    out: list[Loops] = []
    for name in chain:
        level: dict[str, float] = {}
        for oa in by_name[name]["served"]:
            for d, f in left.pop(oa, {}).items():
                level[d] = level.get(d, 1) * f
        out.append([(d, f) for d, f in level.items() if f != 1])
    top: dict[str, float] = {}
    for loops in left.values():
        for d, f in loops.items():
            top[d] = top.get(d, 1) * f
    out.append([(d, f) for d, f in top.items() if f != 1])
    return out


def _limited(spatial: Mapping[str, Mapping[str, float]], layer: Layer, oa_sizes: Mapping[str, int],
             decimal: bool) -> dict[str, dict[str, float]]:
    """Rule 3's unrollings as ZigZag limits them: at most the array dim's size; a loop dim not divided by
    its unrolling is spread evenly over ``ceil(size / unrolling)`` temporal steps on the first array dim
    carrying its largest unrolling (``size / steps``, truncated to an integer for the latency)."""
    out: dict[str, dict[str, float]] = {}
    for oa, loops in spatial.items():
        row: dict[str, float] = {}
        for d, factor in loops.items():
            size = layer.sizes[LoopDim(d)]
            if size == 1:
                continue  # ZigZag drops loop dims of size 1 from the layer
            factor = min(factor, oa_sizes[oa])
            biggest = max(other.get(d, 0) for other in spatial.values())
            first = next(name for name, other in spatial.items() if other.get(d, 0) == biggest)
            if oa == first:
                early = math.prod(out[name].get(d, 1) for name in out)
                steps = math.ceil(size / (factor * early))
                factor = size / steps / early if decimal else int(size / steps / early)
            row[d] = factor
        out[oa] = {d: f for d, f in row.items() if f != 1}
    return out


def _operand_order(layer: Layer) -> list[str]:
    """O, then the inputs in the order of the equation we write for ZigZag (``to_zigzag_workload``)."""
    rhs = to_zigzag_workload([layer])[0]["equation"].split("=", 1)[1]
    return ["O", *sorted(("W", "I"), key=lambda letter: rhs.index(letter + "["))]


def _union(activities: list[tuple[int, int, int]]) -> int:
    """Rule 8's union of memory updating windows; activities = (period, allowed, count)."""
    for period, allowed, count in activities:
        if period == allowed:
            return period * count
    longest = max(range(len(activities)), key=lambda i: (activities[i][0], -i))
    p_max = activities[longest][0]
    busy = np.zeros((len(activities), p_max), dtype=bool)
    for i, (period, allowed, _) in enumerate(activities):
        view = busy.reshape(len(activities), -1, period)
        view[i, :, :allowed] = True
    return int(busy.any(axis=0).sum()) * activities[longest][2]


def _reduce(totals: list[float], minima: list[float], spare: float) -> list[float]:
    """Rule 9: reduce the largest first (stable), each down to its minimum, by ``spare`` in total."""
    if spare <= 0 or not totals:
        return list(totals)
    out = list(totals)
    for i in sorted(range(len(out)), key=lambda j: totals[j], reverse=True):
        if spare <= 0:
            break
        cut = min(max(0.0, out[i] - minima[i]), spare)
        out[i] -= cut
        spare -= cut
    if any(o < m for o, m in zip(out, minima)):
        raise ValueError(f"onloading below its minimum ({out} < {minima}): ZigZag 3.9.1 rejects this mapping (assertion)")
    return out


def zigzag_latency(hardware: Union[str, Path, Mapping[str, Any]], layer: Layer, mapping: Mapping[str, Any],
                   links: Optional[Mapping[str, str]] = None) -> ZigZagLatency:
    """ZigZag 3.9.1's ``latency_total2`` (cycles) of ``mapping`` for ``layer`` on ``hardware`` (see the
    module docstring). ``links``: layer operand -> memory operand (ZigZag's default I -> I1, W -> I2).
    Raises ``ValueError`` for layers or mappings outside the specification."""
    if layer.kind not in _KINDS:
        raise ValueError(f"layer {layer.name!r}: kind {layer.kind!r} not covered (allowed: {', '.join(_KINDS)})")
    data = _hardware(hardware)
    links = dict(links or DEFAULT_LINKS)
    to_layer = {mem: op for op, mem in links.items()}
    memories, chains = _memories(data)
    iy, ix = layer.input_size
    given = {str(oa): {str(d): float(f) for d, f in loops.items()} for oa, loops in mapping["spatial"].items()}
    oa_sizes = dict(zip(data["operational_array"]["dimensions"], data["operational_array"]["sizes"]))
    spatial = _limited(given, layer, oa_sizes, decimal=False)  # what the latency uses
    fractional = _limited(given, layer, oa_sizes, decimal=True)  # what memory utilisation (rule 6) uses
    ops: dict[str, _Operand] = {}
    fill: dict[str, _Operand] = {}
    for name in _operand_order(layer):
        levels = [[(str(d), int(f)) for d, f in level if int(f) != 1] for level in mapping["temporal"][name]]
        chain = chains[links[name]]
        if len(levels) != len(chain):
            raise ValueError(f"temporal.{name}: {len(levels)} levels for the {len(chain)} memories {chain}")
        precision = {"O": layer.precision.accumulator, "I": layer.precision.input, "W": layer.precision.weight}[name]
        ops[name], fill[name] = (_Operand(name, layer, levels, _spatial_levels(sm, memories, chain), precision,
                                          layer.precision.output, {"IY": iy, "IX": ix}) for sm in (spatial, fractional))
    totals = {op.total for op in ops.values()}
    if len(totals) != 1:
        raise ValueError(f"temporal: the operands' loops multiply to different totals {sorted(totals)}")
    total = totals.pop()
    moves = {name: op.moves() for name, op in ops.items()}
    by_name = {m["name"]: m for m in memories}

    # rule 6: double buffering
    individual = {name: [op.eff[m + 1] / by_name[chains[links[name]][m]]["size"] for m in range(op.n)] for name, op in fill.items()}
    shared = {name: list(u) for name, u in individual.items()}
    groups = []
    for mem in memories:
        members = [(to_layer[o], mem["levels"][o]) for o in mem["operands"] if o in to_layer]
        if len(mem["operands"]) > 1:
            groups.append(members)
            total_u = sum(individual[op][lv] for op, lv in members)
            for op, lv in members:
                shared[op][lv] = total_u
    double = {}
    for name, op in ops.items():
        flags = [False]
        for m in range(op.n):
            if shared[name][m] <= 0.5:
                flags.append(True)
            elif individual[name][m] <= 1 - shared[name][m]:
                flags.append(True)
                for members in groups:
                    if (name, m) in members:
                        for other, lv in members:
                            shared[other][lv] += individual[name][m]
            else:
                flags.append(False)
        double[name] = flags

    # rule 7: real and allowed cycles per direction
    def real(name: str, m: int, direction: str) -> int:
        move = moves[name][m][direction]
        bw = by_name[chains[links[name]][m]]["bw"].get((links[name], direction))
        return math.ceil(move.amount * move.precision / bw) if bw else 0

    def allowed(name: str, m: int, direction: str) -> int:
        move = moves[name][m][direction]
        flag = double[name][m] if direction in (TL, FL) else double[name][m + 1]
        return math.ceil(move.period if flag else move.window)

    # rule 8: stall / slack per physical port
    port_ss: dict[str, float] = {}
    for mem in memories:
        for port in mem["ports"]:
            acts = []
            for mem_op, lv, direction in port.served:
                if mem_op not in to_layer:
                    continue
                name = to_layer[mem_op]
                move = moves[name][lv][direction]
                if move.count == 0:
                    continue
                r, a = real(name, lv, direction), allowed(name, lv, direction)
                acts.append(((r - a) * (move.count - 1), a * (move.count - 1), (move.period, a, move.count)))
            if len(acts) == 1:
                port_ss[f"{mem['name']}/{port.name}"] = acts[0][0]
            elif acts:
                positive = sum(s for s, _, _ in acts if s > 0)
                negative = sum(s for s, _, _ in acts if s <= 0)
                windows = sum(w for _, w, _ in acts)
                port_ss[f"{mem['name']}/{port.name}"] = positive + max(0, negative + windows - _union([x for _, _, x in acts]))
    ss = max([0, *port_ss.values()])

    # rule 9: on- and off-loading
    loading: dict[tuple[str, int, str], tuple[float, bool]] = {}
    for mem in memories:
        for port in mem["ports"]:
            once, periodic = [], []
            for mem_op, lv, direction in port.served:
                if mem_op not in to_layer:
                    continue
                name = to_layer[mem_op]
                if name == "O" and direction in (TL, FH):
                    continue
                count = moves[name][lv][direction].count
                if count == 1:
                    once.append((name, lv, direction))
                elif count > 1:
                    periodic.append((name, lv, direction))
            req = sum(math.ceil(moves[n][lv][d].bw_aver) for n, lv, d in periodic)
            spare = max(0, (port.bw - req) / port.bw * (math.ceil(total) + ss))
            left = _reduce([real(*c) for c in once], [math.ceil(ops[c[0]].bits[1] / port.bw) for c in once], spare)
            for c, cycles in zip(once, left):
                loading[c] = (cycles, port.shared_by_two_inputs)
            for c in periodic:
                loading[c] = (real(*c), port.shared_by_two_inputs)
    parts = {}
    inputs = [name for name in ops if name != "O"]
    for name in inputs:
        individual_part = shared_part = half = 0.0
        for lv in range(ops[name].n - 1):
            e1, e2 = loading[(name, lv, FH)], loading[(name, lv + 1, TL)]
            longest = max(e1[0], e2[0])
            if e1[1] and e2[1]:
                shared_part += longest
            elif not e1[1] and not e2[1]:
                individual_part += longest
            else:
                half = longest  # ZigZag 3.9.1 keeps the last half-shared link only
        parts[name] = (individual_part, shared_part, half)
    a, b = (parts[n] for n in inputs)
    onloading = min(a[1] + max(b[1] + b[2] + b[0], a[2] + a[0]), b[1] + max(a[1] + a[2] + a[0], b[2] + b[0]))
    offloading = sum(max(loading[("O", lv, TH)][0], loading[("O", lv + 1, FL)][0]) for lv in range(ops["O"].n - 1))

    # rule 10
    systolic = (data.get("operational_array") or {}).get("systolic_dimensions") or []
    drain = sum(max(math.ceil(math.prod(spatial[oa].values())) - 1, 0) for oa in systolic if oa in spatial)
    return ZigZagLatency(latency_cycles=float(total + ss + onloading + offloading + drain), temporal_cycles=int(total),
                         stall_slack_cycles=float(ss), onloading_cycles=float(onloading), offloading_cycles=float(offloading),
                         systolic_drain_cycles=drain, double_buffered=double, port_stall_slack=port_ss)


def mapping_dict_from_explicit(mapping: ExplicitMapping, layer: Layer, module: ExecModule) -> dict[str, Any]:
    """Our ``ExplicitMapping`` (on a module ``archs.from_zigzag`` built) in ``zigzag_mapping_dict`` form:
    per operand, the loops between consecutive tile boundaries become that memory level's loops.
    The W operand of a layer without weights is not produced (such layers are not covered)."""
    temporal: dict[str, list[list[list[Any]]]] = {}
    memories: dict[str, list[str]] = {}
    loops = [(d.value, int(f)) for d, f in mapping.loops]
    for operand in Operand:
        if not layer.has_operand(operand):
            continue
        cuts = list(mapping.cuts[operand])
        bounds = [0, *cuts, len(loops)]
        temporal[operand.value] = [[list(loop) for loop in loops[bounds[i]:bounds[i + 1]]] for i in range(len(bounds) - 1)]
        memories[operand.value] = [module.memories[i].name for i in module.chain(operand)]
    spatial = {name: ({dim.value: float(factor)} if dim is not None else {}) for name, dim, factor in mapping.spatial.assignment}
    return {"layer": layer.name, "spatial": spatial, "temporal": temporal, "memories": memories}


__all__ = ["ZigZagLatency", "zigzag_latency", "mapping_dict_from_explicit"]
