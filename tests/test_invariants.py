"""Properties on random layers and random hypothetical accelerators (hypothesis)."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archs
import mapper


@st.composite
def accelerators(draw):
    """A random two-level accelerator with a small PE array and a host."""
    unroll = draw(st.sampled_from([["K"], ["OX"], ["K", "G"], ["C"]]))
    memory = {
        "name": "l1", "size_bytes": draw(st.integers(64, 4096)), "operands": ["I", "W", "O"],
        "read_bytes_per_cycle": draw(st.sampled_from([1, 2, 8])), "write_bytes_per_cycle": draw(st.sampled_from([1, 4, 8])),
        "transfer_fixed_cycles": draw(st.sampled_from([0, 10, 100])), "double_buffering": draw(st.booleans()),
        "read_energy_pj_per_byte": 0.5, "write_energy_pj_per_byte": 0.6,
    }
    l2 = {"name": "l2", "size_bytes": 1 << 20, "operands": ["I", "W", "O"], "read_bytes_per_cycle": draw(st.sampled_from([1, 4])),
          "write_bytes_per_cycle": 4, "read_energy_pj_per_byte": 2.0, "write_energy_pj_per_byte": 2.0}
    size = draw(st.sampled_from([1, 2, 4]))
    data = {
        "name": "random", "clock_mhz": 100, "host": "cpu",
        "modules": [
            {"name": "cpu", "memories": [dict(l2, name="ram")], "compute": {"macs_per_cycle": 0.5}},
            {"name": "acc", "spatial": [{"name": "pe", "size": size, "unroll": unroll}],
             "allow_padded_unrolling": draw(st.booleans()),
             "accepts": [{"kind": k} for k in ("conv2d", "depthwise", "dense", "add", "pool")],
             "memories": [memory, l2], "tile_overhead_cycles": draw(st.sampled_from([0, 20])),
             "compute": {"macs_per_cycle": size, "energy_pj_per_mac": 0.1}},
        ],
    }
    return archs.from_dict(data)


@st.composite
def layers(draw):
    kind = draw(st.sampled_from(["conv2d", "depthwise", "dense", "add", "pool"]))
    hw = (draw(st.integers(1, 6)), draw(st.integers(1, 4)))
    ch = draw(st.integers(1, 6))
    if kind == "conv2d":
        k = draw(st.sampled_from([1, 3]))
        return mapper.conv2d("l", input_size=(max(hw[0], k), max(hw[1], k)), in_channels=ch, out_channels=draw(st.integers(1, 6)),
                             kernel=k, stride=draw(st.sampled_from([1, 2])), padding=draw(st.sampled_from(["same", "valid"])))
    if kind == "depthwise":
        return mapper.depthwise("l", input_size=(max(hw[0], 3), max(hw[1], 3)), channels=ch, kernel=3)
    if kind == "dense":
        return mapper.dense("l", in_features=draw(st.integers(1, 24)), out_features=draw(st.integers(1, 12)))
    if kind == "add":
        return mapper.add("l", channels=ch, size=hw)
    return mapper.pool("l", input_size=(max(hw[0], 2), max(hw[1], 2)), channels=ch, kernel=2)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(soc=accelerators(), layer=layers())
def test_bounds_capacity_and_determinism(soc, layer):
    module = soc.modules["acc"]
    result = mapper.search_module(layer, module)
    if result.schedule is None:
        assert result.reason
        return
    s = result.schedule
    assert s.latency_cycles >= s.compute_bound_cycles * (1 - 1e-12)
    assert s.latency_cycles >= s.traffic_bound_cycles * (1 - 1e-12)
    for memory in module.memories[:-1]:
        assert s.occupancy[memory.name] <= memory.size_bytes
    again = mapper.search_module(layer, module).schedule
    assert dataclasses.replace(again, search_seconds=0) == dataclasses.replace(s, search_seconds=0)


@SETTINGS
@given(soc=accelerators(), layer=layers(), factor=st.sampled_from([2, 4]))
def test_more_bandwidth_never_increases_latency(soc, layer, factor):
    module = soc.modules["acc"]
    faster = dataclasses.replace(module, memories=tuple(
        dataclasses.replace(m, read_bytes_per_cycle=m.read_bytes_per_cycle * factor,
                            write_bytes_per_cycle=m.write_bytes_per_cycle * factor) for m in module.memories))
    slow, fast = mapper.search_module(layer, module), mapper.search_module(layer, faster)
    if slow.schedule is None:
        return
    assert fast.schedule.latency_cycles <= slow.schedule.latency_cycles * (1 + 1e-12)
