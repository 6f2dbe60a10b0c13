"""Top-N speed: ``python -m benchmarks.top_n_speed [--json PATH]``.

Wall time of ``mapper.best_mappings(layer, soc, "latency", n)`` (the n best mappings overall, exact,
no budget) for n = 1, 5, 20 against ``mapper.map_layer(..., time_budget_s=None)`` (the single best,
the search with dominance), on the ResNet-8 3x3 conv (16 -> 16 channels, 32x32, int8, SAME) on
each shipped SoC (all modules) and on ZigZag's ``tpu_like`` (``archs.from_zigzag``, 16-bit partial
sums as in ``benchmarks.mapper_speed``: a deep hierarchy). One process, one run each after a warm-up call (imports and the
first-call cost excluded). Writes ``benchmarks/results/top_n_speed.json`` by default.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
SOCS = ("gap9", "diana", "os32_example", "tpu_like")
NS = (1, 5, 20)


def measure() -> list[dict]:
    import archs
    import mapper
    from archs.zigzag import zigzag_example

    rows = []
    for name in SOCS:
        zigzag = name == "tpu_like"
        precision = mapper.Precision(input=8, weight=8, output=8, accumulator=16 if zigzag else 32)
        layer = mapper.conv2d("resnet8_conv", input_size=(32, 32), in_channels=16, out_channels=16, kernel=3,
                              padding="same", precision=precision)
        soc = (archs.from_zigzag(zigzag_example(name, "hardware"), zigzag_example(name, "mapping")) if zigzag
               else archs.load(name))
        mapper.map_layer(layer, soc, time_budget_s=None)  # warm-up
        start = time.perf_counter()
        single = mapper.map_layer(layer, soc, time_budget_s=None)
        row = {"soc": name, "map_layer_seconds": time.perf_counter() - start, "best_latency": single.latency_cycles}
        for n in NS:
            start = time.perf_counter()
            schedules, _ = mapper.best_mappings(layer, soc, "latency", n)
            row[f"top{n}_seconds"] = time.perf_counter() - start
            row[f"top{n}_latencies"] = [s.latency_cycles for s in schedules]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "top_n_speed.json")
    args = parser.parse_args()
    rows = measure()
    for r in rows:
        print(f"{r['soc']:14s} map_layer {r['map_layer_seconds']:.3f} s  "
              + "  ".join(f"top{n} {r[f'top{n}_seconds']:.3f} s" for n in NS)
              + f"  (#1 {r['top1_latencies'][0]:,.0f} cycles, map_layer {r['best_latency']:,.0f})")
    args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
