"""Sweep plots (matplotlib, Agg): ``pareto.png`` (latency vs energy, one colour per network, each
network's Pareto front marked) and ``sweep_<param>.png`` (per varied parameter: the best latency and
energy over the other parameters at each of its values, one line per network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from explorer.pareto import pareto_front


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _numeric(values: Sequence[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def _networks(rows: Sequence[dict[str, str]]) -> list[str]:
    return list(dict.fromkeys(r["network"] for r in rows))


def plot_pareto(rows: Sequence[dict[str, str]], path: Path, title: str = "") -> None:
    """Latency (ms) vs energy (uJ) of every row, log-log, front per network joined and circled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, net in enumerate(_networks(rows)):
        mine = [r for r in rows if r["network"] == net and r["latency_ms"] != ""]
        xs = [float(r["latency_ms"]) for r in mine]
        ys = [float(r["energy_pj"]) / 1e6 for r in mine]
        colour = f"C{i % 10}"
        ax.scatter(xs, ys, s=14, color=colour, alpha=0.5, label=f"{net} ({len(mine)} points)")
        front = pareto_front(xs, ys)
        ax.plot([xs[j] for j in front], [ys[j] for j in front], "-o", color=colour, markerfacecolor="none", markersize=9,
                linewidth=1.2, label=f"{net} Pareto front ({len(front)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency (ms, predicted)")
    ax.set_ylabel("energy (uJ, predicted)")
    ax.set_title(title or "sweep: latency vs energy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_parameter(rows: Sequence[dict[str, str]], param: str, path: Path) -> None:
    """At each value of ``param``: the lowest latency (ms) and energy (uJ) over the other parameters' values."""
    plt = _pyplot()
    values = list(dict.fromkeys(r[param] for r in rows))
    numeric = _numeric(values)
    if numeric:
        values.sort(key=float)
    xs = [float(v) for v in values] if numeric else list(range(len(values)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, net in enumerate(_networks(rows)):
        for ax, key, scale in ((axes[0], "latency_ms", 1.0), (axes[1], "energy_pj", 1e6)):
            best = []
            for v in values:
                mine = [float(r[key]) / scale for r in rows if r["network"] == net and r[param] == v and r[key] != ""]
                best.append(min(mine) if mine else float("nan"))
            ax.plot(xs, best, "-o", color=f"C{i % 10}", label=net)
    for ax, unit in ((axes[0], "best latency (ms)"), (axes[1], "best energy (uJ)")):
        ax.set_xlabel(param)
        ax.set_ylabel(unit)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 16:
            ax.set_xscale("log", base=2)
        if not numeric:
            ax.set_xticks(xs, values, rotation=20)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{param}: best over the other varied parameters")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parameter_plot_name(param: str) -> str:
    """``sweep_<param>.png`` (path separators replaced)."""
    return "sweep_" + param.replace("/", "_").replace("\\", "_") + ".png"
