"""Parse an inline layer description such as ``conv2d:in=32x32x16,out=16,k=3,s=1``.

Kinds and keys (``HxWxC`` sizes; ``k``, ``s``, ``d`` take ``N`` or ``NxM``; ``p`` is ``same``,
``valid``, ``N`` or four integers ``T/B/L/R``):

- ``conv2d``: ``in=HxWxC`` and ``out=K`` required; ``k`` (3), ``s`` (1), ``d`` (1), ``p`` (same), ``g`` (1, groups), ``b`` (1, batch)
- ``depthwise``: ``in=HxWxC`` required; ``k`` (3), ``s`` (1), ``d`` (1), ``p`` (same), ``m`` (1, multiplier), ``b``
- ``dense``: ``in=C`` and ``out=K`` required; ``b`` (1, rows)
- ``pool``: ``in=HxWxC`` required; ``k`` (2), ``s`` (= k), ``p`` (valid), ``b``
- ``add``: ``in=HxWxC`` required; ``b``

All layers are int8 with 32-bit accumulators (``mapper.Precision()``).
"""

from __future__ import annotations

from typing import Union

import mapper
from explorer.inputs import InputError, clip

_COMMON = {"b"}
KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "conv2d": ({"in", "out"}, {"k", "s", "d", "p", "g"} | _COMMON),
    "depthwise": ({"in"}, {"k", "s", "d", "p", "m"} | _COMMON),
    "dense": ({"in", "out"}, _COMMON),
    "pool": ({"in"}, {"k", "s", "p"} | _COMMON),
    "add": ({"in"}, _COMMON),
}


def is_inline(spec: str) -> bool:
    """True if ``spec`` looks like ``kind:key=value,...`` (kind one of ``KEYS``)."""
    kind, sep, rest = spec.partition(":")
    return bool(sep) and kind in KEYS and "=" in rest


def _int(text: str, where: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"{where}: must be an integer >= 1, got {clip(text)}")
    return int(text)


def _ints(text: str, where: str, count: int) -> tuple[int, ...]:
    parts = text.split("x")
    if len(parts) != count:
        raise InputError(f"{where}: expected {'x'.join(['N'] * count)}, got {clip(text)}")
    return tuple(_int(p, where) for p in parts)


def _pair(text: str, where: str) -> Union[int, tuple[int, int]]:
    return _ints(text, where, 2) if "x" in text else _int(text, where)


def _padding(text: str, where: str) -> Union[str, int, tuple[int, int, int, int]]:
    if text in ("same", "valid"):
        return text
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise InputError(f"{where}: expected same, valid, N or T/B/L/R, got {clip(text)}")
        return tuple(int(p) for p in parts)  # type: ignore[return-value]
    if not text.isdigit():
        raise InputError(f"{where}: expected same, valid, N or T/B/L/R, got {clip(text)}")
    return int(text)


def parse_layer_spec(spec: str, name: str = "layer") -> mapper.Layer:
    """The ``mapper.Layer`` an inline spec describes; ``InputError`` says what is wrong and what is allowed."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KEYS:
        raise InputError(f"layer spec {clip(spec)}: must start with one of {', '.join(KEYS)} followed by ':'")
    values: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key or not value.strip():
            raise InputError(f"layer spec {clip(spec)}: {clip(item)} is not key=value")
        if key in values:
            raise InputError(f"layer spec {clip(spec)}: key {key!r} given twice")
        values[key] = value.strip()
    required, optional = KEYS[kind]
    unknown = sorted(set(values) - required - optional)
    missing = sorted(required - set(values))
    if unknown or missing:
        problem = f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing key(s) {', '.join(missing)}"
        raise InputError(f"layer spec {clip(spec)}: {problem}; {kind} takes {', '.join(sorted(required))} (required) and "
                         f"{', '.join(sorted(optional))}")

    def where(key: str) -> str:
        return f"layer spec {clip(spec)}: {key}"

    batch = _int(values["b"], where("b")) if "b" in values else 1
    try:
        if kind == "dense":
            return mapper.dense(name, in_features=_int(values["in"], where("in")), out_features=_int(values["out"], where("out")),
                                batch=batch)
        h, w, c = _ints(values["in"], where("in"), 3)
        if kind == "add":
            return mapper.add(name, channels=c, size=(h, w), batch=batch)
        if kind == "pool":
            kernel = _pair(values.get("k", "2"), where("k"))
            stride = _pair(values["s"], where("s")) if "s" in values else None
            return mapper.pool(name, input_size=(h, w), channels=c, kernel=kernel, stride=stride,
                               padding=_padding(values.get("p", "valid"), where("p")), batch=batch)
        common = dict(input_size=(h, w), kernel=_pair(values.get("k", "3"), where("k")), stride=_pair(values.get("s", "1"), where("s")),
                      dilation=_pair(values.get("d", "1"), where("d")), padding=_padding(values.get("p", "same"), where("p")),
                      batch=batch)
        if kind == "depthwise":
            return mapper.depthwise(name, channels=c, multiplier=_int(values.get("m", "1"), where("m")), **common)
        return mapper.conv2d(name, in_channels=c, out_channels=_int(values["out"], where("out")),
                             groups=_int(values.get("g", "1"), where("g")), **common)
    except mapper.LayerError as exc:
        raise InputError(f"layer spec {clip(spec)}: {exc}") from exc
