"""The search on deep hierarchies: exact against brute force on 2-, 3- and 4-level hypothetical
modules (double buffering, kernel hooks, per-run transfer costs, ZigZag's overlap semantics, every objective), the
three temporal strategies agree,
time budgets return valid mappings with true lower bounds, results are the same across processes,
and a network keeps its mappable layers when one layer fits no module."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import archs
import mapper
from archs.dims import LoopDim, Operand
from archs.model import ComputeModel, ExecModule, LayerRule, MemoryLevel, SpatialDim
from mapper.bottom_up import search_bottom_up
from mapper.bruteforce import brute_force_objectives
from mapper.search import enumerate_temporal
from mapper.tree_search import search_temporal

IN, WT, OUT = Operand.I, Operand.W, Operand.O


def _memory(name, size, operands, bandwidth, *, db=False, fixed=0.0, energy=1.0, accumulates=False, per_run=0.0):
    return MemoryLevel(name, size, frozenset(operands), bandwidth, bandwidth, transfer_fixed_cycles=fixed,
                       transfer_cycles_per_run=per_run, double_buffering=db, read_energy_pj_per_byte=energy,
                       write_energy_pj_per_byte=energy,
                       accumulates=accumulates)


def _hook(tile, layer):
    """A kernel hook with a per-call cost and a cost per output row: rewards some tile shapes."""
    macs = np.ones_like(tile[LoopDim.K])
    for d in LoopDim:
        macs = macs * tile[d]
    return 7.0 + macs / 4.0 + 3.0 * tile[LoopDim.OY]


def _module(levels: int, *, db: bool = False, hook: bool = False, array: bool = True, runs: bool = False,
            spill: bool = False) -> ExecModule:
    """A hypothetical module with ``levels`` memories for weights (registers up to DRAM), small enough
    that the brute force finishes: 2 levels (buffer, DRAM), 3 (+ registers), 4 (+ a weight SRAM).
    ``runs``: transfers into the buffer (and the registers) cost cycles per contiguous run.
    ``spill``: the registers do not accumulate, so partial sums they send up widen the buffer's
    output tiles (accumulator precision) in a buffer small enough for that to matter."""
    dram = _memory("dram", 1 << 24, (IN, WT, OUT), 4.0, energy=50.0)
    buffer = _memory("buf", 160, (IN, WT, OUT), 16.0, db=db, fixed=3.0, energy=3.0, per_run=5.0 if runs else 0.0)
    memories = [buffer, dram]
    if levels >= 3:
        memories.insert(0, _memory("reg", 16, (WT, OUT), 64.0, energy=0.2, accumulates=not spill,
                                   per_run=2.0 if runs else 0.0))
    if levels >= 4:
        memories.insert(1, _memory("wbuf", 40, (WT,), 32.0, energy=1.0))
    spatial = (SpatialDim("cols", 2, (LoopDim.K, LoopDim.G)),) if array else ()
    compute = ComputeModel(2.0 if array else 1.0, 0.5, kernel="tests:hook" if hook else None,
                           kernel_hook=_hook if hook else None)
    rules = tuple(LayerRule(kind) for kind in archs.LAYER_KINDS) if hasattr(archs, "LAYER_KINDS") else tuple(
        LayerRule(kind) for kind in ("conv2d", "depthwise", "dense", "add", "pool"))
    name = f"hypo{levels}{'_db' if db else ''}{'_hook' if hook else ''}{'_runs' if runs else ''}{'_spill' if spill else ''}"
    return ExecModule(name, spatial, tuple(memories), compute,
                      accepts=rules, allow_padded_unrolling=True, tile_overhead_cycles=2.0)


SHALLOW_LAYERS = [
    mapper.conv2d("conv", input_size=(4, 2), in_channels=2, out_channels=4, kernel=(3, 1), padding="same"),
    mapper.conv2d("conv_s2", input_size=(6, 3), in_channels=2, out_channels=2, kernel=3, stride=2, padding="same"),
    mapper.dense("dense", in_features=6, out_features=4),
    mapper.depthwise("dw", input_size=(4, 3), channels=2, kernel=3),
    mapper.pool("pool", input_size=(4, 4), channels=2, kernel=2),
]
DEEP_LAYERS = [  # fewer prime factors: the brute force over 3-4 levels stays within seconds
    mapper.conv2d("conv", input_size=(2, 2), in_channels=2, out_channels=2, kernel=(3, 1), padding="same"),
    mapper.conv2d("conv_s2", input_size=(4, 3), in_channels=2, out_channels=2, kernel=(1, 3), stride=2,
                  padding="same"),
    mapper.dense("dense", in_features=6, out_features=4),
    mapper.depthwise("dw", input_size=(2, 3), channels=2, kernel=3, padding="same"),
    mapper.pool("pool", input_size=(4, 4), channels=2, kernel=2),
]
MODULES = {
    "2lvl": _module(2),
    "2lvl_db_hook": _module(2, db=True, hook=True),
    "3lvl": _module(3),
    "3lvl_db": _module(3, db=True),
    "4lvl": _module(4),
    "4lvl_db_hook": _module(4, db=True, hook=True),
    "3lvl_spill": _module(3, spill=True),
    "3lvl_db_spill": _module(3, db=True, spill=True),
    "2lvl_runs": _module(2, runs=True),
    "2lvl_db_runs": _module(2, db=True, runs=True),
    "3lvl_runs": _module(3, runs=True),
    "3lvl_db_runs": _module(3, db=True, runs=True),
    # ZigZag's overlap semantics (costmodel.overlap): the searches bound latency by compute + overhead
    "2lvl_zigzag": dataclasses.replace(_module(2), name="hypo2_zigzag", overlap="zigzag"),
    "3lvl_zigzag": dataclasses.replace(_module(3), name="hypo3_zigzag", overlap="zigzag"),
    "3lvl_db_zigzag": dataclasses.replace(_module(3, db=True), name="hypo3_db_zigzag", overlap="zigzag"),
    "4lvl_hook_zigzag": dataclasses.replace(_module(4, hook=True), name="hypo4_hook_zigzag", overlap="zigzag"),
}
CASES = [(la, m) for m in MODULES for la in (SHALLOW_LAYERS if m.startswith("2") else DEEP_LAYERS)]
OBJECTIVES = ("latency", "energy", "edp")


def _value(schedule, objective):
    return {"latency": schedule.latency_cycles, "energy": schedule.energy_pj,
            "edp": schedule.latency_cycles * schedule.energy_pj}[objective]


@pytest.mark.parametrize("layer, module_name", CASES, ids=[f"{la.name}-{m}" for la, m in CASES])
def test_search_equals_brute_force_on_deep_hierarchies(layer, module_name):
    """The optimum, and among (near-)equal optima the least secondary metric (energy for latency)."""
    module = MODULES[module_name]
    secondary: dict[str, float] = {}
    best, count = brute_force_objectives(layer, module, OBJECTIVES, secondary=secondary)
    assert count > 0
    for objective in OBJECTIVES:
        result = mapper.search_module(layer, module, objective)
        if result.schedule is None:
            assert best[objective] == float("inf"), result.reason
            continue
        assert result.schedule.optimal and result.schedule.optimality_gap == 0.0
        assert _value(result.schedule, objective) == pytest.approx(best[objective], rel=1e-9), objective
        assert result.key[1] == pytest.approx(secondary[objective], rel=1e-8), objective


STRATEGIES = {
    "bottom_up": lambda p, o, i, d: search_bottom_up(p, o, i, d),
    "top_down": lambda p, o, i, d: search_temporal(p, o, i, d),
    "enumerate": enumerate_temporal,
}


def test_run_cost_changes_optima():
    """The per-run cost is not a constant offset: with it, some optimal mappings move fewer runs
    (and cost more) than the optimum without it."""
    changed = 0
    for layer in DEEP_LAYERS:
        for plain, with_runs in (("3lvl", "3lvl_runs"),):
            a = mapper.search_module(layer, MODULES[plain], "latency").schedule
            b = mapper.search_module(layer, MODULES[with_runs], "latency").schedule
            runs = lambda s: sum(lv.runs_in + lv.runs_out for lv in s.levels)  # noqa: E731
            assert b.latency_cycles >= a.latency_cycles
            changed += runs(b) < runs(a)
    assert changed >= 1


@pytest.mark.parametrize("module_name", ["2lvl_db_hook", "3lvl_db", "3lvl_db_runs", "3lvl_db_zigzag"])
def test_strategies_agree(module_name):
    """Each strategy plugs into search_module and finds the same optimum (primary and secondary)."""
    layer = mapper.conv2d("c", input_size=(4, 2), in_channels=2, out_channels=4, kernel=(3, 1), padding="same")
    module = MODULES[module_name]
    keys = {name: mapper.search_module(layer, module, "latency", temporal_search=fn).key
            for name, fn in STRATEGIES.items()}
    assert keys["bottom_up"] == pytest.approx(keys["top_down"], rel=1e-9)
    assert keys["bottom_up"] == pytest.approx(keys["enumerate"], rel=1e-9)


def _zigzag(name: str) -> archs.SoC:
    from archs.zigzag import zigzag_example

    return archs.from_zigzag(zigzag_example(name, "hardware"), zigzag_example(name + "_like" if name == "meta_prototype"
                                                                               else name, "mapping"))


def test_budget_returns_valid_mapping_with_true_lower_bound():
    """A tiny budget on a 7-cut hierarchy: a feasible mapping, not claimed optimal, whose lower bound
    is below the optimum the unbounded search proves."""
    soc = _zigzag("meta_prototype")
    module = soc.accelerators[0]
    layer = mapper.conv2d("r8", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, padding="same")
    quick = mapper.search_module(layer, module, "latency", time_budget_s=1e-4).schedule
    full = mapper.search_module(layer, module, "latency").schedule
    assert full.optimal and full.optimality_gap == 0.0
    assert quick.latency_cycles >= full.latency_cycles
    assert quick.lower_bound <= full.latency_cycles * (1 + 1e-12)
    if not quick.optimal:
        assert quick.optimality_gap == pytest.approx((quick.latency_cycles - quick.lower_bound) / quick.latency_cycles)
    assert all(quick.occupancy[m.name] <= m.size_bytes for m in module.memories)


def test_map_layer_budget_warns_and_reports_gap(caplog):
    soc = _zigzag("meta_prototype")
    layer = mapper.conv2d("big", input_size=(56, 56), in_channels=64, out_channels=64, kernel=3, padding="same")
    start = time.perf_counter()
    with caplog.at_level("WARNING"):
        s = mapper.map_layer(layer, soc, time_budget_s=0.05)
    assert time.perf_counter() - start < 30  # a dive per module, then it stops
    assert not s.optimal and 0 < s.optimality_gap < 1 and s.lower_bound < s.latency_cycles
    assert "time budget ran out" in caplog.text and "'big'" in caplog.text


def test_bad_budget():
    layer = SHALLOW_LAYERS[0]
    with pytest.raises(ValueError, match="time_budget_s must be a positive number"):
        mapper.map_layer(layer, archs.load("gap9"), time_budget_s=-1)


_SCRIPT = """
import json, mapper, archs
from archs.zigzag import zigzag_example
soc = archs.from_zigzag(zigzag_example("edge_tpu_like", "hardware"), zigzag_example("edge_tpu_like", "mapping"))
layer = mapper.conv2d("c", input_size=(16, 16), in_channels=16, out_channels=32, kernel=3, padding="same")
d = mapper.map_layer(layer, soc, time_budget_s=None).to_dict()
d.pop("search_seconds")
print(json.dumps(d, sort_keys=True))
"""


def test_same_schedule_across_processes():
    runs = [subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and json.loads(runs[0])["optimal"] is True


def test_network_keeps_mappable_layers_when_one_fails():
    gap9 = archs.load("gap9")
    net = mapper.layer_graph([
        mapper.conv2d("conv", input_size=(8, 8), in_channels=16, out_channels=16, kernel=3, padding="same"),
        mapper.pool("pool", input_size=(8, 8), channels=16, kernel=2, stride=2),
        mapper.dense("fc", in_features=256, out_features=10),
    ])
    result = mapper.map_network(net, gap9, modules=["ne16"])  # NE16 takes no pooling
    assert set(result.schedules) == {"conv", "fc"} and set(result.failures) == {"pool"}
    assert "layer 'pool' (pool) cannot be mapped on gap9" in result.failures["pool"]
    assert result.to_dict()["failures"] == result.failures
    with pytest.raises(mapper.MappingError, match="'pool'"):
        mapper.map_network(net, gap9, modules=["ne16"], strict=True)


@pytest.mark.parametrize("module_name", ["3lvl_db", "4lvl_db_hook", "2lvl_db_hook", "3lvl_db_runs"])
def test_costs_from_parts_equal_the_reference_cost_model(module_name, monkeypatch):
    """The search costs complete mappings from the parts it accumulated; those must be exactly what
    the reference cost model (analyze_segments + evaluate) gives for the same mappings."""
    import mapper.bottom_up as bottom_up
    from costmodel.analysis import analyze_segments
    from costmodel.cost import evaluate

    seen = []
    original = bottom_up._settle_segment_form

    def recording(t, latency, energy, segment_form, best_key, stats):
        rows = np.arange(min(latency.size, 64))
        seen.append((t, latency[rows], energy[rows], segment_form(rows)))
        return original(t, latency, energy, segment_form, best_key, stats)

    monkeypatch.setattr(bottom_up, "_settle_segment_form", recording)
    layer = DEEP_LAYERS[0]
    mapper.search_module(layer, MODULES[module_name], "latency")
    assert seen
    for t, latency, energy, (segments, leaders, groups) in seen:
        cost = evaluate(t.problem, analyze_segments(t.problem, segments, t.ranks.T[:, leaders], groups))
        assert np.allclose(cost.latency_cycles, latency, rtol=1e-12)
        assert np.allclose(cost.energy_pj, energy, rtol=1e-12)


@pytest.mark.parametrize("module_name", ["3lvl_spill", "3lvl_db_spill", "3lvl_db", "4lvl_db_hook"])
def test_occupancy_from_parts_equals_the_reference_cost_model(module_name, monkeypatch):
    """Complete mappings' memory use as the search tracks it (output tiles at accumulator precision
    once they hold partial sums: spilled, received from the level below, or reduced across kernel
    calls) is what the reference cost model sizes, so the search's capacity checks are exact."""
    import mapper.bottom_up as bottom_up
    from costmodel.analysis import analyze_segments
    from costmodel.cost import evaluate

    seen = []
    original = bottom_up._settle

    def recording(t, leaves, best_key, stats):
        rows = np.arange(min(len(leaves), 64))
        seen.append((t, leaves.take(rows)))
        return original(t, leaves, best_key, stats)

    monkeypatch.setattr(bottom_up, "_settle", recording)
    for layer in DEEP_LAYERS[:3]:
        mapper.search_module(layer, MODULES[module_name], "latency")
    assert seen
    for t, leaves in seen:
        segments, leaders, groups = bottom_up._segment_form(t, leaves)
        cost = evaluate(t.problem, analyze_segments(t.problem, segments, t.ranks.T[:, leaders], groups))
        assert np.allclose(cost.occupancy, leaves.occupancy), module_name


def test_mirror_unrollings_skipped_only_when_rows_and_columns_interchange(monkeypatch):
    """On a square layer and a module costed per PE, an unrolling whose mirror image (OY <-> OX) was
    already searched is skipped: the optimum (both metrics) is what searching every unrolling gives.
    A non-square layer, per-run transfer costs or a kernel hook keep every unrolling."""
    import mapper.search as search

    array = SpatialDim("rows", 4, (LoopDim.OY, LoopDim.OX, LoopDim.K)), SpatialDim("cols", 2, (LoopDim.OY, LoopDim.OX))
    module = dataclasses.replace(_module(2), name="hypo_xy", spatial=array)
    square = mapper.conv2d("sq", input_size=(4, 4), in_channels=2, out_channels=4, kernel=3, padding="same")
    oblong = mapper.conv2d("ob", input_size=(4, 2), in_channels=2, out_channels=4, kernel=3, padding="same")
    assert search._mirror_symmetric(square, module)
    assert not search._mirror_symmetric(oblong, module)
    assert not search._mirror_symmetric(square, MODULES["2lvl_runs"])
    assert not search._mirror_symmetric(square, MODULES["2lvl_db_hook"])
    every = mapper.spatial_unrollings(square, module)
    kept = search._searched_unrollings(square, module, every)
    assert len(kept) < len(every)
    for objective in ("latency", "energy", "edp"):
        fast = mapper.search_module(square, module, objective).key
        monkeypatch.setattr(search, "_mirror_symmetric", lambda layer, module: False)
        full = mapper.search_module(square, module, objective).key
        monkeypatch.undo()
        assert fast == full, objective


@pytest.mark.parametrize("module_name", ["2lvl", "3lvl_db", "4lvl_db_hook", "3lvl_spill", "3lvl_zigzag"])
def test_unrolling_floors_below_every_feasible_mapping(module_name):
    """``search._unrolling_floor`` (which skips whole unrollings and certifies what a budget leaves)
    is at most the objective of every feasible mapping of its unrolling, for every objective: checked
    against all loop orders x tile boundaries of each unrolling (the brute force's space)."""
    import itertools

    from costmodel.analysis import analyze
    from costmodel.cost import evaluate
    from mapper.bruteforce import distinct_permutations
    from mapper.search import _unrolling_floor, build_layer_problem
    from mapper.spatial import spatial_unrollings
    from mapper.temporal import prime_factors

    module = MODULES[module_name]
    layers = SHALLOW_LAYERS if module_name.startswith("2") else DEEP_LAYERS
    checked = 0
    for layer in layers[:3]:
        for unrolling in spatial_unrollings(layer, module):
            problem = build_layer_problem(layer, module, unrolling)
            loops = [(d, p) for d in range(len(problem.remaining)) for p in prime_factors(int(problem.remaining[d]))]
            orders = np.array(list(distinct_permutations(loops)), dtype=np.int64).reshape(-1, len(loops), 2)
            cut_sets = np.array([c for c in itertools.product(range(len(loops) + 1), repeat=len(problem.cut_points))
                                 if all(c[i] <= c[j] for i, a in enumerate(problem.cut_points)
                                        for j, b in enumerate(problem.cut_points)
                                        if a.operand == b.operand and a.boundary < b.boundary)],
                                dtype=np.int64).reshape(-1, len(problem.cut_points))
            dims = np.repeat(orders[:, :, 0], len(cut_sets), axis=0)
            factors = np.repeat(orders[:, :, 1], len(cut_sets), axis=0)
            cost = evaluate(problem, analyze(problem, dims, factors, np.tile(cut_sets, (len(orders), 1))))
            for objective in OBJECTIVES:
                best = np.where(cost.feasible, cost.objective(objective), np.inf).min()
                assert _unrolling_floor(problem, objective) <= best * (1 + 1e-9), (layer.name, unrolling.assignment, objective)
                checked += int(np.isfinite(best))
    assert checked > 0
