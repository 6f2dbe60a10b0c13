"""Mapper speed benchmark: ``python -m benchmarks.mapper_speed [--json PATH] [--quick]``.

Measured in this run, on one CPU core (affinity set to one core, BLAS/OpenMP threads = 1):

- per target (the ResNet-8 3x3 conv, 16 -> 16 channels, 32x32 output, int8, SAME padding, on
  ZigZag's ``tpu_like`` imported with ``archs.from_zigzag``, on gap9's ``cluster`` and on diana's
  ``digital`` module): ``layer_seconds`` = wall time of ``mapper.search_module`` (the complete
  search: every spatial unrolling, every temporal candidate left after bound pruning);
  ``candidates`` = ``Schedule.candidates`` (temporal mappings the pruned search evaluated with the
  vectorised cost model); ``mappings_per_second`` = cost-model throughput (``analyze_segments`` +
  ``evaluate``) on an unpruned sweep of the layer's searched space (at least 2M candidates or all of
  it), and ``space_candidates`` the size of that space (what bound pruning spares the search;
  counted before loop orders that coincide are merged, an upper bound on distinct loop nests).
  Each target runs in a fresh Python process, so no cache is warm; imports are excluded.
- ``suite_seconds``: wall time of ``mapper.map_network(policy="best", all modules)`` over the four
  MLPerf Tiny networks (``benchmarks/networks/*.json``: kws, vww, ic, ad) on gap9 and on diana, in
  one fresh process (imports and JSON loading excluded).
- With ZigZag (zigzag-dse 3.9.1, importable here or in ``/work/venvs/zigzag``; ``--zigzag-python``
  overrides): the same layer through ``zigzag.api.get_hardware_performance_zigzag(..., lpf_limit=6)``
  on the same tpu_like hardware and mapping files (our shipped copies), timed around the API call
  (import excluded): ``zigzag_seconds``, ``zigzag_candidates`` (CostModelEvaluations built),
  ZigZag's best latency (``latency_total2``), our best latency, ``speedup = zigzag_seconds /
  layer_seconds`` and the latency of ZigZag's chosen mapping evaluated in our cost model.

Only the standard library is imported at module level (the ZigZag worker runs this file with the
ZigZag venv's interpreter, and the thread variables must be set before numpy loads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
NETWORKS_DIR = ROOT / "benchmarks" / "networks"
NETWORKS = ("kws", "vww", "ic", "ad")
SUITE_SOCS = ("gap9", "diana")
TARGETS = ("tpu_like", "gap9_cluster", "diana_digital")
ZIGZAG_VENV_PYTHON = Path("/work/venvs/zigzag/bin/python")
LAYER_NAME = "resnet8_conv"
COUNTS = ("temporal-mapping candidates (loop nests with tiles allocated to memories) evaluated by the vectorised "
          "cost model (analyze_segments + evaluate, batches of ~32k) per second of cost-model time, over an unpruned "
          "sweep of the layer's searched space (>= 2M rows or all of it), one core; search_candidates_per_second "
          "is Schedule.candidates / layer_seconds of the pruned search")


# --------------------------------------------------------------------------- the layer and the targets
def _layer(target: str):
    """The ResNet-8 conv; on tpu_like read back from the ZigZag workload YAML we give ZigZag
    (16-bit partial sums: ZigZag's convention, and tpu_like's 16-bit output registers need it)."""
    import mapper

    precision = mapper.Precision(input=8, weight=8, output=8, accumulator=16 if target == "tpu_like" else 32)
    return mapper.conv2d(LAYER_NAME, input_size=(32, 32), in_channels=16, out_channels=16, kernel=3, stride=1,
                         padding="same", precision=precision)


def _zigzag_files() -> tuple[Path, Path]:
    from archs.zigzag import zigzag_example

    return zigzag_example("tpu_like", "hardware"), zigzag_example("tpu_like", "mapping")


def _module(target: str):
    import archs

    if target == "tpu_like":
        hardware, mapping = _zigzag_files()
        soc = archs.from_zigzag(hardware, mapping)
        return soc, soc.modules["tpu_like"]
    soc_name, module = target.split("_", 1)
    soc = archs.load(soc_name)
    return soc, soc.modules[module]


def _write_workload(path: Path) -> None:
    import yaml

    from mapper.zigzag_workload import to_zigzag_workload

    path.write_text(yaml.safe_dump(to_zigzag_workload([_layer("tpu_like")]), sort_keys=False))


# --------------------------------------------------------------------------- workers (fresh processes)
def _worker_target(target: str, workload: Optional[str], sweep_rows: int = 2_000_000) -> dict[str, Any]:
    import mapper
    from mapper.spatial import spatial_unrollings

    soc, module = _module(target)
    layer = _layer(target)
    if workload:  # the exact layer ZigZag maps, read back from its YAML
        graph = mapper.from_zigzag_workload(workload)
        layer = graph.nodes[LAYER_NAME]["layer"]
    start = time.perf_counter()
    result = mapper.search_module(layer, module)
    seconds = time.perf_counter() - start
    if result.schedule is None:
        raise SystemExit(f"{target}: no mapping: {result.reason}")
    s = result.schedule
    sweep = _model_sweep(layer, module, sweep_rows)
    return {
        "soc": soc.name, "module": module.name, "layer_seconds": seconds, "candidates": s.candidates,
        "search_candidates_per_second": s.candidates / seconds,
        "mappings_per_second": sweep["rows"] / sweep["model_seconds"], "sweep": sweep,
        "spatial_unrollings": len(spatial_unrollings(layer, module)),
        "latency_cycles": s.latency_cycles, "energy_pj": s.energy_pj, "spatial": s.spatial, "loops": s.loops,
        "levels": [{"operand": lv.operand, "memory": lv.memory, "position": lv.position} for lv in s.levels],
        "layer": layer.to_dict(), "macs": layer.macs,
    }


def _space_size(problem: Any) -> int:
    """Candidates of ``problem``'s reduced space without bounds or capacity filter: per kernel tile,
    allocations of the remaining factors to ``k`` segments with every segment between two boundaries
    non-empty (inclusion-exclusion over the empty ones), times the leader choices of every cut
    pattern of depth ``k`` (``enumerate_batches`` then drops leader choices giving the same nest)."""
    from math import comb

    import numpy as np

    from mapper.temporal import cut_patterns, factorizations, kernel_tiles, leader_options

    tiles = kernel_tiles(problem)
    left = problem.remaining[None, :] // tiles  # [tile, dim]
    total = 0
    patterns = cut_patterns(problem)
    for k in sorted({max(p, default=0) for p in patterns}):
        orders = sum(len(leader_options(problem, p)) for p in patterns if max(p, default=0) == k)
        if k == 0:
            total += tiles.shape[0] * orders
            continue
        allocations = np.zeros(tiles.shape[0], dtype=object)
        for empty in range(k):  # segments 1..k-1 forced empty (inclusion-exclusion)
            ways = np.ones(tiles.shape[0], dtype=object)
            for d in range(left.shape[1]):
                ways = ways * np.array([factorizations(int(v), k - empty).shape[0] for v in left[:, d]], dtype=object)
            allocations = allocations + (-1) ** empty * comb(k - 1, empty) * ways
        total += int(allocations.sum()) * orders
    return total


def _model_sweep(layer: Any, module: Any, min_rows: int = 2_000_000) -> dict[str, Any]:
    """Cost-model throughput without pruning: stream the searched space of ``layer`` on ``module``
    (the unrollings the search visits, every kernel tile, pattern, allocation and leader; capacity
    not filtered) and time ``analyze_segments`` + ``evaluate`` alone on the first ``min_rows`` rows
    or all of them; ``space_candidates`` is the size of that space (``_space_size``)."""
    import numpy as np

    from costmodel import evaluate
    from costmodel.analysis import analyze_segments
    from mapper.search import _searched_unrollings, build_layer_problem
    from mapper.spatial import spatial_unrollings
    from mapper.temporal import enumerate_batches, kernel_tiles, rank_table

    rows = 0
    space = 0
    model_seconds = 0.0
    for unrolling in _searched_unrollings(layer, module, spatial_unrollings(layer, module)):
        problem = build_layer_problem(layer, module, unrolling)
        space += _space_size(problem)
        if rows >= min_rows:
            continue
        tiles = kernel_tiles(problem)
        ranks = rank_table(problem).T
        for batch in enumerate_batches(problem, tiles, np.arange(tiles.shape[0])):
            start = time.perf_counter()
            stats = analyze_segments(problem, batch.segments, ranks[:, batch.leaders], batch.cut_groups)
            evaluate(problem, stats)
            model_seconds += time.perf_counter() - start
            rows += len(batch)
            if rows >= min_rows:
                break
    return {"rows": rows, "model_seconds": model_seconds, "space_candidates": space}


def _worker_suite() -> dict[str, Any]:
    import archs
    import mapper

    graphs = {net: mapper.load_graph(NETWORKS_DIR / f"{net}.json") for net in NETWORKS}
    socs = {name: archs.load(name) for name in SUITE_SOCS}
    rows: dict[str, dict[str, Any]] = {name: {} for name in SUITE_SOCS}
    start = time.perf_counter()
    for soc_name, soc in socs.items():
        for net, graph in graphs.items():
            t = time.perf_counter()
            result = mapper.map_network(graph, soc, policy="best")
            rows[soc_name][net] = {"seconds": time.perf_counter() - t, "layers": len(result.schedules),
                                   "latency_cycles": result.total_latency_cycles,
                                   "candidates": sum(s.candidates for s in result.schedules.values()),
                                   "modules": {m: int(r["layers"]) for m, r in result.per_module().items()}}
    return {"suite_seconds": time.perf_counter() - start, "suite": rows}


def _worker_zigzag(hardware: str, mapping: str, workload: str, lpf: int, dump: str) -> dict[str, Any]:
    """Runs under ZigZag's interpreter: time the API call, count the CostModelEvaluations built."""
    import logging

    import zigzag
    from zigzag import api
    from zigzag.opt.loma.engine import LomaEngine
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage

    from mapper.evaluate import zigzag_mapping_dict

    counts: dict[str, Any] = {"cme": 0, "orderings": [], "cost_model_seconds": 0.0}
    original_run, original_permutations = CostModelStage.run, LomaEngine.compute_nb_permutations

    def counting_run(self):  # one CostModelEvaluation per temporal candidate the allocator accepted
        start = time.perf_counter()
        results = list(original_run(self))
        counts["cost_model_seconds"] += time.perf_counter() - start
        counts["cme"] += 1
        yield from results

    def counting_permutations(self):
        original_permutations(self)
        counts["orderings"].append(int(self.nb_permutations))

    CostModelStage.run = counting_run
    LomaEngine.compute_nb_permutations = counting_permutations
    logging.getLogger().setLevel(logging.WARNING)
    start = time.perf_counter()
    energy, latency, cmes = api.get_hardware_performance_zigzag(
        workload, hardware, mapping, opt="latency", lpf_limit=lpf, dump_folder=dump, loma_show_progress_bar=False)
    seconds = time.perf_counter() - start
    best = cmes[0][1][0][0]
    return {"zigzag_version": getattr(zigzag, "__version__", "?"), "seconds": seconds, "candidates": counts["cme"],
            "orderings": counts["orderings"], "cost_model_seconds": counts["cost_model_seconds"],
            "latency_cycles": float(latency), "energy_pj": float(energy), "mapping": zigzag_mapping_dict(best), "python": sys.executable}


def _run_worker(args: list[str], python: str = sys.executable, timeout: float = 3600) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--_worker", *args], capture_output=True, text=True,
                          env=env, cwd=str(ROOT), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- orchestration
def _zigzag_python(explicit: Optional[str]) -> tuple[Optional[str], str]:
    """(interpreter that can import zigzag, how it was found) or (None, why not)."""
    if explicit:
        return explicit, "--zigzag-python"
    import importlib.util

    if importlib.util.find_spec("zigzag") is not None:
        return sys.executable, "importable in this interpreter"
    if ZIGZAG_VENV_PYTHON.is_file():
        return str(ZIGZAG_VENV_PYTHON), f"separate venv {ZIGZAG_VENV_PYTHON.parent.parent} (subprocess)"
    return None, "zigzag-dse is not importable (pip install '.[compare]') and /work/venvs/zigzag does not exist"


def _zigzag_comparison(python: str, how: str, lpf: int, ours: dict[str, Any]) -> dict[str, Any]:
    hardware, mapping = _zigzag_files()
    tmp = Path(tempfile.mkdtemp(prefix="mapper_speed_zigzag_"))
    try:
        workload = tmp / f"{LAYER_NAME}.yaml"
        _write_workload(workload)
        zz = _run_worker(["zigzag", "--hw", str(hardware), "--mapping", str(mapping), "--workload", str(workload),
                          "--lpf", str(lpf), "--dump", str(tmp / "out")], python=python)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import mapper
    from mapper.evaluate import evaluate_mapping, mapping_from_zigzag

    _, module = _module("tpu_like")
    layer = mapper.Layer.from_dict(ours["layer"])
    in_ours = evaluate_mapping(layer, module, mapping_from_zigzag(zz["mapping"], layer, module))
    return {
        "zigzag_python": python, "found": how, "zigzag_version": zz["zigzag_version"], "lpf_limit": lpf,
        "zigzag_seconds": zz["seconds"], "zigzag_candidates": zz["candidates"], "zigzag_orderings": zz["orderings"],
        "zigzag_cost_model_seconds": zz["cost_model_seconds"],
        "zigzag_latency_cycles": zz["latency_cycles"], "zigzag_energy_pj": zz["energy_pj"],
        "zigzag_mapping": zz["mapping"],
        "our_latency_cycles": ours["latency_cycles"], "our_energy_pj": ours["energy_pj"],
        "speedup": zz["seconds"] / ours["layer_seconds"],
        "zigzag_mapping_in_our_model_latency_cycles": in_ours.latency_cycles,
        "zigzag_mapping_in_our_model_energy_pj": in_ours.energy_pj,
        "zigzag_mapping_in_our_model_feasible": in_ours.feasible,
        "ours_not_worse_than_zigzag_mapping": ours["latency_cycles"] <= in_ours.latency_cycles,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part in fresh single-core worker processes; return the JSON-ready report."""
    from benchmarks._environment import cpu_model, git_commit
    cores = sorted(os.sched_getaffinity(0))
    core = args.core if args.core is not None else cores[0]
    os.sched_setaffinity(0, {core})  # inherited by every worker
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; targets: {', '.join(TARGETS)}")
    report: dict[str, Any] = {
        "benchmark": "mapper_speed",
        "counts": COUNTS,
        "environment": {"core": core, "python": platform.python_version(), "cpu": cpu_model(),
                        "loadavg_start": list(os.getloadavg()), "commit": git_commit(),
                        "threads": {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}},
        "layer": "ResNet-8 conv 3x3, 16 -> 16 channels, 32x32 output, stride 1, SAME padding, int8 "
                 "(tpu_like: 16-bit partial sums as ZigZag requires; gap9/diana: 32-bit)",
        "targets": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="mapper_speed_"))
    try:
        workload = tmp / f"{LAYER_NAME}.yaml"
        _write_workload(workload)
        for target in targets:
            extra = ["--workload", str(workload)] if target == "tpu_like" else []
            rows = ["--sweep-rows", str(args.sweep_rows)]
            report["targets"][target] = _run_worker(["target", "--target", target, *extra, *rows])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for key in ("mappings_per_second", "layer_seconds", "candidates"):
        report[key] = {t: r[key] for t, r in report["targets"].items()}
    if not args.quick and not args.no_suite:
        report.update(_run_worker(["suite"]))
    if args.quick or args.no_zigzag or "tpu_like" not in report["targets"]:
        report["zigzag"] = {"skipped": "--quick/--no-zigzag or tpu_like not measured"}
    else:
        python, how = _zigzag_python(args.zigzag_python)
        if python is None:
            report["zigzag"] = {"skipped": how}
        else:
            try:
                report["zigzag"] = _zigzag_comparison(python, how, args.lpf, report["targets"]["tpu_like"])
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                report["zigzag"] = {"error": f"ZigZag run with {python} ({how}) failed: {exc}"}
        if "zigzag_seconds" in report["zigzag"]:
            for key in ("zigzag_seconds", "zigzag_candidates", "zigzag_latency_cycles", "our_latency_cycles", "speedup",
                        "zigzag_mapping_in_our_model_latency_cycles"):
                report[key] = report["zigzag"][key]
    report["environment"]["loadavg_end"] = list(os.getloadavg())
    return report


def summary(report: dict[str, Any]) -> str:
    """Plain-text table of a report."""
    env = report["environment"]
    lines = [f"mapper_speed  commit {env['commit']}  core {env['core']} ({env['cpu']})  "
             f"load {env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}",
             f"layer: {report['layer']}",
             f"mappings_per_second counts {report['counts']}",
             f"{'target':<15} {'layer_seconds':>13} {'candidates':>11} {'space':>11} {'mappings/s':>12} {'latency':>10} "
             f"{'energy pJ':>12}"]
    for name, r in report["targets"].items():
        lines.append(f"{name:<15} {r['layer_seconds']:>13.3f} {r['candidates']:>11} {r['sweep']['space_candidates']:>11} "
                     f"{r['mappings_per_second']:>12.0f} {r['latency_cycles']:>10.0f} {r['energy_pj']:>12.0f}")
    if "suite_seconds" in report:
        per = ", ".join(f"{soc}/{net} {row['seconds']:.2f}s" for soc, nets in report["suite"].items()
                        for net, row in nets.items())
        lines.append(f"suite_seconds {report['suite_seconds']:.2f} (4 MLPerf Tiny networks x gap9, diana; policy best): {per}")
    zz = report.get("zigzag", {})
    if "skipped" in zz or "error" in zz:
        lines.append(f"zigzag: {zz.get('skipped') or zz.get('error')}")
    elif zz:
        lines.append(f"zigzag {zz['zigzag_version']} ({zz['found']}), lpf_limit {zz['lpf_limit']}: "
                     f"zigzag_seconds {zz['zigzag_seconds']:.3f} (of which {zz['zigzag_cost_model_seconds']:.3f} s building "
                     f"CostModelEvaluations), zigzag_candidates {zz['zigzag_candidates']}, "
                     f"ZigZag best latency {zz['zigzag_latency_cycles']:.0f} cycles (ZigZag's model)")
        lines.append(f"  our best latency {zz['our_latency_cycles']:.0f} cycles (our model), speedup "
                     f"{zz['speedup']:.2f}x, ZigZag's chosen mapping in our model "
                     f"{zz['zigzag_mapping_in_our_model_latency_cycles']:.0f} cycles"
                     f"{'' if zz['zigzag_mapping_in_our_model_feasible'] else ' (overflows a memory in our model)'}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mapper_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--quick", action="store_true", help="layer figures only: skip the suite and ZigZag")
    parser.add_argument("--no-suite", action="store_true", help="skip suite_seconds")
    parser.add_argument("--no-zigzag", action="store_true", help="skip the ZigZag comparison")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {', '.join(TARGETS)}")
    parser.add_argument("--lpf", type=int, default=6, help="ZigZag lpf_limit (default 6)")
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the first allowed)")
    parser.add_argument("--zigzag-python", default=None, help="interpreter with zigzag-dse installed")
    parser.add_argument("--sweep-rows", type=int, default=None,
                        help="candidates timed for mappings_per_second (default 2,000,000; 200,000 with --quick)")
    parser.add_argument("--_worker", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--hw", help=argparse.SUPPRESS)
    parser.add_argument("--mapping", help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sweep_rows is None:
        args.sweep_rows = 200_000 if args.quick else 2_000_000
    if args._worker:
        if args._worker == "target":
            out = _worker_target(args.target, args.workload, args.sweep_rows)
        elif args._worker == "suite":
            out = _worker_suite()
        else:
            out = _worker_zigzag(args.hw, args.mapping, args.workload, args.lpf, args.dump)
        print(json.dumps(out))
        return 0
    report = run(args)
    print(summary(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
