"""PNG plots of ``python -m benchmarks.mlperf_tiny`` (matplotlib, Agg canvas, no pyplot state).

- ``plot_model``: per model, one panel per target, a bar per strategy stacked by module (latency in
  ms at the target clock, log axis from a power of 10), each bar labelled with its total and its
  ratio to ``best``.
- ``plot_target``: per target, one panel per model, the ``best`` strategy's per-layer latency
  (cycles, log axis from a labelled power of 10) coloured by module, with the ``accelerator_first``
  latency of each layer as a black outline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from benchmarks._mlperf_common import HOST_COLOUR, STRATEGIES, Case, ordered

_ACCELERATOR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def module_colours(cases: Sequence[Case]) -> dict[str, str]:
    """A colour per module name: hosts grey, accelerators in order of first appearance."""
    colours: dict[str, str] = {}
    for case in cases:
        for name, module in case.target.soc.modules.items():
            if name not in colours:
                colours[name] = HOST_COLOUR if module.is_host else _ACCELERATOR_COLOURS[
                    sum(c != HOST_COLOUR for c in colours.values()) % len(_ACCELERATOR_COLOURS)]
    return colours


def log_floor(values: Sequence[float]) -> float:
    """The largest power of 10 at or below half the smallest positive value (1.0 if none): where a log
    axis starts, so that its first labelled tick is the axis' bottom and the shortest bar still
    rises at least 2x above it."""
    positive = [v for v in values if v > 0]
    return 10.0 ** math.floor(math.log10(min(positive) / 2)) if positive else 1.0


def model_figure(cases: Sequence[Case], colours: Optional[dict[str, str]] = None):
    """Figure of ``plot_model``: per target a bar per strategy, stacked by module, on a log latency
    axis starting at a power of 10 (so a 100x faster strategy is no sliver), each bar annotated with
    its total and its ratio to ``best``. On a log axis the stacked segments show which modules run,
    not their exact shares (those are in the per-layer table)."""
    colours = colours or module_colours(cases)
    figure = _figure(4.2 * len(cases) + 0.6, 4.4)
    axes = figure.subplots(1, len(cases), squeeze=False)[0]
    for ax, case in zip(axes, cases):
        soc = case.target.soc
        totals = {s: soc.cycles_to_ms(case.networks[s].total_latency_cycles) for s in STRATEGIES}
        floor = log_floor(list(totals.values()))
        ax.set_yscale("log", nonpositive="clip")
        for x, strategy in enumerate(STRATEGIES):
            per_module = case.networks[strategy].per_module()
            bottom = 0.0  # the log axis clips the bar's foot at the floor
            for module in soc.modules:
                height = soc.cycles_to_ms(per_module.get(module, {}).get("latency_cycles", 0.0))
                if height <= 0:
                    continue
                ax.bar(x, height, bottom=bottom, color=colours[module], width=0.6, edgecolor="white", linewidth=0.5)
                bottom += height
            ratio = "" if strategy == "best" else f"\n{totals[strategy] / totals['best']:.2f}x best" if totals["best"] else ""
            ax.annotate(f"{totals[strategy]:.3g} ms{ratio}", (x, totals[strategy]), textcoords="offset points",
                        xytext=(0, 3), ha="center", va="bottom", fontsize=8)
        ax.set_ylim(floor, 10 ** (math.log10(max(totals.values())) + 0.6))
        ax.set_xticks(range(len(STRATEGIES)), ["host only", "accelerator\nfirst", "best\n(model-aware)"], fontsize=8)
        ax.set_ylabel(f"latency, ms at {soc.clock_mhz:g} MHz (log; axis from {floor:g})")
        ax.set_title(f"{case.model} on {case.target.label}", fontsize=10)
        handles = [_patch(colours[m], m + (" (host)" if soc.modules[m].is_host else "")) for m in soc.modules]
        ax.legend(handles=handles, fontsize=7, loc="upper right", title="module", title_fontsize=7)
    figure.suptitle(f"{cases[0].model}: predicted latency by module for the three strategies", fontsize=11)
    return figure


def plot_model(cases: Sequence[Case], path: Path, colours: Optional[dict[str, str]] = None) -> Path:
    """Write ``model_figure`` to ``path`` (PNG); returns ``path``."""
    model_figure(cases, colours).savefig(path)
    return path


def target_figure(cases: Sequence[Case], colours: Optional[dict[str, str]] = None):
    """Figure of ``plot_target``: per model the ``best`` per-layer latency (cycles, log axis starting
    at a labelled power of 10), coloured by module, ``accelerator_first`` as black outlines."""
    colours = colours or module_colours(cases)
    widest = max(len(c.networks["best"].schedules) for c in cases)
    figure = _figure(max(7.0, 0.32 * widest + 2.0), 2.9 * len(cases) + 0.4)
    axes = figure.subplots(len(cases), 1, squeeze=False)[:, 0]
    soc = cases[0].target.soc
    for ax, case in zip(axes, cases):
        best, first = case.networks["best"], case.networks["accelerator_first"]
        names = ordered(best.schedules)
        x = range(len(names))
        values = [best.schedules[n].latency_cycles for n in names] + [first.schedules[n].latency_cycles for n in names]
        floor = log_floor(values)
        ax.set_yscale("log", nonpositive="clip")
        ax.bar(x, [best.schedules[n].latency_cycles for n in names],  # feet clipped at the floor
               color=[colours[best.schedules[n].module] for n in names], width=0.7)
        ax.bar(x, [first.schedules[n].latency_cycles for n in names], fill=False, edgecolor="black",
               linewidth=0.7, width=0.7)
        ax.set_ylim(floor, 10 ** (math.log10(max(values)) + 0.5))
        ax.set_xticks(list(x), names, rotation=90, fontsize=7)
        ax.set_xlim(-0.6, widest - 0.4)
        ax.set_ylabel(f"cycles (log, from {floor:g})")
        ax.set_title(f"{case.model}: best {soc.cycles_to_ms(best.total_latency_cycles):.3f} ms, accelerator first "
                     f"{soc.cycles_to_ms(first.total_latency_cycles):.3f} ms", fontsize=9)
    handles = [_patch(colours[m], m + (" (host)" if soc.modules[m].is_host else "")) for m in soc.modules]
    handles.append(_patch("none", "accelerator_first", edge="black"))
    axes[0].legend(handles=handles, fontsize=7, loc="upper right", ncols=len(handles))
    figure.suptitle(f"{cases[0].target.label} ({soc.clock_mhz:g} MHz): per-layer latency of the model-aware mapping, by module",
                    fontsize=11)
    return figure


def plot_target(cases: Sequence[Case], path: Path, colours: Optional[dict[str, str]] = None) -> Path:
    """Write ``target_figure`` to ``path`` (PNG); returns ``path``."""
    target_figure(cases, colours).savefig(path)
    return path


def _patch(colour: str, label: str, edge: str = "none"):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor=edge, label=label)
