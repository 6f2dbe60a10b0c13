"""Sweep specifications: a YAML file with exactly the keys ``base``, ``vary``, ``networks`` and the
optional ``objective`` and ``policy``::

    base: os32_example                     # shipped name or one of our hardware YAMLs
    vary:                                  # dotted path into the architecture -> list of values
      modules.os_array.memories.sram.size_bytes: [65536, 262144]
      modules.os_array.spatial.rows.size: [16, 32]
    networks: [ic, kws, my_net.json]       # MODEL paths or kws / vww / ic / ad
    objective: latency                     # latency | energy | edp (default latency)
    policy: best                           # best | accelerator_first (default best)

Points are the cartesian product of the ``vary`` lists (in file order, the last path varying
fastest). In a path, list items (modules, memories, spatial dims) are addressed by their ``name``.
``load_spec`` checks everything before any mapping: unknown keys and paths, empty lists, every
value and every point's architecture through the hardware schema (``archs.from_dict``), every
network; an ``InputError`` names the file and the entry.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

import archs
import mapper
from explorer.inputs import InputError, arch_data, clip, load_model

REQUIRED_KEYS = ("base", "vary", "networks")
OPTIONAL_KEYS = ("objective", "policy")
OBJECTIVES = ("latency", "energy", "edp")


@dataclass(frozen=True)
class Point:
    """One architecture of the sweep: its index, the varied values (in ``vary`` order) and its YAML data."""

    index: int
    values: tuple[Any, ...]
    data: dict


@dataclass(frozen=True)
class SweepSpec:
    source: str
    base: str
    paths: tuple[str, ...]  # the varied dotted paths, in file order
    values: tuple[tuple[Any, ...], ...]  # per path, its values
    networks: tuple[str, ...]
    objective: str
    policy: str
    points: tuple[Point, ...]


def set_path(data: dict, path: str, value: Any, where: str) -> dict:
    """A deep copy of ``data`` with ``value`` at the dotted ``path`` (list items by ``name``).

    Every segment but the last must exist; the last may be a new key of a mapping (the schema then
    says whether it is allowed)."""
    out = copy.deepcopy(data)
    node: Any = out
    segments = path.split(".")
    for i, segment in enumerate(segments):
        here = ".".join(segments[:i]) or "(top level)"
        last = i == len(segments) - 1
        if isinstance(node, list):
            names = [item.get("name") for item in node if isinstance(item, dict)]
            if segment not in names:
                raise InputError(f"{where}: {here} has no item named {clip(segment)}; names: {clip(', '.join(map(str, names)), 200)}")
            index = names.index(segment)
            if last:
                raise InputError(f"{where}: {path} names a whole list item; give one of its fields")
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[segment] = value
                return out
            if segment not in node:
                raise InputError(f"{where}: {here} has no key {clip(segment)}; keys: {clip(', '.join(map(str, node)), 200)}")
            node = node[segment]
        else:
            raise InputError(f"{where}: {here} is a value ({clip(node)}), it has no field {clip(segment)}")
    raise InputError(f"{where}: empty path")  # pragma: no cover - split gives at least one segment


def _relative_to(spec: Path, name: str) -> str:
    """``name`` as given if it is a file (from the working directory) or not a file at all (a shipped
    name), else the file of that name next to the spec."""
    if Path(name).is_file() or not (spec.parent / name).is_file():
        return name
    return str(spec.parent / name)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such sweep spec")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: malformed YAML: {clip(str(exc), 200)}") from exc


def load_spec(path: Union[str, Path], check_networks: bool = True) -> SweepSpec:
    """Parse and fully validate a sweep spec (see the module docstring)."""
    path = Path(path)
    spec = _read(path)
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a mapping with keys {', '.join(REQUIRED_KEYS)}, got {clip(spec)}")
    unknown = [k for k in spec if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if unknown or missing:
        problem = f"unknown key(s) {clip(unknown)}" if unknown else f"missing key(s) {', '.join(missing)}"
        raise InputError(f"{path}: {problem}; allowed: {', '.join(REQUIRED_KEYS)} and optionally {', '.join(OPTIONAL_KEYS)}")
    objective = spec.get("objective", "latency")
    if objective not in OBJECTIVES:
        raise InputError(f"{path}: objective: must be one of {', '.join(OBJECTIVES)}, got {clip(objective)}")
    policy = spec.get("policy", "best")
    if policy not in mapper.POLICIES:
        raise InputError(f"{path}: policy: must be one of {', '.join(mapper.POLICIES)}, got {clip(policy)}")
    base = spec["base"]
    if not isinstance(base, str):
        raise InputError(f"{path}: base: must be a shipped SoC name or a YAML path, got {clip(base)}")
    base = _relative_to(path, base)
    try:
        data, _ = arch_data(base)
    except InputError as exc:
        raise InputError(f"{path}: base: {exc}") from exc
    try:
        archs.from_dict(data, source=base)
    except archs.ArchError as exc:
        raise InputError(f"{path}: base: {exc}") from exc

    vary = spec["vary"]
    if not isinstance(vary, dict) or not vary:
        raise InputError(f"{path}: vary: must be a non-empty mapping from a dotted path to a list of values, got {clip(vary)}")
    paths, value_lists = [], []
    for key, values in vary.items():
        where = f"{path}: vary.{key}"
        if not isinstance(key, str) or not key:
            raise InputError(f"{path}: vary: keys must be dotted paths such as modules.<module>.spatial.<dim>.size, got {clip(key)}")
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: must be a non-empty list of values, got {clip(values)}")
        if len(set(map(repr, values))) != len(values):
            raise InputError(f"{where}: lists a value twice: {clip(values)}")
        for i, value in enumerate(values):
            single = set_path(data, key, value, where)
            try:
                archs.from_dict(single, source=f"{base} with {key} = {clip(value)}")
            except archs.ArchError as exc:
                raise InputError(f"{where}[{i}] = {clip(value)}: rejected by the hardware schema: {exc}") from exc
        paths.append(key)
        value_lists.append(tuple(values))

    points = []
    for index, combo in enumerate(itertools.product(*value_lists)):
        point = data
        for key, value in zip(paths, combo):
            point = set_path(point, key, value, f"{path}: vary.{key}")
        label = ", ".join(f"{k} = {clip(v)}" for k, v in zip(paths, combo))
        try:
            archs.from_dict(point, source=f"{base} with {label}")
        except archs.ArchError as exc:
            raise InputError(f"{path}: vary: point {index} ({label}) is rejected by the hardware schema: {exc}") from exc
        points.append(Point(index, tuple(combo), point))

    networks = spec["networks"]
    if not isinstance(networks, list) or not networks:
        raise InputError(f"{path}: networks: must be a non-empty list of MODEL paths or kws, vww, ic, ad, got {clip(networks)}")
    resolved = []
    for i, net in enumerate(networks):
        if not isinstance(net, str):
            raise InputError(f"{path}: networks[{i}]: must be a MODEL path or one of kws, vww, ic, ad, got {clip(net)}")
        net = _relative_to(path, net)
        if check_networks:
            try:
                load_model(net)
            except (InputError, mapper.GraphError, mapper.LayerError, archs.ArchError) as exc:
                raise InputError(f"{path}: networks[{i}] ({clip(net)}): {exc}") from exc
        resolved.append(net)
    if len(set(resolved)) != len(resolved):
        raise InputError(f"{path}: networks: lists a network twice: {clip(resolved)}")
    return SweepSpec(str(path), base, tuple(paths), tuple(value_lists), tuple(resolved), objective, policy, tuple(points))
