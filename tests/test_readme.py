"""Every code, YAML and JSON snippet and every command of the README runs, and prints exactly what the
README shows (whole lines, numbers included)."""

import contextlib
import io
import json
import re
import shlex
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _text() -> str:
    return README.read_text()


def _blocks() -> list[tuple[str, str, str]]:
    """(section heading, language, body) of every fenced block."""
    found, heading = [], ""
    for match in re.finditer(r"^(## [^\n]*)$|^```(\w*)\n(.*?)^```", _text(), re.M | re.S):
        if match.group(1):
            heading = match.group(1)[3:]
        else:
            found.append((heading, match.group(2), match.group(3)))
    return found


def _block(heading: str, language: str, index: Optional[int] = None) -> str:
    """The one ``language`` block of section ``heading`` (``index``: which one, where there are several)."""
    bodies = [b for h, lang, b in _blocks() if h.startswith(heading) and lang == language]
    if index is not None:
        return bodies[index]
    (body,) = bodies
    return body


def _shown_after(code: str) -> list[str]:
    """The indented lines the README shows after ``code``'s block ("It prints ...:")."""
    after = _text().split(code + "```\n", 1)[1]
    shown = re.match(r"\nIt prints[^\n]*:\n\n((?:    .*\n)+)", after)
    assert shown, "no 'It prints' block after the snippet"
    return [line[4:] for line in shown.group(1).splitlines()]


def _run(code: str) -> list[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return out.getvalue().splitlines()


def test_every_snippet_has_a_test():
    """New snippets need a test here: this list is the README's fenced blocks in order."""
    assert [(h, lang) for h, lang, _ in _blocks()] == [
        ("Library example", "python"),
        ("Compiling a model with TVM (`tvm_bridge`)", "python"),
        ("Compiling a model with TVM (`tvm_bridge`)", "python"),
        ("Compiling a model with TVM (`tvm_bridge`)", "python"),  # the static memory plan
        # the walkthrough's blocks: run by tests/test_readme_walkthrough.py
        ("Exploring architectures: the `match-mapper` command line", "yaml"),
        ("Exploring architectures: the `match-mapper` command line", "console"),
        ("Exploring architectures: the `match-mapper` command line", "console"),
        ("Exploring architectures: the `match-mapper` command line", "console"),
        ("Exploring architectures: the `match-mapper` command line", "yaml"),
        ("Exploring architectures: the `match-mapper` command line", "console"),
        ("Exploring architectures: the `match-mapper` command line", "python"),
        ("Hardware descriptions (`archs/*.yaml`)", "yaml"),
        ("Hardware descriptions (`archs/*.yaml`)", "python"),
        ("ZigZag interoperability", "python"),
        ("ZigZag interoperability", "python"),  # ZigZag's latency of a mapping: tests/test_zigzag_latency.py
        ("Layer graphs without TVM", "json"),
    ]


def test_library_example_prints_exactly_what_the_readme_shows():
    code = _block("Library example", "python")
    assert _run(code) == _shown_after(code)


def test_bridge_example_prints_exactly_what_the_readme_shows(tmp_path, monkeypatch):
    pytest.importorskip("tvm")
    code = _block("Compiling a model with TVM", "python", 0)
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    monkeypatch.chdir(tmp_path)
    assert _run(code) == _shown_after(code)
    assert (tmp_path / "ad_gap9" / "model.so").is_file() and list((tmp_path / "ad_gap9" / "src").glob("*.c"))


def test_real_models_example_prints_exactly_what_the_readme_shows(monkeypatch):
    """The real int8 models snippet: a TFLite model bit-exact with LiteRT, and LiteRT's abort as LiteRTError."""
    pytest.importorskip("tvm")
    pytest.importorskip("tflite")
    pytest.importorskip("ai_edge_litert")
    code = _block("Compiling a model with TVM", "python", 1)
    assert 'model = "tests/data/se_mul.tflite"' in code
    monkeypatch.chdir(ROOT)
    assert _run(code) == _shown_after(code)


def test_memory_plan_example_prints_exactly_what_the_readme_shows(monkeypatch):
    pytest.importorskip("tvm")
    code = _block("Compiling a model with TVM", "python", 2)
    assert "memory_plan()" in code
    monkeypatch.chdir(ROOT)
    assert _run(code) == _shown_after(code)


def test_zigzag_example_prints_exactly_what_the_readme_shows():
    code = _block("ZigZag interoperability", "python", 0)
    printed = _run(code)
    assert printed == _shown_after(code)
    best, again = printed[0].split()
    assert best == again  # an explicit mapping costs what the search reported for it


def test_hardware_yaml_snippet_loads_and_maps():
    import archs
    import mapper

    soc = archs.from_yaml_text(_block("Hardware descriptions", "yaml"), source="README.md")
    assert soc.name == "my_soc" and soc.host == "cpu" and list(soc.modules) == ["cpu", "npu"]
    npu = soc.modules["npu"]
    assert [m.name for m in npu.memories] == ["l1", "l2"] and npu.memories[0].double_buffering
    conv = mapper.conv2d("c", input_size=(16, 16), in_channels=16, out_channels=16, kernel=3)
    assert mapper.map_layer(conv, soc).module == "npu"  # the array takes it (3x3, K a multiple of 16, int8)
    odd = mapper.conv2d("c", input_size=(16, 16), in_channels=16, out_channels=10, kernel=3)
    assert mapper.map_layer(odd, soc).module == "cpu"  # K = 10 breaks channel_multiple {K: 16}


def test_layer_graph_json_snippet_loads(tmp_path):
    import mapper
    from archs.dims import LoopDim as D

    path = tmp_path / "net.json"
    path.write_text(_block("Layer graphs without TVM", "json"))
    graph = mapper.load_graph(path)
    assert list(graph.nodes) == ["conv1", "conv2"] and list(graph.edges) == [("conv1", "conv2")]
    conv1, conv2 = (graph.nodes[n]["layer"] for n in ("conv1", "conv2"))
    # the edge is consistent: conv1's 32x32x16 output is conv2's input
    assert conv2.input_size == (conv1.sizes[D.OY], conv1.sizes[D.OX]) == (32, 32) and conv2.sizes[D.C] == conv1.sizes[D.K]
    assert json.loads(path.read_text())["edges"] == [{"src": "conv1", "dst": "conv2", "tensor": "t1"}]


def test_set_up_commands_are_what_ci_runs_and_the_suite_time_is_stated():
    section = _text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    assert commands == ["python3 -m pip install -e '.[test]'", "python3 -m pytest"]  # per-file progress, not -q
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 ")]
    assert ci == commands
    assert re.search(r"The whole suite takes about \d+ minutes? on a 2-core machine", section)
    assert "C/C++ compiler" in section and "apt-get install g++" in section


def test_mlperf_commands_are_accepted():
    pytest.importorskip("tvm")
    from benchmarks import mlperf_tiny

    section = _text().split("## MLPerf Tiny benchmark", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("    python -m benchmarks.")]
    assert len(commands) >= 3
    for command in commands:
        argv = shlex.split(command)[3:]
        parser = mlperf_tiny.build_parser()
        args = parser.parse_args(argv)
        assert mlperf_tiny.resolve_models(parser, args) and mlperf_tiny.resolve_targets(parser, args), command


def test_mlperf_tables_match_a_run(tmp_path):
    """The README's recorded run: every column but the timings and verification is reproduced by a
    mapping-only run (verification is covered by tests/test_mlperf_tiny.py)."""
    pytest.importorskip("tvm")
    from benchmarks import mlperf_tiny

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert mlperf_tiny.main(["--no-verify", "--no-plots", "--out", str(tmp_path)]) == 0
    printed = out.getvalue().splitlines()
    section = _text().split("## MLPerf Tiny benchmark", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("A run (", 1)[1].split("\n\n", 3)[1:3]  # the summary and the speedup tables
    shown = [line[4:] for block in blocks for line in block.splitlines()]
    summary = [line for line in shown if line.split()[:1] in (["kws"], ["vww"], ["ic"], ["ad"]) and "x" not in line.split()[3]]
    ran = {tuple(line.split()[:3]): line.split()[:6] for line in printed if len(line.split()) >= 8}
    assert len(summary) == 24
    for line in summary:
        assert line.split()[:6] == ran[tuple(line.split()[:3])], line  # model target strategy cycles ms energy
    speedups = [line for line in shown if re.search(r"\d\.\d+x ", line)]
    assert len(speedups) == 10 and all(line in printed for line in speedups)
    memory = section.split("**Memory.**", 1)[1].split("\n\n", 2)[1]
    memory_rows = [line[4:] for line in memory.splitlines()]
    assert len(memory_rows) == 10 and all(line in printed for line in memory_rows)  # header, rule, 8 plans


def test_hardware_python_example_prints_exactly_what_the_readme_shows(monkeypatch):
    import archs.kernel_hooks

    monkeypatch.setattr(archs.kernel_hooks, "_ALLOWED", set())  # the example allows a module: keep it local
    code = _block("Hardware descriptions", "python")
    assert _run(code) == _shown_after(code)
