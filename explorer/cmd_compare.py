"""``match-mapper compare MODEL --arch A --arch B ...``: the same model on several architectures,
side by side (latency in cycles and in ms at each SoC's clock, energy, split per module) and a
plot (``--plot``, PNG): stacked bars of latency (ms) and energy (uJ) per module."""

from __future__ import annotations

import argparse
from typing import Any

from tabulate import tabulate

from explorer.cmd_map import add_mapping_options
from explorer.inputs import InputError, dump_json, load_arch, load_model
from explorer.mapping import failures, map_graph


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="one model on several architectures, side by side, with a plot", description=__doc__)
    p.add_argument("model", help="MODEL: .tflite, .onnx, ZigZag workload .yaml, layer-graph .json, or kws|vww|ic|ad")
    p.add_argument("--arch", action="append", required=True, help="ARCH (repeat: at least two)")
    add_mapping_options(p)
    p.add_argument("--plot", "--out", dest="plot", default="compare.png", help="PNG to write (default compare.png)")
    p.add_argument("--json", metavar="F", help="write the totals as JSON")
    p.set_defaults(run=run)


def compare_rows(model: str, arch_names: list[str], objective: str, policy: str, modules: Any, budget: Any) -> list[dict[str, Any]]:
    """One row per architecture: totals and per-module latency (cycles) and energy (pJ)."""
    graph = load_model(model)
    rows = []
    for name in arch_names:
        soc = load_arch(name)
        result = map_graph(graph, soc, objective, policy, modules, budget)
        rows.append({"arch": name, "soc": soc.name, "clock_mhz": soc.clock_mhz, "latency_cycles": result.total_latency_cycles,
                     "latency_ms": soc.cycles_to_ms(result.total_latency_cycles), "energy_pj": result.total_energy_pj,
                     "per_module": result.per_module(), "failures": failures(result), "search_seconds": result.search_seconds})
    return rows


def plot_compare(rows: list[dict[str, Any]], model: str, path: str) -> None:
    """Stacked bars per architecture: latency (ms) and energy (uJ) split by module."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modules = sorted({m for r in rows for m in r["per_module"]})
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(rows), 4))
    labels = [r["arch"] for r in rows]
    for ax, key, scale, unit in ((axes[0], "latency_cycles", None, "latency (ms)"), (axes[1], "energy_pj", 1e6, "energy (uJ)")):
        bottom = [0.0] * len(rows)
        for module in modules:
            values = []
            for r in rows:
                v = r["per_module"].get(module, {}).get(key, 0.0)
                values.append(v / (r["clock_mhz"] * 1e3) if scale is None else v / scale)
            ax.bar(labels, values, bottom=bottom, label=module)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", rotation=20)
    axes[0].legend(title="module", fontsize=8)
    fig.suptitle(f"{model}: predicted latency and energy per architecture")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if len(args.arch) < 2:
        raise InputError("--arch: give at least two architectures to compare")
    rows = compare_rows(args.model, args.arch, args.objective, args.policy, args.modules, args.time_budget)
    best = min(r["latency_ms"] for r in rows)
    table = []
    for r in rows:
        split = " ".join(f"{m}={v['latency_cycles'] / (r['latency_cycles'] or 1):.0%}" for m, v in r["per_module"].items())
        table.append({"arch": r["arch"], "cycles": f"{r['latency_cycles']:,.0f}", "MHz": f"{r['clock_mhz']:g}",
                      "ms": f"{r['latency_ms']:.4f}", "uJ": f"{r['energy_pj'] / 1e6:.4f}",
                      "vs fastest (ms)": f"{r['latency_ms'] / best:.2f}x" if best else "-",
                      "latency per module": split, "not mapped": len(r["failures"])})
    print(f"{args.model}, objective {args.objective}, policy {args.policy}")
    print(tabulate(table, headers="keys", disable_numparse=True))
    plot_compare(rows, args.model, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        dump_json(rows, args.json)
    return 0
