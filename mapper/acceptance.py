"""Which modules accept a layer: the module's ``accepts`` rules and its outermost memory."""

from __future__ import annotations

import dataclasses
from typing import Optional

from archs.dims import LoopDim as D
from archs.dims import Operand
from archs.model import ExecModule, LayerRule
from mapper.workload import Layer


def _rule_mismatch(layer: Layer, rule: LayerRule) -> Optional[str]:
    """Why ``rule`` does not cover ``layer`` (None if it does)."""
    fy, fx = layer.sizes[D.FY], layer.sizes[D.FX]
    if rule.kernel_sizes is not None and (fy, fx) not in rule.kernel_sizes:
        return f"kernel {fy}x{fx} not in {['%dx%d' % k for k in rule.kernel_sizes]}"
    if rule.strides is not None and any(s not in rule.strides for s in layer.stride):
        return f"stride {layer.stride} not in {list(rule.strides)}"
    if rule.dilations is not None and any(d not in rule.dilations for d in layer.dilation):
        return f"dilation {layer.dilation} not in {list(rule.dilations)}"
    top, bottom, left, right = layer.padding
    if rule.padding == "none" and any(layer.padding):
        return f"padding {layer.padding} but the module takes no padding"
    if rule.padding == "symmetric" and (top != bottom or left != right):
        return f"asymmetric padding {layer.padding} (top, bottom, left, right) but the module needs symmetric"
    for dim, multiple in rule.channel_multiple:
        if layer.sizes[dim] % multiple:
            return f"{dim.value}={layer.sizes[dim]} is not a multiple of {multiple}"
    for dim, maximum in rule.max_sizes:
        if layer.sizes[dim] > maximum:
            return f"{dim.value}={layer.sizes[dim]} exceeds the maximum {maximum}"
    for role, allowed in rule.precision:
        bits = getattr(layer.precision, role)
        if role == "weight" and not layer.has_operand(Operand.W):
            continue
        if bits not in allowed:
            return f"{role} precision {bits} bits not in {list(allowed)}"
    return None


def rejection_reason(layer: Layer, module: ExecModule) -> Optional[str]:
    """Why ``module`` cannot run ``layer`` at all (None if it accepts it).

    The host accepts every layer; any module rejects a layer whose tensors do not fit the
    outermost memory, where the layer's tensors live.
    """
    if not module.is_host:
        same_kind = [rule for rule in module.accepts if rule.kind == layer.kind]
        if not same_kind:
            kinds = sorted({rule.kind for rule in module.accepts})
            return f"kind {layer.kind} not accepted (accepts: {', '.join(kinds)})"
        reasons = [_rule_mismatch(layer, rule) for rule in same_kind]
        if all(r is not None for r in reasons):
            return "not accepted: " + "; ".join(r for r in reasons if r)
    outer = module.memories[-1]
    need = sum(layer.tensor_bytes(o) for o in (Operand.I, Operand.W, Operand.O))
    if need > outer.size_bytes:
        return (f"tensors need {need} B but the outermost memory {outer.name!r} holds {outer.size_bytes} B")
    return None


#: Layer kinds whose padding the host can apply beforehand (zero-point fill of a bigger input).
PADDABLE_KINDS = ("conv2d", "depthwise")


def padding_split(layer: Layer, module: ExecModule) -> Optional[Layer]:
    """``layer`` without padding (its input pre-padded by the host) if ``module`` rejects ``layer``
    only because of its padding, and accepts the unpadded one; else None.

    The unpadded layer computes the same outputs from the padded input: padding contributes the
    input zero point, which the integer kernel subtracts. Used by ``map_layer`` (MATCH-style) to run
    TF "SAME" stride-2 layers, whose padding is asymmetric, on accelerators that need symmetric
    padding; ``map_layer_accelerator_first`` (DORY/HTVM's rules) does not split.
    """
    if module.is_host or layer.kind not in PADDABLE_KINDS or not any(layer.padding):
        return None
    if rejection_reason(layer, module) is None:
        return None
    unpadded = dataclasses.replace(layer, padding=(0, 0, 0, 0))
    return unpadded if rejection_reason(unpadded, module) is None else None
