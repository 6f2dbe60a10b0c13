"""``match-mapper sweep SPEC.yaml [--out DIR] [--workers N] [--scheduler ADDRESS|local]``: map every
network of the spec on every point of its design space (see ``explorer.sweep_spec`` for the spec and
``explorer.sweep_run`` for the columns of ``points.csv``); writes ``points.csv`` (and ``points.parquet``
with pyarrow), ``pareto.png`` and ``sweep_<param>.png`` per varied parameter. Points already in
``points.csv`` are skipped (resume). ``--scheduler`` runs the tasks on Dask (``local`` starts a
LocalCluster of 2 worker processes; else the address of a running scheduler)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from explorer.inputs import InputError
from explorer.plots import parameter_plot_name, plot_parameter, plot_pareto
from explorer.sweep_run import run_sweep, write_parquet
from explorer.sweep_spec import load_spec


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="design-space sweep: points.csv, pareto.png, sweep_<param>.png", description=__doc__)
    p.add_argument("spec", help="SPEC.yaml (keys: base, vary, networks, objective, policy)")
    p.add_argument("--out", default="sweep_out", help="output directory (default sweep_out)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes of the local pool (default: the cores; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on Dask: a scheduler address, or 'local' for a LocalCluster")
    p.add_argument("--time-budget", type=float, metavar="S",
                   help="search time budget per network and point in seconds (when the mapper supports it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise InputError(f"--workers: must be >= 1, got {args.workers}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise InputError(f"--time-budget: must be > 0 seconds, got {args.time_budget}")
    start = time.perf_counter()
    spec = load_spec(args.spec)
    out = Path(args.out)
    rows, new = run_sweep(spec, out, args.workers, args.scheduler, progress=not args.no_progress, time_budget_s=args.time_budget)
    plot_pareto(rows, out / "pareto.png", title=f"{Path(spec.source).name}: {len(spec.points)} points, objective {spec.objective}")
    for param in spec.paths:
        plot_parameter(rows, param, out / parameter_plot_name(param))
    parquet = write_parquet(out)
    print(f"{len(spec.points)} points x {len(spec.networks)} networks: {new} rows computed, {len(rows) - new} reused; "
          f"{time.perf_counter() - start:.1f} s")
    print(f"wrote {out / 'points.csv'}" + (f", {parquet}" if parquet else " (no pyarrow: no Parquet)")
          + f", {out / 'pareto.png'}, " + ", ".join(str(out / parameter_plot_name(p)) for p in spec.paths))
    return 0
