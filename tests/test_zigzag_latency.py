"""benchmarks.zigzag_latency (ZigZag 3.9.1's latency of one mapping, re-implemented) on tiny
accelerators whose figures are derived by hand below, step by step along the module's rules.
(The benchmark ``python -m benchmarks.zigzag_compare`` checks it against ZigZag itself.)"""

from __future__ import annotations

import pytest

import archs
import mapper
from benchmarks.zigzag_latency import mapping_dict_from_explicit, zigzag_latency
from mapper.evaluate import evaluate_mapping, mapping_from_zigzag

ALL = ["I1, tl", "I1, fh", "I2, tl", "I2, fh", "O, tl", "O, fl", "O, fh", "O, th"]


def accelerator(dram_bits: int) -> dict:
    """A 4-PE array (D1) with a 16-bit output register per PE and a DRAM with one port."""
    return {
        "name": "tiny",
        "memories": {
            "reg_O": {"size": 16, "r_cost": 0.1, "w_cost": 0.1, "area": 0, "latency": 1, "operands": ["O"],
                      "ports": [{"name": "r_port_1", "type": "read", "bandwidth_min": 16, "bandwidth_max": 16,
                                 "allocation": ["O, tl", "O, th"]},
                                {"name": "w_port_1", "type": "write", "bandwidth_min": 16, "bandwidth_max": 16,
                                 "allocation": ["O, fh", "O, fl"]}],
                      "served_dimensions": []},
            "dram": {"size": 2**20, "r_cost": 10, "w_cost": 10, "area": 0, "latency": 1, "operands": ["I1", "I2", "O"],
                     "ports": [{"name": "rw_port_1", "type": "read_write", "bandwidth_min": 8, "bandwidth_max": dram_bits,
                                "allocation": ALL}],
                     "served_dimensions": ["D1"]},
        },
        "operational_array": {"unit_energy": 0.04, "unit_area": 1, "dimensions": ["D1"], "sizes": [4]},
    }


def dense(c: int) -> mapper.Layer:
    return mapper.dense("fc", in_features=c, out_features=4, precision=mapper.Precision(8, 8, 8, 16))


def mapping(c: int) -> dict:
    """K unrolled over the 4 PEs; the C loop in the output register (O) and in DRAM (W, I)."""
    return {"spatial": {"D1": {"K": 4.0}}, "temporal": {"O": [[["C", c]], []], "W": [[["C", c]]], "I": [[["C", c]]]}}


HW = accelerator(64)  # ZigZag caps unrolling at port bits / precision: K 4 x 16-bit partial sums needs 64


def test_hand_derived_no_stall():
    # T = 2 (the C loop). O in reg_O: 1 element per PE; no O-irrelevant loop above it, so counted at O_final (8 b):
    # u = 8 / 16 = 0.5 <= 0.5 -> double-buffered; DRAM u is tiny for every operand -> double-buffered.
    # reg_O read port: tl (1 elem x 16 b / 16 = 1 cycle, allowed 1 (window), 2 periods: stall 0) and th (once):
    #   union = 1 x 2 (tl's allowed == period) >= windows 1 -> 0. Write port: fl alone -> 0.
    # DRAM port (64 b): I tl 1 x 8 b / 64 = 1 cycle of allowed 1, W tl 4 x 8 b / 64 = 1 of 1, O fl once (4 x 8 b
    #   / 64 = 1 of 2): windows 1 + 1 + 0, union 1 x 2 (I tl) -> 0. SS = 0. No input link below DRAM: onloading 0.
    # Offloading: link reg_O -> DRAM: max(th 1 x 8 b / 16 = 1 (spare cycles stop at ceil(8 / 16) = 1), fl 1) = 1.
    # Latency = T + SS + on + off = 2 + 0 + 0 + 1 = 3. (ZigZag 3.9.1 gives 3 for this mapping too.)
    got = zigzag_latency(HW, dense(2), mapping(2))
    assert (got.temporal_cycles, got.stall_slack_cycles, got.onloading_cycles, got.offloading_cycles) == (2, 0, 0, 1)
    assert got.latency_cycles == 3
    assert got.double_buffered == {"O": [False, True, True], "W": [False, True], "I": [False, True]}


def test_hand_derived_stall_of_a_shared_port():
    # C = 8: T = 8. Every direction fits its port alone (1 cycle of 1 allowed), but I tl and W tl share the DRAM
    # port every cycle: windows 7 + 7 (allowed x (8 - 1)) + 0 (O fl, once) against a union of 1 x 8 (I tl):
    # port stall 0 + max(0, 0 + 14 - 8) = 6; reg_O ports: 7 - 8 < 0 -> 0. SS = 6.
    # Offloading: max(th 1, fl 1) = 1 (DRAM spare: (64 - 8 - 32) / 64 x (8 + 6) = 5.25, fl already at its minimum).
    # Latency = 8 + 6 + 0 + 1 = 15. (ZigZag 3.9.1 gives 15 for this mapping too.)
    got = zigzag_latency(HW, dense(8), mapping(8))
    assert (got.temporal_cycles, got.stall_slack_cycles, got.offloading_cycles, got.latency_cycles) == (8, 6, 1, 15)
    assert got.port_stall_slack == {"reg_O/r_port_1": 0, "reg_O/w_port_1": 0, "dram/rw_port_1": 6}


def test_our_mapping_converts_both_ways():
    module = archs.from_zigzag(HW).modules["tiny"]
    ours = mapping_from_zigzag(mapping(8), dense(8), module)
    back = mapping_dict_from_explicit(ours, dense(8), module)
    assert back["spatial"] == mapping(8)["spatial"] and back["temporal"] == mapping(8)["temporal"]
    assert zigzag_latency(HW, dense(8), back).latency_cycles == 15
    assert evaluate_mapping(dense(8), module, ours).feasible


def test_outside_the_specification_is_a_clear_error():
    pool = mapper.pool("p", input_size=(4, 4), channels=4, kernel=2, stride=2)
    with pytest.raises(ValueError, match="kind 'pool' not covered"):
        zigzag_latency(HW, pool, mapping(2))
    bad = mapping(2)
    bad["temporal"]["O"] = [[["C", 2]]]
    with pytest.raises(ValueError, match=r"temporal.O: 1 levels for the 2 memories"):
        zigzag_latency(HW, dense(2), bad)


def test_compare_benchmark_names_where_our_space_is_larger():
    # ZigZag's tpu_like mapping: Conv layers (default entry) unroll K on D1 and C on D2; only Add/Pooling get G.
    from archs.zigzag import zigzag_example
    from benchmarks.zigzag_compare import layers, space_note

    mapping_file = zigzag_example("tpu_like", "mapping")
    module = archs.from_zigzag(zigzag_example("tpu_like"), mapping_file).modules["tpu_like"]
    by_name = {layer.name: layer for layer in layers()}
    assert space_note(by_name["mobilenet_dw"], module, mapping_file) == "D1: ours may unroll G (ZigZag's 'default' entry: K)"
    assert space_note(by_name["resnet8_conv_2d_2"], module, mapping_file) == ""
    assert {layer.kind for layer in by_name.values()} == {"conv2d", "depthwise", "dense"}


def test_readme_zigzag_latency_example_runs():
    import contextlib
    import io
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"### ZigZag's latency of a mapping.*?```python\n(.*?)```\n\nIt prints.*?:\n\n((?:    [^\n]*\n)+)", text, re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.group(1), "README.md", "exec"), {})
    assert out.getvalue().split() == block.group(2).split()
