"""The match-mapper command line (explorer): every command through ``main(argv)``, bad input -> exit 2
naming the file and field, sweeps (resume, Dask == process pool), and the pieces behind them
checked against independent oracles (hand-derived cycles, brute-force Pareto front, the library)."""

from __future__ import annotations

import configparser
import csv
import importlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import archs
import mapper
from explorer import cycle_breakdown, level_traffic, main, pareto_front, parse_layer_spec
from explorer.cmd_explain import explain
from explorer.sweep_run import TIMING_COLUMNS, run_sweep
from explorer.sweep_spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
ZIGZAG_TPU = ROOT / "archs" / "zigzag_examples" / "hardware" / "tpu_like.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- validate
def test_validate_prints_modules_memories_and_peak(capsys):
    code, out, _ = run(capsys, "validate", "os32_example")
    assert code == 0
    assert "os_array" in out and "rows 32 [OX,OY] x cols 32 [K,G]" in out
    assert "262,144" in out and "sram" in out and "conv2d; depthwise; dense" in out
    assert "1024 MAC/cycle over the accelerators" in out


def test_validate_reads_a_zigzag_accelerator(capsys):
    code, out, _ = run(capsys, "validate", ZIGZAG_TPU)
    assert code == 0 and "tpu_like" in out


def test_validate_bad_yaml_names_file_and_field(tmp_path, capsys):
    data = yaml.safe_load((ROOT / "archs" / "os32_example.yaml").read_text())
    data["modules"][1]["memories"][1]["size_bytes"] = -5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    code, _, err = run(capsys, "validate", bad)
    assert code == 2
    assert str(bad) in err and "modules[1].memories[1].size_bytes" in err and "-5" in err
    code, _, err = run(capsys, "validate", "no_such_soc")
    assert code == 2 and "built-ins are" in err


# --------------------------------------------------------------------------- map
def test_map_table_json_csv_match_the_library(tmp_path, capsys):
    code, out, _ = run(capsys, "map", "ad", "--arch", "gap9", "--json", tmp_path / "m.json", "--csv", tmp_path / "m.csv")
    assert code == 0
    direct = mapper.map_network(mapper.load_graph(ROOT / "benchmarks" / "networks" / "ad.json"), archs.load("gap9"))
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["network"]["total_latency_cycles"] == direct.total_latency_cycles
    with (tmp_path / "m.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["layer"] for r in rows] == list(direct.schedules)
    assert [r["module"] for r in rows] == [s.module for s in direct.schedules.values()]
    assert f"{direct.total_latency_cycles:,.0f} cycles" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    width = len(lines[header + 1])  # tabulate's dashes: every row of the table has the same layout
    assert all(len(line) <= width for line in lines[header + 2: header + 2 + len(rows)])
    for column in ("module", "spatial", "loops", "bound", "bytes used", "optimality"):
        assert column in lines[header]


def test_map_bad_inputs_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "map", tmp_path / "model.xyz", "--arch", "gap9")
    assert code == 2 and "model.xyz" in err and ".tflite" in err
    code, _, err = run(capsys, "map", tmp_path / "missing.json", "--arch", "gap9")
    assert code == 2 and "missing.json" in err
    code, _, err = run(capsys, "map", "ad", "--arch", "gap9", "--modules", "nope")
    assert code == 2 and "nope" in err and "ne16" in err
    code, _, err = run(capsys, "map", "ad", "--arch", "gap9", "--objective", "speed")
    assert code == 2 and "objective" in err


def test_map_time_budget_is_passed_only_if_supported(capsys):
    import inspect

    code, _, err = run(capsys, "map", "ad", "--arch", "gap9", "--time-budget", "5")
    if "time_budget_s" in inspect.signature(mapper.map_network).parameters:
        assert code == 0
    else:
        assert code == 2 and "time budget" in err


def test_sweep_time_budget_is_passed_only_if_supported(tmp_path, capsys):
    import inspect

    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", _spec(tmp_path), "--out", out, "--workers", "1", "--no-progress", "--time-budget", "5")
    if "time_budget_s" in inspect.signature(mapper.map_network).parameters:
        assert code == 0
        with (out / "points.csv").open() as f:
            assert {r["time_budget_s"] for r in csv.DictReader(f)} == {"5.0"}
    else:
        assert code == 2 and "time budget" in err and not (out / "points.csv").exists()


def test_cycle_breakdown_hand_derived():
    """dense 8 -> 4, one l1 level (2 B/cycle links, 10 fixed cycles per transfer, no double buffering):
    I 8 B, W 32 B, O 4 B each moved once: 8/2 + 32/2 + 4/2 + 3 x 10 = 52 cycles; compute 32 MACs / 1 = 32."""
    soc = archs.from_dict({
        "name": "tiny", "clock_mhz": 100, "host": "cpu",
        "modules": [
            {"name": "cpu", "memories": [{"name": "ram", "size_bytes": 4096, "operands": ["I", "W", "O"],
                                          "read_bytes_per_cycle": 4, "write_bytes_per_cycle": 4}],
             "compute": {"macs_per_cycle": 0.01}},
            {"name": "acc", "accepts": [{"kind": "dense"}], "compute": {"macs_per_cycle": 1},
             "memories": [{"name": "l1", "size_bytes": 1024, "operands": ["I", "W", "O"], "read_bytes_per_cycle": 2,
                           "write_bytes_per_cycle": 2, "transfer_fixed_cycles": 10},
                          {"name": "ram", "size_bytes": 4096, "operands": ["I", "W", "O"], "read_bytes_per_cycle": 4,
                           "write_bytes_per_cycle": 4}]},
        ]})
    s = mapper.map_layer(mapper.dense("fc", in_features=8, out_features=4), soc)
    assert s.module == "acc"
    (l1,) = level_traffic(s, soc.modules["acc"])
    assert (l1.memory, l1.bytes_moved, l1.transfers, l1.cycles) == ("l1", 44, 3, 52)
    split = cycle_breakdown(s, soc.modules["acc"])
    assert split.compute == 32 and split.bound == "l1" and split.serial_transfers == 52
    assert split.compute + split.overhead + split.serial_transfers + split.stall == s.latency_cycles == 84


def test_level_cycles_add_up_to_the_schedules_transfer_cycles():
    soc = archs.load("gap9")
    result = mapper.map_network(mapper.load_graph(ROOT / "benchmarks" / "networks" / "kws.json"), soc)
    for s in result.schedules.values():
        split = cycle_breakdown(s, soc.modules[s.module])
        assert sum(lv.cycles for lv in split.levels) == pytest.approx(s.transfer_cycles, rel=1e-9)
        assert split.compute + split.overhead + split.serial_transfers + split.stall + split.host_padding == pytest.approx(
            s.latency_cycles, rel=1e-9)


# --------------------------------------------------------------------------- explain
def test_layer_spec_parses_like_the_builders():
    assert parse_layer_spec("conv2d:in=32x32x16,out=16,k=3,s=1", "c") == mapper.conv2d(
        "c", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, stride=1)
    assert parse_layer_spec("depthwise:in=16x16x8,k=3,s=2,p=valid", "d") == mapper.depthwise(
        "d", input_size=(16, 16), channels=8, kernel=3, stride=2, padding="valid")
    assert parse_layer_spec("dense:in=64,out=10", "f") == mapper.dense("f", in_features=64, out_features=10)
    assert parse_layer_spec("pool:in=8x8x4,k=2", "p") == mapper.pool("p", input_size=(8, 8), channels=4, kernel=2)
    assert parse_layer_spec("add:in=4x4x8", "a") == mapper.add("a", channels=8, size=(4, 4))
    assert parse_layer_spec("conv2d:in=9x9x4,out=8,k=1x3,p=0/0/1/1", "c").padding == (0, 0, 1, 1)


@pytest.mark.parametrize("spec, says", [
    ("conv2d:in=32x32,out=16", "in: expected NxNxN"),
    ("conv2d:in=32x32x16", "missing key(s) out"),
    ("conv2d:in=32x32x16,out=16,q=1", "unknown key(s) q"),
    ("conv2d:in=32x32x16,out=0", "out: must be an integer >= 1"),
    ("dense:in=64,out=10,k=3", "unknown key(s) k"),
])
def test_bad_layer_spec_exits_2_saying_what_is_allowed(capsys, spec, says):
    code, _, err = run(capsys, "explain", spec, "--arch", "gap9")
    assert code == 2 and says in err


def test_explain_first_entry_is_the_mappers_optimum(capsys):
    layer = parse_layer_spec("conv2d:in=16x16x16,out=32,k=3,s=1", "conv2d")
    for arch in ("gap9", "diana"):
        soc = archs.load(arch)
        best = mapper.map_layer(layer, soc)
        candidates, _ = explain(layer, soc, top=3)
        assert candidates[0].schedule.latency_cycles == best.latency_cycles
        latencies = [c.schedule.latency_cycles for c in candidates]
        assert latencies == sorted(latencies)
    code, out, _ = run(capsys, "explain", "conv2d:in=16x16x16,out=32,k=3,s=1", "--arch", "diana", "--top", "2")
    assert code == 0 and "#1 digital" in out and "bound:" in out and "hidden" in out and "stalls" in out


def test_explain_model_layer(capsys):
    code, out, _ = run(capsys, "explain", "ad:fully_connected_1", "--arch", "gap9", "--top", "2")
    assert code == 0 and "#1 cluster" in out and "#2" in out
    code, _, err = run(capsys, "explain", "ad:nope", "--arch", "gap9")
    assert code == 2 and "no layer 'nope'" in err and "fully_connected_1" in err


# --------------------------------------------------------------------------- compare
def test_compare_side_by_side_with_plot(tmp_path, capsys):
    png = tmp_path / "cmp.png"
    code, out, _ = run(capsys, "compare", "ad", "--arch", "gap9", "--arch", "diana", "--plot", png, "--json", tmp_path / "c.json")
    assert code == 0 and png.stat().st_size > 1000
    rows = json.loads((tmp_path / "c.json").read_text())
    graph = mapper.load_graph(ROOT / "benchmarks" / "networks" / "ad.json")
    for row in rows:
        assert row["latency_cycles"] == mapper.map_network(graph, archs.load(row["arch"])).total_latency_cycles
    assert "gap9" in out and "diana" in out
    code, _, err = run(capsys, "compare", "ad", "--arch", "gap9")
    assert code == 2 and "at least two" in err


# --------------------------------------------------------------------------- sweeps
def _spec(tmp_path: Path, **overrides) -> Path:
    spec = {"base": "gap9", "vary": {"modules.ne16.memories.l1.size_bytes": [16384, 131072], "clock_mhz": [200, 370]},
            "networks": ["ad"]}
    spec.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_pareto_front_equals_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(0, 12)
        xs = [rng.choice([1.0, 2.0, 3.0, rng.random()]) for _ in range(n)]
        ys = [rng.choice([1.0, 2.0, 3.0, rng.random()]) for _ in range(n)]
        same = {i for i in range(n) for j in range(i) if (xs[j], ys[j]) == (xs[i], ys[i])}
        dominated = {i for i in range(n) for j in range(n)
                     if xs[j] <= xs[i] and ys[j] <= ys[i] and (xs[j], ys[j]) != (xs[i], ys[i])} | same
        assert sorted(pareto_front(xs, ys)) == sorted(set(range(n)) - dominated)


def test_sweep_outputs_resume_and_rows(tmp_path, capsys):
    out = tmp_path / "out"
    code, text, _ = run(capsys, "sweep", _spec(tmp_path), "--out", out, "--workers", "2", "--no-progress")
    assert code == 0 and "4 rows computed" in text
    for name in ("points.csv", "points.parquet", "pareto.png", "sweep_clock_mhz.png", "sweep_modules.ne16.memories.l1.size_bytes.png"):
        assert (out / name).stat().st_size > 0, name
    with (out / "points.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["modules.ne16.memories.l1.size_bytes"], r["clock_mhz"]) for r in rows] == [
        ("16384", "200"), ("16384", "370"), ("131072", "200"), ("131072", "370")]
    graph = mapper.load_graph(ROOT / "benchmarks" / "networks" / "ad.json")
    base = yaml.safe_load((ROOT / "archs" / "gap9.yaml").read_text())
    for r in rows:  # each row is what the library gives on that architecture, edited by hand here
        data = json.loads(json.dumps(base))
        data["clock_mhz"] = int(r["clock_mhz"])
        next(m for m in next(m for m in data["modules"] if m["name"] == "ne16")["memories"] if m["name"] == "l1")[
            "size_bytes"] = int(r["modules.ne16.memories.l1.size_bytes"])
        soc = archs.from_dict(data)
        result = mapper.map_network(graph, soc)
        assert float(r["latency_cycles"]) == result.total_latency_cycles
        assert float(r["energy_pj"]) == pytest.approx(result.total_energy_pj, rel=1e-12)
        assert float(r["latency_ms"]) == pytest.approx(result.total_latency_cycles / (soc.clock_mhz * 1e3))
        accelerators = [m for m in soc.modules.values() if not m.is_host]
        assert int(r["onchip_memory_bytes"]) == sum(m.size_bytes for a in accelerators for m in a.memories[:-1])
    code, text, _ = run(capsys, "sweep", _spec(tmp_path), "--out", out, "--workers", "2", "--no-progress")
    assert code == 0 and "0 rows computed, 4 reused" in text
    with (out / "points.csv").open() as f:
        assert list(csv.DictReader(f)) == rows
    # a wider spec reuses the four rows and runs only the new points
    wider = _spec(tmp_path, vary={"modules.ne16.memories.l1.size_bytes": [16384, 131072], "clock_mhz": [200, 370, 500]})
    code, text, _ = run(capsys, "sweep", wider, "--out", out, "--workers", "1", "--no-progress")
    assert code == 0 and "2 rows computed, 4 reused" in text


@pytest.mark.parametrize("change, says", [
    ({"vary": {"modules.ne16.memories.l0.size_bytes": [1]}}, "has no item named 'l0'"),
    ({"vary": {"modules.ne16.memories.l1.size_bytes": []}}, "vary.modules.ne16.memories.l1.size_bytes: must be a non-empty list"),
    ({"vary": {"modules.ne16.memories.l1.size_bytes": [1024, -4]}}, "size_bytes[1] = -4: rejected by the hardware schema"),
    ({"vary": {"modules.ne16.memories.l1.size_byte": [1024]}}, "size_byte"),
    ({"networks": ["ad", "nonet.json"]}, "networks[1]"),
    ({"networks": ["xyz"]}, "networks[0]"),
    ({"objective": "speed"}, "objective"),
    ({"extra": 1}, "unknown key(s) ['extra']"),
    ({"base": "no_such_soc"}, "base"),
])
def test_bad_sweep_spec_exits_2_before_any_work(tmp_path, capsys, change, says):
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", _spec(tmp_path, **change), "--out", out, "--no-progress")
    assert code == 2 and "spec.yaml" in err and says in err
    assert not out.exists()


def test_dask_local_cluster_rows_equal_process_pool_rows(tmp_path):
    pytest.importorskip("distributed")  # installed by the test extra; CI has it
    spec = load_spec(_spec(tmp_path))
    pool, _ = run_sweep(spec, tmp_path / "pool", workers=2, progress=False)
    dask, _ = run_sweep(spec, tmp_path / "dask", scheduler="local", progress=False)
    strip = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in pool]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in dask]
    assert len(strip) == 4


# --------------------------------------------------------------------------- packaging
def test_python_m_explorer_and_console_script_entry(tmp_path):
    env_run = subprocess.run([sys.executable, "-m", "explorer", "validate", "gap9"], capture_output=True, text=True, cwd=ROOT)
    assert env_run.returncode == 0 and "ne16" in env_run.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    env_run = subprocess.run([sys.executable, "-m", "explorer", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert env_run.returncode == 2 and "bad.yaml" in env_run.stderr and "clock_mhz" in env_run.stderr
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    entry = config["options.entry_points"]["console_scripts"].strip()
    name, target = (part.strip() for part in entry.split("="))
    module, function = target.split(":")
    assert name == "match-mapper" and callable(getattr(importlib.import_module(module), function))


def test_mapper_never_imports_explorer():
    for path in (ROOT / "mapper").glob("*.py"):
        assert "explorer" not in path.read_text(), path


# --------------------------------------------------------------------------- model formats, exit 1
def _float_onnx(path: Path) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="dense")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, fc])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_model_formats_give_the_same_layers(tmp_path, capsys, monkeypatch):
    from explorer import inputs, load_model
    from mapper.zigzag_workload import to_zigzag_workload

    ad = mapper.load_graph(ROOT / "benchmarks" / "networks" / "ad.json")
    workload = tmp_path / "ad_workload.yaml"
    workload.write_text(yaml.safe_dump(to_zigzag_workload(ad), sort_keys=False))
    layers = [ad.nodes[n]["layer"].sizes for n in mapper.ordered_layers(ad)]
    assert [load_model(workload).nodes[n]["layer"].sizes for n in mapper.ordered_layers(load_model(workload))] == layers
    onnx_path = tmp_path / "net.onnx"
    _float_onnx(onnx_path)
    monkeypatch.setattr(inputs, "_tvm_available", lambda: False)  # the path for machines without TVM
    graph = load_model(onnx_path)
    assert sorted(graph.nodes[n]["layer"].kind for n in graph) == ["conv2d", "dense", "pool"]
    code, _, err = run(capsys, "map", ROOT / "benchmarks" / "models" / "ad01_int8.tflite", "--arch", "gap9")
    assert code == 2 and "needs TVM" in err


def test_tflite_through_the_bridge(capsys):
    pytest.importorskip("tvm")
    tflite = ROOT / "benchmarks" / "models" / "ad01_int8.tflite"
    code, out, _ = run(capsys, "map", tflite, "--arch", "gap9")
    assert code == 0
    direct = mapper.map_network(mapper.load_graph(ROOT / "benchmarks" / "networks" / "ad.json"), archs.load("gap9"))
    assert f"total: {direct.total_latency_cycles:,.0f} cycles" in out  # the shipped graph holds the .tflite's layers


def test_internal_error_exits_1(capsys, monkeypatch):
    import explorer.cmd_validate

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(explorer.cmd_validate, "load_arch", broken)
    code, _, err = run(capsys, "validate", "gap9")
    assert code == 1 and "internal error" in err and "boom" in err
