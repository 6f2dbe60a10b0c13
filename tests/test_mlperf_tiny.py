"""``python -m benchmarks.mlperf_tiny``: outputs, the model-aware invariant, verification, exit statuses.

The benchmark's ``main(argv)`` runs in process on subsets of the models and targets (mapping only
in the fast tests; the slow ones compile and verify the anomaly-detection model on GAP9 for real).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import itertools
import json
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tvm")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import archs  # noqa: E402
import mapper  # noqa: E402
from archs import kernels  # noqa: E402
from archs.dims import LoopDim as D  # noqa: E402
from archs.zigzag import zigzag_example  # noqa: E402
from benchmarks import _mlperf_plots as plots  # noqa: E402
from benchmarks import _mlperf_report as report  # noqa: E402
from benchmarks import mlperf_tiny  # noqa: E402
from benchmarks._mlperf_verify import Verification  # noqa: E402
from mapper.acceptance import padding_split  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULT_KEYS = {"model", "target", "strategy", "latency_cycles", "energy_pj", "mapper_seconds", "verified", "layers", "per_module"}
LAYER_KEYS = {"name", "module", "latency_cycles", "host_padding_cycles", "macs"}
MODELS, TARGETS = ("ad", "kws"), ("gap9", "diana")
HOSTS = {"gap9": "fc", "diana": "cpu"}
#: MACs of the bridge's layer graphs (MAC layers of the real networks, plus the pool's additions for kws)
GRAPH_MACS = {"ad": 264_192, "kws": 2_656_768 + 8_000}


def _host(kind: str, macs: int, outputs: int, windows: int = 0) -> float:
    """Cycles of one layer on the hosts: the measured RV32 model (archs.kernels.HOST_RV32), CPI 1."""
    a, w, b, c = kernels.HOST_RV32[kind]
    return a * macs + w * windows + b * outputs + c


# Hand-derived from the networks. AD: dense 640-128-128-128-8-128-128-128-640 (10 layers).
# KWS (DS-CNN): conv 10x4 stride 2 on 49x10x1 -> 25x5x64; 4 x (depthwise 3x3, pointwise 64 -> 64);
# global average pool 25x5; dense 64 -> 12.
_AD_LAYERS = [(640, 128), (128, 128), (128, 128), (128, 128), (128, 8), (8, 128), (128, 128), (128, 128),
              (128, 128), (128, 640)]
_HOST_ONLY_CYCLES = {
    "ad": sum(_host("dense", c * k, k) for c, k in _AD_LAYERS),
    "kws": (_host("conv2d", 8000 * 40, 8000, windows=8000 * 40)
            + 4 * (_host("depthwise", 8000 * 9, 8000) + _host("conv2d", 8000 * 64, 8000, windows=8000))
            + _host("pool", 8000, 64) + _host("dense", 64 * 12, 12)),
}
#: host_only latency in ms, by hand (ad: 2,212,315 cycles, kws: 37,050,439)
HOST_ONLY_MS = {(model, target): cycles / (mhz * 1000) for model, cycles in _HOST_ONLY_CYCLES.items()
                for target, mhz in (("gap9", 370), ("diana", 260))}


def _run(argv: list[str]) -> int:
    return mlperf_tiny.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """One mapping-only run: kws and ad on gap9 and diana, JSON also written with --json."""
    out = tmp_path_factory.mktemp("mlperf")
    json_copy = out / "elsewhere" / "copy.json"
    status = _run(["--models", *MODELS, "--targets", *TARGETS, "--no-verify", "--out", out / "res", "--json", json_copy])
    data = json.loads((out / "res" / "results.json").read_text())
    return {"status": status, "out": out / "res", "data": data, "json_copy": json_copy}


def _by_case(data: dict) -> dict[tuple[str, str], dict[str, dict]]:
    cases: dict = {}
    for row in data["results"]:
        cases.setdefault((row["model"], row["target"]), {})[row["strategy"]] = row
    return cases


# --------------------------------------------------------------------------- outputs


def test_json_schema(mapped):
    assert mapped["status"] == 0
    data = mapped["data"]
    assert json.loads(mapped["json_copy"].read_text()) == data  # --json writes the same document
    assert len(data["results"]) == len(MODELS) * len(TARGETS) * 3
    assert set(_by_case(data)) == {(m, t) for m in MODELS for t in TARGETS}
    for row in data["results"]:
        assert set(row) == RESULT_KEYS
        assert row["model"] in MODELS and row["target"] in TARGETS
        assert row["strategy"] in ("host_only", "accelerator_first", "best")
        assert row["latency_cycles"] > 0 and row["energy_pj"] > 0 and row["mapper_seconds"] >= 0
        assert row["verified"] is None  # --no-verify
        assert row["layers"] and all(set(layer) == LAYER_KEYS for layer in row["layers"])
        assert sum(layer["macs"] for layer in row["layers"]) == GRAPH_MACS[row["model"]]
    assert data["targets"]["gap9"]["clock_mhz"] == 370 and data["targets"]["diana"]["clock_mhz"] == 260
    assert {f["tool"] for f in data["published"]["figures"]} == {"plain TVM", "HTVM", "DORY"}
    assert "not measured here" in data["published"]["source"]


def test_csv_columns_and_rows(mapped):
    with (mapped["out"] / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == report.RESULTS_COLUMNS and len(rows) == len(mapped["data"]["results"])
    for row in rows:
        if row["strategy"] == "host_only":  # hand-derived (HOST_ONLY_MS) at 370 / 260 MHz
            assert float(row["latency_ms"]) == pytest.approx(HOST_ONLY_MS[(row["model"], row["target"])], rel=1e-6)
        assert row["verified"] == ""
        if row["strategy"] == "best":
            assert float(row["best_speedup"]) == 1.0
    with (mapped["out"] / "layers.csv").open() as handle:
        layers = list(csv.DictReader(handle))
    assert tuple(layers[0]) == report.LAYERS_COLUMNS
    assert len(layers) == sum(len(r["layers"]) for r in mapped["data"]["results"])
    shares: dict = {}
    for row in layers:
        key = (row["model"], row["target"], row["strategy"])
        shares[key] = shares.get(key, 0.0) + float(row["share"])
        assert 0.0 <= float(row["utilization"]) <= 1.0
    assert all(math.isclose(total, 1.0) for total in shares.values())


def test_plots_written(mapped):
    expected = [f"{m}_strategies.png" for m in MODELS] + [f"{t}_layers.png" for t in TARGETS]
    for name in expected:
        data = (mapped["out"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name


def test_memory_plan_in_json_hand_checked_on_ad(mapped):
    """AD's L2 plan by hand: weights = int8 C x K per dense layer + int32 bias, multiplier and shift per
    output channel; the largest live set is two neighbouring tensors, 640 + 128 B."""
    rows = {(r["model"], r["target"]): r for r in mapped["data"]["memory"]}
    assert set(rows) == {(m, t) for m in MODELS for t in TARGETS}
    for target, capacity in (("gap9", 1_408_000), ("diana", 524_288)):
        ad = rows[("ad", target)]
        weights = sum(c * k + 12 * k for c, k in _AD_LAYERS)
        assert (ad["weight_bytes"], ad["activation_bytes"], ad["peak_bytes"]) == (weights, 768, weights + 768)
        assert ad["capacity_bytes"] == capacity and ad["memory"] == "l2" and ad["fits"] is True
        assert ad["layers"]["dense_0"]["level_bytes"]["l2"] == 640 + 128 + 640 * 128 + 12 * 128
    for row in rows.values():
        assert row["peak_bytes"] == row["weight_bytes"] + row["activation_bytes"] <= row["capacity_bytes"]


def test_a_compiled_plan_that_differs_fails_the_verification(tmp_path, monkeypatch):
    def differing(path, soc, best, inputs=2, seed=0):
        return Verification(passed=True, inputs=inputs, memory_peak_bytes=1)

    monkeypatch.setattr(mlperf_tiny, "verify_model", differing)
    status = _run(["--models", "ad", "--targets", "gap9", "--no-plots", "--out", tmp_path])
    assert status == mlperf_tiny.EXIT_VERIFICATION_FAILED
    failures = json.loads((tmp_path / "results.json").read_text())["verification"][0]["failures"]
    assert failures == ["memory plan: the compiled model needs 1 B of l2, the benchmark's plan 285024 B"]


def test_printed_table(mapped, capsys):
    status = _run(["--models", "ad", "--targets", "gap9", "--no-verify", "--no-plots", "--out", mapped["out"].parent / "print"])
    text = capsys.readouterr().out
    assert status == 0
    for needle in ("host_only", "accelerator_first", "best", "PUBLISHED", "60.88x", "16.94 %", "2.15x", "not measured here",
                   "ad on gap9 (370 MHz, host fc)", "verification: skipped", "dense_9", "Static memory plan"):
        assert needle in text, needle
    assert re.search(r"\nad +gap9 +l2 +285,024 +1,408,000 +284,256 +768 +yes \(largest live set 285,024 at dense_0\)", text)
    assert not list((mapped["out"].parent / "print").glob("*.png"))  # --no-plots


# --------------------------------------------------------------------------- invariants


def test_best_never_slower(mapped):
    """Consistency check of the benchmark's output: ``best`` is a per-layer minimum over modules that include
    the other strategies' choices, so this holds by construction unless the pipeline mixes results up.
    ``test_best_equals_brute_force_module_choice`` checks the choice itself independently."""
    for (model, target), case in _by_case(mapped["data"]).items():
        best = case["best"]
        for other in ("host_only", "accelerator_first"):
            assert best["latency_cycles"] <= case[other]["latency_cycles"], (model, target, other)
            theirs = {layer["name"]: layer["latency_cycles"] for layer in case[other]["layers"]}
            for layer in best["layers"]:
                assert layer["latency_cycles"] <= theirs[layer["name"]], (model, target, other, layer["name"])
    # GAP9: the cluster or the host beats NE16 on some layers, so best is strictly faster there
    assert _by_case(mapped["data"])[("ad", "gap9")]["best"]["latency_cycles"] < \
        _by_case(mapped["data"])[("ad", "gap9")]["accelerator_first"]["latency_cycles"]


def _small_networks():
    """3-4 layer networks exercising every kind; on DIANA the stride-2 SAME depthwise needs host padding."""
    yield "gap9", mapper.layer_graph([
        mapper.conv2d("c", input_size=(16, 16), in_channels=8, out_channels=16, kernel=3, padding="same"),
        mapper.depthwise("dw", input_size=(16, 16), channels=16, kernel=3, stride=2, padding="same"),
        mapper.pool("gap", input_size=(8, 8), channels=16, kernel=8),
        mapper.dense("fc", in_features=16, out_features=10),
    ])
    yield "diana", mapper.layer_graph([
        mapper.conv2d("c", input_size=(16, 16), in_channels=16, out_channels=16, kernel=3, padding="same"),
        mapper.depthwise("dw", input_size=(16, 16), channels=16, kernel=3, stride=2, padding="same"),
        mapper.add("res", size=(8, 8), channels=16),
        mapper.dense("fc", in_features=64, out_features=10),
    ])
    yield "gap9", mapper.layer_graph([mapper.dense(f"fc{i}", in_features=f_in, out_features=f_out)
                                      for i, (f_in, f_out) in enumerate(((640, 128), (128, 8), (8, 128)))])


@pytest.mark.parametrize("objective", ["latency", "energy"])
def test_best_equals_brute_force_module_choice(objective):
    """Independent check of ``policy="best"``: every assignment of modules to layers is enumerated
    (each layer costed on one module at a time, host padding allowed as map_layer allows it) and the
    cheapest total must equal map_network's, with a cheapest module on every layer."""
    metric = "latency_cycles" if objective == "latency" else "energy_pj"
    for target, graph in _small_networks():
        soc = archs.load(target)
        layers = [graph.nodes[n]["layer"] for n in mapper.ordered_layers(graph)]
        options = []  # per layer: [(module, cost)]
        for layer in layers:
            costs = []
            for module in soc.modules:
                try:
                    costs.append((module, getattr(mapper.map_layer(layer, soc, objective, modules=[module]), metric)))
                except mapper.MappingError:
                    continue
            options.append(costs)
        assert all(options) and any(len(o) > 1 for o in options)
        totals = {tuple(m for m, _ in combo): sum(c for _, c in combo) for combo in itertools.product(*options)}
        cheapest = min(totals.values())
        result = mapper.map_network(graph, soc, objective, policy="best")
        got = result.total_latency_cycles if objective == "latency" else result.total_energy_pj
        assert got == pytest.approx(cheapest, rel=1e-12), (target, objective)
        chosen = tuple(result.schedules[layer.name].module for layer in layers)
        assert totals[chosen] == pytest.approx(cheapest, rel=1e-12), (target, objective, chosen)


def test_layer_sums_equal_totals(mapped):
    """Consistency: the per-layer rows add up to each strategy's total."""
    for row in mapped["data"]["results"]:
        assert math.isclose(sum(layer["latency_cycles"] for layer in row["layers"]), row["latency_cycles"], rel_tol=1e-12)


def test_host_only_is_the_sum_of_host_cycles(mapped):
    for (model, target), case in _by_case(mapped["data"]).items():
        host_only = case["host_only"]
        assert {layer["module"] for layer in host_only["layers"]} == {HOSTS[target]}
        assert host_only["latency_cycles"] == sum(layer["latency_cycles"] for layer in host_only["layers"])
        # both hosts run plain C from L2 with no tiling: one call of the measured RV32 model per layer,
        # a * MACs + w * windows + b * outputs + c instructions at CPI 1 (archs.kernels.HOST_RV32)
        graph = mlperf_tiny.import_graph(model)
        cycles = {layer["name"]: layer["latency_cycles"] for layer in host_only["layers"]}
        for name in graph.nodes:
            layer = graph.nodes[name]["layer"]
            s = layer.sizes
            outputs = s[D.B] * s[D.K] * s[D.OY] * s[D.OX] * s[D.G]
            a, w, b, c = kernels.HOST_RV32[layer.kind]
            expected = a * layer.macs + w * outputs * s[D.FY] * s[D.FX] + b * outputs + c
            assert math.isclose(cycles[name], expected, rel_tol=1e-9), (model, target, name, cycles[name], expected)


def test_model_aware_violations_detects_a_slower_layer():
    soc = archs.load("gap9")
    graph = mlperf_tiny.import_graph("ad")
    networks = mlperf_tiny.map_strategies(graph, soc)
    assert mlperf_tiny.model_aware_violations(networks) == []
    swapped = dict(networks, best=networks["accelerator_first"], accelerator_first=networks["best"])
    found = mlperf_tiny.model_aware_violations(swapped)
    assert any("best takes" in f for f in found) and any("layer dense_0" in f for f in found)


def test_model_aware_slower_is_a_failure(tmp_path, monkeypatch, caplog):
    real = mlperf_tiny.map_strategies

    def broken(graph, soc, cache=None):
        networks = real(graph, soc, cache)
        return dict(networks, best=mapper.map_network(graph, soc, modules=[soc.host]))  # a "search bug"

    monkeypatch.setattr(mlperf_tiny, "map_strategies", broken)
    with caplog.at_level(logging.ERROR):
        status = _run(["--models", "ad", "--targets", "gap9", "--no-verify", "--no-plots", "--out", tmp_path])
    assert status == mlperf_tiny.EXIT_MODEL_AWARE_SLOWER == 3
    assert any("slower" in r.getMessage() and "search" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# --------------------------------------------------------------------------- verification


def test_forced_verification_failure_exits_non_zero(tmp_path, monkeypatch, capsys):
    calls = []

    def failing(path, soc, best, inputs=2, seed=0):
        calls.append((path.name, soc.name, best.policy, inputs))
        return Verification(passed=False, failures=["layer dense_0 differs from LiteRT in 3/128 values"], inputs=inputs)

    monkeypatch.setattr(mlperf_tiny, "verify_model", failing)
    status = _run(["--models", "ad", "--targets", "gap9", "--no-plots", "--out", tmp_path])
    assert status == mlperf_tiny.EXIT_VERIFICATION_FAILED == 1
    assert calls == [("ad01_int8.tflite", "gap9", "best", 2)]
    data = json.loads((tmp_path / "results.json").read_text())
    assert {r["strategy"]: r["verified"] for r in data["results"]} == {"host_only": None, "accelerator_first": None, "best": False}
    assert data["verification"][0]["failures"] == ["layer dense_0 differs from LiteRT in 3/128 values"]
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.slow
def test_real_verification_passes(tmp_path):
    status = _run(["--models", "ad", "--targets", "gap9", "--no-plots", "--out", tmp_path, "--verify-inputs", "1"])
    assert status == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["verified"] for r in data["results"] if r["strategy"] == "best"] == [True]
    check = data["verification"][0]
    assert check["passed"] and check["failures"] == [] and check["offloaded_layers"] == 10 and check["layer_checks"] == 10
    assert check["output_max_abs_diff"] == 0 and check["top1_agree"] == 1


@pytest.mark.slow
def test_real_verification_catches_a_wrong_layer(tmp_path, monkeypatch):
    from tvm_bridge.compiled import CompiledModel

    real = CompiledModel.run_layer

    def off_by_one(self, name, *inputs):
        out = real(self, name, *inputs)
        if name == "dense_3":
            out = out.copy()
            out.flat[0] = out.flat[0] + 1 if out.flat[0] < 127 else out.flat[0] - 1
        return out

    monkeypatch.setattr(CompiledModel, "run_layer", off_by_one)
    status = _run(["--models", "ad", "--targets", "gap9", "--no-plots", "--out", tmp_path, "--verify-inputs", "1"])
    assert status == 1
    failures = json.loads((tmp_path / "results.json").read_text())["verification"][0]["failures"]
    assert failures == ["input 0: layer dense_3 differs from LiteRT in 1/128 values"]


# --------------------------------------------------------------------------- user targets, arguments


def test_user_arch_yaml(tmp_path):
    same = tmp_path / "my_gap9.yaml"  # keeps "name: gap9": labelled by its file stem
    shutil.copy(ROOT / "archs" / "gap9.yaml", same)
    faster = tmp_path / "fast.yaml"
    faster.write_text((ROOT / "archs" / "gap9.yaml").read_text().replace("name: gap9", "name: gap9_fast")
                      .replace("clock_mhz: 370", "clock_mhz: 740"))
    out = tmp_path / "out"
    status = _run(["--models", "ad", "--targets", "gap9", "my_gap9", "gap9_fast", "--arch", same, "--arch", faster,
                   "--no-verify", "--out", out])
    assert status == 0
    data = json.loads((out / "results.json").read_text())
    cases = _by_case(data)
    assert set(cases) == {("ad", "gap9"), ("ad", "my_gap9"), ("ad", "gap9_fast")}
    assert data["targets"]["my_gap9"]["source"] == str(same) and data["targets"]["gap9_fast"]["clock_mhz"] == 740
    for strategy in ("host_only", "accelerator_first", "best"):
        assert cases[("ad", "my_gap9")][strategy]["layers"] == cases[("ad", "gap9")][strategy]["layers"]
        assert cases[("ad", "gap9_fast")][strategy]["latency_cycles"] == cases[("ad", "gap9")][strategy]["latency_cycles"]
    with (out / "results.csv").open() as handle:
        ms = {(r["target"], r["strategy"]): float(r["latency_ms"]) for r in csv.DictReader(handle)}
    assert math.isclose(ms[("gap9_fast", "best")], ms[("gap9", "best")] / 2)
    assert (out / "gap9_fast_layers.png").is_file() and (out / "my_gap9_layers.png").is_file()


def test_arch_alone_adds_to_the_default_targets(tmp_path, monkeypatch):
    yaml_path = tmp_path / "mine.yaml"
    yaml_path.write_text((ROOT / "archs" / "gap9.yaml").read_text().replace("name: gap9", "name: mine"))
    parser = mlperf_tiny.build_parser()
    args = parser.parse_args(["--arch", str(yaml_path)])
    assert [t.label for t in mlperf_tiny.resolve_targets(parser, args)] == ["diana", "gap9", "mine"]


@pytest.mark.parametrize("argv,message", [
    (["--models", "resnet50"], "unknown model(s) resnet50; choose from kws, vww, ic, ad"),
    (["--models", "kws,foo"], "unknown model(s) foo"),
    (["--targets", "tpu"], "unknown target(s) tpu; choose from diana, gap9, os32_example"),
    (["--zigzag-mapping", "m.yaml"], "--zigzag-mapping applies to a ZigZag accelerator given with --arch; none was given"),
    (["--arch", "does/not/exist.yaml"], "--arch does/not/exist.yaml: no such file"),
    (["--verify-inputs", "0"], "--verify-inputs must be >= 1"),
    (["--models"], "expected at least one argument"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_arguments_give_a_clear_error(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _run(argv + ["--out", tmp_path / "o"])
    assert exit_info.value.code == mlperf_tiny.EXIT_USAGE == 2
    assert message in capsys.readouterr().err


def test_bad_arch_yaml_and_out_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "archs" / "gap9.yaml").read_text().replace("size_bytes: 100000", "size_bytes: -5", 1))
    with pytest.raises(SystemExit) as exit_info:
        _run(["--arch", bad, "--no-verify", "--out", tmp_path / "o"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "bad.yaml" in err and "size_bytes" in err and "-5" in err
    taken = tmp_path / "taken.yaml"
    shutil.copy(ROOT / "archs" / "gap9.yaml", taken)
    (tmp_path / "gap9.yaml").write_text(taken.read_text())
    with pytest.raises(SystemExit):
        _run(["--arch", taken, "--arch", tmp_path / "gap9.yaml", "--no-verify", "--out", tmp_path / "o"])
    assert "already taken" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit):
        _run(["--no-verify", "--out", a_file])
    assert "is not a directory" in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "benchmarks.mlperf_tiny", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for option in ("--models", "--targets", "--arch", "--out", "--json", "--no-verify", "Exit status"):
        assert option in result.stdout


# --------------------------------------------------------------------------- issue 14: what a newcomer trips over


@pytest.fixture(scope="module")
def vww_diana(tmp_path_factory):
    """A mapping-only run of VWW on DIANA (stride-2 TF "SAME" layers the host pads for the array)."""
    out = tmp_path_factory.mktemp("vww_diana")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = _run(["--models", "vww", "--targets", "diana", "--no-verify", "--no-plots", "--out", out])
    return {"status": status, "out": out, "data": json.loads((out / "results.json").read_text()), "text": printed.getvalue()}


def test_host_padding_has_its_own_column_and_rows_add_up_to_module_totals(vww_diana):
    assert vww_diana["status"] == 0
    best = _by_case(vww_diana["data"])[("vww", "diana")]["best"]
    soc = archs.load("diana")
    graph = mlperf_tiny.import_graph("vww")
    padded = {layer["name"]: layer["host_padding_cycles"] for layer in best["layers"] if layer["host_padding_cycles"]}
    # the array takes symmetric padding only: exactly the stride-2 TF "SAME" layers (pad 0 top/left, 1 bottom/right)
    assert set(padded) == {n for n in graph.nodes if graph.nodes[n]["layer"].stride == (2, 2)} == \
        {"conv2d_0", "depthwise_3", "depthwise_7", "depthwise_11", "depthwise_23"}
    # by hand: the host reads the 96x96x3 int8 input and writes it padded to 97x97x3, at 4 B/cycle each way
    host_memory = soc.modules["cpu"].memories[-1]
    assert (host_memory.read_bytes_per_cycle, host_memory.write_bytes_per_cycle) == (4, 4)
    assert padded["conv2d_0"] == (96 * 96 * 3 + 97 * 97 * 3) / 4
    # rows add up to the per-module totals: on-module cycles per module, host padding to the host
    sums: dict[str, float] = {}
    for layer in best["layers"]:
        sums[layer["module"]] = sums.get(layer["module"], 0.0) + layer["latency_cycles"] - layer["host_padding_cycles"]
    sums["cpu"] = sums.get("cpu", 0.0) + sum(padded.values())
    assert set(sums) == set(best["per_module"]) == {"cpu", "digital"}
    for module, total in sums.items():
        assert math.isclose(total, best["per_module"][module]["latency_cycles"], rel_tol=1e-12), module
    assert math.isclose(sum(sums.values()), best["latency_cycles"], rel_tol=1e-12)
    # the same in layers.csv
    with (vww_diana["out"] / "layers.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["strategy"] == "best"]
    assert {r["layer"]: float(r["host_padding_cycles"]) for r in rows if float(r["host_padding_cycles"])} == padded
    # and in the printed per-layer table: "best cycles" + "host pad" per module = the "best by module" line
    section = vww_diana["text"].split("vww on diana (260 MHz")[1]
    table = _table_rows(section)
    printed: dict[str, float] = {}
    for row in table["rows"]:
        if row["layer"] != "total":
            printed[row["best on"]] = printed.get(row["best on"], 0.0) + _number(row["best cycles"])
            printed["cpu"] = printed.get("cpu", 0.0) + _number(row["host pad"])
    by_module = dict(re.findall(r"(\w+) ([\d,]+) cycles \(\d+ layers?\)", section.split("best by module")[1].splitlines()[0]))
    for module, total in printed.items():
        assert abs(total - _number(by_module[module])) <= len(table["rows"]), module  # each printed row rounded to 1 cycle


def _number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%x"))


def _table_rows(text: str) -> dict:
    """The first plain-text table in ``text``: header, the column spans given by its dash line, rows
    (until a line that does not fit the columns). Asserts every line keeps to the columns."""
    lines = text.splitlines()
    dash = next(i for i, line in enumerate(lines) if re.fullmatch(r"\s*-+(\s+-+)+\s*", line))
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[dash])]
    header = [lines[dash - 1][a:b].strip() for a, b in spans]
    rows = []
    for line in [lines[dash - 1]] + lines[dash + 1:]:
        if not line.strip() or line.strip().startswith(("best by module", "PUBLISHED", "OURS")):
            break
        gaps = [line[b:a] for (_, b), (a, _) in zip(spans, spans[1:])]
        assert all(not gap.strip() for gap in gaps), f"a value crosses a column boundary: {line!r}"
        if line is not lines[dash - 1]:
            rows.append(dict(zip(header, (line[a:b].strip() for a, b in spans[:-1]))) |
                        {header[-1]: line[spans[-1][0]:].strip()})
    return {"header": header, "rows": rows}


def test_columns_do_not_shift_with_a_long_target_name(tmp_path, capsys):
    long_name = "gap9_with_a_rather_long_target_name"
    arch = tmp_path / "long.yaml"
    arch.write_text((ROOT / "archs" / "gap9.yaml").read_text().replace("name: gap9", f"name: {long_name}"))
    status = _run(["--models", "ad", "--targets", "gap9", long_name, "--arch", arch, "--no-verify", "--no-plots",
                   "--out", tmp_path / "o"])
    text = capsys.readouterr().out
    assert status == 0
    summary = _table_rows(text)
    assert summary["header"] == ["model", "target", "strategy", "latency cycles", "ms", "energy uJ", "mapper s", "verified"]
    assert [r["target"] for r in summary["rows"]] == ["gap9"] * 3 + [long_name] * 3
    assert [r["strategy"] for r in summary["rows"]] == ["host_only", "accelerator_first", "best"] * 2
    assert summary["rows"][2]["latency cycles"] == summary["rows"][5]["latency cycles"]  # same SoC, other name
    speedups = _table_rows(text.split("Speedup of the model-aware strategy")[1])
    assert [r["target"] for r in speedups["rows"]] == ["gap9", long_name]
    layers = _table_rows(text.split(f"ad on {long_name} (370 MHz")[1])
    assert layers["header"][:3] == ["layer", "kind", "MACs"] and layers["rows"][-1]["layer"] == "total"
    assert len(layers["rows"]) == 11 and all(r["best on"] in ("fc", "ne16", "cluster") for r in layers["rows"][:-1])


def test_every_shipped_soc_is_a_target():
    shipped = archs.builtin_names()
    assert {"diana", "gap9", "os32_example"} <= set(shipped)
    parser = mlperf_tiny.build_parser()
    targets = mlperf_tiny.resolve_targets(parser, parser.parse_args(["--targets", *shipped]))
    assert [t.label for t in targets] == shipped and all(t.source == "shipped" for t in targets)
    assert [t.soc.name for t in targets] == shipped


@pytest.mark.slow
def test_os32_example_runs_as_a_target(tmp_path):
    status = _run(["--models", "ad", "--targets", "os32_example", "--no-verify", "--no-plots", "--out", tmp_path])
    assert status == 0
    case = _by_case(json.loads((tmp_path / "results.json").read_text()))[("ad", "os32_example")]
    # its host runs plain C from its only memory, like gap9's and diana's: the measured RV32 model
    assert math.isclose(case["host_only"]["latency_cycles"], _HOST_ONLY_CYCLES["ad"], rel_tol=1e-9)
    assert {layer["module"] for layer in case["accelerator_first"]["layers"]} == {"os_array"}  # it accepts dense layers


def test_a_zigzag_accelerator_is_an_arch_target(tmp_path):
    out = tmp_path / "out"
    status = _run(["--models", "ad", "--targets", "tpu_like", "--arch", zigzag_example("tpu_like"),
                   "--zigzag-mapping", zigzag_example("tpu_like", "mapping"), "--no-verify", "--no-plots", "--out", out])
    assert status == 0
    data = json.loads((out / "results.json").read_text())
    assert data["targets"]["tpu_like"]["modules"] == ["host", "tpu_like"]
    first = _by_case(data)[("ad", "tpu_like")]["accelerator_first"]
    assert {layer["module"] for layer in first["layers"]} == {"tpu_like"}  # the array accepts every dense layer
    # without a mapping file: ZigZag's defaults, still loaded through from_zigzag
    parser = mlperf_tiny.build_parser()
    (target,) = mlperf_tiny.resolve_targets(parser, parser.parse_args(["--arch", str(zigzag_example("tpu_like")),
                                                                       "--targets", "tpu_like"]))
    assert target.soc.host == "host" and target.soc.modules["tpu_like"].compute.macs_per_cycle == 32 * 32


def test_strategies_search_each_layer_shape_once_per_module(monkeypatch):
    calls: list[tuple] = []
    real = mapper.search_module

    def counting(layer, module, objective="latency"):
        shape = json.dumps({k: v for k, v in layer.to_dict().items() if k != "name"}, sort_keys=True)
        calls.append((module.name, shape, objective))
        return real(layer, module, objective)

    monkeypatch.setattr(mapper, "search_module", counting)
    cache = mlperf_tiny.SearchCache()
    expected = 0
    for model, target in (("vww", "diana"), ("ad", "gap9"), ("kws", "gap9")):
        soc = archs.load(target)
        graph = mlperf_tiny.import_graph(model)
        networks = mlperf_tiny.map_strategies(graph, soc, cache)
        layers = [graph.nodes[n]["layer"] for n in graph.nodes]
        shapes = {json.dumps({k: v for k, v in lay.to_dict().items() if k != "name"}, sort_keys=True) for lay in layers}
        splits = {(m.name, json.dumps({k: v for k, v in lay.to_dict().items() if k not in ("name", "padding")}, sort_keys=True))
                  for lay in layers for m in soc.modules.values()
                  if padding_split(lay, m) is not None}
        expected += len(shapes) * len(soc.modules) + len(splits)
        # the strategies built from shared searches are those of mapper.map_network
        reference = {"host_only": mapper.map_network(graph, soc, modules=[soc.host]),
                     "accelerator_first": mapper.map_network(graph, soc, policy="accelerator_first"),
                     "best": mapper.map_network(graph, soc, policy="best")}
        for strategy, network in reference.items():
            for name, schedule in network.schedules.items():
                ours = networks[strategy].schedules[name]
                assert (ours.module, ours.latency_cycles, ours.energy_pj, ours.host_padding, ours.loops) == \
                    (schedule.module, schedule.latency_cycles, schedule.energy_pj, schedule.host_padding, schedule.loops)
        if target == "diana":
            assert splits  # VWW's stride-2 layers are searched unpadded on the array too
        calls_before = len(calls)
        mlperf_tiny.map_strategies(graph, soc, cache)  # the same run again: all cached
        assert len(calls) == calls_before
    # (map_network above searches through mapper.search's own binding, which this counter does not see)
    assert len(calls) == len(set(calls)) == expected == cache.searches


def test_strategy_plot_uses_a_log_axis_with_annotated_totals(mapped):
    cases = _cases_of(mapped, "kws")
    figure = plots.model_figure(cases)
    for ax, case in zip(figure.axes, cases):
        assert ax.get_yscale() == "log"
        texts = " ".join(t.get_text() for t in ax.texts)
        for strategy in ("host_only", "accelerator_first", "best"):
            ms = case.networks[strategy].total_latency_cycles / (case.target.soc.clock_mhz * 1e3)
            assert f"{ms:.3g} ms" in texts
        low = ax.get_ylim()[0]
        assert low == 10 ** round(math.log10(low)) and low <= min(c.networks["best"].total_latency_cycles for c in [case]) / (
            case.target.soc.clock_mhz * 1e3) / 2


def test_per_layer_plot_starts_at_a_labelled_power_of_ten(mapped):
    cases = _cases_of(mapped, "ad")
    figure = plots.target_figure(cases[:1])
    ax = figure.axes[0]
    figure.canvas.draw()
    low = ax.get_ylim()[0]
    smallest = min(s.latency_cycles for s in cases[0].networks["best"].schedules.values())
    assert ax.get_yscale() == "log" and low == 10 ** round(math.log10(low)) and low <= smallest / 2 < 10 * low
    labelled = [tick.get_loc() for tick in ax.yaxis.get_major_ticks() if tick.label1.get_visible() and tick.label1.get_text()]
    assert any(math.isclose(loc, low) for loc in labelled)
    assert f"from {low:g}" in ax.get_ylabel()


def _cases_of(mapped, model):
    """Cases rebuilt by mapping ``model`` again on the run's targets (the plots take Case objects)."""
    from benchmarks._mlperf_common import Case, Target

    graph = mlperf_tiny.import_graph(model)
    return [Case(model, Target(t, archs.load(t), "shipped"), mlperf_tiny.map_strategies(graph, archs.load(t))) for t in TARGETS]


def test_benchmark_modules_import_no_cycle():
    import networkx as nx

    graph = nx.DiGraph()
    for path in (ROOT / "benchmarks").glob("*.py"):
        module = f"benchmarks.{path.stem}"
        graph.add_node(module)
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports included
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.startswith("benchmarks.") and (ROOT / "benchmarks" / f"{name.split('.')[1]}.py").is_file():
                    graph.add_edge(module, "benchmarks." + name.split(".")[1])
    graph.remove_edges_from(nx.selfloop_edges(graph))
    assert nx.is_directed_acyclic_graph(graph), list(nx.simple_cycles(graph))
    assert graph.has_edge("benchmarks.mlperf_tiny", "benchmarks._mlperf_common")
