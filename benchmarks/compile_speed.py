"""``python -m benchmarks.compile_speed``: seconds ``tvm_bridge.compile`` takes per model and step.

Compiles every int8 test model in ``tests/data`` (or the ``--models`` given, names or paths) for each
target and prints one row per (model, target) with the steps of ``CompiledModel.timings`` (import,
partition and mapping, codegen, build) and the total wall time; ``--json`` writes the same figures.
The generated C++ object cache (``tvm_bridge.build``) is off unless ``--cache`` is given, so the
figures are those of a first build.

    python -m benchmarks.compile_speed
    python -m benchmarks.compile_speed --models mobilenet_v2 --targets gap9 --json compile.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Optional, Sequence

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
SKIP = ("softmax_tiny_scale",)  # a LiteRT-abort test case, not a model to compile for speed


def model_paths(models: Optional[Sequence[str]] = None) -> list[Path]:
    """The given models (names in tests/data or paths), or every test model."""
    if not models:
        return sorted(p for p in DATA.glob("*.tflite") if p.stem not in SKIP)
    paths = []
    for m in models:
        path = Path(m) if Path(m).suffix else DATA / f"{m}.tflite"
        if not path.is_file():
            raise SystemExit(f"no model {m!r} ({path} does not exist; test models: "
                             f"{', '.join(p.stem for p in sorted(DATA.glob('*.tflite')))})")
        paths.append(path)
    return paths


def measure(path: Path, target: str) -> dict:
    """Compile ``path`` for ``target``; the timings (s), total wall seconds and offloaded layer count."""
    import archs
    import tvm_bridge

    start = time.perf_counter()
    compiled = tvm_bridge.compile(path, archs.load(target))
    total = time.perf_counter() - start
    return {"model": path.stem, "target": target, "total_s": round(total, 3),
            **{k: round(float(v), 3) for k, v in compiled.timings.items()},
            "layers": len(compiled.offloaded), "offloaded": int(sum(compiled.offloaded.values()))}


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Seconds tvm_bridge.compile takes per model and step.")
    parser.add_argument("--models", nargs="+", help="test model names (tests/data) or .tflite paths (default: all)")
    parser.add_argument("--targets", nargs="+", default=["gap9", "diana"], help="SoC names or YAML paths")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--cache", action="store_true", help="keep the generated C++ object cache on")
    args = parser.parse_args(argv)
    if not args.cache:
        os.environ["MATCH_BRIDGE_CACHE"] = "off"
    rows = []
    header = f"{'model':22} {'target':7} {'total s':>8} {'import':>7} {'map':>7} {'codegen':>8} {'build':>7} {'offloaded':>10}"
    print(header)
    for path in model_paths(args.models):
        for target in args.targets:
            row = measure(path, target)
            rows.append(row)
            print(f"{row['model']:22} {target:7} {row['total_s']:8.2f} {row['import_s']:7.2f} "
                  f"{row['partition_and_mapping_s']:7.2f} {row['codegen_s']:8.2f} {row['build_s']:7.2f} "
                  f"{row['offloaded']:>4}/{row['layers']:<5}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
