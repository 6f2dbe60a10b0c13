"""YAML -> validated ``SoC``: parse (duplicate keys rejected), validate every field, then build.

All errors of a file are collected and raised at once as one ``ArchError`` naming the file, the key
path (``modules[1].memories[0].size_bytes``), what was given (quoted, truncated to
``kernel_hooks.MAX_QUOTE`` characters) and what is allowed. Numbers must be finite (NaN and
infinities are rejected, magnitudes up to ``MAX_NUMBER``); integers are at most ``MAX_INT`` (2^53);
bits in ``accepts[].precision`` are integers in 1..64, as a layer allows;
booleans are not accepted where integers are expected. Files larger than ``MAX_YAML_BYTES`` are
refused (a hardware description is a few kilobytes; PyYAML needs seconds per megabyte).

Legal but suspicious descriptions load with an ``ArchWarning``: an inner memory larger than the next
memory holding the same operand above it, and a kernel hook whose cycles imply more MACs per cycle
than the module's declared peak (checked on probe tiles, see ``archs.kernel_hooks``). Kernel hooks
are restricted to modules under ``archs`` and to modules allowed with ``archs.allow_kernel_module``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from archs.dims import DIMS, LoopDim, Operand
from archs.kernel_hooks import ProbePrecision, probe_hook, quote, resolve_kernel_hook
from archs.model import (
    LAYER_KINDS,
    OVERLAP_MODES,
    PADDING_RULES,
    PRECISION_ROLES,
    ComputeModel,
    ExecModule,
    LayerRule,
    MemoryLevel,
    SoC,
    SpatialDim,
)

BUILTIN_DIR = Path(__file__).resolve().parent
#: Largest hardware-description file ``load`` / ``from_yaml_text`` accept (bytes).
MAX_YAML_BYTES = 256 * 1024
#: Largest number of bits a precision may name (as ``mapper.Layer`` allows).
MAX_BITS = 64
#: Largest integer field value (exact in float64 and int64 arithmetic of the cost model).
MAX_INT = 2**53
#: Largest magnitude of a number field (finite: NaN and infinities are rejected).
MAX_NUMBER = 1e300


class ArchError(ValueError):
    """A hardware description that cannot be loaded; ``errors`` lists ``(key_path, message)``."""

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in errors]
        super().__init__("invalid hardware description\n  " + "\n  ".join(lines))


class ArchWarning(UserWarning):
    """A hardware description that loads but is probably wrong; the message names the file and key path."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a scalar, got {quote(key)}", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {quote(key)} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


# --------------------------------------------------------------------------- field checkers
# A checker takes (value, path, errors) and returns the converted value or None after recording an error.
Checker = Callable[[Any, str, list], Any]


def _fail(errors: list, path: str, message: str, value: Any) -> None:
    errors.append((path, f"{message}, got {quote(value)}"))


def _integer(minimum: int, maximum: Optional[int] = None) -> Checker:
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}"
    too_large = f"an integer <= 2^53 ({MAX_INT})" if maximum is None else allowed
    maximum = MAX_INT if maximum is None else maximum

    def check(value: Any, path: str, errors: list) -> Optional[int]:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(errors, path, f"must be {allowed}", value)
            return None
        if value > maximum:
            _fail(errors, path, f"must be {too_large}", value)
            return None
        return value

    return check


def _number(minimum: float, strict: bool = False) -> Checker:
    def check(value: Any, path: str, errors: list) -> Optional[float]:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= MAX_NUMBER
        if not ok or value < minimum or (strict and value == minimum):  # NaN fails abs(value) <= MAX_NUMBER
            _fail(errors, path, f"must be a finite number {'>' if strict else '>='} {minimum}", value)
            return None
        return float(value)

    return check


def _boolean(value: Any, path: str, errors: list) -> Optional[bool]:
    if not isinstance(value, bool):
        _fail(errors, path, "must be true or false", value)
        return None
    return value


def _text(value: Any, path: str, errors: list) -> Optional[str]:
    if not isinstance(value, str) or not value:
        _fail(errors, path, "must be a non-empty string", value)
        return None
    return value


def _choice(allowed: tuple[str, ...]) -> Checker:
    def check(value: Any, path: str, errors: list) -> Optional[str]:
        if value not in allowed:
            _fail(errors, path, f"must be one of {', '.join(allowed)}", value)
            return None
        return value

    return check


def _enum(enum_type: type) -> Checker:
    names = tuple(e.value for e in enum_type)

    def check(value: Any, path: str, errors: list) -> Any:
        if value not in names:
            _fail(errors, path, f"must be one of {', '.join(names)}", value)
            return None
        return enum_type(value)

    return check


def _sequence(item: Checker, non_empty: bool = False) -> Checker:
    def check(value: Any, path: str, errors: list) -> Optional[list]:
        if not isinstance(value, list) or (non_empty and not value):
            _fail(errors, path, "must be a " + ("non-empty " if non_empty else "") + "list", value)
            return None
        out = [item(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
        return None if any(v is None for v in out) else out

    return check


def _pair(value: Any, path: str, errors: list) -> Optional[tuple[int, int]]:
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        _fail(errors, path, "must be a [FY, FX] pair of positive integers", value)
        return None
    return (value[0], value[1])


def _dim_map(value_check: Checker) -> Checker:
    def check(value: Any, path: str, errors: list) -> Optional[tuple]:
        if not isinstance(value, dict):
            _fail(errors, path, "must be a mapping of loop dim to value", value)
            return None
        out = []
        for key, v in value.items():
            dim = _enum(LoopDim)(key, _join(path, key), errors)
            val = value_check(v, _join(path, key), errors)
            if dim is not None and val is not None:
                out.append((dim, val))
        return tuple(sorted(out, key=lambda item: DIMS.index(item[0])))  # canonical order, whatever the file's

    return check


def _precision_map(value: Any, path: str, errors: list) -> Optional[tuple]:
    if not isinstance(value, dict):
        _fail(errors, path, "must be a mapping of role (input, weight, output) to allowed bits", value)
        return None
    out = []
    for role, bits in value.items():
        if role not in PRECISION_ROLES:
            _fail(errors, _join(path, str(role)), f"unknown role; allowed: {', '.join(PRECISION_ROLES)}", role)
            continue
        allowed = _sequence(_integer(1, MAX_BITS), non_empty=True)(bits, _join(path, role), errors)
        if allowed is not None:
            out.append((role, tuple(allowed)))
    return tuple(sorted(out, key=lambda item: PRECISION_ROLES.index(item[0])))


def _fields(spec: dict[str, tuple[bool, Checker]]) -> Checker:
    """Checker for a mapping with a fixed set of keys: (required, checker) per key."""

    def check(value: Any, path: str, errors: list) -> Optional[dict]:
        if not isinstance(value, dict):
            _fail(errors, path or "(top level)", "must be a mapping", value)
            return None
        out: dict[str, Any] = {}
        ok = True
        for key in value:
            if key not in spec:
                errors.append((_join(path, key), f"unknown key; allowed: {', '.join(spec)}"))
                ok = False
        for key, (required, checker) in spec.items():
            if key not in value:
                if required:
                    errors.append((_join(path, key), "required key is missing"))
                    ok = False
                continue
            converted = checker(value[key], _join(path, key), errors)
            if converted is None and value[key] is not None:
                ok = False
            out[key] = converted
        return out if ok else None

    return check


def _join(path: str, key: Any) -> str:
    """``path.key`` with the key truncated (a YAML key can be any scalar of any length)."""
    text = key if isinstance(key, str) else quote(key)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{path}.{text}" if path else text


_MEMORY = _fields(
    {
        "name": (True, _text),
        "size_bytes": (True, _integer(1)),
        "operands": (True, _sequence(_enum(Operand), non_empty=True)),
        "read_bytes_per_cycle": (True, _number(0.0, strict=True)),
        "write_bytes_per_cycle": (True, _number(0.0, strict=True)),
        "transfer_fixed_cycles": (False, _number(0.0)),
        "transfer_cycles_per_run": (False, _number(0.0)),
        "double_buffering": (False, _boolean),
        "read_energy_pj_per_byte": (False, _number(0.0)),
        "write_energy_pj_per_byte": (False, _number(0.0)),
        "accumulates": (False, _boolean),
        "instance_dims": (False, _sequence(_text)),
        "shared_port": (False, _boolean),
        "array_port": (False, _boolean),
    }
)
_SPATIAL = _fields(
    {"name": (True, _text), "size": (True, _integer(1)), "unroll": (True, _sequence(_enum(LoopDim))),
     "systolic": (False, _boolean)}
)
_RULE = _fields(
    {
        "kind": (True, _choice(LAYER_KINDS)),
        "kernel_sizes": (False, _sequence(_pair, non_empty=True)),
        "strides": (False, _sequence(_integer(1), non_empty=True)),
        "dilations": (False, _sequence(_integer(1), non_empty=True)),
        "padding": (False, _choice(PADDING_RULES)),
        "channel_multiple": (False, _dim_map(_integer(1))),
        "max_sizes": (False, _dim_map(_integer(1))),
        "precision": (False, _precision_map),
    }
)
_COMPUTE = _fields(
    {
        "macs_per_cycle": (True, _number(0.0, strict=True)),
        "energy_pj_per_mac": (False, _number(0.0)),
        "kernel": (False, _text),
    }
)
_MODULE = _fields(
    {
        "name": (True, _text),
        "spatial": (False, _sequence(_SPATIAL)),
        "memories": (True, _sequence(_MEMORY, non_empty=True)),
        "compute": (True, _COMPUTE),
        "accepts": (False, _sequence(_RULE, non_empty=True)),
        "allow_padded_unrolling": (False, _boolean),
        "tile_overhead_cycles": (False, _number(0.0)),
        "overlap": (False, _choice(OVERLAP_MODES)),
    }
)
_SOC = _fields(
    {
        "name": (True, _text),
        "description": (False, _text),
        "clock_mhz": (True, _number(0.0, strict=True)),
        "host": (True, _text),
        "modules": (True, _sequence(_MODULE, non_empty=True)),
    }
)


def _semantic_checks(data: dict, errors: list, notes: list) -> None:
    """Cross-field rules that a per-field schema cannot express; ``notes`` receives warnings."""
    names = [m["name"] for m in data["modules"]]
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if first.setdefault(name, i) != i:
            errors.append((f"modules[{i}].name", f"duplicate module name {quote(name)}"))
    if data["host"] not in first:
        listed = ", ".join(names)
        listed = listed if len(listed) <= 200 else listed[:197] + "..."
        errors.append(("host", f"names no module; modules are: {listed}; got {quote(data['host'])}"))
    for i, module in enumerate(data["modules"]):
        path = f"modules[{i}]"
        memories = module["memories"]
        first_mem: dict[str, int] = {}
        for j, mem in enumerate(memories):
            if first_mem.setdefault(mem["name"], j) != j:
                errors.append((f"{path}.memories[{j}].name", f"duplicate memory name {quote(mem['name'])}"))
            if len(set(mem["operands"])) != len(mem["operands"]):
                errors.append((f"{path}.memories[{j}].operands", "lists an operand twice"))
        outermost = set(memories[-1]["operands"])
        if outermost != set(Operand):
            errors.append(
                (
                    f"{path}.memories[{len(memories) - 1}].operands",
                    "the last (outermost) memory holds the layer's tensors and must hold I, W and O, "
                    f"got {sorted(o.value for o in outermost)}",
                )
            )
        if module["name"] == data["host"] and module.get("accepts") is not None:
            errors.append((f"{path}.accepts", "the host accepts every layer; remove 'accepts' from it"))
        if module["name"] != data["host"] and module.get("accepts") is None:
            errors.append((f"{path}.accepts", "an execution module must list the layers it accepts"))
        seen_dims: set[str] = set()
        for j, dim in enumerate(module.get("spatial") or []):
            if dim["name"] in seen_dims:
                errors.append((f"{path}.spatial[{j}].name", f"duplicate spatial dim {quote(dim['name'])}"))
            seen_dims.add(dim["name"])
        for j, mem in enumerate(memories):
            for k, name in enumerate(mem.get("instance_dims") or []):
                if name not in seen_dims:
                    errors.append((f"{path}.memories[{j}].instance_dims[{k}]",
                                   f"names no spatial dim of the module (its dims: {sorted(seen_dims)}); got {quote(name)}"))
        _memory_order_notes(memories, path, notes)
        kernel = module["compute"].get("kernel")
        if kernel is not None:
            try:
                hook = resolve_kernel_hook(kernel)
            except ValueError as exc:
                errors.append((f"{path}.compute.kernel", str(exc)))
                continue
            error, warning = probe_hook(hook, _probe_kinds(module.get("accepts")), module["compute"]["macs_per_cycle"])
            if error:
                errors.append((f"{path}.compute.kernel", f"{quote(kernel)} {error}"))
            if warning:
                notes.append((f"{path}.compute.kernel", warning))


def _memory_order_notes(memories: list[dict], path: str, notes: list) -> None:
    """Warn where an inner memory is larger than the next memory above it holding the same operand."""
    pairs: dict[tuple[int, int], list[str]] = {}
    for operand in Operand:
        chain = [j for j, mem in enumerate(memories) if operand in mem["operands"]]
        for inner, outer in zip(chain, chain[1:]):
            if memories[inner]["size_bytes"] > memories[outer]["size_bytes"]:
                pairs.setdefault((inner, outer), []).append(operand.value)
    for (inner, outer), operands in pairs.items():
        notes.append((f"{path}.memories[{inner}].size_bytes",
                      f"memory {quote(memories[inner]['name'])} ({memories[inner]['size_bytes']} bytes) is larger than "
                      f"{quote(memories[outer]['name'])} ({memories[outer]['size_bytes']} bytes) above it, which holds "
                      f"{', '.join(operands)} too; only the outer size can be used for those operands"))


def _probe_kinds(rules: Optional[list[dict]]) -> list[tuple[str, tuple[int, int], int, ProbePrecision]]:
    """(kind, kernel, stride, precision) probes of the layers a module accepts (the host: every kind)."""
    rules = rules if rules is not None else [{"kind": kind} for kind in ("conv2d", "depthwise", "dense")]
    probes = []
    for rule in rules:
        kind = rule["kind"]
        if kind not in ("conv2d", "depthwise", "dense"):
            continue
        kernels = [(1, 1)] if kind == "dense" else (rule.get("kernel_sizes") or [(1, 1), (3, 3)])
        stride = (rule.get("strides") or [1])[0]
        bits = {role: allowed[0] for role, allowed in (rule.get("precision") or ())}
        precision = ProbePrecision(**bits)
        for kernel in kernels:
            probe = (kind, tuple(kernel), stride, precision)
            if probe not in probes:
                probes.append(probe)
    return probes


def _build(data: dict, source: str) -> SoC:
    modules: dict[str, ExecModule] = {}
    for m in data["modules"]:
        memories = tuple(
            MemoryLevel(
                name=mem["name"],
                size_bytes=mem["size_bytes"],
                operands=frozenset(mem["operands"]),
                read_bytes_per_cycle=mem["read_bytes_per_cycle"],
                write_bytes_per_cycle=mem["write_bytes_per_cycle"],
                transfer_fixed_cycles=mem.get("transfer_fixed_cycles") or 0.0,
                transfer_cycles_per_run=mem.get("transfer_cycles_per_run") or 0.0,
                double_buffering=bool(mem.get("double_buffering")),
                read_energy_pj_per_byte=mem.get("read_energy_pj_per_byte") or 0.0,
                write_energy_pj_per_byte=mem.get("write_energy_pj_per_byte") or 0.0,
                accumulates=bool(mem.get("accumulates")),
                instance_dims=tuple(mem.get("instance_dims") or ()),
                shared_port=bool(mem.get("shared_port")),
                array_port=bool(mem.get("array_port")),
            )
            for mem in m["memories"]
        )
        compute = m["compute"]
        kernel = compute.get("kernel")
        rules = tuple(
            LayerRule(
                kind=r["kind"],
                kernel_sizes=tuple(r["kernel_sizes"]) if r.get("kernel_sizes") else None,
                strides=tuple(r["strides"]) if r.get("strides") else None,
                dilations=tuple(r["dilations"]) if r.get("dilations") else None,
                padding=r.get("padding") or "any",
                channel_multiple=r.get("channel_multiple") or (),
                max_sizes=r.get("max_sizes") or (),
                precision=r.get("precision") or (),
            )
            for r in (m.get("accepts") or [])
        )
        modules[m["name"]] = ExecModule(
            name=m["name"],
            spatial=tuple(SpatialDim(s["name"], s["size"], tuple(s["unroll"]), bool(s.get("systolic")))
                          for s in (m.get("spatial") or [])),
            memories=memories,
            compute=ComputeModel(
                macs_per_cycle=compute["macs_per_cycle"],
                energy_pj_per_mac=compute.get("energy_pj_per_mac") or 0.0,
                kernel=kernel,
                kernel_hook=resolve_kernel_hook(kernel) if kernel else None,
            ),
            accepts=rules,
            allow_padded_unrolling=bool(m.get("allow_padded_unrolling")),
            tile_overhead_cycles=m.get("tile_overhead_cycles") or 0.0,
            is_host=m["name"] == data["host"],
            overlap=m.get("overlap") or "serial",
        )
    ordered = {data["host"]: modules[data["host"]]}
    ordered.update((k, v) for k, v in modules.items() if k != data["host"])
    return SoC(
        name=data["name"],
        clock_mhz=data["clock_mhz"],
        host=data["host"],
        modules=ordered,
        source=source,
        description=data.get("description") or "",
    )


def from_dict(data: Any, source: str = "<dict>") -> SoC:
    """Validate a parsed hardware description and build the ``SoC``; raises ``ArchError``."""
    errors: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    checked = _SOC(data, "", errors)
    if checked is not None and not errors:
        _semantic_checks(checked, errors, notes)
    if errors or checked is None:
        raise ArchError(source, errors or [("", "invalid description")])
    for path, message in notes:
        warnings.warn(ArchWarning(f"{source}: {path}: {message}"), stacklevel=2)
    return _build(checked, source)


def to_dict(soc: SoC) -> dict[str, Any]:
    """The hardware description of ``soc`` as plain data (YAML/JSON-ready): ``from_dict(to_dict(soc)) == soc``.

    Kernel hooks are written as their ``"module:function"`` reference (re-resolved, and so
    allowlist-checked, by ``from_dict``).
    """
    modules = []
    for m in soc.modules.values():
        memories = [{"name": mem.name, "size_bytes": mem.size_bytes,
                     "operands": [o.value for o in Operand if o in mem.operands],
                     "read_bytes_per_cycle": mem.read_bytes_per_cycle, "write_bytes_per_cycle": mem.write_bytes_per_cycle,
                     "transfer_fixed_cycles": mem.transfer_fixed_cycles,
                     "transfer_cycles_per_run": mem.transfer_cycles_per_run, "double_buffering": mem.double_buffering,
                     "read_energy_pj_per_byte": mem.read_energy_pj_per_byte,
                     "write_energy_pj_per_byte": mem.write_energy_pj_per_byte, "accumulates": mem.accumulates,
                     "instance_dims": list(mem.instance_dims), "shared_port": mem.shared_port,
                     "array_port": mem.array_port}
                    for mem in m.memories]
        compute: dict[str, Any] = {"macs_per_cycle": m.compute.macs_per_cycle, "energy_pj_per_mac": m.compute.energy_pj_per_mac}
        if m.compute.kernel:
            compute["kernel"] = m.compute.kernel
        module: dict[str, Any] = {
            "name": m.name,
            "spatial": [{"name": d.name, "size": d.size, "unroll": [u.value for u in d.unroll], "systolic": d.systolic}
                        for d in m.spatial],
            "memories": memories, "compute": compute, "allow_padded_unrolling": m.allow_padded_unrolling,
            "tile_overhead_cycles": m.tile_overhead_cycles, "overlap": m.overlap}
        if not m.is_host:
            module["accepts"] = [_rule_to_dict(r) for r in m.accepts]
        modules.append(module)
    out: dict[str, Any] = {"name": soc.name, "clock_mhz": soc.clock_mhz, "host": soc.host, "modules": modules}
    if soc.description:
        out["description"] = soc.description
    return out


def _rule_to_dict(rule: LayerRule) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": rule.kind, "padding": rule.padding}
    if rule.kernel_sizes is not None:
        out["kernel_sizes"] = [list(k) for k in rule.kernel_sizes]
    for key in ("strides", "dilations"):
        if getattr(rule, key) is not None:
            out[key] = list(getattr(rule, key))
    for key in ("channel_multiple", "max_sizes"):
        if getattr(rule, key):
            out[key] = {d.value: n for d, n in getattr(rule, key)}
    if rule.precision:
        out["precision"] = {role: list(bits) for role, bits in rule.precision}
    return out


def from_yaml_text(text: str, source: str = "<string>") -> SoC:
    """Parse YAML text (duplicate keys rejected; at most ``MAX_YAML_BYTES``) and build the ``SoC``."""
    if not isinstance(text, str):
        raise ArchError(source, [("", f"expected YAML text (str), got {type(text).__name__}")])
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_YAML_BYTES:
        raise ArchError(source, [("", f"file is {size} bytes; a hardware description may have at most {MAX_YAML_BYTES} "
                                      "bytes (archs.schema.MAX_YAML_BYTES)")])
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ArchError(source, [(where, f"malformed YAML: {problem}")]) from exc
    return from_dict(data, source)


def builtin_names() -> list[str]:
    """Names of the hardware descriptions shipped with the package."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load(name_or_path: str | Path) -> SoC:
    """Load a shipped SoC by name (``"gap9"``, ``"diana"``...) or a YAML file by path."""
    path = Path(name_or_path)
    builtin = BUILTIN_DIR / f"{name_or_path}.yaml"
    if isinstance(name_or_path, str) and "/" not in name_or_path and builtin.is_file():
        path = builtin
    if not path.is_file():
        raise ArchError(
            str(name_or_path), [("", f"no such file or built-in SoC; built-ins are: {', '.join(builtin_names())}")]
        )
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ArchError(str(path), [("", f"file is {size} bytes; a hardware description may have at most {MAX_YAML_BYTES} "
                                         "bytes (archs.schema.MAX_YAML_BYTES)")])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchError(str(path), [("", f"cannot read the file as text: {quote(str(exc))}")]) from exc
    return from_yaml_text(text, source=str(path))
