"""Kernel-cost hooks named in a module's YAML (``compute.kernel``): resolution, allowlist and probe check.

Form: ``"package.module:function"``. The hook is called as ``hook(tile, layer)`` (see
``archs.kernels``) and returns cycles per kernel call. A YAML file must not be able to make the
loader import arbitrary code, so the module must be

- ``archs`` or a module under it (the shipped hooks live in ``archs.kernels``), or
- on the allowlist ``allowed_kernel_modules()``, to which your code adds a module with
  ``archs.allow_kernel_module("mypkg.costs")`` before loading a YAML that names it.

The function must accept ``(tile, layer)`` (checked with ``inspect.signature``). At load time the
hook is also run on a batch of probe tiles of every layer kind the module accepts (``probe_hook``):
an exception or a result that is not one finite cycle count >= 0 per tile is an error; cycles that
imply more MACs per cycle than the module's declared peak ``compute.macs_per_cycle`` are a warning
(``ArchWarning``), since the mapper would then report impossible speeds.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from archs.dims import DIMS, LoopDim

_ALLOWED: set[str] = set()
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 6, 60, 60
#: Longest quoted value in an error message (characters).
MAX_QUOTE = 80


def quote(value: Any) -> str:
    """A bounded ``repr`` of ``value`` for error messages (at most ``MAX_QUOTE`` characters, even
    for huge or deeply aliased YAML structures)."""
    return _clip(_REPR.repr(value))


def allow_kernel_module(module_name: str) -> None:
    """Allow YAML kernel hooks from ``module_name`` (a dotted module name; imported when a YAML names it)."""
    if not isinstance(module_name, str) or not module_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise ValueError(f"allow_kernel_module: {quote(module_name)} is not a dotted module name")
    _ALLOWED.add(module_name)


def allowed_kernel_modules() -> tuple[str, ...]:
    """Modules outside ``archs`` from which YAML kernel hooks may be loaded (see ``allow_kernel_module``)."""
    return tuple(sorted(_ALLOWED))


def _is_allowed(module_name: str) -> bool:
    return module_name == "archs" or module_name.startswith("archs.") or module_name in _ALLOWED


def resolve_kernel_hook(reference: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"``; ``ValueError`` says why it cannot be a hook.

    Only modules under ``archs`` or on the allowlist are imported; the function must be callable
    as ``hook(tile, layer)``.
    """
    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise ValueError(f"must look like 'package.module:function', got {quote(reference)}")
    if not _is_allowed(module_name):
        allowed = ", ".join(("archs.*",) + allowed_kernel_modules())
        raise ValueError(f"module {quote(module_name)} is not allowed for kernel hooks (allowed: {allowed}); "
                         "call archs.allow_kernel_module(name) before loading to allow your own")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {quote(module_name)} ({quote(str(exc))})") from exc
    hook = getattr(module, function_name, None)
    if not callable(hook):
        raise ValueError(f"module {quote(module_name)} has no function {quote(function_name)}")
    try:
        inspect.signature(hook).bind(None, None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{quote(reference)} must accept (tile, layer), its signature is "
                         f"{_clip(_signature_text(hook))}") from exc
    return hook


def _clip(text: str) -> str:
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def _signature_text(hook: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(hook))
    except (TypeError, ValueError):
        return "unknown"


# --------------------------------------------------------------------------- probe
@dataclass(frozen=True)
class ProbePrecision:
    """Bits per operand of a probe layer (the attributes of ``mapper.Precision``)."""

    input: int = 8
    weight: int = 8
    output: int = 8
    accumulator: int = 32


@dataclass(frozen=True)
class ProbeLayer:
    """The ``layer`` argument a hook gets at load time: the attributes of ``mapper.Layer`` it may read."""

    name: str
    kind: str
    sizes: dict[LoopDim, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    precision: ProbePrecision = field(default_factory=ProbePrecision)

    @property
    def kernel_extent(self) -> tuple[int, int]:
        """Receptive field of the kernel in input pixels (dilation included)."""
        d = LoopDim
        return ((self.sizes[d.FY] - 1) * self.dilation[0] + 1, (self.sizes[d.FX] - 1) * self.dilation[1] + 1)

    @property
    def input_size(self) -> tuple[int, int]:
        """Input rows and columns read (no padding in a probe)."""
        (ky, kx), d = self.kernel_extent, LoopDim
        return ((self.sizes[d.OY] - 1) * self.stride[0] + ky, (self.sizes[d.OX] - 1) * self.stride[1] + kx)

    @property
    def macs(self) -> int:
        return math.prod(self.sizes.values())


#: Attributes of ``ProbeLayer`` (a subset of ``mapper.Layer``'s) a hook may read at load time.
PROBE_ATTRIBUTES = ("name", "kind", "sizes", "stride", "dilation", "padding", "precision", "kernel_extent", "input_size", "macs")
#: Layer kinds whose MACs per call are the product of the tile extents (probed against the peak).
PROBED_KINDS = ("conv2d", "depthwise", "dense")
_EXTENTS = (1, 4, 16, 64)
_ROWS = (1, 8)


def _probe_tiles(kind: str, kernel: tuple[int, int]) -> dict[LoopDim, np.ndarray]:
    """Candidate tiles (axis: candidate) of a layer of ``kind`` with kernel (FY, FX)."""
    d = LoopDim
    if kind == "conv2d":
        grid = [{d.K: k, d.C: c, d.OY: oy, d.OX: ox} for k, c, oy, ox in itertools.product(_EXTENTS, _EXTENTS, _ROWS, (1, 16))]
    elif kind == "depthwise":
        grid = [{d.G: g, d.OY: oy, d.OX: ox} for g, oy, ox in itertools.product(_EXTENTS, _ROWS, (1, 16))]
    else:  # dense
        grid = [{d.K: k, d.C: c} for k, c in itertools.product(_EXTENTS + (640,), _EXTENTS + (640,))]
    fy, fx = kernel
    for tile in grid:
        tile.update({d.FY: fy, d.FX: fx} if kind != "dense" else {})
    return {dim: np.array([t.get(dim, 1) for t in grid], dtype=np.int64) for dim in DIMS}


def probe_hook(hook: Callable[..., Any], kinds: Sequence[tuple[str, tuple[int, int], int, ProbePrecision]],
               macs_per_cycle: float) -> tuple[Optional[str], Optional[str]]:
    """Run ``hook`` on probe tiles of each (kind, kernel, stride, precision); returns (error, warning).

    ``error``: the hook raised or returned something other than one finite cycle count >= 0 per
    tile. ``warning``: the highest MACs per cycle it implies exceeds ``macs_per_cycle`` (the peak), or
    the hook reads a layer attribute the probe lacks (``PROBE_ATTRIBUTES``), so it could not be checked.
    """
    worst: tuple[float, str] = (0.0, "")
    for kind, kernel, stride, precision in kinds:
        tile = _probe_tiles(kind, kernel)
        sizes = {dim: int(values.max()) for dim, values in tile.items()}
        layer = ProbeLayer("probe", kind, sizes, (stride, stride), precision=precision)
        try:
            cycles = np.asarray(hook({k: v.copy() for k, v in tile.items()}, layer), dtype=np.float64)
        except AttributeError as exc:  # the hook reads a Layer attribute the probe does not have: cannot check
            return None, (f"could not be checked on probe tiles (it reads a layer attribute the probe lacks: "
                          f"{quote(str(exc))}; the probe has {', '.join(PROBE_ATTRIBUTES)})")
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, not raised
            return f"raised {type(exc).__name__} on a probe {kind} tile: {quote(str(exc))}", None
        n = len(tile[LoopDim.K])
        if cycles.shape != (n,):
            return f"must return one cycle count per tile (shape ({n},)), returned shape {cycles.shape}", None
        bad = ~np.isfinite(cycles) | (cycles < 0)
        if bad.any():
            return f"returned {quote(float(cycles[bad][0]))} cycles on a probe {kind} tile (allowed: finite, >= 0)", None
        macs = np.prod(np.stack([tile[dim] for dim in DIMS]), axis=0).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(cycles > 0, macs / np.where(cycles > 0, cycles, 1.0), math.inf)
        i = int(np.argmax(rate))
        if rate[i] > worst[0]:
            extents = ", ".join(f"{dim.value}={int(tile[dim][i])}" for dim in DIMS if tile[dim][i] != 1)
            worst = (float(rate[i]), f"{kind} tile {extents}: {int(macs[i])} MACs in {cycles[i]:g} cycles")
    if worst[0] > macs_per_cycle * (1 + 1e-9):
        implied = "infinite" if math.isinf(worst[0]) else (f"{worst[0]:.0f}" if worst[0] >= 100 else f"{worst[0]:.3g}")
        return None, (f"the hook implies {implied} MACs/cycle on a probe {worst[1]}, above the declared peak "
                      f"compute.macs_per_cycle = {macs_per_cycle:g}")
    return None, None
