"""Analytical kernel-cost hooks of the shipped modules (cycles per call on one L1 tile).

A hook is named in a module's YAML (``compute.kernel: "archs.kernels:ne16"``) and called as
``hook(tile, layer)``: ``tile`` maps each ``LoopDim`` to an int64 array (axis: candidate) of the
tile's extents, spatial unrolling included; ``layer`` gives ``kind``, ``stride``, ``dilation`` and
``precision``. It returns cycles per call as a float array of the same length. Sources of every
formula: ``docs/hardware_sources.md`` (DORY / MATCH target models); estimates are marked.

Every loop of the tile is costed: the published models describe one group of a conv and one
multiplier slice of a depthwise conv, so the group loop G of conv2d / dense (``mapper.conv2d``
puts groups in G, K and C per group) and the multiplier loop K of depthwise (channels in G, K =
multiplier, C = 1) repeat the kernel, except on DIANA, whose rows unroll K and G together.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from archs.dims import LoopDim

D = LoopDim


def _ceil_div(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    return -(-a // b)


def _input_rows(tile: Mapping[LoopDim, np.ndarray], layer: Any) -> np.ndarray:
    """Input rows the tile reads (halo included)."""
    return (tile[D.OY] - 1) * layer.stride[0] + (tile[D.FY] - 1) * layer.dilation[0] + 1


# --------------------------------------------------------------------------- GAP9 cluster
#: Estimated cycles per output element per core for an int8 add with two rescales (not in
#: docs/hardware_sources.md: 2 loads, 2 fixed-point rescales, add, clip, store with 8 cores' SIMD ~ 4 cycles).
CLUSTER_ADD_CYCLES_PER_ELEMENT = 4
#: Estimated fixed cycles per pooled output (accumulator set-up, rescale, store); not in docs/hardware_sources.md.
CLUSTER_POOL_CYCLES_PER_OUTPUT = 10
CLUSTER_CORES = 8


def pulp_nn_cluster(tile: Mapping[LoopDim, np.ndarray], layer: Any) -> np.ndarray:
    """GAP9 8-core cluster running PULP-NN kernels, as MATCH models it (cycles per tile)."""
    b, k, c, oy, ox, fy, fx, g = (tile[d] for d in (D.B, D.K, D.C, D.OY, D.OX, D.FY, D.FX, D.G))
    if layer.kind == "conv2d":
        iterations = _ceil_div(oy, CLUSTER_CORES) * _ceil_div(ox, 2)
        im2col = np.where((fy * fx) == 1, 0, fx * fy * c * 2)
        matmul = 15 + _ceil_div(fx * fy * c, 4) * 14
        cycles = g * iterations * (im2col + _ceil_div(k, 4) * matmul)  # one PULP-NN call per group
    elif layer.kind == "depthwise":
        iterations = _ceil_div(g, CLUSTER_CORES) * ox
        # one depthwise pass per multiplier slice (K)
        cycles = k * iterations * (_input_rows(tile, layer) * fy + oy * (30 + _ceil_div(fx * fy, 4) * 7))
    elif layer.kind == "dense":
        cycles = g * _ceil_div(c, 2) * _ceil_div(k, 4)
    elif layer.kind == "add":
        cycles = _ceil_div(k * oy * ox * g, CLUSTER_CORES) * CLUSTER_ADD_CYCLES_PER_ELEMENT
    else:  # pool
        cycles = _ceil_div(k * oy * ox * g, CLUSTER_CORES) * (fy * fx + CLUSTER_POOL_CYCLES_PER_OUTPUT)
    return (b * cycles).astype(np.float64)


# --------------------------------------------------------------------------- GAP9 NE16
def _ne16_iteration(k: np.ndarray, n_in: np.ndarray, one_by_one: bool, depthwise: bool, weight_bits: int):
    load = 19 if one_by_one else 31
    w_offset = 6 + k if depthwise else 6
    matrixvec = 6 + k if one_by_one else 6 + k * weight_bits
    normquant = 9 + k
    streamout = 13
    if depthwise:
        return load + w_offset + matrixvec + 2 + normquant + streamout
    return n_in * (load + w_offset + matrixvec + 2) + normquant + streamout


def ne16(tile: Mapping[LoopDim, np.ndarray], layer: Any) -> np.ndarray:
    """NE16 published latency model (DORY and MATCH), per output tile OH x OW x K x Cin, repeated
    per group (conv2d, dense) or per multiplier slice (depthwise)."""
    depthwise = layer.kind == "depthwise"
    one_by_one = layer.kind == "dense" or (layer.sizes[D.FY] == 1 and layer.sizes[D.FX] == 1)
    channels_out = tile[D.G] if depthwise else tile[D.K]
    k_body = 16 if depthwise else 32
    n_out = channels_out // k_body
    k_rem = channels_out % k_body
    n_in = np.ones_like(channels_out) if depthwise else _ceil_div(tile[D.C], 16)
    n_spatial = _ceil_div(tile[D.OY], 3) * _ceil_div(tile[D.OX], 3)
    bits = layer.precision.weight
    body = _ne16_iteration(np.full_like(channels_out, k_body), n_in, one_by_one, depthwise, bits)
    rem = np.where(k_rem > 0, _ne16_iteration(k_rem, n_in, one_by_one, depthwise, bits), 0)
    repeats = tile[D.K] if depthwise else tile[D.G]
    return (tile[D.B] * repeats * n_spatial * (n_out * body + rem)).astype(np.float64)


# --------------------------------------------------------------------------- DIANA digital
DIANA_ARRAY = 16  # 16 x 16 PEs: OX x K (depthwise: OX x G)
#: Estimated per-row cost for element-wise add on the digital array (not in docs/hardware_sources.md): one
#: operand pass per element plus the fixed 23-cycle row start-up of the MATCH model.
DIANA_ADD_CYCLES_PER_ROW = 2 + 23


def diana_digital(tile: Mapping[LoopDim, np.ndarray], layer: Any) -> np.ndarray:
    """DIANA 16x16 digital accelerator as MATCH models it: per output row and 16x16 block of
    (OX, output channel) outputs, ``C*FY*FX + 2*C*FY + 23`` cycles. The rows unroll K and G
    together (``diana.yaml``), so output channels are K x G (groups, depthwise multiplier)."""
    b, k, c, oy, ox, fy, fx, g = (tile[d] for d in (D.B, D.K, D.C, D.OY, D.OX, D.FY, D.FX, D.G))
    if layer.kind in ("conv2d", "dense"):
        per_block = c * fy * fx + 2 * c * fy + 23
        blocks = _ceil_div(ox, DIANA_ARRAY) * _ceil_div(k * g, DIANA_ARRAY)
    elif layer.kind == "depthwise":
        per_block = fy * fx + 2 * fy + 23
        blocks = _ceil_div(ox, DIANA_ARRAY) * _ceil_div(g * k, DIANA_ARRAY)
    else:  # add (pool is not accepted by the digital core)
        per_block = np.full_like(ox, DIANA_ADD_CYCLES_PER_ROW)
        blocks = _ceil_div(ox, DIANA_ARRAY) * _ceil_div(g * k, DIANA_ARRAY)
    return (b * oy * blocks * per_block).astype(np.float64)


# --------------------------------------------------------------------------- RV32 host (plain C)
#: Cycles per retired instruction of the hosts (GAP9's fabric controller, DIANA's RISC-V host, the
#: os32 example's host): single-issue in-order RV32 cores, taken as CPI 1 (loads and branches
#: that stall are not modelled).
HOST_RV32_CPI = 1.0
#: Measured host model, retired RV32IMC instructions per kernel call = a * MACs + w * windows +
#: b * outputs + c per kind (a per MAC; w per kernel-window position = outputs x FY x FX, conv2d
#: only; b per output element; c per call). Measured by ``python -m
#: benchmarks.host_model``: plain-C int8 kernels (``benchmarks/c/host_kernels.c``: int32
#: accumulation, TFLite requantization, run-time loop bounds, no tiling or SIMD) built with
#: riscv64-unknown-elf-gcc 12.2 ``-march=rv32imc -mabi=ilp32 -O2`` (picolibc), instructions counted
#: with ``rdinstret`` on ``qemu-system-riscv32 -icount shift=0``, non-negative least squares over a
#: spread of shapes (``benchmarks/results/host_model.json``). For add, MACs = outputs (a = 0).
HOST_RV32: dict[str, tuple[float, float, float, float]] = {
    "conv2d": (5.419, 17.369, 195.37, 0.0),
    "depthwise": (11.954, 0.0, 211.818, 0.0),
    "dense": (7.999, 0.0, 58.996, 40.2),
    "add": (0.0, 0.0, 254.324, 50.3),
    "pool": (7.261, 0.0, 55.346, 109.5),
}


def host_rv32_instructions(kind: str, macs: np.ndarray, windows: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Retired instructions of one plain-C kernel call of ``kind`` (``HOST_RV32``)."""
    if kind not in HOST_RV32:
        raise ValueError(f"host model: unknown layer kind {kind!r}; allowed: {', '.join(HOST_RV32)}")
    a, w, b, c = HOST_RV32[kind]
    f64 = np.float64
    return a * np.asarray(macs, dtype=f64) + w * np.asarray(windows, dtype=f64) + b * np.asarray(outputs, dtype=f64) + c


def rv32_host(tile: Mapping[LoopDim, np.ndarray], layer: Any) -> np.ndarray:
    """RV32IMC host running plain-C int8 kernels (cycles per call): the measured ``HOST_RV32``
    model x ``HOST_RV32_CPI`` on the tile's MACs (every loop) and output elements."""
    macs = np.ones_like(tile[D.B])
    for d in LoopDim:
        macs = macs * tile[d]
    outputs = tile[D.B] * tile[D.K] * tile[D.OY] * tile[D.OX] * tile[D.G]
    windows = outputs * tile[D.FY] * tile[D.FX]
    return HOST_RV32_CPI * host_rv32_instructions(layer.kind, macs, windows, outputs)
