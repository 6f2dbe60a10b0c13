"""Closed enums shared by the hardware, workload and mapping specs."""

from __future__ import annotations

from enum import Enum


class LoopDim(str, Enum):
    """Loop dimensions of a layer's loop nest.

    B batch, K output channels (per group), C input channels (per group), OY/OX output rows/columns,
    FY/FX kernel rows/columns, G groups (channels of a depthwise conv, pool or element-wise op).
    """

    B = "B"
    K = "K"
    C = "C"
    OY = "OY"
    OX = "OX"
    FY = "FY"
    FX = "FX"
    G = "G"


#: Fixed axis of each loop dim in every numpy array of the cost model (axis name: ``dim``).
DIMS: tuple[LoopDim, ...] = tuple(LoopDim)
DIM_INDEX: dict[LoopDim, int] = {d: i for i, d in enumerate(DIMS)}


class Operand(str, Enum):
    """Operands of a layer: I input activations, W weights (or the second input of an element-wise
    add), O outputs."""

    I = "I"  # noqa: E741 - the field's standard name
    W = "W"
    O = "O"  # noqa: E741


OPERANDS: tuple[Operand, ...] = tuple(Operand)
OPERAND_INDEX: dict[Operand, int] = {o: i for i, o in enumerate(OPERANDS)}
