"""Run a sweep's points: one task per (point, network), on a local process pool (default), in this
process (``workers=1``) or on a Dask distributed cluster; rows go to ``points.csv`` as they finish
(so a re-run skips them) and the file is rewritten in spec order at the end.

Columns of ``points.csv`` (one row per point x network): ``point``, the varied paths, ``network``,
``objective``, ``policy``, ``time_budget_s``, ``latency_cycles``, ``latency_ms`` (at the point's clock), ``energy_pj``,
``edp_cycles_pj`` (cycles x pJ), ``utilization`` (PE-array utilisation weighted by MACs),
``onchip_memory_bytes`` (area proxy: the accelerators' memories below their outermost one, which
holds the layer's tensors), ``pe_count`` (the accelerators' PEs), ``layers``, ``not_mapped`` (layers no
module could take), ``mapping_seconds`` (wall time of ``map_network``), ``optimal`` / ``optimality_gap``
(every layer proven optimal / the largest layer gap, empty when the mapper does not report them).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import logging
import math
import multiprocessing
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import networkx as nx
from tqdm import tqdm

import archs
from explorer.inputs import InputError, load_model
from explorer.mapping import failures, mac_weighted_utilization, map_graph, network_optimality, supported_options
from explorer.sweep_spec import SweepSpec

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("latency_cycles", "latency_ms", "energy_pj", "edp_cycles_pj", "utilization", "onchip_memory_bytes",
                  "pe_count", "layers", "not_mapped", "mapping_seconds", "optimal", "optimality_gap")
#: Columns that depend on the machine's load, not on the inputs.
TIMING_COLUMNS = ("mapping_seconds",)


def columns(spec: SweepSpec) -> list[str]:
    return ["point", *spec.paths, "network", "objective", "policy", "time_budget_s", *RESULT_COLUMNS]


def cell(value: Any) -> str:
    """The CSV text of a value (the resume key compares these)."""
    return "" if value is None else str(value)


def row_key(row: dict[str, Any], spec: SweepSpec) -> tuple[str, ...]:
    return tuple(cell(row[p]) for p in spec.paths) + tuple(cell(row[k]) for k in ("network", "objective", "policy", "time_budget_s"))


def area_proxy(soc: archs.SoC) -> tuple[int, int]:
    """(on-chip memory bytes, PEs) of the accelerators: memories below each one's outermost level, array PEs."""
    memory = sum(m.size_bytes for module in soc.accelerators for m in module.memories[:-1])
    return memory, sum(module.array_size for module in soc.accelerators)


@functools.lru_cache(maxsize=16)
def _graph(network: str) -> nx.DiGraph:
    return load_model(network)


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Map one network on one point's architecture; returns its row (see the module docstring)."""
    soc = archs.from_dict(task["data"], source=f"sweep point {task['point']}")
    graph = _graph(task["network"])
    start = time.perf_counter()
    result = map_graph(graph, soc, task["objective"], task["policy"], time_budget_s=task["time_budget_s"])
    seconds = time.perf_counter() - start
    memory, pes = area_proxy(soc)
    optimal, gap = network_optimality(result)
    latency, energy = result.total_latency_cycles, result.total_energy_pj
    row = {"point": task["point"], **dict(zip(task["paths"], task["values"])), "network": task["network"],
           "objective": task["objective"], "policy": task["policy"], "time_budget_s": task["time_budget_s"], "latency_cycles": latency,
           "latency_ms": soc.cycles_to_ms(latency), "energy_pj": energy, "edp_cycles_pj": latency * energy,
           "utilization": round(mac_weighted_utilization(result), 12), "onchip_memory_bytes": memory, "pe_count": pes,
           "layers": len(result.schedules), "not_mapped": len(failures(result)), "mapping_seconds": round(seconds, 4),
           "optimal": optimal, "optimality_gap": gap}
    return row


def tasks(spec: SweepSpec, time_budget_s: Optional[float] = None) -> list[dict[str, Any]]:
    """Every (point, network) task in spec order (points outer, networks inner)."""
    return [{"point": p.index, "values": p.values, "paths": spec.paths, "data": p.data, "network": net,
             "objective": spec.objective, "policy": spec.policy, "time_budget_s": time_budget_s}
            for p in spec.points for net in spec.networks]


def read_rows(path: Path, spec: SweepSpec) -> list[dict[str, str]]:
    """Rows of an existing ``points.csv`` (``InputError`` if another spec's columns)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != columns(spec):
            raise InputError(f"{path}: written by a sweep with other columns ({', '.join(reader.fieldnames or [])[:200]}); "
                             "use another --out directory for this spec")
        return list(reader)


def _execute(pending: list[dict[str, Any]], workers: int, scheduler: Optional[str]) -> Iterable[dict[str, Any]]:
    """Yield rows as their tasks finish; closing the generator early (an error, Ctrl-C) stops the workers."""
    if scheduler:
        yield from _execute_dask(pending, scheduler)
    elif workers <= 1:
        for task in pending:
            yield run_task(task)
    else:
        with multiprocessing.Pool(min(workers, len(pending))) as pool:  # leaving the block terminates the workers
            yield from pool.imap_unordered(run_task, pending)


def _execute_dask(pending: list[dict[str, Any]], scheduler: str) -> Iterable[dict[str, Any]]:
    if importlib.util.find_spec("distributed") is None:
        raise InputError("--scheduler: needs dask.distributed; install the extra: pip install 'match-mapper[dask]'")
    from dask.distributed import Client, LocalCluster
    from dask.distributed import as_completed as dask_completed

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) if scheduler == "local" else None
    try:
        with Client(cluster if cluster is not None else scheduler, timeout=30) as client:
            futures = client.map(run_task, pending, pure=False)
            for future in dask_completed(futures):
                yield future.result()
    except OSError as exc:
        raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from exc
    finally:
        if cluster is not None:
            cluster.close()


def run_sweep(spec: SweepSpec, out: Path, workers: int = 1, scheduler: Optional[str] = None, progress: bool = True,
              on_row: Optional[Callable[[dict], None]] = None, time_budget_s: Optional[float] = None
              ) -> tuple[list[dict[str, str]], int]:
    """Run the points not yet in ``out/points.csv``; returns (all rows of this spec in spec order, rows computed now).

    ``time_budget_s``: search time budget per network (``map_network(time_budget_s=...)``; ``InputError``
    when the mapper has none); rows record it, and rows of another budget are not reused."""
    if time_budget_s is not None and "time_budget_s" not in supported_options():
        raise InputError("--time-budget: this version of the mapper has no time budget (map_network(time_budget_s=...))")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "points.csv"
    existing = read_rows(path, spec)
    done = {row_key(r, spec) for r in existing}
    todo = tasks(spec, time_budget_s)
    pending = [t for t in todo if row_key({**dict(zip(t["paths"], t["values"])), **t}, spec) not in done]
    log.info("%d tasks, %d already in %s, %d to run", len(todo), len(todo) - len(pending), path, len(pending))
    new = 0
    if pending:
        fresh = not path.is_file()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns(spec))
            if fresh:
                writer.writeheader()
            bar = tqdm(total=len(pending), desc="sweep", unit="task", disable=not progress)
            for row in _execute(pending, workers, scheduler):
                writer.writerow({k: cell(v) for k, v in row.items()})
                f.flush()
                new += 1
                bar.update()
                if on_row:
                    on_row(row)
            bar.close()
    rows = read_rows(path, spec)
    order = {row_key({**dict(zip(t["paths"], t["values"])), **t}, spec): i for i, t in enumerate(todo)}
    rows.sort(key=lambda r: (order.get(row_key(r, spec), math.inf), row_key(r, spec)))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(spec))
        writer.writeheader()
        writer.writerows(rows)
    current = [r for r in rows if row_key(r, spec) in order]
    return current, new


def write_parquet(out: Path) -> Optional[Path]:
    """``points.parquet`` next to ``points.csv`` when pyarrow is installed (else None)."""
    if importlib.util.find_spec("pyarrow") is None:
        return None
    import pyarrow.csv
    import pyarrow.parquet

    table = pyarrow.csv.read_csv(out / "points.csv")
    target = out / "points.parquet"
    pyarrow.parquet.write_table(table, target)
    return target
