"""Workload spec: a ``Layer`` is a loop nest over B, K, C, OY, OX, FY, FX, G.

Which loop dims index which operand comes from one relevance table (``relevant_dims``). Input
extents follow from output extents, stride, dilation, kernel and padding; they are not stored.
Channels of depthwise, add and pool layers live in G (K = C = 1), so one table serves every kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from archs.dims import DIMS, LoopDim, Operand
from archs.model import LAYER_KINDS

D = LoopDim
Pad = Union[str, int, tuple[int, int, int, int]]


class LayerError(ValueError):
    """A layer with impossible or unsupported parameters; the message names the layer and field."""


@dataclass(frozen=True)
class Precision:
    """Operand precisions in bits; ``accumulator`` (partial sums) must be >= ``output`` (checked
    when a ``Layer`` is built)."""

    input: int = 8
    weight: int = 8
    output: int = 8
    accumulator: int = 32

    def bits(self, operand: Operand) -> int:
        """Bits per element of ``operand`` when it holds final values."""
        return {Operand.I: self.input, Operand.W: self.weight, Operand.O: self.output}[operand]


_RELEVANT: dict[Operand, frozenset[LoopDim]] = {
    Operand.O: frozenset({D.B, D.K, D.OY, D.OX, D.G}),
    Operand.W: frozenset({D.K, D.C, D.FY, D.FX, D.G}),
    Operand.I: frozenset({D.B, D.C, D.OY, D.OX, D.FY, D.FX, D.G}),
}
# Element-wise add: the second input (W) is indexed like the output. Pooling has no weights.
_KIND_OVERRIDES: dict[str, dict[Operand, frozenset[LoopDim]]] = {
    "add": {Operand.W: _RELEVANT[Operand.O]},
    "pool": {Operand.W: frozenset()},
}


def relevant_dims(kind: str, operand: Operand) -> frozenset[LoopDim]:
    """Loop dims that index ``operand`` in a layer of ``kind`` (the single relevance table)."""
    return _KIND_OVERRIDES.get(kind, {}).get(operand, _RELEVANT[operand])


@dataclass(frozen=True)
class Layer:
    """One layer: loop extents, geometry, precisions and kind.

    ``sizes`` holds every loop dim (1 where unused). ``padding`` is (top, bottom, left, right) in
    input pixels. ``quant`` carries integer semantics for code generation (ignored by the mapper).
    """

    name: str
    kind: str
    sizes: Mapping[LoopDim, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    precision: Precision = Precision()
    quant: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        sizes = {d: int(self.sizes.get(d, 1)) for d in DIMS}
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "stride", tuple(self.stride))
        object.__setattr__(self, "dilation", tuple(self.dilation))
        object.__setattr__(self, "padding", tuple(self.padding))
        self._validate()

    def __hash__(self) -> int:
        return hash((self.name, self.kind, tuple(self.sizes.values()), self.stride, self.dilation, self.padding))

    def _fail(self, field_name: str, message: str) -> None:
        raise LayerError(f"layer {self.name!r}: {field_name}: {message}")

    def _validate(self) -> None:
        if self.kind not in LAYER_KINDS:
            self._fail("kind", f"unknown kind {self.kind!r}; allowed: {', '.join(LAYER_KINDS)}")
        for d, n in self.sizes.items():
            if n < 1:
                self._fail(f"sizes.{d.value}", f"must be >= 1, got {n}")
        for name, pair in (("stride", self.stride), ("dilation", self.dilation)):
            if len(pair) != 2 or any((not isinstance(v, int)) or v < 1 for v in pair):
                self._fail(name, f"must be two integers >= 1, got {pair}")
        if len(self.padding) != 4 or any((not isinstance(v, int)) or v < 0 for v in self.padding):
            self._fail("padding", f"must be four integers >= 0 (top, bottom, left, right), got {self.padding}")
        for axis, (lo, hi) in (("Y", self.padding[:2]), ("X", self.padding[2:])):
            extent = self.kernel_extent[0 if axis == "Y" else 1]
            if lo >= extent or hi >= extent:
                self._fail("padding", f"{axis} padding {lo, hi} must be smaller than the kernel extent {extent}")
        iy, ix = self.input_size
        if iy < 1 or ix < 1:
            self._fail("padding", f"leaves no input pixels (input {iy}x{ix})")
        s = self.sizes
        if self.kind in ("depthwise", "add", "pool") and (s[D.K] != 1 and self.kind != "depthwise" or s[D.C] != 1):
            self._fail("sizes", f"a {self.kind} layer keeps its channels in G (C must be 1, K 1 or a multiplier)")
        if self.kind in ("dense", "add") and (s[D.FY] != 1 or s[D.FX] != 1):
            self._fail("sizes", f"a {self.kind} layer has no kernel (FY = FX = 1)")
        if self.kind == "dense" and (s[D.OY] != 1 or s[D.OX] != 1):
            self._fail("sizes", "a dense layer has OY = OX = 1 (use B for rows)")
        for name in ("input", "weight", "output", "accumulator"):
            bits = getattr(self.precision, name)
            if not isinstance(bits, int) or not 1 <= bits <= 64:
                self._fail(f"precision.{name}", f"must be an integer number of bits in 1..64, got {bits}")
        if self.precision.accumulator < self.precision.output:
            # The cost model sizes final output tiles at output precision and partial sums at
            # accumulator precision; its capacity bounds assume partial sums never need fewer bits.
            self._fail("precision.accumulator", f"{self.precision.accumulator} bits is below the output precision "
                       f"{self.precision.output} bits; the accumulator must hold at least the output's bits")

    # ------------------------------------------------------------------ derived geometry
    @property
    def kernel_extent(self) -> tuple[int, int]:
        """Receptive field of the kernel in input pixels (dilation included)."""
        return (
            (self.sizes[D.FY] - 1) * self.dilation[0] + 1,
            (self.sizes[D.FX] - 1) * self.dilation[1] + 1,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """Input rows and columns the layer reads (IY, IX), padding excluded."""
        ky, kx = self.kernel_extent
        top, bottom, left, right = self.padding
        return (
            (self.sizes[D.OY] - 1) * self.stride[0] + ky - top - bottom,
            (self.sizes[D.OX] - 1) * self.stride[1] + kx - left - right,
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates (for add and pool: element operations)."""
        return math.prod(self.sizes.values())

    def relevant(self, operand: Operand) -> frozenset[LoopDim]:
        return relevant_dims(self.kind, operand)

    def has_operand(self, operand: Operand) -> bool:
        return bool(self.relevant(operand))

    def tensor_elements(self, operand: Operand) -> int:
        """Elements of the whole tensor of ``operand`` (input: the pixels read)."""
        if not self.has_operand(operand):
            return 0
        s = self.sizes
        if operand is Operand.I:
            iy, ix = self.input_size
            return s[D.B] * s[D.C] * s[D.G] * iy * ix
        return math.prod(s[d] for d in self.relevant(operand))

    def tensor_bytes(self, operand: Operand) -> int:
        """Bytes of the whole tensor of ``operand`` at its precision (rounded up)."""
        return -(-self.tensor_elements(operand) * self.precision.bits(operand) // 8)

    # ------------------------------------------------------------------ JSON edge
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "sizes": {d.value: n for d, n in self.sizes.items() if n != 1},
            "stride": list(self.stride),
            "dilation": list(self.dilation),
            "padding": list(self.padding),
            "precision": {
                "input": self.precision.input,
                "weight": self.precision.weight,
                "output": self.precision.output,
                "accumulator": self.precision.accumulator,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Layer":
        name = data.get("name", "<unnamed>")
        allowed = {"name", "kind", "sizes", "stride", "dilation", "padding", "precision"}
        unknown = set(data) - allowed
        if unknown:
            raise LayerError(f"layer {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        for key in ("name", "kind", "sizes"):
            if key not in data:
                raise LayerError(f"layer {name!r}: missing required key {key!r}")
        sizes = {}
        for key, value in dict(data["sizes"]).items():
            if key not in LoopDim.__members__:
                raise LayerError(f"layer {name!r}: sizes.{key}: unknown loop dim; allowed: {', '.join(LoopDim.__members__)}")
            sizes[LoopDim(key)] = value
        return cls(
            name=data["name"],
            kind=data["kind"],
            sizes=sizes,
            stride=tuple(data.get("stride", (1, 1))),
            dilation=tuple(data.get("dilation", (1, 1))),
            padding=tuple(data.get("padding", (0, 0, 0, 0))),
            precision=Precision(**data.get("precision", {})),
        )


# --------------------------------------------------------------------------- builders
def _pair(value: Union[int, tuple[int, int]], what: str, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise LayerError(f"layer {name!r}: {what}: expected an int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


_PADDING_ALLOWED = "'same' or 'valid' (any case, e.g. TF's 'SAME'), an int >= 0 or 4 ints >= 0 (top, bottom, left, right)"


def _check_padding(name: str, padding: object) -> Pad:
    """``padding`` normalised ("same"/"valid" lower-cased, explicit pads as given), or ``LayerError``
    naming the layer, what was given (truncated) and what is allowed."""
    if isinstance(padding, str):
        if padding.lower() in ("same", "valid"):
            return padding.lower()
    elif _is_count(padding):
        return padding  # type: ignore[return-value]
    elif isinstance(padding, (tuple, list)) and len(padding) == 4 and all(_is_count(v) for v in padding):
        return tuple(padding)  # type: ignore[return-value]
    given = repr(padding)
    given = given if len(given) <= 60 else given[:57] + "..."
    raise LayerError(f"layer {name!r}: padding: expected {_PADDING_ALLOWED}, got {given}")


def _is_count(value: object) -> bool:
    """An int >= 0 that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _resolve_padding(
    name: str, padding: Pad, input_size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Padding (top, bottom, left, right) and output size for TF-style "same"/"valid" (any case, e.g.
    TF's "SAME") or explicit pads (an int >= 0 or 4 of them); anything else raises ``LayerError``."""
    padding = _check_padding(name, padding)
    pads: list[int] = []
    out: list[int] = []
    for axis in range(2):
        size, k, s = input_size[axis], (kernel[axis] - 1) * dilation[axis] + 1, stride[axis]
        if padding == "same":
            o = -(-size // s)
            total = max((o - 1) * s + k - size, 0)
            lo, hi = total // 2, total - total // 2
        elif padding == "valid":
            lo = hi = 0
            o = (size - k) // s + 1
        else:
            explicit = (padding,) * 4 if isinstance(padding, int) else tuple(padding)  # type: ignore[arg-type]
            lo, hi = explicit[2 * axis], explicit[2 * axis + 1]
            o = (size + lo + hi - k) // s + 1
        if o < 1:
            raise LayerError(f"layer {name!r}: input {input_size} is smaller than the kernel {kernel}")
        # Keep only the trailing pad the last window reads (rows past it are never read).
        pads += [lo, max((o - 1) * s + k - size - lo, 0)]
        out.append(o)
    return (pads[0], pads[1], pads[2], pads[3]), (out[0], out[1])


def conv2d(
    name: str, *, input_size: tuple[int, int], in_channels: int, out_channels: int,
    kernel: Union[int, tuple[int, int]] = 3, stride: Union[int, tuple[int, int]] = 1,
    dilation: Union[int, tuple[int, int]] = 1, padding: Pad = "same", groups: int = 1, batch: int = 1,
    precision: Optional[Precision] = None,
) -> Layer:
    """2-D convolution (grouped when ``groups`` > 1). ``padding``: "same" or "valid" (any case, TF's
    "SAME"/"VALID" too), an int or 4 ints (top, bottom, left, right)."""
    kernel, stride, dilation = (_pair(v, w, name) for v, w in ((kernel, "kernel"), (stride, "stride"), (dilation, "dilation")))
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise LayerError(f"layer {name!r}: groups: {groups} must divide in_channels {in_channels} and out_channels {out_channels}")
    pads, (oy, ox) = _resolve_padding(name, padding, input_size, kernel, stride, dilation)
    sizes = {D.B: batch, D.K: out_channels // groups, D.C: in_channels // groups, D.OY: oy, D.OX: ox,
             D.FY: kernel[0], D.FX: kernel[1], D.G: groups}
    return Layer(name, "conv2d", sizes, stride, dilation, pads, precision or Precision())


def depthwise(
    name: str, *, input_size: tuple[int, int], channels: int, kernel: Union[int, tuple[int, int]] = 3,
    stride: Union[int, tuple[int, int]] = 1, dilation: Union[int, tuple[int, int]] = 1, padding: Pad = "same",
    multiplier: int = 1, batch: int = 1, precision: Optional[Precision] = None,
) -> Layer:
    """Depthwise convolution: one filter per channel (G = channels, K = multiplier, C = 1)."""
    kernel, stride, dilation = (_pair(v, w, name) for v, w in ((kernel, "kernel"), (stride, "stride"), (dilation, "dilation")))
    pads, (oy, ox) = _resolve_padding(name, padding, input_size, kernel, stride, dilation)
    sizes = {D.B: batch, D.K: multiplier, D.OY: oy, D.OX: ox, D.FY: kernel[0], D.FX: kernel[1], D.G: channels}
    return Layer(name, "depthwise", sizes, stride, dilation, pads, precision or Precision())


def dense(
    name: str, *, in_features: int, out_features: int, batch: int = 1, precision: Optional[Precision] = None
) -> Layer:
    """Fully connected / matmul layer: ``batch`` rows of ``in_features`` -> ``out_features``."""
    sizes = {D.B: batch, D.K: out_features, D.C: in_features}
    return Layer(name, "dense", sizes, precision=precision or Precision())


def add(
    name: str, *, channels: int, size: tuple[int, int] = (1, 1), batch: int = 1, precision: Optional[Precision] = None
) -> Layer:
    """Element-wise add of two tensors of ``batch x size x channels`` (second input is operand W)."""
    sizes = {D.B: batch, D.OY: size[0], D.OX: size[1], D.G: channels}
    return Layer(name, "add", sizes, precision=precision or Precision())


def pool(
    name: str, *, input_size: tuple[int, int], channels: int, kernel: Union[int, tuple[int, int]] = 2,
    stride: Optional[Union[int, tuple[int, int]]] = None, padding: Pad = "valid", batch: int = 1,
    precision: Optional[Precision] = None,
) -> Layer:
    """Average or max pooling (global pooling: ``kernel = input_size``). Stride defaults to kernel."""
    kernel = _pair(kernel, "kernel", name)
    stride = _pair(stride if stride is not None else kernel, "stride", name)
    pads, (oy, ox) = _resolve_padding(name, padding, input_size, kernel, stride, (1, 1))
    sizes = {D.B: batch, D.OY: oy, D.OX: ox, D.FY: kernel[0], D.FX: kernel[1], D.G: channels}
    return Layer(name, "pool", sizes, stride, (1, 1), pads, precision or Precision())
