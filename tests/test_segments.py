"""The segment-form analysis equals the explicit loop-nest analysis on every candidate."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import archs
import mapper
from costmodel.analysis import analyze, analyze_segments
from mapper.search import build_layer_problem
from mapper.spatial import spatial_unrollings
from mapper.temporal import enumerate_batches, explicit_nest, kernel_tiles, rank_table

# overlap: zigzag, so that the analyses also compute the reuse blocks (its windows need them)
MODULES = [dataclasses.replace(m, overlap="zigzag") for m in (archs.load("gap9").modules["cluster"],
                                                               archs.load("diana").modules["digital"],
                                                               archs.load("os32_example").modules["os_array"])]


@st.composite
def layers(draw):
    kind = draw(st.sampled_from(["conv2d", "depthwise", "dense", "add"]))
    size = (draw(st.sampled_from([2, 4, 6, 9])), draw(st.sampled_from([2, 3, 4, 8])))
    ch = draw(st.sampled_from([1, 2, 4, 6, 16]))
    if kind == "conv2d":
        return mapper.conv2d("l", input_size=size, in_channels=ch, out_channels=draw(st.sampled_from([2, 4, 12])),
                             kernel=draw(st.sampled_from([1, 3])), stride=draw(st.sampled_from([1, 2])))
    if kind == "depthwise":
        return mapper.depthwise("l", input_size=size, channels=ch, kernel=3, stride=draw(st.sampled_from([1, 2])))
    if kind == "dense":
        return mapper.dense("l", in_features=ch * 4, out_features=draw(st.sampled_from([2, 8, 10])))
    return mapper.add("l", size=size, channels=ch)


@settings(max_examples=int(os.environ.get("SEGMENT_EXAMPLES", 25)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers(), module_index=st.integers(0, len(MODULES) - 1), seed=st.integers(0, 2**16))
def test_segment_analysis_equals_explicit_nests(layer, module_index, seed):
    module = MODULES[module_index]
    assume(mapper.acceptance.rejection_reason(layer, module) is None)  # refused layers have no mappings
    unrollings = spatial_unrollings(layer, module)
    problem = build_layer_problem(layer, module, unrollings[seed % len(unrollings)])
    tiles = kernel_tiles(problem)
    rng = np.random.default_rng(seed)
    pick = rng.choice(tiles.shape[0], size=min(6, tiles.shape[0]), replace=False)
    ranks = rank_table(problem)
    checked = 0
    for batch in enumerate_batches(problem, tiles[pick], np.arange(pick.size), chunk=4096):
        fast = analyze_segments(problem, batch.segments, ranks.T[:, batch.leaders], batch.cut_groups).candidate_first()
        rows = rng.choice(len(batch), size=min(40, len(batch)), replace=False)
        for i in rows:
            dims, factors, cuts = explicit_nest(problem, batch.segments[:, :, i], batch.leaders[:, i], batch.cut_groups[:, i])
            ref = analyze(problem, dims, factors[None, :], cuts[None, :])
            for name in ("tile", "fetches", "distinct", "compute_tile", "n_steps", "reuse_block"):
                assert np.array_equal(getattr(fast, name)[i], getattr(ref, name)[0]), name
            checked += 1
        if checked > 200:
            break
    assert checked > 0 or not problem.cut_points


@pytest.mark.parametrize("name", ["gap9", "diana"])
def test_hooked_modules_report_a_utilising_unrolling(name):
    """Dominated unrollings are skipped in the search, but the winner is presented on the array."""
    soc = archs.load(name)
    layer = mapper.conv2d("c", input_size=(32, 32), in_channels=16, out_channels=32, kernel=3)
    module = soc.modules["digital" if name == "diana" else "ne16"]
    s = mapper.search_module(layer, module).schedule
    if module.spatial:
        assert s.utilization > 0.5
    calls = s.kernel_calls * np.prod(list(s.kernel_tile.values()))
    assert calls >= layer.macs  # the call tiles cover the layer
