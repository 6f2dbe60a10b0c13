"""Search: exact against brute force, deterministic, module choice, fallbacks and policies."""

from __future__ import annotations

import dataclasses
import json

import pytest

import archs
import mapper
from mapper.acceptance import rejection_reason
from mapper.bruteforce import brute_force

GAP9 = archs.load("gap9")
DIANA = archs.load("diana")
OS32 = archs.load("os32_example")


def with_memory(module, index, **changes):
    """A copy of ``module`` with memory ``index`` changed (e.g. a smaller L1 to force tiling)."""
    mems = list(module.memories)
    mems[index] = dataclasses.replace(mems[index], **changes)
    return dataclasses.replace(module, memories=tuple(mems))


def value(schedule, objective):
    return {"latency": schedule.latency_cycles, "energy": schedule.energy_pj,
            "edp": schedule.latency_cycles * schedule.energy_pj}[objective]


SMALL_LAYERS = [
    mapper.conv2d("conv", input_size=(4, 2), in_channels=2, out_channels=2, kernel=(3, 1), padding="same"),
    mapper.conv2d("conv_s2", input_size=(8, 3), in_channels=2, out_channels=2, kernel=3, stride=2, padding="same"),
    mapper.dense("dense", in_features=12, out_features=8),
    mapper.depthwise("dw", input_size=(4, 4), channels=2, kernel=3),
    mapper.add("add", channels=4, size=(2, 3)),
    mapper.pool("pool", input_size=(4, 4), channels=3, kernel=2),
]
SMALL_MODULES = {
    "cluster": GAP9.modules["cluster"],
    "cluster_l1_600B": with_memory(GAP9.modules["cluster"], 0, size_bytes=600),
    "ne16_l1_200B": with_memory(GAP9.modules["ne16"], 0, size_bytes=200),
    "diana_digital": DIANA.modules["digital"],
    "diana_act_200B": with_memory(DIANA.modules["digital"], 0, size_bytes=200),
    "os32_small": with_memory(with_memory(OS32.modules["os_array"], 0, size_bytes=64), 1, size_bytes=256),
}


CASES = [(layer, name) for layer in SMALL_LAYERS for name in SMALL_MODULES
         if (name != "os32_small" or layer.name in ("conv", "dense", "add"))  # 3-level brute force is slow
         and rejection_reason(layer, SMALL_MODULES[name]) is None]
REFUSED = [(layer, name) for layer in SMALL_LAYERS for name in SMALL_MODULES
           if rejection_reason(layer, SMALL_MODULES[name]) is not None]


@pytest.mark.parametrize("layer, module_name", CASES, ids=[f"{la.name}-{m}" for la, m in CASES])
def test_search_equals_brute_force_latency(layer, module_name):
    module = SMALL_MODULES[module_name]
    result = mapper.search_module(layer, module, "latency")
    best, count = brute_force(layer, module, "latency")
    if result.schedule is None:
        assert best == float("inf"), result.reason  # nothing fits: the brute force finds nothing either
    else:
        assert result.schedule.latency_cycles == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("layer, module_name", REFUSED, ids=[f"{la.name}-{m}" for la, m in REFUSED])
def test_refused_layers_report_the_acceptance_reason(layer, module_name):
    module = SMALL_MODULES[module_name]
    result = mapper.search_module(layer, module, "latency")
    assert result.schedule is None and result.reason == rejection_reason(layer, module)


OTHER = [(la, m) for la in SMALL_LAYERS[:4] for m in ("cluster_l1_600B", "diana_act_200B")
         if rejection_reason(la, SMALL_MODULES[m]) is None] + [(SMALL_LAYERS[2], "os32_small")]


@pytest.mark.parametrize("objective", ["energy", "edp"])
@pytest.mark.parametrize("layer, module_name", OTHER, ids=[f"{la.name}-{m}" for la, m in OTHER])
def test_search_equals_brute_force_other_objectives(layer, module_name, objective):
    module = SMALL_MODULES[module_name]
    result = mapper.search_module(layer, module, objective)
    best, _ = brute_force(layer, module, objective)
    if result.schedule is None:
        assert best == float("inf")  # nothing fits: the brute force finds nothing either
    else:
        assert value(result.schedule, objective) == pytest.approx(best, rel=1e-12)


RESNET_CONV = mapper.conv2d("conv", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, padding="same")


def test_ne16_resnet_layer_by_hand():
    """One tile holds the whole layer (I 16 kB + W 2.3 kB + O 16 kB < 100 kB): NE16 kernel on
    32x32x16 (121 patches of 3x3, k remainder 16: 211 cycles each) + three synchronous DMA
    transfers at 8 B/cycle + 920 cycles each + 1 cycle per contiguous run (whole tensors: one run
    each) + 500 cycles of tile overhead."""
    s = mapper.map_layer(RESNET_CONV, GAP9, modules=["ne16"])
    kernel = 121 * 211
    transfers = (16 * 32 * 32 + 16 * 16 * 9 + 16 * 32 * 32) / 8 + 3 * 920 + 3 * 1
    assert s.kernel_calls == 1 and s.kernel_cycles == kernel
    assert s.latency_cycles == kernel + transfers + 500
    assert [lv.bytes_in for lv in s.levels] == [16384, 2304, 0] and s.levels[2].bytes_out == 16384
    assert [lv.runs_in + lv.runs_out for lv in s.levels] == [1, 1, 1]


def test_host_runs_whole_layer_at_its_mac_rate():
    s = mapper.map_layer(RESNET_CONV, GAP9, modules=["fc"])
    assert s.module == "fc" and s.kernel_calls == 1 and s.levels == []
    # one call of the measured RV32 host model (archs.kernels.HOST_RV32): 16x32x32 outputs, 3x3 windows
    a, w, b, c = archs.kernels.HOST_RV32["conv2d"]
    outputs = 16 * 32 * 32
    assert s.latency_cycles == pytest.approx(a * RESNET_CONV.macs + w * outputs * 9 + b * outputs + c, rel=1e-12)
    assert s.compute_bound_cycles == RESNET_CONV.macs / 0.185 <= s.latency_cycles


def test_best_module_is_chosen_and_others_reported():
    s = mapper.map_layer(RESNET_CONV, GAP9)
    assert s.module == "ne16"
    assert set(s.rejected) == {"fc", "cluster"}
    assert s.rejected["fc"].startswith("slower:")


def test_schedule_is_json_and_deterministic():
    a = mapper.map_layer(RESNET_CONV, DIANA).to_dict()
    b = mapper.map_layer(RESNET_CONV, DIANA).to_dict()
    for d in (a, b):
        d.pop("search_seconds")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_tiles_respect_capacity_when_tiling_is_forced():
    module = with_memory(GAP9.modules["cluster"], 0, size_bytes=8000)
    s = mapper.search_module(RESNET_CONV, module).schedule
    assert s.kernel_calls > 1
    assert s.occupancy["l1"] <= 8000
    assert sum(lv.buffer_bytes for lv in s.levels if lv.memory == "l1") == s.occupancy["l1"]


def test_layer_too_big_for_accelerator_falls_back_to_host():
    big = mapper.dense("fc_huge", in_features=1024, out_features=600)  # 614 kB of weights > diana L2 (512 kB)
    with pytest.raises(mapper.MappingError, match=r"layer 'fc_huge' \(dense\) cannot be mapped on diana: .*"
                                                  r"cpu: tensors need 616024 B but the outermost memory 'l2'"):
        mapper.map_layer(big, DIANA)
    fits_host_only = dataclasses.replace(
        DIANA, modules={"cpu": with_memory(DIANA.modules["cpu"], 0, size_bytes=1 << 21),
                        "digital": DIANA.modules["digital"]})
    s = mapper.map_layer(big, fits_host_only)
    assert s.module == "cpu" and "outermost memory 'l2'" in s.rejected["digital"]


def test_no_tiling_fits_reason_names_memory():
    module = with_memory(GAP9.modules["cluster"], 0, size_bytes=4)  # 3 one-byte tiles, double buffered
    result = mapper.search_module(RESNET_CONV, module)
    assert result.schedule is None and "no mapping fits the memories" in result.reason


def test_unaccepted_layer_goes_to_host_with_reason():
    asym = mapper.conv2d("c", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, stride=2)
    assert asym.padding == (0, 1, 0, 1)
    s = mapper.map_layer_accelerator_first(asym, DIANA)  # map_layer would pad on the host first
    assert s.module == "cpu"
    assert "asymmetric padding" in s.rejected["digital"]
    wide = mapper.conv2d("w", input_size=(16, 16), in_channels=4, out_channels=16, kernel=9, padding="valid")
    s = mapper.map_layer(wide, DIANA)
    assert s.module == "cpu" and "kernel 9x9 not in" in s.rejected["digital"]


def test_modules_restriction_and_unknown_module():
    assert mapper.map_layer(RESNET_CONV, GAP9, modules=["cluster"]).module == "cluster"
    with pytest.raises(ValueError, match="unknown module.*modules are: fc, ne16, cluster"):
        mapper.map_layer(RESNET_CONV, GAP9, modules=["npu"])


def test_bad_objective():
    with pytest.raises(ValueError, match="objective must be one of latency, energy, edp"):
        mapper.map_layer(RESNET_CONV, GAP9, objective="speed")


def _net():
    layers = [
        mapper.conv2d("c1", input_size=(16, 16), in_channels=3, out_channels=16, kernel=3),
        mapper.depthwise("dw", input_size=(16, 16), channels=16, kernel=3),
        mapper.conv2d("pw", input_size=(16, 16), in_channels=16, out_channels=32, kernel=1),
        mapper.pool("gap", input_size=(16, 16), channels=32, kernel=16),
        mapper.dense("fc", in_features=32, out_features=10),
    ]
    return mapper.layer_graph(layers, name="tiny")


def test_map_network_policies():
    graph = _net()
    best = mapper.map_network(graph, GAP9)
    first = mapper.map_network(graph, GAP9, policy="accelerator_first")
    host = mapper.map_network(graph, GAP9, modules=["fc"])
    assert list(best.schedules) == ["c1", "dw", "pw", "gap", "fc"]
    assert all(s.module == "fc" for s in host.schedules.values())
    assert first.schedules["dw"].module == "ne16"  # NE16 accepts 3x3 depthwise: DORY sends it there
    assert best.total_latency_cycles <= first.total_latency_cycles <= host.total_latency_cycles
    for name, s in best.schedules.items():  # per layer, best is never worse than either alternative
        assert s.latency_cycles <= first.schedules[name].latency_cycles
        assert s.latency_cycles <= host.schedules[name].latency_cycles
    assert best.to_dict()["per_module"]
    assert "total" in best.summary(GAP9.clock_mhz)


def test_bad_policy():
    with pytest.raises(ValueError, match="policy must be one of best, accelerator_first"):
        mapper.map_network(_net(), GAP9, policy="greedy")


def test_diana_pointwise_layer_by_hand():
    """1x1 conv 16->16 on 16x16 fits act_mem/weight_mem in one tile; no double buffering, so
    latency = kernel + transfers. Kernel: 16 rows x 1 (OX) x 1 (K) blocks x (16*1*1 + 2*16*1 + 23)
    = 16 * 71. Transfers at 16 B/cycle + 70 cycles each: I 4096 B, W 256 B, O 4096 B."""
    layer = mapper.conv2d("pw", input_size=(16, 16), in_channels=16, out_channels=16, kernel=1)
    s = mapper.map_layer(layer, DIANA, modules=["digital"])
    assert s.spatial == {"cols": {"dim": "OX", "factor": 16}, "rows": {"dim": "K", "factor": 16}}
    assert s.kernel_calls == 1 and s.kernel_cycles == 16 * 71
    assert s.latency_cycles == 16 * 71 + (4096 + 256 + 4096) / 16 + 3 * 70
    assert {lv.memory for lv in s.levels} == {"act_mem", "weight_mem"}


def test_asymmetric_padding_is_applied_by_the_host_when_that_pays():
    """DIANA's digital array needs symmetric padding: a TF-SAME stride-2 conv runs there unpadded
    after the host pads its input (cost added), not with accelerator_first (HTVM's rules)."""
    layer = mapper.conv2d("s2", input_size=(32, 32), in_channels=16, out_channels=32, kernel=3, stride=2, padding="same")
    digital = DIANA.modules["digital"]
    assert layer.padding == (0, 1, 0, 1) and "asymmetric padding" in rejection_reason(layer, digital)
    s = mapper.map_layer(layer, DIANA)
    unpadded = dataclasses.replace(layer, padding=(0, 0, 0, 0))
    inner = mapper.search_module(unpadded, digital).schedule
    cycles, energy = mapper.search.host_padding_cost(layer, DIANA)
    # read 32x32x16 B at 4 B/cycle, write 33x33x16 B at 4 B/cycle (DIANA's L2 through the RISC-V host)
    assert cycles == 32 * 32 * 16 / 4 + 33 * 33 * 16 / 4
    assert (s.module, s.host_padding, s.host_padding_cycles) == ("digital", (0, 1, 0, 1), cycles)
    assert s.latency_cycles == inner.latency_cycles + cycles and s.energy_pj == pytest.approx(inner.energy_pj + energy)
    assert s.latency_cycles < mapper.map_layer(layer, DIANA, modules=["cpu"]).latency_cycles
    assert mapper.map_layer_accelerator_first(layer, DIANA).module == "cpu"
    symmetric = mapper.conv2d("s1", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, padding="same")
    assert mapper.map_layer(symmetric, DIANA).host_padding == (0, 0, 0, 0)


def test_host_padding_is_booked_to_the_host_per_module():
    layer = mapper.conv2d("s2", input_size=(32, 32), in_channels=16, out_channels=32, kernel=3, stride=2, padding="same")
    net = mapper.map_network(mapper.layer_graph([layer]), DIANA)
    s = net.schedules["s2"]
    rows = net.per_module()
    assert s.host_padding_cycles > 0 and net.host == "cpu"
    assert rows["cpu"]["latency_cycles"] == s.host_padding_cycles and rows["cpu"]["layers"] == 0
    assert rows["digital"]["latency_cycles"] == s.latency_cycles - s.host_padding_cycles
    assert sum(r["latency_cycles"] for r in rows.values()) == net.total_latency_cycles
