"""Tables, JSON, CSV and plots of ``python -m benchmarks.mlperf_tiny``.

Units: latency in cycles at the target clock and in ms (cycles / (clock_mhz * 1e3)), energy in pJ
(µJ in the printed table), times in seconds. Speedups are latency ratios (other / best).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from benchmarks._mlperf_common import MODELS, STRATEGIES, Case, Target, ordered
from benchmarks._mlperf_memory import memory_json, memory_table
from benchmarks._mlperf_plots import module_colours, plot_model, plot_target
from mapper.schedule import Schedule

SCHEMA_VERSION = 1
#: MATCH paper (arXiv 2410.08855) headline results: published figures, not measured by this benchmark.
#: ``baseline`` is the strategy of ours that plays the compared tool's role.
PUBLISHED: tuple[dict[str, Any], ...] = (
    {"target": "diana", "baseline": "host_only", "tool": "plain TVM", "claim": "up to 60.88x lower latency",
     "speedup": 60.88},
    {"target": "diana", "baseline": "accelerator_first", "tool": "HTVM", "claim": "16.94 % lower latency",
     "speedup": round(1 / (1 - 0.1694), 4)},
    {"target": "gap9", "baseline": "accelerator_first", "tool": "DORY", "claim": "2.15x lower latency", "speedup": 2.15},
)
PUBLISHED_SOURCE = "MATCH paper (arXiv 2410.08855), published figures, not measured here"
RESULTS_COLUMNS = ("model", "target", "strategy", "clock_mhz", "latency_cycles", "latency_ms", "energy_pj", "mapper_seconds",
                   "verified", "best_speedup")
LAYERS_COLUMNS = ("model", "target", "strategy", "layer", "kind", "module", "macs", "latency_cycles", "host_padding_cycles",
                  "latency_ms", "energy_pj", "host_padding_energy_pj", "utilization", "share")


def speedup(case: Case, baseline: str) -> float:
    """Latency of ``baseline`` over that of ``best`` (how many times faster the model-aware strategy is)."""
    best = case.networks["best"].total_latency_cycles
    return case.networks[baseline].total_latency_cycles / best if best else float("nan")


def _verified(case: Case, strategy: str) -> Optional[bool]:
    """Only the ``best`` mapping is compiled and verified; None for the others and when skipped."""
    if strategy != "best" or case.verification is None:
        return None
    return case.verification.passed


# --------------------------------------------------------------------------- JSON and CSV


def _layer_json(name: str, schedule: Schedule) -> dict[str, Any]:
    """One layer of a result: ``latency_cycles`` includes ``host_padding_cycles``, the host's share."""
    return {"name": name, "module": schedule.module, "latency_cycles": schedule.latency_cycles,
            "host_padding_cycles": schedule.host_padding_cycles, "macs": schedule.macs}


def results_json(cases: Sequence[Case], models: Sequence[str], targets: Sequence[Target], timing: dict[str, float],
                 meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: ``results`` (one object per model x target x strategy, keys exactly
    model/target/strategy/latency_cycles/energy_pj/mapper_seconds/verified/layers/per_module) plus
    context. A layer's ``latency_cycles`` includes its ``host_padding_cycles`` (run on the host);
    ``per_module`` books those to the host (``NetworkSchedule.per_module``)."""
    results = []
    for case in cases:
        for strategy in STRATEGIES:
            network = case.networks[strategy]
            results.append({
                "model": case.model,
                "target": case.target.label,
                "strategy": strategy,
                "latency_cycles": network.total_latency_cycles,
                "energy_pj": network.total_energy_pj,
                "mapper_seconds": network.search_seconds,
                "verified": _verified(case, strategy),
                "layers": [_layer_json(name, network.schedules[name]) for name in ordered(network.schedules)],
                "per_module": network.per_module(),
            })
    return {
        "benchmark": "mlperf_tiny",
        "schema_version": SCHEMA_VERSION,
        "units": {"latency_cycles": "cycles at the target clock", "energy_pj": "pJ", "mapper_seconds": "s (wall)"},
        "results": results,
        "speedups": [{"model": c.model, "target": c.target.label, "best_over_host_only": speedup(c, "host_only"),
                      "best_over_accelerator_first": speedup(c, "accelerator_first"),
                      "latency_reduction_vs_accelerator_first_pct": 100 * (1 - 1 / speedup(c, "accelerator_first"))}
                     for c in cases],
        "published": {"source": PUBLISHED_SOURCE, "figures": list(PUBLISHED)},
        "memory": memory_json(cases),
        "verification": [{"model": c.model, "target": c.target.label, **c.verification.to_dict()} for c in cases
                         if c.verification is not None],
        "models": {m: {"file": MODELS[m][0], "task": MODELS[m][1], "network": MODELS[m][2]} for m in models},
        "targets": {t.label: {"soc": t.soc.name, "clock_mhz": t.soc.clock_mhz, "host": t.soc.host, "modules": list(t.soc.modules),
                              "source": t.source} for t in targets},
        "timing_seconds": timing,
        "meta": meta,
    }


def _results_rows(cases: Sequence[Case]) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        soc = case.target.soc
        for strategy in STRATEGIES:
            network = case.networks[strategy]
            verified = _verified(case, strategy)
            rows.append({"model": case.model, "target": case.target.label, "strategy": strategy, "clock_mhz": soc.clock_mhz,
                         "latency_cycles": network.total_latency_cycles, "latency_ms": soc.cycles_to_ms(network.total_latency_cycles),
                         "energy_pj": network.total_energy_pj, "mapper_seconds": network.search_seconds,
                         "verified": "" if verified is None else str(verified).lower(), "best_speedup": speedup(case, strategy)})
    return rows


def _layer_rows(cases: Sequence[Case]) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        soc = case.target.soc
        for strategy in STRATEGIES:
            network = case.networks[strategy]
            total = network.total_latency_cycles
            for name in ordered(network.schedules):
                s = network.schedules[name]
                rows.append({"model": case.model, "target": case.target.label, "strategy": strategy, "layer": name, "kind": s.kind,
                             "module": s.module, "macs": s.macs, "latency_cycles": s.latency_cycles,
                             "host_padding_cycles": s.host_padding_cycles, "latency_ms": soc.cycles_to_ms(s.latency_cycles),
                             "energy_pj": s.energy_pj, "host_padding_energy_pj": s.host_padding_energy_pj,
                             "utilization": s.utilization, "share": s.latency_cycles / total if total else 0.0})
    return rows


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_json(data: dict[str, Any], out: Path, json_path: Optional[Path] = None) -> list[Path]:
    """Write ``out``/results.json (and the same document to ``json_path``); returns the paths written."""
    text = json.dumps(data, indent=1)
    written = [out / "results.json"]
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        written.append(json_path)
    for path in written:
        path.write_text(text)
    return written


def write_tables_and_plots(cases: Sequence[Case], out: Path, plots: bool = True) -> list[Path]:
    """Write results.csv, layers.csv and (if ``plots``) the PNG plots to ``out``; returns the paths written."""
    written = [out / "results.csv", out / "layers.csv"]
    _write_csv(written[0], RESULTS_COLUMNS, _results_rows(cases))
    _write_csv(written[1], LAYERS_COLUMNS, _layer_rows(cases))
    if plots:
        colours = module_colours(cases)  # one colour per module name across all plots
        for model in dict.fromkeys(c.model for c in cases):
            written.append(plot_model([c for c in cases if c.model == model], out / f"{model}_strategies.png", colours))
        for label in dict.fromkeys(c.target.label for c in cases):
            written.append(plot_target([c for c in cases if c.target.label == label], out / f"{label}_layers.png", colours))
    return written


# --------------------------------------------------------------------------- printed report


def _verification_text(case: Case) -> str:
    v = case.verification
    if v is None:
        return "skipped (--no-verify)"
    if not v.passed:
        return f"FAILED: {'; '.join(v.failures[:3])}{' ...' if len(v.failures) > 3 else ''}"
    return (f"passed ({v.offloaded_layers} offloaded layers bit-exact vs LiteRT on {v.inputs} inputs, bytes moved = predicted; "
            f"{v.host_layers} on the host; end-to-end max |diff| {v.output_max_abs_diff} LSB; compile {v.compile_seconds:.1f} s)")


def _table(rows: list[list[str]], headers: Sequence[str], align: str, indent: str = "") -> str:
    """A plain-text table (``tabulate``, column widths from the content); ``align`` has one letter per
    column: l(eft) or r(ight)."""
    from tabulate import tabulate

    text = tabulate(rows, headers=list(headers), tablefmt="simple", disable_numparse=True,
                    colalign=["left" if a == "l" else "right" for a in align])
    return "\n".join(indent + line for line in text.splitlines())


def summary_table(cases: Sequence[Case]) -> str:
    """Model x target x strategy: latency (cycles, ms), energy (µJ), mapper time, verification."""
    rows = []
    for case in cases:
        soc = case.target.soc
        for strategy in STRATEGIES:
            n = case.networks[strategy]
            verified = _verified(case, strategy)
            rows.append([case.model, case.target.label, strategy, f"{n.total_latency_cycles:,.0f}",
                         f"{soc.cycles_to_ms(n.total_latency_cycles):.3f}", f"{n.total_energy_pj / 1e6:.2f}",
                         f"{n.search_seconds:.2f}", "-" if verified is None else ("yes" if verified else "FAILED")])
    return _table(rows, ["model", "target", "strategy", "latency cycles", "ms", "energy uJ", "mapper s", "verified"], "lllrrrrl")


def _published_text(target: str, baseline: str) -> str:
    """The MATCH paper's figure for ``target`` against the tool ``baseline`` stands for ("-": none)."""
    for fig in PUBLISHED:
        if fig["target"] == target and fig["baseline"] == baseline:
            return f"{fig['claim'].replace(' latency', '')} ({fig['tool']})"
    return "-"


def speedup_table(cases: Sequence[Case]) -> str:
    """Speedups of ``best`` (ours, predicted) beside the MATCH paper's published ratios (not ours)."""
    rows = []
    for target in dict.fromkeys(c.target.label for c in cases):
        group = [c for c in cases if c.target.label == target]
        ratios = [(c.model, speedup(c, "host_only"), speedup(c, "accelerator_first")) for c in group]
        if len(group) > 1:
            ratios.append(("max", max(r[1] for r in ratios), max(r[2] for r in ratios)))
        for model, over_host, over_first in ratios:
            rows.append([model, target, f"{over_host:.2f}x", f"{over_first:.3f}x ({100 * (1 - 1 / over_first):.2f} % lower)",
                         _published_text(target, "host_only"), _published_text(target, "accelerator_first")])
    lines = [_table(rows, ["model", "target", "OURS best vs host_only", "OURS best vs accelerator_first",
                           "PUBLISHED vs plain TVM", "PUBLISHED vs HTVM / DORY"], "llrrrr")]
    lines.append(f"PUBLISHED = {PUBLISHED_SOURCE}: " + "; ".join(f"{f['target']}: {f['claim']} than {f['tool']}" for f in PUBLISHED)
                 + " (repeated on each row of its target).")
    lines.append("OURS = this mapper's predicted cycles; host_only plays plain TVM, accelerator_first plays HTVM (DIANA) / DORY (GAP9).")
    return "\n".join(lines)


def layer_table(case: Case) -> str:
    """Per-layer breakdown of one model on one target: the three strategies' modules and cycles;
    for ``best`` the cycles on its module and, apart, the host's padding of the layer's input
    (``host pad``), the PE-array utilisation and the layer's share of the total latency. Per module,
    the rows add up to the ``best by module`` totals (host padding counts for the host)."""
    soc, nets = case.target.soc, case.networks
    mapper_s = ", ".join(f"{s} {nets[s].search_seconds:.2f}" for s in STRATEGIES)
    lines = [f"{case.model} on {case.target.label} ({soc.clock_mhz:g} MHz, host {soc.host}); mapper search s: {mapper_s}",
             f"  verification: {_verification_text(case)}"]
    best_total = nets["best"].total_latency_cycles
    rows = []
    for name in ordered(nets["best"].schedules):
        host, first, best = (nets[s].schedules[name] for s in STRATEGIES)
        rows.append([name, best.kind, f"{best.macs:,}", f"{host.latency_cycles:,.0f}", first.module, f"{first.latency_cycles:,.0f}",
                     best.module, f"{best.latency_cycles - best.host_padding_cycles:,.0f}", f"{best.host_padding_cycles:,.0f}",
                     f"{best.utilization:.2f}", f"{100 * best.latency_cycles / best_total if best_total else 0:.1f}%"])
    padding = sum(s.host_padding_cycles for s in nets["best"].schedules.values())
    rows.append(["total", "", f"{nets['best'].total_macs:,}", f"{nets['host_only'].total_latency_cycles:,.0f}", "",
                 f"{nets['accelerator_first'].total_latency_cycles:,.0f}", "", f"{best_total - padding:,.0f}", f"{padding:,.0f}",
                 "", "100.0%"])
    lines.append(_table(rows, ["layer", "kind", "MACs", "host_only", "acc_first on", "acc_first cycles", "best on", "best cycles",
                               "host pad", "util", "share"], "llrrlrlrrrr", indent="  "))
    per_module = ", ".join(f"{m} {row['latency_cycles']:,.0f} cycles ({int(row['layers'])} layer{'' if row['layers'] == 1 else 's'})"
                           for m, row in nets["best"].per_module().items())
    lines.append(f"  best by module (host padding counts for the host): {per_module}; total {best_total:,.0f} cycles")
    return "\n".join(lines)


def format_report(cases: Sequence[Case], timing: dict[str, float]) -> str:
    """The whole printed report: summary, speedups, per-layer breakdowns, times."""
    parts = ["MLPerf Tiny int8 models: predicted latency and energy per inference (mapper cost model, recognised layers: "
             "conv/depthwise/dense/add/pool; ms at the target clock)", summary_table(cases), "",
             "Speedup of the model-aware strategy (best)", speedup_table(cases), "",
             "Static memory plan of the best mapping (outermost memory: weights + activation arena placed by liveness, bytes)",
             memory_table(cases, _table), "", "Per-layer breakdown"]
    for case in cases:
        parts += [layer_table(case), ""]
    parts.append("Times (wall, s): " + ", ".join(f"{k.replace('_seconds', '')} {v:.1f}" for k, v in timing.items()))
    return "\n".join(parts)
