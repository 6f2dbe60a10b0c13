"""Sweep speed benchmark: ``python -m benchmarks.sweep_speed [--points N] [--networks ...] [--workers N]
[--scheduler ADDRESS|local] [--json PATH] [--out DIR]``.

Runs ``match-mapper sweep``'s engine (``explorer.run_sweep``) on a 100-point design space around
``os32_example`` (a 32x32 output-stationary array with accumulators / SRAM / DRAM): SRAM size
{64, 128, 256, 512, 1024} kB x array rows {8, 16, 32, 64} x array cols {8, 16, 32, 64, 128}, each
point mapping the four MLPerf Tiny networks (``benchmarks/networks/{kws,vww,ic,ad}.json``). The
array size changes the PE count; ``compute.macs_per_cycle`` stays at the base's 1024, so the
points are a timing workload rather than a physically consistent family.

``--points N`` runs the first N points only (spec order: SRAM outermost, cols fastest);
``--max-minutes M`` stops at the first task to finish after M minutes and reports the tasks done. Prints and
writes to ``--json``: wall seconds of the sweep (process start-up, pool and mapping; imports and spec
validation excluded), tasks, per-network mapping seconds (sum, mean, max over points as measured
inside the workers), the machine (CPU, cores, load average) and the git commit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from benchmarks._environment import cpu_model, git_commit

ROOT = Path(__file__).resolve().parent.parent
SRAM_BYTES = [65536, 131072, 262144, 524288, 1048576]
ROWS = [8, 16, 32, 64]
COLS = [8, 16, 32, 64, 128]
NETWORKS = ("kws", "vww", "ic", "ad")


def spec_dict(networks: Sequence[str]) -> dict[str, Any]:
    """The 100-point sweep spec (see the module docstring)."""
    return {"base": "os32_example",
            "vary": {"modules.os_array.memories.sram.size_bytes": SRAM_BYTES, "modules.os_array.spatial.rows.size": ROWS,
                     "modules.os_array.spatial.cols.size": COLS},
            "networks": list(networks)}


class _Stop(Exception):
    """--max-minutes reached."""


def run(points: Optional[int], networks: Sequence[str], workers: int, scheduler: Optional[str], out: Path,
        time_budget_s: Optional[float] = None, max_minutes: Optional[float] = None) -> dict[str, Any]:
    from explorer import load_spec, run_sweep
    from explorer.sweep_run import read_rows

    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(networks), sort_keys=False))
    spec = load_spec(spec_path)
    if points is not None:
        spec = dataclasses.replace(spec, points=spec.points[:points])
    (out / "points.csv").unlink(missing_ok=True)
    load_start = list(os.getloadavg())
    start = time.perf_counter()
    def check_time(row: dict) -> None:
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            raise _Stop

    complete = True
    try:
        rows, computed = run_sweep(spec, out, workers=workers, scheduler=scheduler, progress=True, time_budget_s=time_budget_s,
                                   on_row=check_time)
    except _Stop:
        complete = False
        rows = read_rows(out / "points.csv", spec)
        computed = len(rows)
    seconds = time.perf_counter() - start
    per_network = {}
    for net in spec.networks:
        times = [float(r["mapping_seconds"]) for r in rows if r["network"] == net]
        per_network[net] = {"tasks": len(times), "mapping_seconds_sum": round(sum(times), 2),
                            "mapping_seconds_mean": round(sum(times) / len(times), 3) if times else None,
                            "mapping_seconds_max": round(max(times), 2) if times else None}
    return {"points": len(spec.points), "networks": list(spec.networks), "complete": complete,
            "tasks_total": len(spec.points) * len(spec.networks), "tasks": computed, "workers": workers,
            "scheduler": scheduler, "time_budget_s": time_budget_s, "sweep_seconds": round(seconds, 2), "per_network": per_network,
            "environment": {"python": platform.python_version(), "cpu": cpu_model(), "cores": os.cpu_count(),
                            "loadavg_start": load_start, "loadavg_end": list(os.getloadavg()), "commit": git_commit()}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, help="run the first N of the 100 points only")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scheduler", help="Dask scheduler address or 'local'")
    parser.add_argument("--time-budget", type=float, help="search time budget per network and point (s), if the mapper has one")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after this many minutes (at the next finished task) and report the tasks done")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--out", type=Path, help="sweep output directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.points is not None and not 1 <= args.points <= len(SRAM_BYTES) * len(ROWS) * len(COLS):
        parser.error(f"--points: must be in 1..{len(SRAM_BYTES) * len(ROWS) * len(COLS)}, got {args.points}")
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.points, args.networks, args.workers, args.scheduler, args.out or Path(tmp), args.time_budget,
                     args.max_minutes)
    print(f"{report['points']} points x {len(report['networks'])} networks: {report['tasks']} of {report['tasks_total']} tasks "
          f"on {report['workers']} workers in {report['sweep_seconds']:.1f} s wall"
          + ("" if report["complete"] else f" (stopped by --max-minutes {args.max_minutes:g})"))
    for net, figures in report["per_network"].items():
        print(f"  {net:4s} mapping seconds per point: mean {figures['mapping_seconds_mean']}, max {figures['mapping_seconds_max']}, "
              f"sum {figures['mapping_seconds_sum']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
