"""PNG plots of ``python -m benchmarks.mlperf_tiny`` (matplotlib, Agg canvas, no pyplot state).

- ``plot_model``: per model, one panel per target, a bar per strategy stacked by module (latency in
  ms at the target clock), each bar labelled with its total and its ratio to ``best``.
- ``plot_target``: per target, one panel per model, the ``best`` strategy's per-layer latency
  (cycles, log scale) coloured by module, with the ``accelerator_first`` latency of each layer as a
  black outline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from benchmarks._mlperf_report import HOST_COLOUR, STRATEGIES, ordered

if TYPE_CHECKING:  # pragma: no cover
    from benchmarks.mlperf_tiny import Case

_ACCELERATOR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def module_colours(cases: Sequence["Case"]) -> dict[str, str]:
    """A colour per module name: hosts grey, accelerators in order of first appearance."""
    colours: dict[str, str] = {}
    for case in cases:
        for name, module in case.target.soc.modules.items():
            if name not in colours:
                colours[name] = HOST_COLOUR if module.is_host else _ACCELERATOR_COLOURS[
                    sum(c != HOST_COLOUR for c in colours.values()) % len(_ACCELERATOR_COLOURS)]
    return colours


def plot_model(cases: Sequence["Case"], path: Path, colours: Optional[dict[str, str]] = None) -> Path:
    """Stacked bars of one model's latency by module, per strategy and target; returns ``path``.

    Linear scale fitted to the accelerated strategies; the host-only bar (typically 10-100x taller)
    is cut at the top, hatched, and labelled with its value.
    """
    colours = colours or module_colours(cases)
    figure = _figure(4.2 * len(cases) + 0.6, 4.4)
    axes = figure.subplots(1, len(cases), squeeze=False)[0]
    for ax, case in zip(axes, cases):
        soc = case.target.soc
        totals = {s: soc.cycles_to_ms(case.networks[s].total_latency_cycles) for s in STRATEGIES}
        top = 1.3 * max(totals["accelerator_first"], totals["best"]) or 1.0
        for x, strategy in enumerate(STRATEGIES):
            per_module = case.networks[strategy].per_module()
            bottom = 0.0
            for module in soc.modules:
                height = soc.cycles_to_ms(per_module.get(module, {}).get("latency_cycles", 0.0))
                if height <= 0:
                    continue
                cut = bottom + height > top
                ax.bar(x, min(height, top - bottom), bottom=bottom, color=colours[module], width=0.6, edgecolor="white",
                       linewidth=0.5, hatch="//" if cut else None)
                bottom += height
            ratio = "" if strategy == "best" else f"\n{totals[strategy] / totals['best']:.2f}x best" if totals["best"] else ""
            off = " (cut)" if totals[strategy] > top else ""
            ax.annotate(f"{totals[strategy]:.3g} ms{off}{ratio}", (x, min(totals[strategy], top)), textcoords="offset points",
                        xytext=(0, -24 if off else 3), ha="center", va="bottom", fontsize=8,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8} if off else None)
        ax.set_ylim(0, top * 1.15)
        ax.set_xticks(range(len(STRATEGIES)), ["host only", "accelerator\nfirst", "best\n(model-aware)"], fontsize=8)
        ax.set_ylabel(f"latency, ms at {soc.clock_mhz:g} MHz")
        ax.set_title(f"{case.model} on {case.target.label}", fontsize=10)
        handles = [_patch(colours[m], m + (" (host)" if soc.modules[m].is_host else "")) for m in soc.modules]
        ax.legend(handles=handles, fontsize=7, loc="upper right", title="module", title_fontsize=7)
    figure.suptitle(f"{cases[0].model}: predicted latency by module for the three strategies", fontsize=11)
    figure.savefig(path)
    return path


def plot_target(cases: Sequence["Case"], path: Path, colours: Optional[dict[str, str]] = None) -> Path:
    """Per-layer latency of the ``best`` strategy on one target, coloured by module; returns ``path``."""
    colours = colours or module_colours(cases)
    widest = max(len(c.networks["best"].schedules) for c in cases)
    figure = _figure(max(7.0, 0.32 * widest + 2.0), 2.9 * len(cases) + 0.4)
    axes = figure.subplots(len(cases), 1, squeeze=False)[:, 0]
    soc = cases[0].target.soc
    for ax, case in zip(axes, cases):
        best, first = case.networks["best"], case.networks["accelerator_first"]
        names = ordered(best.schedules)
        x = range(len(names))
        ax.bar(x, [best.schedules[n].latency_cycles for n in names], color=[colours[best.schedules[n].module] for n in names], width=0.7)
        ax.bar(x, [first.schedules[n].latency_cycles for n in names], fill=False, edgecolor="black", linewidth=0.7, width=0.7)
        ax.set_yscale("log")
        ax.set_xticks(list(x), names, rotation=90, fontsize=7)
        ax.set_xlim(-0.6, widest - 0.4)
        ax.set_ylabel("cycles (log)")
        ax.set_title(f"{case.model}: best {soc.cycles_to_ms(best.total_latency_cycles):.3f} ms, accelerator first "
                     f"{soc.cycles_to_ms(first.total_latency_cycles):.3f} ms", fontsize=9)
    handles = [_patch(colours[m], m + (" (host)" if soc.modules[m].is_host else "")) for m in soc.modules]
    handles.append(_patch("none", "accelerator_first", edge="black"))
    axes[0].legend(handles=handles, fontsize=7, loc="upper right", ncols=len(handles))
    figure.suptitle(f"{cases[0].target.label} ({soc.clock_mhz:g} MHz): per-layer latency of the model-aware mapping, by module",
                    fontsize=11)
    figure.savefig(path)
    return path


def _patch(colour: str, label: str, edge: str = "none"):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor=edge, label=label)
