"""ZigZag vs our cost model, per layer, on every shipped ZigZag example accelerator:
``python -m benchmarks.zigzag_compare [--json PATH] [--quick] [--targets ...] [--search]``.

For each accelerator of ``archs/zigzag_examples/hardware`` (with its mapping file; ``eyeriss_like``
has none and gets ZigZag's ``default.yaml``) and each layer (ResNet-8's distinct layers, a few
ResNet-18 layers and one MobileNet depthwise layer; int8 operands, 16-bit partial sums), this:

1. writes the layer as a ZigZag workload (``mapper.to_zigzag_workload``) and runs ZigZag 3.9.1
   (``zigzag.api.get_hardware_performance_zigzag``, ``lpf_limit`` 6, latency objective): ZigZag's
   chosen mapping and its latency (``latency_total2``, cycles);
2. costs that same mapping with ``benchmarks.zigzag_latency`` (our re-implementation of ZigZag's
   latency formula: the ZigZag-compatible semantics; ``reference / zigzag`` is 1.0 when it agrees);
3. translates the mapping into our model (``mapper.evaluate.mapping_from_zigzag``) and costs it
   with our cost model (``evaluate_mapping``) on the imported accelerator as it is (``overlap:
   serial``; ``ours / zigzag``) and with ``overlap: zigzag`` (ZigZag's overlap semantics in our
   cost model, ``costmodel.overlap``; ``overlap / zigzag``, target within +-10 %);
4. says where our search space is larger than ZigZag's for that layer: loop dims our imported
   module may unroll on an array dim that ZigZag's mapping entry for the layer does not give it
   (e.g. a depthwise layer's G, which ZigZag's example files give only to Add and Pooling);
5. with ``--check-every-mapping``, compares the reference with ZigZag on every mapping ZigZag
   evaluates (latency, stall/slack, onloading, offloading), not only on its choice;
6. with ``--search``, also runs our search (``mapper.search_module``) and costs our best mapping
   in both models (slow on the 4-D arrays until the search gets a time budget);
7. with ``--recost RECORDED``, does not run ZigZag: costs the ZigZag mappings of a recorded report
   again in our model (steps 3-4 only), e.g. after a change of our cost model.

ZigZag (``pip install '.[compare]'``) must be importable; it is never imported by tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import yaml

import archs
import mapper
from archs.dims import LoopDim
from archs.zigzag import EXAMPLES_DIR, zigzag_example
from benchmarks.zigzag_latency import mapping_dict_from_explicit, zigzag_latency
from mapper.evaluate import evaluate_mapping, mapping_from_schedule, mapping_from_zigzag, zigzag_mapping_dict
from mapper.zigzag_workload import to_zigzag_workload

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("tpu_like", "edge_tpu_like", "meta_prototype", "eyeriss_like", "ascend_like", "tesla_npu_like")
MAPPING_FILES = {"meta_prototype": "meta_prototype_like", "eyeriss_like": "default"}
PRECISION = mapper.Precision(input=8, weight=8, output=8, accumulator=16)
OPERATOR_TYPE = {"conv2d": "Conv", "depthwise": "Conv", "dense": "Gemm"}
log = logging.getLogger("benchmarks.zigzag_compare")


def layers() -> list[mapper.Layer]:
    """ResNet-8's distinct conv and dense layers (MLPerf Tiny ``ic``), three ResNet-18 layers and a
    MobileNet depthwise layer, all with ``PRECISION``."""
    graph = mapper.load_graph(ROOT / "benchmarks" / "networks" / "ic.json")
    out, seen = [], set()
    for name in graph.nodes:
        layer = graph.nodes[name]["layer"]
        key = (layer.kind, tuple(sorted(layer.sizes.items())), layer.stride, layer.padding)
        if layer.kind in OPERATOR_TYPE and key not in seen:
            seen.add(key)
            out.append(mapper.Layer(f"resnet8_{name}", layer.kind, layer.sizes, layer.stride, layer.dilation,
                                    layer.padding, PRECISION))
    out += [
        mapper.conv2d("resnet18_conv2_x", input_size=(56, 56), in_channels=64, out_channels=64, kernel=3, padding="same",
                      precision=PRECISION),
        mapper.conv2d("resnet18_down4", input_size=(28, 28), in_channels=128, out_channels=256, kernel=1, stride=2,
                      padding="valid", precision=PRECISION),
        mapper.conv2d("resnet18_conv5_x", input_size=(7, 7), in_channels=512, out_channels=512, kernel=3, padding="same",
                      precision=PRECISION),
        mapper.depthwise("mobilenet_dw", input_size=(48, 48), channels=32, kernel=3, padding="same", precision=PRECISION),
    ]
    return out


def _files(target: str) -> tuple[Path, Path]:
    return zigzag_example(target), zigzag_example(MAPPING_FILES.get(target, target), "mapping")


def space_note(layer: mapper.Layer, module: Any, mapping_file: Path) -> str:
    """Where our search space is larger than ZigZag's for ``layer``: per array dim, loop dims (of size > 1)
    our module may unroll that the mapping entry ZigZag uses for the layer (by name, else operator type,
    else ``default``) does not unroll or hint there. Empty if none."""
    entries = yaml.safe_load(mapping_file.read_text())
    names = {e.get("name"): e for e in entries}
    entry = names.get(layer.name) or names.get(OPERATOR_TYPE[layer.kind]) or names["default"]
    notes = []
    for dim in module.spatial:
        fixed = (entry.get("spatial_mapping") or {}).get(dim.name)
        hint = (entry.get("spatial_mapping_hint") or {}).get(dim.name)
        if fixed is not None:
            theirs = {str(item).split(",")[0].strip() for item in fixed if int(str(item).split(",")[1]) > 1}
        elif hint:
            theirs = {str(item) for item in hint}
        else:
            theirs = {d.value for d in LoopDim}
        extra = sorted(d.value for d in dim.unroll if layer.sizes[d] > 1 and d.value not in theirs)
        if extra:
            notes.append(f"{dim.name}: ours may unroll {'/'.join(extra)} (ZigZag's '{entry['name']}' entry: "
                         f"{'/'.join(sorted(theirs)) or 'nothing'})")
    return "; ".join(notes)


def run_zigzag(layer: mapper.Layer, hardware: Path, mapping: Path, lpf: int, tmp: Path,
               every: Optional[list] = None) -> tuple[Any, float]:
    """ZigZag's best CostModelEvaluation for ``layer`` (latency objective) and the seconds it took;
    with ``every`` (a list), every CostModelEvaluation ZigZag builds is appended to it."""
    from zigzag import api
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage

    workload = tmp / f"{layer.name}.yaml"
    workload.write_text(yaml.safe_dump(to_zigzag_workload([layer]), sort_keys=False))
    original = CostModelStage.run

    def collecting(self):  # one CostModelEvaluation per temporal mapping ZigZag evaluates
        for cme, extra in original(self):
            every.append(cme)
            yield cme, extra

    if every is not None:
        CostModelStage.run = collecting
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _, _, cmes = api.get_hardware_performance_zigzag(str(workload), str(hardware), str(mapping), opt="latency",
                                                             lpf_limit=lpf, dump_folder=str(tmp / "out"),
                                                             loma_show_progress_bar=False)
    finally:
        CostModelStage.run = original
    return cmes[0][1][0][0], time.perf_counter() - start


def check_every_mapping(cmes: list, layer: mapper.Layer, hardware: Path) -> dict[str, Any]:
    """The reference against ZigZag on every evaluated mapping: latency and its stall/slack, onloading and
    offloading parts must be equal (relative 1e-9)."""
    mismatches = []
    for cme in cmes:
        links = {str(k): str(v) for k, v in cme.layer.memory_operand_links.data.items()}
        got = zigzag_latency(hardware, layer, zigzag_mapping_dict(cme), links)
        theirs = (cme.latency_total2, cme.stall_slack_comb, cme.data_onloading_cycle, cme.data_offloading_cycle)
        ours = (got.latency_cycles, got.stall_slack_cycles, got.onloading_cycles, got.offloading_cycles)
        if any(abs(a - b) > 1e-9 * max(1.0, abs(a)) for a, b in zip(theirs, ours)):
            mismatches.append({"zigzag": [float(x) for x in theirs], "reference": list(ours)})
    return {"checked": len(cmes), "mismatches": len(mismatches), "first_mismatches": mismatches[:3]}


def compare(target: str, layer: mapper.Layer, lpf: int, search: bool, tmp: Path, every: bool = False) -> dict[str, Any]:
    """One row of the report (see the module docstring)."""
    hardware, mapping_file = _files(target)
    soc = archs.from_zigzag(hardware, mapping_file)
    module = soc.modules[soc.name]  # the accelerator (tesla_npu_like.yaml names itself npu_like)
    row: dict[str, Any] = {"target": target, "layer": layer.name, "kind": layer.kind, "macs": layer.macs,
                           "space_note": space_note(layer, module, mapping_file)}
    evaluated: Optional[list] = [] if every else None
    try:
        cme, seconds = run_zigzag(layer, hardware, mapping_file, lpf, tmp, evaluated)
    except Exception as exc:  # noqa: BLE001 - ZigZag raises many types; recorded, the run goes on
        row["error"] = f"ZigZag failed: {type(exc).__name__}: {str(exc)[:200]}"
        return row
    chosen = zigzag_mapping_dict(cme)
    links = {str(k): str(v) for k, v in cme.layer.memory_operand_links.data.items()}
    row.update(zigzag_seconds=seconds, zigzag_cycles=float(cme.latency_total2), zigzag_mapping=chosen,
               zigzag_parts={"temporal": float(cme.ideal_temporal_cycle), "stall_slack": float(cme.stall_slack_comb),
                             "onloading": float(cme.data_onloading_cycle), "offloading": float(cme.data_offloading_cycle)})
    reference = zigzag_latency(hardware, layer, chosen, links)
    row["reference_cycles"] = reference.latency_cycles
    row["reference_ratio"] = reference.latency_cycles / row["zigzag_cycles"]
    if evaluated is not None:
        row["every_mapping"] = check_every_mapping(evaluated, layer, hardware)
    cost_in_ours(row, layer, module, dataclasses.replace(module, overlap="zigzag"))
    if search:
        start = time.perf_counter()
        result = mapper.search_module(layer, module)
        row["search_seconds"] = time.perf_counter() - start
        if result.schedule is None:
            row["search_error"] = str(result.reason)[:300]
        else:
            best = result.schedule
            row["search_cycles_ours"] = best.latency_cycles
            try:
                as_zigzag = mapping_dict_from_explicit(mapping_from_schedule(best, module), layer, module)
                row["search_cycles_zigzag_semantics"] = zigzag_latency(hardware, layer, as_zigzag, links).latency_cycles
            except ValueError as exc:
                row["search_zigzag_semantics_error"] = str(exc)[:300]
    return row


def cost_in_ours(row: dict[str, Any], layer: mapper.Layer, module: Any, overlapping: Any) -> None:
    """Cost ZigZag's chosen mapping of ``row`` in our model, on ``module`` (its own overlap mode,
    ``serial`` as imported: ``ours_*``) and on ``overlapping`` (the same module with ``overlap: zigzag``:
    ``overlap_*``), each with its ratio to ZigZag's latency (in place)."""
    for prefix, target in (("ours", module), ("overlap", overlapping)):
        try:
            ours = evaluate_mapping(layer, target, mapping_from_zigzag(row["zigzag_mapping"], layer, target))
        except ValueError as exc:
            row[f"{prefix}_error"] = str(exc)[:300]
            continue
        s = ours.schedule
        row.update({f"{prefix}_cycles": s.latency_cycles, f"{prefix}_ratio": s.latency_cycles / row["zigzag_cycles"],
                    f"{prefix}_feasible": ours.feasible, f"{prefix}_overflows": ours.overflows,
                    f"{prefix}_compute_bound": s.compute_bound_cycles})


def recost(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` (a recorded run) with ZigZag's recorded mappings costed again in our model (``ours_*``,
    ``overlap_*``): ZigZag is not run; its mappings and latencies are the recorded ones."""
    by_name = {layer.name: layer for layer in layers()}
    modules: dict[str, Any] = {}
    for row in report["rows"]:
        if "zigzag_mapping" not in row:
            continue
        if row["target"] not in modules:
            hardware, mapping_file = _files(row["target"])
            soc = archs.from_zigzag(hardware, mapping_file)
            modules[row["target"]] = soc.modules[soc.name]
        module = modules[row["target"]]
        for key in [k for k in row if k.startswith(("ours_", "overlap_"))]:
            del row[key]
        cost_in_ours(row, by_name[row["layer"]], module, dataclasses.replace(module, overlap="zigzag"))
    report["recosted_at_commit"] = _commit()
    return report


def summary(report: dict[str, Any]) -> str:
    """Plain-text table of a report."""
    lines = [f"zigzag_compare  zigzag {report['zigzag_version']}  lpf {report['lpf_limit']}  commit {report['commit']}",
             f"{'target':<15} {'layer':<25} {'ZigZag cyc':>11} {'reference':>11} {'ref/zz':>7} {'ours':>11} "
             f"{'ours/zz':>8} {'overlap':>11} {'ovl/zz':>7} {'zz s':>6}  notes"]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"{r['target']:<15} {r['layer']:<25} {r['error']}")
            continue
        ours = f"{r['ours_cycles']:>11.0f} {r['ours_ratio']:>8.3f}" if "ours_cycles" in r else f"{'-':>11} {'-':>8}"
        ours += f" {r['overlap_cycles']:>11.0f} {r['overlap_ratio']:>7.3f}" if "overlap_cycles" in r else f" {'-':>11} {'-':>7}"
        notes = [r["ours_error"]] if "ours_error" in r else []
        if r.get("ours_feasible") is False:
            notes.append(f"overflows in our model: {r['ours_overflows']}")
        if r.get("overlap_feasible") is False:
            notes.append(f"overflows under overlap zigzag: {r['overlap_overflows']}")
        if r["space_note"]:
            notes.append(f"larger space: {r['space_note']}")
        if "search_cycles_ours" in r:
            notes.append(f"our search: {r['search_cycles_ours']:.0f} (ours), {r.get('search_cycles_zigzag_semantics', float('nan')):.0f} "
                         f"(ZigZag semantics), {r['search_seconds']:.1f} s")
        lines.append(f"{r['target']:<15} {r['layer']:<25} {r['zigzag_cycles']:>11.0f} {r['reference_cycles']:>11.0f} "
                     f"{r['reference_ratio']:>7.3f} {ours} {r['zigzag_seconds']:>6.1f}  {'; '.join(notes)}")
    checks = [r["every_mapping"] for r in report["rows"] if "every_mapping" in r]
    if checks:
        lines.append(f"every mapping ZigZag evaluated: {sum(c['checked'] for c in checks)} checked, "
                     f"{sum(c['mismatches'] for c in checks)} where the reference differs from ZigZag")
    for key, text in (("reference_ratio", "reference / ZigZag"), ("ours_ratio", "ours (overlap: serial) / ZigZag"),
                      ("overlap_ratio", "ours (overlap: zigzag) / ZigZag")):
        values = [r[key] for r in report["rows"] if key in r]
        if values:
            within = sum(abs(v - 1) <= 0.1 for v in values)
            lines.append(f"{text}: min {min(values):.3f}, median {statistics.median(values):.3f}, max {max(values):.3f} "
                         f"over {len(values)} layer x accelerator pairs, {within} within +-10 %")
    return "\n".join(lines)


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 2 bad arguments or ZigZag missing)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zigzag_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", default="zigzag_compare.json", help="report file (default: %(default)s)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {', '.join(TARGETS)}")
    parser.add_argument("--layers", default=None, help="comma-separated layer names (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the layers and exit")
    parser.add_argument("--quick", action="store_true", help="one layer (resnet8_conv_2d_2) per accelerator")
    parser.add_argument("--search", action="store_true", help="also run our search and cost its best in both models")
    parser.add_argument("--lpf", type=int, default=6, help="ZigZag lpf_limit (default 6)")
    parser.add_argument("--check-every-mapping", action="store_true",
                        help="compare the reference with ZigZag on every mapping ZigZag evaluates, not only its choice")
    parser.add_argument("--recost", metavar="RECORDED", default=None,
                        help="do not run ZigZag: cost the mappings of a recorded report again in our model")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("zigzag", "archs.zigzag", "mapper"):
        logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.recost:
        report = recost(json.loads(Path(args.recost).read_text()))
        print(summary(report))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        return 0
    chosen = layers()
    if args.list:
        print("\n".join(f"{layer.name}: {layer.kind} {dict((d.value, v) for d, v in layer.sizes.items() if v > 1)}"
                        for layer in chosen))
        return 0
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    wanted = ["resnet8_conv_2d_2"] if args.quick else [n.strip() for n in args.layers.split(",")] if args.layers else None
    missing = [n for n in wanted or [] if n not in {layer.name for layer in chosen}]
    if unknown or missing:
        print(f"unknown target(s) {unknown} (allowed: {', '.join(TARGETS)}) or layer(s) {missing} (see --list)", file=sys.stderr)
        return 2
    if wanted:
        chosen = [layer for layer in chosen if layer.name in wanted]
    try:
        import zigzag
    except ImportError:
        print("zigzag-dse is not importable: pip install '.[compare]'", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"benchmark": "zigzag_compare", "zigzag_version": getattr(zigzag, "__version__", "?"),
                              "lpf_limit": args.lpf, "commit": _commit(), "python": platform.python_version(),
                              "examples": str(EXAMPLES_DIR), "precision": PRECISION.__dict__, "rows": []}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zigzag_compare_") as tmp:
        for target in targets:
            for layer in chosen:
                try:
                    row = compare(target, layer, args.lpf, args.search, Path(tmp), args.check_every_mapping)
                except Exception as exc:  # noqa: BLE001 - recorded in the row; the other rows still run
                    row = {"target": target, "layer": layer.name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                report["rows"].append(row)
                Path(args.json).write_text(json.dumps(report, indent=1) + "\n")  # so far, in case of an interruption
                print(f"{target} {layer.name}: ZigZag {row.get('zigzag_cycles', row.get('error'))}, reference "
                      f"{row.get('reference_cycles')}, ours {row.get('ours_cycles', row.get('ours_error'))}", file=sys.stderr,
                      flush=True)
    print(summary(report))
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
