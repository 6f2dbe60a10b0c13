"""The README's match-mapper walkthrough: every command runs and prints what the README shows."""

import csv
import re
import shlex
from pathlib import Path

from explorer import main, pareto_front

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_match_mapper_walkthrough_runs_and_prints_what_it_shows(tmp_path, monkeypatch, capsys):
    """Every command of the walkthrough, in order, on the YAML files it shows; each line shown under a
    command is in that command's output; the explained layer is the slowest of the map; the claims on
    the schema error and on the sweep's Pareto fronts hold."""
    text = README.read_text()
    walk = re.search(r"### Walkthrough\n(.*?)\nThe same from Python", text, re.S).group(1)
    python = re.search(r"\nThe same from Python.*?```python\n(.*?)```\n\nIt prints:\n\n((?:    [^\n]*\n)+)", text, re.S)
    soc_yaml, sweep_yaml = re.findall(r"```yaml\n(.*?)```", walk, re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_npu.yaml").write_text(soc_yaml)
    (tmp_path / "sweep.yaml").write_text(sweep_yaml)
    blocks = re.findall(r"```console\n(.*?)```", walk, re.S)
    assert len(blocks) == 4
    for block in blocks:
        command, *shown = block.strip().splitlines()
        argv = shlex.split(command.removeprefix("$ "))
        assert argv[0] == "match-mapper"
        assert main(argv[1:]) == 0, command
        out = capsys.readouterr().out
        for line in shown:
            assert line.strip() in out, (command, line)
    with open("ic.csv") as f:
        slowest = max(csv.DictReader(f), key=lambda r: float(r["cycles"]))["layer"]
    assert f"explain ic:{slowest} " in walk and f"slowest layer, `{slowest}`" in walk
    bad = (tmp_path / "my_npu.yaml").read_text().replace("size_bytes: 65536", "size_bytes: -5")
    (tmp_path / "bad.yaml").write_text(bad)
    assert main(["validate", "bad.yaml"]) == 2
    assert "modules[1].memories[0].size_bytes: must be an integer >= 1, got -5" in capsys.readouterr().err
    with open("sweep_out/points.csv") as f:
        rows = list(csv.DictReader(f))
    for net in ("kws", "ad"):
        mine = [r for r in rows if r["network"] == net]
        front = pareto_front([float(r["latency_ms"]) for r in mine], [float(r["energy_pj"]) for r in mine])
        assert len(front) == 1 and mine[front[0]]["modules.npu.memories.l2.read_bytes_per_cycle"] == "16"
        best = mine[front[0]]
        same = [r for r in mine if (r["latency_cycles"], r["energy_pj"]) == (best["latency_cycles"], best["energy_pj"])]
        sizes = sorted(r["modules.npu.memories.l1.size_bytes"] for r in same)
        assert sizes == (["65536"] if net == "ad" else ["16384", "65536"])
    assert (tmp_path / "sweep_out" / "pareto.png").stat().st_size > 0
    exec(compile(python.group(1), "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [line.strip() for line in python.group(2).splitlines()]
