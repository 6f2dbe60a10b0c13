"""Mapper scale benchmark: ``python -m benchmarks.mapper_scale [--json PATH] [--budget S] [--targets ...]``.

Every accelerator x network pair runs in a fresh Python process pinned to one CPU core (BLAS and
OpenMP threads = 1), imports excluded from the times:

- accelerators: ZigZag's example accelerators ``tpu_like``, ``edge_tpu_like``, ``meta_prototype``,
  ``eyeriss_like``, ``ascend_like``, ``tesla_npu_like`` (shipped in ``archs/zigzag_examples``, read
  with ``archs.from_zigzag``), and ``os32_example``, ``gap9``, ``diana``;
- networks: ResNet-18 and MobileNetV2 1.0 at 224x224 (``benchmarks.zoo``) and the four MLPerf Tiny
  networks (``benchmarks/networks/*.json``); for breadth, ``--networks resnet50 vgg16 mobilenet_v1``
  (also in ``benchmarks.zoo``, not in the default run).

Per pair: ``seconds`` (wall time of mapping the network as ``mapper.map_network`` does it: every
layer on every module of the SoC, policy ``best``, layers of identical shape searched once, with
``--budget`` seconds per layer), the slowest layer and its seconds, the work done (partial and
complete mappings bounded, complete mappings re-evaluated by the reference cost model), layers
proven optimal / mapped, the worst optimality gap, layers no module can run, and the peak RSS of
the process.

With ``--zigzag`` and ``zigzag-dse`` importable (``pip install '.[compare]'``): ResNet-18 through
ZigZag (``get_hardware_performance_zigzag``, lpf 6, latency) on ``tpu_like`` and
``meta_prototype`` in the same run: its seconds, ours, the speedup, and per layer our latency
against ZigZag's chosen mapping evaluated in our cost model (``mapper.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
ZIGZAG_TARGETS = ("tpu_like", "edge_tpu_like", "meta_prototype", "eyeriss_like", "ascend_like", "tesla_npu_like")
TARGETS = ZIGZAG_TARGETS + ("os32_example", "gap9", "diana")
NETWORKS = ("resnet18", "mobilenet_v2", "kws", "vww", "ic", "ad")
BREADTH_NETWORKS = ("resnet50", "vgg16", "mobilenet_v1")  # not in the default run: --networks
_MAPPING_FILE = {"meta_prototype": "meta_prototype_like"}


def load_target(name: str):
    """The SoC of a benchmark target (ZigZag examples with their own mapping file, else default)."""
    import archs
    from archs.zigzag import zigzag_example

    if name not in ZIGZAG_TARGETS:
        return archs.load(name)
    try:
        mapping = zigzag_example(_MAPPING_FILE.get(name, name), "mapping")
    except (FileNotFoundError, ValueError):
        mapping = zigzag_example("default", "mapping")
    return archs.from_zigzag(zigzag_example(name, "hardware"), mapping)


def load_network(name: str):
    import mapper
    from benchmarks import zoo

    if name == "resnet18":
        return zoo.resnet18()
    if name == "mobilenet_v2":
        return zoo.mobilenet_v2()
    if name in BREADTH_NETWORKS:
        return getattr(zoo, name)()
    return mapper.load_graph(ROOT / "benchmarks" / "networks" / f"{name}.json")


def _worker_map(target: str, network: str, budget: Optional[float]) -> dict[str, Any]:
    """Runs in a fresh process: map ``network`` on ``target`` layer by layer, timing each search."""
    import logging
    import resource

    import mapper
    from mapper.graph import _shape_key

    logging.disable(logging.WARNING)
    soc = load_target(target)
    graph = load_network(network)
    cache: dict[tuple, Any] = {}
    layers = []
    start = time.perf_counter()
    for name in mapper.ordered_layers(graph):
        layer = graph.nodes[name]["layer"]
        key = _shape_key(layer)
        if key not in cache:
            t = time.perf_counter()
            try:
                schedule = mapper.map_layer(layer, soc, "latency", time_budget_s=budget)
                cache[key] = (schedule, time.perf_counter() - t, None)
            except mapper.MappingError as exc:
                cache[key] = (None, time.perf_counter() - t, str(exc))
            searched = True
        else:
            searched = False
        schedule, seconds, error = cache[key]
        row: dict[str, Any] = {"layer": name, "kind": layer.kind, "searched": searched, "seconds": seconds if searched else 0.0}
        if schedule is None:
            row["error"] = error
        else:
            stats = schedule.search_stats
            row.update(module=schedule.module, latency_cycles=schedule.latency_cycles, energy_pj=schedule.energy_pj,
                       optimal=schedule.optimal, optimality_gap=schedule.optimality_gap,
                       bounded=int(stats.get("children", 0)) + int(stats.get("complete", 0)),
                       evaluated=int(stats.get("evaluated", 0)))
        layers.append(row)
    seconds = time.perf_counter() - start
    mapped = [r for r in layers if "error" not in r]
    slowest = max(layers, key=lambda r: r["seconds"])
    return {
        "target": target, "network": network, "seconds": seconds, "layers": len(layers),
        "searched_layers": sum(r["searched"] for r in layers), "slowest_layer": slowest["layer"],
        "slowest_layer_seconds": slowest["seconds"],
        "bounded": sum(r.get("bounded", 0) for r in layers if r["searched"]),
        "evaluated": sum(r.get("evaluated", 0) for r in layers if r["searched"]),
        "proven_optimal": sum(bool(r.get("optimal")) for r in mapped), "mapped": len(mapped),
        "unmapped": len(layers) - len(mapped), "worst_gap": max((r["optimality_gap"] for r in mapped), default=0.0),
        "latency_cycles": sum(r["latency_cycles"] for r in mapped),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "per_layer": layers,
    }


def _worker_zigzag(target: str, workload: str, lpf: int, dump: str) -> dict[str, Any]:
    """Runs in a fresh process: ZigZag (latency, ``lpf``) on a workload YAML; per layer its latency and
    chosen mapping."""
    import logging

    from zigzag import api

    from archs.zigzag import zigzag_example
    from mapper.evaluate import zigzag_mapping_dict

    logging.getLogger().setLevel(logging.WARNING)
    hardware = zigzag_example(target, "hardware")
    mapping = zigzag_example(_MAPPING_FILE.get(target, target), "mapping")
    start = time.perf_counter()
    api.get_hardware_performance_zigzag(workload, str(hardware), str(mapping), opt="latency",
                                                     lpf_limit=lpf, dump_folder=dump, loma_show_progress_bar=False)
    seconds = time.perf_counter() - start
    import pickle

    with open(Path(dump) / "list_of_cmes.pickle", "rb") as handle:  # every layer's best evaluation, in order
        evaluations = pickle.load(handle)
    layers = [{"layer": str(cme.layer.name), "latency_cycles": float(cme.latency_total2),
               "mapping": zigzag_mapping_dict(cme)} for cme in evaluations]
    return {"seconds": seconds, "layers": layers}


def _run_worker(args: list[str], timeout: float = 7200) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    command = [sys.executable, "-m", "benchmarks.mapper_scale", "--_worker", *args]
    if hasattr(os, "sched_setaffinity"):
        command = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] + command if _has_taskset() else command
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


def _zigzag_comparison(target: str, ours: dict[str, Any], lpf: int) -> dict[str, Any]:
    """ResNet-18 through ZigZag on ``target``; per layer ZigZag's mapping evaluated in our model."""
    import yaml

    import mapper
    from mapper.evaluate import evaluate_mapping, mapping_from_zigzag
    from mapper.zigzag_workload import to_zigzag_workload

    graph = load_network("resnet18")
    layers = [graph.nodes[n]["layer"] for n in mapper.ordered_layers(graph)]
    for_zigzag = [dataclass_replace_precision(layer) for layer in layers]
    tmp = Path(tempfile.mkdtemp(prefix="mapper_scale_zigzag_"))
    workload = tmp / "resnet18.yaml"
    workload.write_text(yaml.safe_dump(to_zigzag_workload(for_zigzag), sort_keys=False))
    zz = _run_worker(["zigzag", target, str(workload), str(lpf), str(tmp / "out")])
    soc = load_target(target)
    module = soc.accelerators[0]
    ours_by_layer = {r["layer"]: r for r in ours["per_layer"]}
    rows = []
    for layer, z in zip(for_zigzag, zz["layers"]):
        row = {"layer": layer.name, "zigzag_latency_cycles": z["latency_cycles"]}
        try:
            theirs = evaluate_mapping(layer, module, mapping_from_zigzag(z["mapping"], layer, module))
            row["zigzag_mapping_in_our_model_cycles"] = theirs.latency_cycles if theirs.feasible else None
        except (ValueError, KeyError) as exc:
            row["zigzag_mapping_in_our_model_cycles"] = None
            row["translation_error"] = str(exc)[:200]
        own = mapper.search_module(layer, module, "latency").schedule
        row["our_cycles_same_precision"] = own.latency_cycles if own else None
        row["our_cycles_benchmark"] = ours_by_layer.get(layer.name, {}).get("latency_cycles")
        theirs_cycles = row["zigzag_mapping_in_our_model_cycles"]
        row["ours_not_worse"] = theirs_cycles is None or (own is not None and own.latency_cycles <= theirs_cycles * (1 + 1e-9))
        rows.append(row)
    return {"target": target, "lpf_limit": lpf, "zigzag_seconds": zz["seconds"], "our_seconds": ours["seconds"],
            "speedup": zz["seconds"] / ours["seconds"], "layers": rows,
            "ours_never_worse": all(r["ours_not_worse"] for r in rows)}


def dataclass_replace_precision(layer):
    """The layer as ZigZag's example workloads give it: 16-bit partial sums (ZigZag's convention)."""
    import dataclasses

    import mapper

    return dataclasses.replace(layer, precision=mapper.Precision(input=8, weight=8, output=8, accumulator=16))


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"command": " ".join(sys.argv), "budget_s": args.budget, "one_core": True, "results": []}
    for target in args.targets:
        for network in args.networks:
            result = _run_worker(["map", target, network, str(args.budget)])
            print(f"{target:<15} {network:<13} {result['seconds']:8.2f} s  slowest {result['slowest_layer']:<24} "
                  f"{result['slowest_layer_seconds']:7.2f} s  proven {result['proven_optimal']}/{result['mapped']}"
                  f"  worst gap {result['worst_gap']:.3f}  unmapped {result['unmapped']}  "
                  f"bounded {result['bounded']}  peak {result['peak_rss_mb']:.0f} MB", flush=True)
            report["results"].append(result)
    if args.zigzag:
        report["zigzag"] = []
        for target in ("tpu_like", "meta_prototype"):
            ours = next((r for r in report["results"] if r["target"] == target and r["network"] == "resnet18"), None)
            if ours is None:
                ours = _run_worker(["map", target, "resnet18", str(args.budget)])
            try:
                cmp = _zigzag_comparison(target, ours, args.lpf)
            except (RuntimeError, ImportError) as exc:
                cmp = {"target": target, "error": str(exc)[-2000:]}
            report["zigzag"].append(cmp)
            if "error" in cmp:
                print(f"zigzag on {target}: {cmp['error'][:300]}")
            else:
                print(f"zigzag lpf {args.lpf} on {target}: ResNet-18 {cmp['zigzag_seconds']:.1f} s, ours "
                      f"{cmp['our_seconds']:.1f} s, speedup {cmp['speedup']:.1f}x, ours never worse than ZigZag's "
                      f"mapping in our model: {cmp['ours_never_worse']}", flush=True)
    return report


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_worker"]:
        kind, *rest = argv[1:]
        if kind == "map":
            out = _worker_map(rest[0], rest[1], None if rest[2] == "None" else float(rest[2]))
        else:
            out = _worker_zigzag(rest[0], rest[1], int(rest[2]), rest[3])
        print(json.dumps(out))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mapper_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS + BREADTH_NETWORKS)
    parser.add_argument("--budget", type=float, default=10.0, help="time budget per layer in seconds (default 10)")
    parser.add_argument("--zigzag", action="store_true", help="also run ZigZag on ResNet-18 (tpu_like, meta_prototype)")
    parser.add_argument("--lpf", type=int, default=6, help="ZigZag's lpf_limit (default 6)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = run(args)
    report["total_seconds"] = time.perf_counter() - start
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
