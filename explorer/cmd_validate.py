"""``match-mapper validate ARCH``: load a hardware description (our schema, or a ZigZag accelerator
file) and print what it describes: modules, spatial arrays and peak MAC/cycle, accepted layers, and
memories with sizes (bytes), bandwidths (bytes/cycle), fixed transfer cycles and energies (pJ/byte).
Errors (status 2) name the file and every offending key."""

from __future__ import annotations

import argparse
from typing import Any

from tabulate import tabulate

import archs
from explorer.inputs import load_arch


def add_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a hardware YAML and print what it describes", description=__doc__)
    p.add_argument("arch", help="ARCH: shipped name, our hardware YAML, or a ZigZag accelerator YAML")
    p.add_argument("--zigzag-mapping", help="ZigZag mapping YAML for a ZigZag accelerator ARCH")
    p.set_defaults(run=run)


def rule_text(rule: archs.LayerRule) -> str:
    """``conv2d k[3x3] s[1,2] pad=symmetric K%16`` (only the restrictions the rule has)."""
    parts = [rule.kind]
    if rule.kernel_sizes:
        parts.append("k[" + ",".join(f"{a}x{b}" for a, b in rule.kernel_sizes) + "]")
    if rule.strides:
        parts.append("s" + str(list(rule.strides)).replace(" ", ""))
    if rule.dilations:
        parts.append("d" + str(list(rule.dilations)).replace(" ", ""))
    if rule.padding != "any":
        parts.append(f"pad={rule.padding}")
    parts += [f"{d.value}%{n}" for d, n in rule.channel_multiple]
    parts += [f"{d.value}<={n}" for d, n in rule.max_sizes]
    parts += [f"{role}:{'/'.join(map(str, bits))}b" for role, bits in rule.precision]
    return " ".join(parts)


def module_rows(soc: archs.SoC) -> list[dict[str, Any]]:
    rows = []
    for m in soc.modules.values():
        rows.append({
            "module": m.name + (" (host)" if m.is_host else ""),
            "array": " x ".join(f"{d.name} {d.size} [{','.join(x.value for x in d.unroll)}]" for d in m.spatial) or "-",
            "PEs": m.array_size,
            "peak MAC/cycle": f"{m.compute.macs_per_cycle:g}",
            "pJ/MAC": f"{m.compute.energy_pj_per_mac:g}",
            "kernel model": m.compute.kernel or "MACs / peak",
            "accepts": "every layer" if m.is_host else "; ".join(rule_text(r) for r in m.accepts),
        })
    return rows


def memory_rows(soc: archs.SoC) -> list[dict[str, Any]]:
    rows = []
    for m in soc.modules.values():
        for mem in m.memories:
            rows.append({
                "module": m.name, "memory": mem.name, "bytes": f"{mem.size_bytes:,}",
                "operands": ",".join(sorted(o.value for o in mem.operands)),
                "read B/cyc": f"{mem.read_bytes_per_cycle:g}", "write B/cyc": f"{mem.write_bytes_per_cycle:g}",
                "fixed cyc/transfer": f"{mem.transfer_fixed_cycles:g}", "cyc/run": f"{mem.transfer_cycles_per_run:g}",
                "double buf": "yes" if mem.double_buffering else "",
                "accumulates": "yes" if mem.accumulates else "",
                "read pJ/B": f"{mem.read_energy_pj_per_byte:g}", "write pJ/B": f"{mem.write_energy_pj_per_byte:g}",
            })
    return rows


def run(args: argparse.Namespace) -> int:
    soc = load_arch(args.arch, args.zigzag_mapping)
    print(f"{soc.source or args.arch}: valid. SoC {soc.name!r}, {soc.clock_mhz:g} MHz, host {soc.host!r}"
          + (f": {soc.description}" if soc.description else ""))
    print()
    print(tabulate(module_rows(soc), headers="keys", disable_numparse=True))
    print()
    print(tabulate(memory_rows(soc), headers="keys", disable_numparse=True))
    print(f"\npeak: {sum(m.compute.macs_per_cycle for m in soc.accelerators):g} MAC/cycle over the accelerators, "
          f"{soc.host_module.compute.macs_per_cycle:g} on the host")
    return 0
