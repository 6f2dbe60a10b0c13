"""``match-mapper map MODEL --arch ARCH``: a per-layer table in the style of Arm Vela's
``--verbose-performance`` (module, spatial unrolling, loop order with tile levels, kernel tile,
cycles, energy, utilisation, limiting bound, bytes used per memory, optimality), totals per module;
``--json`` / ``--csv`` write the same rows."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from tabulate import tabulate

import mapper
from explorer.inputs import dump_json, load_arch, load_model
from explorer.mapping import failures, layer_rows, map_graph, module_totals


def add_parser(sub: Any) -> None:
    p = sub.add_parser("map", help="map a model on an architecture; per-layer table", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="MODEL: .tflite, .onnx, ZigZag workload .yaml, layer-graph .json, or kws|vww|ic|ad")
    p.add_argument("--arch", required=True, help="ARCH: shipped name, our hardware YAML, or a ZigZag accelerator YAML")
    p.add_argument("--zigzag-mapping", help="ZigZag mapping YAML for a ZigZag accelerator ARCH")
    add_mapping_options(p)
    p.add_argument("--json", metavar="F", help="write the schedules, rows and totals as JSON")
    p.add_argument("--csv", metavar="F", help="write the per-layer rows as CSV")
    p.set_defaults(run=run)


def add_mapping_options(p: argparse.ArgumentParser) -> None:
    """``--objective``, ``--policy``, ``--modules``, ``--time-budget`` (shared by map and compare)."""
    p.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency")
    p.add_argument("--policy", choices=mapper.POLICIES, default="best")
    p.add_argument("--modules", type=lambda s: [m for m in s.split(",") if m], help="comma-separated modules to use (e.g. the host only)")
    p.add_argument("--time-budget", type=float, metavar="S", help="search time budget per network in seconds (when the mapper supports it)")


def fmt_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Numbers formatted for the terminal (thousands separators, 2-decimal utilisation and shares)."""
    out = []
    for row in rows:
        row = dict(row)
        for key in ("cycles", "energy_pj", "host_padding_cycles"):
            if key in row:
                row[key] = f"{row[key]:,.0f}"
        for key in ("utilization", "share"):
            if key in row:
                row[key] = f"{row[key]:.2f}"
        out.append(row)
    return out


def run(args: argparse.Namespace) -> int:
    soc = load_arch(args.arch, args.zigzag_mapping)
    graph = load_model(args.model)
    result = map_graph(graph, soc, args.objective, args.policy, args.modules, args.time_budget)
    rows = layer_rows(result, soc)
    totals = module_totals(result, soc)
    shown = [{k: v for k, v in r.items() if k != "host_padding_cycles"} for r in rows]
    print(f"{args.model} on {soc.name} ({soc.clock_mhz:g} MHz), objective {args.objective}, policy {args.policy}")
    print(tabulate(fmt_rows(shown), headers="keys", disable_numparse=True))
    print()
    print(tabulate(fmt_rows(totals), headers="keys", disable_numparse=True))
    print(f"total: {result.total_latency_cycles:,.0f} cycles = {soc.cycles_to_ms(result.total_latency_cycles):.4f} ms at "
          f"{soc.clock_mhz:g} MHz, {result.total_energy_pj / 1e6:.4f} uJ, mapped in {result.search_seconds:.2f} s")
    padded = [r["layer"] for r in rows if r["host_padding_cycles"]]
    if padded:
        print(f"host pads the input of {len(padded)} layer(s) first (cycles included): {', '.join(padded)}")
    skipped = graph.graph.get("skipped") or graph.graph.get("host_ops") or []
    if skipped:
        print(f"{len(skipped)} op(s) of the model are not layers the mapper costs (they stay on the host, uncosted)")
    failed = failures(result)
    for layer, reason in failed.items():
        print(f"NOT MAPPED {layer}: {reason}")
    if args.json:
        dump_json({"model": args.model, "arch": soc.name, "rows": rows, "totals": totals, "failures": failed,
                   "network": result.to_dict()}, args.json)
    if args.csv:
        with Path(args.csv).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["layer"])
            writer.writeheader()
            writer.writerows(rows)
    return 0
