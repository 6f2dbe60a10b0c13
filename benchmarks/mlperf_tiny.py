"""MLPerf Tiny on DIANA and GAP9: ``python -m benchmarks.mlperf_tiny [options]``.

Each of the four MLPerf Tiny int8 reference models (``benchmarks/models``: kws = keyword spotting
DS-CNN, vww = visual wake words MobileNetV1-0.25, ic = image classification ResNet-8, ad = anomaly
detection FC autoencoder) is imported from its .tflite file through the TVM bridge
(``tvm_bridge.from_tflite`` + ``tvm_bridge.layer_graph``) and mapped on each target (default
``diana`` and ``gap9``; ``--targets`` takes any shipped SoC, ``archs.builtin_names()``, and the
``--arch PATH`` YAMLs, native or ZigZag) with three deployment strategies:

- ``host_only``: every layer on the host core (``mapper.map_network(graph, soc, modules=[soc.host])``),
  what plain TVM gives;
- ``accelerator_first``: every layer an accelerator accepts goes to the first such accelerator with
  the mapper's schedule, the rest to the host (``policy="accelerator_first"``; DORY, HTVM);
- ``best``: per layer the module with the lowest predicted latency (``policy="best"``; MATCH).

The strategies are built from one ``mapper.search_module`` call per (layer shape, module) and
target in a run, shared through a ``SearchCache`` (``benchmarks._mlperf_strategies``).

Latencies are the mapper's predictions in cycles at the target clock (layers run one after another;
the graph holds the recognised layers: conv2d, depthwise, dense, add, pooling; reshape and softmax are
not costed), energies in pJ. The model-aware strategy must never be slower than the other two, in
total and per layer: a violation is a search bug, logged as an error, exit status 3.

Verification (default on; ``--no-verify`` skips): per model and target the ``best`` mapping is
compiled with ``tvm_bridge.compile(path, soc, policy="best")`` and its offloaded layers are compared
bit for bit with LiteRT, as are the bytes its generated code moves (``benchmarks._mlperf_verify``).
A failed verification gives exit status 1. Bad arguments give exit status 2.

Memory: per model and target the static plan of the SoC's outermost memory (L2) for the ``best``
mapping (``benchmarks._mlperf_memory``: peak bytes = weights + activation arena, capacity, whether it
fits), printed and written to the JSON (``memory``); the verification checks that the compiled model's
``memory_plan()`` has the same peak.

Writes ``results.json``, ``results.csv``, ``layers.csv`` and PNG plots to ``--out`` (default
``./mlperf_tiny_results/``); ``--json PATH`` writes the same JSON elsewhere too.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import networkx as nx

import archs
from benchmarks import _mlperf_report as report
from benchmarks._mlperf_common import MODELS, STRATEGIES, Case, Target, model_path
from benchmarks._mlperf_memory import plan_best
from benchmarks._mlperf_strategies import SearchCache, map_strategies
from benchmarks._mlperf_verify import verify_model
from mapper.schedule import NetworkSchedule

log = logging.getLogger("benchmarks.mlperf_tiny")

DEFAULT_TARGETS = ("diana", "gap9")
DEFAULT_OUT = Path("mlperf_tiny_results")
#: relative slack when checking that ``best`` is never slower (float sums of per-layer cycles)
SLACK = 1e-9

EXIT_OK, EXIT_VERIFICATION_FAILED, EXIT_USAGE, EXIT_MODEL_AWARE_SLOWER = 0, 1, 2, 3

__all__ = ["MODELS", "STRATEGIES", "DEFAULT_TARGETS", "Case", "Target", "SearchCache", "model_path", "import_graph",
           "map_strategies", "model_aware_violations", "build_parser", "resolve_targets", "resolve_models", "run", "main"]


def import_graph(model: str) -> nx.DiGraph:
    """The bridge's layer graph of ``model``'s .tflite file (``tvm_bridge.from_tflite`` + ``layer_graph``)."""
    import tvm_bridge

    return tvm_bridge.layer_graph(tvm_bridge.from_tflite(model_path(model)), name=model)


def model_aware_violations(networks: dict[str, NetworkSchedule]) -> list[str]:
    """Where ``best`` is slower than another strategy, in total or on a layer (empty list: none)."""
    best = networks["best"]
    found = []
    for strategy in ("host_only", "accelerator_first"):
        other = networks[strategy]
        if best.total_latency_cycles > other.total_latency_cycles * (1 + SLACK):
            found.append(f"best takes {best.total_latency_cycles:.0f} cycles, {strategy} {other.total_latency_cycles:.0f}")
        for name, schedule in best.schedules.items():
            theirs = other.schedules[name]
            if schedule.latency_cycles > theirs.latency_cycles * (1 + SLACK):
                found.append(f"layer {name}: best puts it on {schedule.module} ({schedule.latency_cycles:.0f} cycles), "
                             f"{strategy} on {theirs.module} ({theirs.latency_cycles:.0f} cycles)")
    return found


# --------------------------------------------------------------------------- arguments


def _names(values: Optional[Sequence[str]]) -> Optional[list[str]]:
    """``--models kws vww`` and ``--models kws,vww`` alike; None when the option was not given."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (options documented in ``--help`` and the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mlperf_tiny", description=__doc__.split("\n\n")[0],
                                     epilog="Exit status: 0 ok, 1 verification failed, 2 bad arguments, "
                                            "3 the model-aware strategy was slower than another (a search bug).")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help=f"models to run (default: all of {', '.join(MODELS)})")
    parser.add_argument("--targets", nargs="+", metavar="TARGET",
                        help=f"targets to run: shipped SoCs ({', '.join(archs.builtin_names())}) or --arch names "
                             f"(default: {', '.join(DEFAULT_TARGETS)} and every --arch); an --arch target is named by "
                             "its YAML 'name' (or file stem if that is taken)")
    parser.add_argument("--arch", action="append", default=[], metavar="PATH", type=Path,
                        help="add a target from your own hardware YAML (repeatable; schema in README) or a ZigZag "
                             "accelerator YAML (detected, read with archs.from_zigzag)")
    parser.add_argument("--zigzag-mapping", type=Path, metavar="PATH",
                        help="ZigZag mapping YAML for the ZigZag --arch files (default: ZigZag's defaults)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"output directory for results.json/.csv, layers.csv and plots (default: ./{DEFAULT_OUT}/)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON results here")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip compiling the best mapping and comparing it with LiteRT")
    parser.add_argument("--verify-inputs", type=int, default=2, metavar="N",
                        help="random inputs per model and target for verification (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the verification inputs (default: 0)")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="do not write PNG plots")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log detail (-v info, -vv debug)")
    return parser


def resolve_targets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Target]:
    """The targets selected by ``--targets`` among the shipped SoCs (``archs.builtin_names()``) and
    the ``--arch`` YAMLs (native or ZigZag, see ``archs.load``); ``parser.error`` on an unknown name
    or an unloadable YAML."""
    shipped = archs.builtin_names()
    available: dict[str, Target] = {}
    for path in args.arch:
        if not path.is_file():
            parser.error(f"--arch {path}: no such file")
        zigzag = archs.is_zigzag_file(path)
        try:
            soc = archs.load(path, mapping=args.zigzag_mapping if zigzag else None)
        except (ValueError, OSError) as exc:
            parser.error(f"--arch {path}: {exc}")
        label = soc.name if soc.name not in shipped and soc.name not in available else path.stem
        if label in available or label in shipped:
            parser.error(f"--arch {path}: target name {label!r} is already taken; rename the file or its 'name'")
        available[label] = Target(label, soc, str(path))
    if args.zigzag_mapping is not None and not any(archs.is_zigzag_file(p) for p in args.arch):
        parser.error("--zigzag-mapping applies to a ZigZag accelerator given with --arch; none was given")
    wanted = _names(args.targets)
    if wanted is None:
        wanted = list(DEFAULT_TARGETS) + list(available)
    unknown = [t for t in wanted if t not in shipped and t not in available]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(shipped + list(available))} "
                     "or add your own with --arch PATH")
    if not wanted:
        parser.error("no target selected")
    targets = []
    for label in dict.fromkeys(wanted):
        targets.append(available[label] if label in available else Target(label, archs.load(label), "shipped"))
    return targets


def resolve_models(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The models selected by ``--models`` (``parser.error`` on an unknown name or a missing file)."""
    wanted = _names(args.models)
    if wanted is None:
        return list(MODELS)
    unknown = [m for m in wanted if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if not wanted:
        parser.error("no model selected")
    missing = [str(model_path(m)) for m in wanted if not model_path(m).is_file()]
    if missing:
        parser.error(f"model file(s) missing: {', '.join(missing)} (they ship in benchmarks/models; install with pip install -e .)")
    return list(dict.fromkeys(wanted))


def _configure_logging(verbosity: int) -> None:
    """WARNING by default, INFO with -v, DEBUG with -vv; a stderr handler unless the root logger has one."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)


# --------------------------------------------------------------------------- run


def run(models: list[str], targets: list[Target], verify: bool, verify_inputs: int = 2,
        seed: int = 0, cache: Optional[SearchCache] = None) -> tuple[list[Case], dict[str, float]]:
    """Import, map (three strategies from one search per layer shape and module, shared through
    ``cache``), check the model-aware strategy and, if ``verify``, compile and verify. Returns the
    cases (model-major) and wall times in seconds (``import_seconds``, ``mapping_seconds``,
    ``verification_seconds``)."""
    from tqdm.auto import tqdm

    import tvm_bridge

    cache = cache if cache is not None else SearchCache()

    timing = {"import_seconds": 0.0, "mapping_seconds": 0.0, "verification_seconds": 0.0}
    steps = len(models) * (1 + len(targets) * (2 if verify else 1))
    cases: list[Case] = []
    graphs: dict[str, nx.DiGraph] = {}
    mods: dict[str, Any] = {}
    with tqdm(total=steps, desc="mlperf_tiny", unit="step", disable=None, file=sys.stderr) as bar:
        for model in models:
            bar.set_postfix_str(f"{model}: import")
            start = time.perf_counter()
            mods[model] = tvm_bridge.from_tflite(model_path(model))
            graphs[model] = tvm_bridge.layer_graph(mods[model], name=model)  # as import_graph
            timing["import_seconds"] += time.perf_counter() - start
            log.info("%s: %d layers, %d MACs", model, graphs[model].number_of_nodes(),
                     sum(graphs[model].nodes[n]["layer"].macs for n in graphs[model].nodes))
            bar.update()
            for target in targets:
                bar.set_postfix_str(f"{model} on {target.label}: mapping")
                start = time.perf_counter()
                networks = map_strategies(graphs[model], target.soc, cache)
                timing["mapping_seconds"] += time.perf_counter() - start
                case = Case(model, target, networks, violations=model_aware_violations(networks))
                case.memory_plan, case.memory_error = plan_best(mods[model], target.soc, networks["best"])
                for violation in case.violations:
                    log.error("%s on %s: model-aware strategy slower than another (search bug): %s", model, target.label, violation)
                log.info("%s on %s: %s", model, target.label, ", ".join(
                    f"{s} {n.total_latency_cycles:.0f} cycles ({n.search_seconds:.2f} s)" for s, n in networks.items()))
                cases.append(case)
                bar.update()
        if verify:
            for case in cases:
                bar.set_postfix_str(f"{case.model} on {case.target.label}: compile + verify")
                start = time.perf_counter()
                case.verification = verify_model(model_path(case.model), case.target.soc, case.networks["best"],
                                                 inputs=verify_inputs, seed=seed)
                timing["verification_seconds"] += time.perf_counter() - start
                _check_memory_plan(case)
                log.info("%s on %s: verification %s (%d offloaded layers x %d inputs, compile %.1f s)", case.model,
                         case.target.label, "passed" if case.verification.passed else "FAILED", case.verification.offloaded_layers,
                         case.verification.inputs, case.verification.compile_seconds)
                bar.update()
    return cases, timing


def _check_memory_plan(case: Case) -> None:
    """A verification failure when the compiled model's memory plan peak differs from the benchmark's."""
    v, plan = case.verification, case.memory_plan
    if v is None or plan is None or v.memory_peak_bytes is None or v.memory_peak_bytes == plan.peak_bytes:
        return
    v.failures.append(f"memory plan: the compiled model needs {v.memory_peak_bytes} B of {plan.memory}, "
                      f"the benchmark's plan {plan.peak_bytes} B")
    v.passed = False
    log.error("%s on %s: %s", case.model, case.target.label, v.failures[-1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (see the module docstring)."""
    wall = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.verify_inputs < 1:
        parser.error("--verify-inputs must be >= 1")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")
    models = resolve_models(parser, args)
    targets = resolve_targets(parser, args)

    from tqdm.contrib.logging import logging_redirect_tqdm

    cache = SearchCache()
    with logging_redirect_tqdm():
        cases, timing = run(models, targets, args.verify, args.verify_inputs, args.seed, cache)
    args.out.mkdir(parents=True, exist_ok=True)
    written = report.write_tables_and_plots(cases, args.out, plots=args.plots)
    timing["total_seconds"] = time.perf_counter() - wall  # everything but writing the JSON and printing
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.mlperf_tiny " + " ".join(sys.argv[1:] if argv is None else list(argv)),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": _cpus(),
        "verify_inputs": args.verify_inputs if args.verify else 0,
        "seed": args.seed,
        "mapper_searches": cache.searches,  # one per (layer shape, module) and target, shared by the strategies
    }
    written = report.write_json(report.results_json(cases, models, targets, timing, meta), args.out, args.json) + written
    print(report.format_report(cases, timing))
    print(f"\nWrote {', '.join(str(p) for p in written)}")

    violations = [c for c in cases if c.violations]
    failed = [c for c in cases if c.verification is not None and not c.verification.passed]
    if violations:
        log.error("the model-aware strategy was slower than another on %s: a bug in the search",
                  ", ".join(f"{c.model}/{c.target.label}" for c in violations))
        return EXIT_MODEL_AWARE_SLOWER
    if failed:
        log.error("verification failed on %s", ", ".join(f"{c.model}/{c.target.label}" for c in failed))
        return EXIT_VERIFICATION_FAILED
    return EXIT_OK


def _cpus() -> int:
    """CPUs this process may run on."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
