"""``mapper.top_n.best_mappings``: the N best mappings of a layer overall equal the N smallest values
of a brute force over the same space (every prime-loop order x every tile boundary, reduced to the
space of ``mapper.temporal`` and counted once per mapping), with the bottom-up and the top-down
branch and bound; ``explain --top 3`` lists them in order;
a time budget returns the best found, not proven."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from test_explorer import run
from test_search_deep import DEEP_LAYERS, MODULES, SHALLOW_LAYERS

import archs
import mapper
from costmodel.analysis import analyze
from costmodel.cost import evaluate
from mapper.acceptance import padding_split, rejection_reason
from mapper.bruteforce import distinct_permutations
from mapper.search import _searched_unrollings, build_layer_problem, host_padding_cost
from mapper.spatial import spatial_unrollings
from mapper.temporal import prime_factors, rank_table
from mapper.top_n import STRATEGIES, best_mappings
from mapper.tree_search import objective_values


def _identity(dims: list, factors: list, cuts: list, ranks: np.ndarray):
    """A prime-loop nest (innermost first, cut positions) as one mapping of ``mapper.temporal``'s
    space: (kernel call extents, segments of (dim, factor) loops, segment of each cut point), or
    None when it is outside that space (a segment above the kernel call repeats a dim, or its loops
    are not in one leader's order). The kernel call's loop order does not count (one call)."""
    n = len(dims)
    bounds = sorted(set(cuts))
    kernel = [1] * ranks.shape[1]
    for d, f in zip(dims[:bounds[0] if bounds else n], factors):
        kernel[d] *= f
    segments = []
    edges = bounds + [n]
    for a, b in zip(edges[:-1], edges[1:]):
        merged: list = []
        for d, f in zip(dims[a:b], factors[a:b]):
            if merged and merged[-1][0] == d:
                merged[-1] = (d, merged[-1][1] * f)
            else:
                merged.append((d, f))
        order = [d for d, _ in merged]
        if len(set(order)) != len(order):
            return None
        if order and not any(sorted(order, key=lambda d: rank[d]) == order for rank in ranks):
            return None
        segments.append(tuple(merged))
    return tuple(kernel), tuple(segments), tuple(bounds.index(c) for c in cuts)


def _brute_force_costs(layer: mapper.Layer, module: archs.ExecModule) -> list[tuple[float, float]]:
    """(latency, energy) of every feasible mapping of the space, once each."""
    costs = {}
    for unrolling in _searched_unrollings(layer, module, spatial_unrollings(layer, module)):
        problem = build_layer_problem(layer, module, unrolling)
        ranks = rank_table(problem)
        loops = [(d, p) for d in range(len(problem.remaining)) for p in prime_factors(int(problem.remaining[d]))]
        cps = problem.cut_points
        cut_sets = np.array([c for c in itertools.product(range(len(loops) + 1), repeat=len(cps))
                             if all(c[i] <= c[j] for i, a in enumerate(cps) for j, b in enumerate(cps)
                                    if a.operand == b.operand and a.boundary < b.boundary)],
                            dtype=np.int64).reshape(-1, len(cps))
        for order in distinct_permutations(loops):
            loop = np.array(order, dtype=np.int64).reshape(-1, 2)
            dims = np.repeat(loop[None, :, 0], len(cut_sets), axis=0)
            factors = np.repeat(loop[None, :, 1], len(cut_sets), axis=0)
            cost = evaluate(problem, analyze(problem, dims, factors, cut_sets))
            for i in np.nonzero(cost.feasible)[0]:
                key = _identity(loop[:, 0].tolist(), loop[:, 1].tolist(), cut_sets[i].tolist(), ranks)
                if key is not None:
                    costs.setdefault((unrolling.assignment, key), (float(cost.latency_cycles[i]), float(cost.energy_pj[i])))
    return list(costs.values())


CASES = [(SHALLOW_LAYERS[1], "2lvl"), (DEEP_LAYERS[0], "3lvl_db"), (SHALLOW_LAYERS[2], "2lvl_db_hook"),
         (DEEP_LAYERS[1], "3lvl_zigzag")]


@pytest.mark.parametrize("layer, module_name", CASES, ids=[f"{la.name}-{m}" for la, m in CASES])
def test_top_n_equals_the_n_smallest_of_brute_force(layer, module_name):
    module = MODULES[module_name]
    costs = _brute_force_costs(layer, module)
    for objective in ("latency", "energy", "edp"):
        keys = sorted(objective_values(objective, lat, en) for lat, en in costs)
        for n, strategy in itertools.product((1, 3, 10), STRATEGIES):
            schedules, rejected = best_mappings(layer, module, objective, n, temporal_search=strategy)
            assert not rejected
            got = [objective_values(objective, s.latency_cycles, s.energy_pj) for s in schedules]
            assert len(got) == min(n, len(keys))
            np.testing.assert_allclose([k[0] for k in got], [k[0] for k in keys[:n]], rtol=1e-9)
            assert got == sorted(got)  # by objective, then the secondary metric
            assert all(s.optimal for s in schedules)
            shown = {(str(s.spatial), str(s.loops), str([(lv.operand, lv.memory, lv.position) for lv in s.levels]))
                     for s in schedules}
            assert len(shown) == len(schedules)  # distinct mappings
        if objective == "latency":  # #1 is the single search's optimum
            assert got[0][0] == pytest.approx(mapper.search_module(layer, module, objective).schedule.latency_cycles,
                                              rel=1e-9)


def test_top_n_over_a_soc_matches_map_layer_and_spans_modules():
    layer = mapper.conv2d("c", input_size=(8, 8), in_channels=8, out_channels=8, kernel=3, padding="same")
    soc = archs.load("diana")
    schedules, _ = best_mappings(layer, soc, "latency", 4)
    best = mapper.map_layer(layer, soc, time_budget_s=None)
    assert schedules[0].latency_cycles == pytest.approx(best.latency_cycles, rel=1e-9)
    assert schedules[0].energy_pj == pytest.approx(best.energy_pj, rel=1e-9)
    latencies = [s.latency_cycles for s in schedules]
    assert len(schedules) == 4 and latencies == sorted(latencies)


def test_top_n_with_a_budget_returns_the_best_found_not_proven():
    layer = mapper.conv2d("c", input_size=(48, 48), in_channels=24, out_channels=48, kernel=3, padding="same")
    soc = archs.load("gap9")
    schedules, _ = best_mappings(layer, soc, "latency", 3, time_budget_s=0.02, modules=["cluster"])
    assert len(schedules) == 3
    assert not any(s.optimal for s in schedules)
    for s in schedules:
        assert s.lower_bound <= s.latency_cycles * (1 + 1e-9) and 0 <= s.optimality_gap < 1
    exact, _ = best_mappings(layer, soc, "latency", 1, modules=["cluster"])
    assert exact[0].optimal and exact[0].latency_cycles <= schedules[0].latency_cycles * (1 + 1e-9)
    assert schedules[0].lower_bound <= exact[0].latency_cycles * (1 + 1e-9)  # a true lower bound


def test_bad_arguments():
    layer, module = DEEP_LAYERS[0], MODULES["3lvl"]
    with pytest.raises(ValueError, match="n must be a positive integer"):
        best_mappings(layer, module, "latency", 0)
    with pytest.raises(ValueError, match="objective must be one of"):
        best_mappings(layer, module, "speed", 3)
    with pytest.raises(ValueError, match="temporal_search must be one of"):
        best_mappings(layer, module, "latency", 3, temporal_search=print)
    with pytest.raises(ValueError, match="time_budget_s"):
        best_mappings(layer, module, "latency", 3, time_budget_s=-1.0)


def test_explain_top_3_lists_three_mappings_in_order(capsys):
    code, out, _ = run(capsys, "explain", "conv2d:in=8x8x8,out=16,k=3,s=1", "--arch", "gap9", "--top", "3",
                       "--objective", "energy")
    assert code == 0 and "3 best mappings overall" in out
    energies = [float(m.group(1).replace(",", "")) for m in re.finditer(r"^#\d .* cycles, ([\d,]+) pJ", out, re.M)]
    assert len(energies) == 3 and energies == sorted(energies)
    code, _, err = run(capsys, "explain", "conv2d:in=8x8x8,out=16,k=3,s=1", "--arch", "gap9", "--time-budget", "0")
    assert code == 2 and "--time-budget" in err


def test_host_padded_module_ranks_with_its_padding_cost():
    """diana's digital module takes a stride-2 SAME conv only unpadded, after the host pads the
    input: its mappings rank by their cost plus the padding's. Oracle: each module's own top list
    without that pruning (the unpadded layer's, cost shifted afterwards), merged and re-sorted; for
    EDP the unpadded list is long enough that nothing past it can enter (checked:
    (l + c)(e + d) >= (sqrt(l e) + sqrt(c d))^2)."""
    layer = mapper.conv2d("c", input_size=(8, 8), in_channels=8, out_channels=8, kernel=3, stride=2, padding="same")
    soc = archs.load("diana")
    digital, cpu = soc.modules["digital"], soc.modules["cpu"]
    unpadded = padding_split(layer, digital)
    assert unpadded is not None and rejection_reason(layer, digital) is not None
    cycles, energy = host_padding_cost(layer, soc)
    n, m = 10, 60
    for objective in ("latency", "energy", "edp"):
        schedules, _ = best_mappings(layer, soc, objective, n)
        assert any(s.host_padding_cycles == cycles for s in schedules)
        own, _ = best_mappings(unpadded, digital, objective, m)
        keys = [objective_values(objective, s.latency_cycles + cycles, s.energy_pj + energy) for s in own]
        keys += [objective_values(objective, s.latency_cycles, s.energy_pj) for s in best_mappings(layer, cpu, objective, n)[0]]
        expected = sorted(keys)[:n]
        if objective == "edp":
            last = own[-1].latency_cycles * own[-1].energy_pj
            assert (np.sqrt(last) + np.sqrt(cycles * energy)) ** 2 >= expected[-1][0]
        got = [objective_values(objective, s.latency_cycles, s.energy_pj) for s in schedules]
        np.testing.assert_allclose([k[0] for k in got], [k[0] for k in expected], rtol=1e-9)
