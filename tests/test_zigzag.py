"""ZigZag interoperability: accelerator import, workload import, explicit-mapping evaluation, the
speed benchmark's smoke run, and the MLPerf Tiny layer graphs it maps."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import archs
import archs.schema
import mapper
from archs import ArchError, LoopDim, Operand
from archs.zigzag import EXAMPLES_DIR, zigzag_example
from mapper.evaluate import (
    ExplicitMapping,
    evaluate_mapping,
    make_unrolling,
    mapping_from_schedule,
    mapping_from_zigzag,
)
from mapper.zigzag_workload import layer_from_zigzag, to_zigzag_workload

ROOT = Path(__file__).resolve().parent.parent
TPU = zigzag_example("tpu_like")
TPU_MAP = zigzag_example("tpu_like", "mapping")
D = LoopDim

# ZigZag 3.9.1's chosen mapping for the ResNet-8 conv on tpu_like at lpf 6 (zigzag.api.get_hardware_performance_zigzag
# with tpu_like's own mapping file: 11,296 cycles and 3,909,296.896 pJ in ZigZag's model, the same for lpf 6, 7 and 8),
# in the form mapper.evaluate.zigzag_mapping_dict produces.
ZIGZAG_CHOICE = {
    "spatial": {"D1": {"K": 16.0}, "D2": {"C": 16.0}},
    "temporal": {
        "O": [[["FX", 3], ["FY", 3]], [["OY", 8], ["OY", 4], ["OX", 8], ["OX", 4]], []],
        "W": [[["FX", 3], ["FY", 3], ["OY", 8], ["OY", 4], ["OX", 8], ["OX", 4]], []],
        "I": [[["FX", 3], ["FY", 3], ["OY", 8], ["OY", 4], ["OX", 8], ["OX", 4]], []],
    },
    "memories": {"O": ["rf_2B", "sram_2MB", "dram"], "W": ["rf_128B", "dram"], "I": ["sram_2MB", "dram"]},
}


def resnet8_conv(size: int = 32, channels: int = 16, accumulator: int = 16) -> mapper.Layer:
    return mapper.conv2d("resnet8_conv", input_size=(size, size), in_channels=channels, out_channels=channels, kernel=3,
                         padding="same", precision=mapper.Precision(8, 8, 8, accumulator))


@pytest.fixture(scope="module")
def tpu() -> archs.SoC:
    return archs.from_zigzag(TPU, TPU_MAP)


# --------------------------------------------------------------------------- accelerator import
def test_tpu_like_hand_converted_numbers(tpu, caplog):
    assert tpu.name == "tpu_like" and tpu.host == "host" and list(tpu.modules) == ["host", "tpu_like"]
    acc = tpu.modules["tpu_like"]
    assert [(d.name, d.size, d.unroll) for d in acc.spatial] == [("D1", 32, (D.K, D.G)), ("D2", 32, (D.C,))]
    assert acc.compute.macs_per_cycle == 1024 and acc.compute.energy_pj_per_mac == pytest.approx(0.04)
    got = {m.name: m for m in acc.memories}
    assert list(got) == ["rf_128B", "rf_2B", "sram_2MB", "dram"]
    # size bits x instances / 8; bandwidth_max bits x instances / 8; cost pJ / (bandwidth_max / 8) pJ per byte.
    # rf_128B, rf_2B: served_dimensions [] -> 32 x 32 = 1024 instances; sram_2MB, dram: served [D1, D2] -> 1.
    expected = {
        "rf_128B": (1024 * 1024 // 8, {Operand.W}, 8 * 1024 / 8, 8 * 1024 / 8, 0.095 / 1, 0.095 / 1, False),
        "rf_2B": (16 * 1024 // 8, {Operand.O}, 16 * 1024 / 8, 16 * 1024 / 8, 0.021 / 2, 0.021 / 2, True),
        "sram_2MB": (16777216 // 8, {Operand.I, Operand.O}, 2048 / 8, 2048 / 8, 416.16 / 256, 378.4 / 256, False),
        "dram": (10_000_000_000 // 8, {Operand.I, Operand.W, Operand.O}, 64 / 8, 64 / 8, 700 / 8, 750 / 8, False),
    }
    for name, (size, operands, rd, wr, e_rd, e_wr, accumulates) in expected.items():
        mem = got[name]
        assert mem.size_bytes == size and mem.operands == operands, name
        assert (mem.read_bytes_per_cycle, mem.write_bytes_per_cycle) == (rd, wr), name
        assert mem.read_energy_pj_per_byte == pytest.approx(e_rd) and mem.write_energy_pj_per_byte == pytest.approx(e_wr)
        assert mem.accumulates is accumulates and not mem.double_buffering and mem.transfer_fixed_cycles == 0
    assert (got["rf_128B"].size_bytes, got["sram_2MB"].read_energy_pj_per_byte) == (131072, pytest.approx(1.625625))
    host = tpu.modules["host"]
    assert host.is_host and [m.name for m in host.memories] == ["dram"] and host.memories[0].size_bytes == 1_250_000_000
    assert host.compute.macs_per_cycle == 1.0
    # tpu_like.yaml repeats `ports:` under sram_2MB: last one wins (yaml.safe_load), with a warning naming it
    with caplog.at_level(logging.WARNING, logger="archs.zigzag"):
        archs.from_zigzag(TPU)
    assert any("duplicate key 'ports'" in r.message and "sram_2MB" in r.message for r in caplog.records)


def test_unroll_options_without_mapping_and_from_dataflows():
    data = yaml.safe_load(TPU.read_text())
    soc = archs.from_zigzag(data)
    assert all(d.unroll == tuple(LoopDim) for d in soc.modules["tpu_like"].spatial)  # ZigZag's default hint
    data["dataflows"] = {"D1": ["OX, 32"], "D2": ["K, 16", "C, 2"]}
    soc = archs.from_zigzag(data)
    assert [d.unroll for d in soc.modules["tpu_like"].spatial] == [(D.OX,), (D.K, D.C)]


@pytest.mark.parametrize("path", sorted((EXAMPLES_DIR / "hardware").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_examples_translate(path):
    mapping = EXAMPLES_DIR / "mapping" / f"{path.stem}.yaml"
    soc = archs.from_zigzag(path, mapping if mapping.is_file() else None)
    module = soc.modules[soc.name]
    assert module.memories[-1].operands == set(Operand) and module.array_size > 1


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "acc.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _broken(mutate):
    data = yaml.safe_load(TPU.read_text())
    mutate(data)
    return data


@pytest.mark.parametrize("mutate, key, says", [
    (lambda d: d["memories"]["rf_2B"].pop("size"), "memories.rf_2B.size", "required key is missing"),
    (lambda d: d["memories"]["rf_2B"].update(operands=["I3"]), "memories.rf_2B.operands", "I1, I2, O"),
    (lambda d: d["operational_array"].update(is_imc=True), "operational_array.is_imc", "allowed: false"),
    (lambda d: d["memories"]["dram"].update(auto_cost_extraction=True), "memories.dram.auto_cost_extraction", "CACTI"),
    (lambda d: d["memories"]["sram_2MB"].update(r_bw=64), "memories.sram_2MB.r_bw", "ZigZag 2.x"),
    (lambda d: d["memories"]["dram"].update(operands=["I1", "O"], ports=[{**d["memories"]["dram"]["ports"][0], "allocation": [
        a for a in d["memories"]["dram"]["ports"][0]["allocation"] if not a.startswith("I2")]}]),
     "memories.dram.operands", "must hold I1, I2 and O"),
    (lambda d: d["memories"]["rf_2B"]["ports"][0]["allocation"].append("O, fh"), "memories.rf_2B.ports[0].allocation[1]",
     "read port cannot carry"),
    (lambda d: d["memories"]["rf_128B"]["ports"][1].update(allocation=[]), "memories.rf_128B.ports", "write (fh, fl)"),
    (lambda d: d["memories"]["rf_2B"].update(served_dimensions=["D3"]), "memories.rf_2B.served_dimensions", "D1"),
    (lambda d: d["operational_array"].update(sizes=[32]), "operational_array.sizes", "1 entries for 2 dimensions"),
])
def test_errors_name_the_file_and_key(tmp_path, mutate, key, says):
    path = _write(tmp_path, _broken(mutate))
    with pytest.raises(ArchError) as err:
        archs.from_zigzag(path)
    message = str(err.value)
    assert f"{path}: {key}: " in message and says in message, message


def test_memory_operand_links_of_the_mapping_file_are_followed():
    links = [{"name": "default", "spatial_mapping": {"D1": ["OX, 32"]}, "memory_operand_links": {"O": "O", "W": "I1", "I": "I2"}}]
    module = archs.from_zigzag(TPU, links).modules["tpu_like"]
    assert {m.name: m.operands for m in module.memories}["rf_128B"] == {Operand.I}
    assert {m.name: m.operands for m in module.memories}["sram_2MB"] == {Operand.W, Operand.O}
    assert [d.unroll for d in module.spatial] == [(D.OX,), tuple(LoopDim)]  # D2 not named: every loop dim


def test_bad_mapping_file_and_missing_file(tmp_path):
    bad = tmp_path / "map.yaml"
    bad.write_text(yaml.safe_dump([{"name": "default", "spatial_mapping": {"D1": ["K16"]}}]))
    with pytest.raises(ArchError, match=r"map.yaml: \[0\].spatial_mapping.D1\[0\]: must look like 'K, 16', got 'K16'"):
        archs.from_zigzag(TPU, bad)
    with pytest.raises(ArchError, match="no such accelerator file"):
        archs.from_zigzag(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- workload import
WORKLOAD = """
- id: 0
  name: conv1
  operator_type: Conv
  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]
  dimension_relations: [ix=2*ox+1*fx, iy=2*oy+1*fy]
  loop_dims: [B, K, C, OY, OX, FY, FX]
  loop_sizes: [1, 8, 3, 16, 16, 3, 3]
  operand_precision: {W: 8, I: 8, O: 24, O_final: 8}
  operand_source: {I: 0, W: 0}
  pr_loop_dims: [IX, IY]
  pr_loop_sizes: [32, 32]
  padding: [[1, 1], [1, 1]]
- id: 1
  name: dw
  operator_type: Conv
  equation: O[b][g][oy][ox]+=W[g][fy][fx]*I[b][g][iy][ix]
  dimension_relations: [ix=1*ox+1*fx, iy=1*oy+1*fy]
  loop_dims: [B, G, OY, OX, FY, FX]
  loop_sizes: [1, 8, 16, 16, 3, 3]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
  operand_source: {I: 0, W: 1}
  pr_loop_dims: [IX, IY]
  padding: [[1, 1], [1, 1]]
- id: 2
  operator_type: Add
  equation: O[b][g][oy][ox]=W[b][g][oy][ox]+I[b][g][oy][ox]
  loop_dims: [B, G, OY, OX]
  loop_sizes: [1, 8, 16, 16]
  operand_precision: {W: 8, I: 8, O: 16, O_final: 8}
  operand_source: {W: 0, I: 1}
- id: 3
  name: gap
  operator_type: Pooling
  equation: O[b][g][oy][ox]+=W[fx][fy]*I[b][g][iy][ix]
  dimension_relations: [ix=1*ox+1*fx, iy=1*oy+1*fy]
  loop_dims: [B, G, OY, OX, FX, FY]
  loop_sizes: [1, 8, 1, 1, 16, 16]
  operand_precision: {I: 8, W: 0, O: 16, O_final: 8}
  operand_source: {I: 2, W: 3}
- id: 4
  name: fc
  operator_type: Gemm
  equation: O[b][k]+=I[b][c]*W[c][k]
  loop_dims: [B, C, K]
  loop_sizes: [1, 8, 10]
  operand_precision: {W: 8, I: 8, O: 32, O_final: 32}
  operand_source: {I: 3, W: 4}
"""


def test_workload_yaml_becomes_a_layer_graph(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(WORKLOAD)
    graph = mapper.from_zigzag_workload(path)
    assert graph.graph["name"] == "net"
    layers = {n: graph.nodes[n]["layer"] for n in graph}
    conv = layers["conv1"]
    assert conv == mapper.conv2d("conv1", input_size=(32, 32), in_channels=3, out_channels=8, kernel=3, stride=2,
                                 padding=(1, 1, 1, 1), precision=mapper.Precision(8, 8, 8, 24))
    assert conv.padding == (1, 0, 1, 0)  # the bottom/right pad is never read with stride 2 on 32 pixels
    assert layers["dw"] == mapper.depthwise("dw", input_size=(16, 16), channels=8, kernel=3, padding="same",
                                            precision=mapper.Precision(8, 8, 8, 16))
    assert layers["Layer2"].kind == "add" and layers["Layer2"].sizes[D.G] == 8
    assert layers["gap"].kind == "pool" and (layers["gap"].sizes[D.FY], layers["gap"].sizes[D.G]) == (16, 8)
    assert layers["fc"] == mapper.dense("fc", in_features=8, out_features=10, precision=mapper.Precision(8, 8, 32, 32))
    assert sorted(graph.edges) == [("Layer2", "gap"), ("conv1", "Layer2"), ("conv1", "dw"), ("dw", "Layer2"), ("gap", "fc")]
    # our writer round-trips through the same reader
    again = mapper.from_zigzag_workload(to_zigzag_workload(graph))
    assert {n: again.nodes[n]["layer"] for n in again} == layers and sorted(again.edges) == sorted(graph.edges)


@pytest.mark.parametrize("change, field", [
    ({"operator_type": "Softmax"}, "operator_type"),
    ({"equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][k][iy][ix]"}, "equation"),
    ({"loop_dims": ["B", "K", "C", "OY", "OX", "FY", "D0"]}, "loop_dims"),
    ({"dimension_relations": ["ix=1*ox+1*fy", "iy=1*oy+1*fy"]}, "dimension_relations[0]"),
    ({"operand_precision": {"W": 8, "I": 8, "O": 16}}, "operand_precision.O_final"),
])
def test_workload_errors_name_the_layer_and_field(change, field):
    entry = yaml.safe_load(WORKLOAD)[0]
    entry.update(change)
    with pytest.raises(mapper.LayerError, match=rf"layer 'conv1': {field.replace('[', '.').replace(']', '.')}"):
        layer_from_zigzag(entry)


# --------------------------------------------------------------------------- explicit mappings
def test_zigzag_choice_in_our_model_is_hand_checked(tpu):
    module = tpu.modules["tpu_like"]
    mapping = mapping_from_zigzag(ZIGZAG_CHOICE, resnet8_conv(), module)
    assert mapping.cuts == {Operand.O: (2, 6), Operand.W: (6,), Operand.I: (6,)}
    result = evaluate_mapping(resnet8_conv(), module, mapping)
    # 1024 kernel calls of 3x3 temporal steps on the 16x16-used array = 9216 cycles; nothing is double
    # buffered, so every transfer adds: outputs rf_2B -> sram 16384 B / 256 B/cycle = 64, sram -> dram
    # 16384 / 8 = 2048; weights dram -> rf_128B 2304 / 8 = 288; inputs dram -> sram 16384 / 8 = 2048.
    assert result.feasible and result.latency_cycles == 9216 + 64 + 2048 + 288 + 2048
    assert result.schedule.kernel_calls == 1024 and result.schedule.spatial["D1"] == {"dim": "K", "factor": 16}


@pytest.mark.parametrize("soc_name, module_name", [("tpu_like", "tpu_like"), ("gap9", "cluster"), ("diana", "digital")])
def test_evaluate_reproduces_the_search_optimum(tpu, soc_name, module_name):
    soc = tpu if soc_name == "tpu_like" else archs.load(soc_name)
    module = soc.modules[module_name]
    layer = resnet8_conv(size=4 if soc_name == "tpu_like" else 16, accumulator=16 if soc_name == "tpu_like" else 32)
    best = mapper.search_module(layer, module).schedule
    result = evaluate_mapping(layer, module, mapping_from_schedule(best, module))
    assert result.feasible
    assert (result.latency_cycles, result.energy_pj) == (best.latency_cycles, best.energy_pj)
    assert result.schedule.loops == best.loops and result.schedule.levels == best.levels


def test_evaluate_rejects_mappings_that_do_not_describe_the_layer(tpu):
    module = tpu.modules["tpu_like"]
    spatial = make_unrolling(module, {"D1": ("K", 16), "D2": ("C", 16)})
    loops = ((D.OX, 32), (D.OY, 32), (D.FY, 3), (D.FX, 3))
    cuts = {Operand.O: (0, 4), Operand.W: (4,), Operand.I: (4,)}
    assert evaluate_mapping(resnet8_conv(), module, ExplicitMapping(spatial, loops, cuts)).feasible
    with pytest.raises(ValueError, match="factors of OX multiply to 16"):
        evaluate_mapping(resnet8_conv(), module, ExplicitMapping(spatial, ((D.OX, 16),) + loops[1:], cuts))
    with pytest.raises(ValueError, match=r"cuts.O: positions must be non-decreasing"):
        evaluate_mapping(resnet8_conv(), module, ExplicitMapping(spatial, loops, {**cuts, Operand.O: (4, 0)}))
    with pytest.raises(ValueError, match="factor 64 outside 1..32"):
        make_unrolling(module, {"D1": ("K", 64)})
    with pytest.raises(ValueError, match="mixed unrolling"):
        mapping_from_zigzag({**ZIGZAG_CHOICE, "spatial": {"D2": {"C": 2, "FX": 3}}}, resnet8_conv(), module)


# --------------------------------------------------------------------------- benchmark
REFERENCE_MACS = {"kws": (10, 2_656_768), "vww": (28, 7_489_664), "ic": (10, 12_501_632), "ad": (10, 264_192)}


@pytest.mark.parametrize("net", sorted(REFERENCE_MACS))
def test_benchmark_networks_match_mlperf_tiny(net):
    graph = mapper.load_graph(ROOT / "benchmarks" / "networks" / f"{net}.json")
    mac_layers = [graph.nodes[n]["layer"] for n in graph if graph.nodes[n]["layer"].kind in ("conv2d", "depthwise", "dense")]
    assert (len(mac_layers), sum(layer.macs for layer in mac_layers)) == REFERENCE_MACS[net]


def test_benchmark_quick_smoke(tmp_path):
    out = tmp_path / "speed.json"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.mapper_speed", "--quick", "--targets", "gap9_cluster,diana_digital",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start  # measured here, independently of the benchmark's own timers
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report["targets"]) == {"gap9_cluster", "diana_digital"} and "suite_seconds" not in report
    for name, row in report["targets"].items():
        assert row["candidates"] > 0 and 0 < row["layer_seconds"] < wall
        # a rate is at least what the whole process run would give: work / our wall time
        assert row["search_candidates_per_second"] >= row["candidates"] / wall
        sweep = row["sweep"]
        assert 0 < sweep["model_seconds"] < wall and report["mappings_per_second"][name] >= sweep["rows"] / wall
        assert 200_000 <= sweep["rows"] <= sweep["space_candidates"] and row["candidates"] < sweep["space_candidates"]
    assert report["environment"]["threads"]["OMP_NUM_THREADS"] == "1" and "skipped" in report["zigzag"]
    assert "mappings_per_second counts" in proc.stdout and "gap9_cluster" in proc.stdout


def test_alias_bomb_and_huge_files_fail_fast(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 9)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("bomb:\n" + "\n".join("  " + line for line in levels) + "\nname: *i\noperational_array: *i\n")
    start = time.perf_counter()
    with pytest.raises(ArchError, match=r"bomb\.yaml: its aliases expand to \d+ YAML nodes; at most 100000"):
        archs.from_zigzag(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text(TPU.read_text() + "#" * archs.schema.MAX_YAML_BYTES)
    with pytest.raises(ArchError, match=r"huge\.yaml: file is \d+ bytes; accelerator files may have at most"):
        archs.from_zigzag(huge)
    workload = tmp_path / "workload.yaml"
    workload.write_text("- id: 0\n  bomb:\n" + "\n".join("    " + line for line in levels) + "\n  loop_sizes: *i\n")
    with pytest.raises(mapper.LayerError, match=r"workload\.yaml: its aliases expand to \d+ YAML nodes"):
        mapper.from_zigzag_workload(workload)
    workload.write_text(WORKLOAD + "#" * archs.schema.MAX_YAML_BYTES)
    with pytest.raises(mapper.LayerError, match=r"workload\.yaml: file is \d+ bytes; workload files may have at most"):
        mapper.from_zigzag_workload(workload)
    assert time.perf_counter() - start < 3.0
