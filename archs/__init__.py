"""Hardware models of heterogeneous SoCs (pure data; knows nothing of TVM or of the mapper).

``archs.load("gap9")`` loads a shipped SoC, ``archs.load("my_soc.yaml")`` a user's file (a ZigZag
accelerator YAML is detected and read with ``archs.from_zigzag``).
"""

from archs.dims import DIMS, OPERANDS, LoopDim, Operand
from archs.kernel_hooks import allow_kernel_module, allowed_kernel_modules
from archs.loader import is_zigzag_file, load
from archs.model import (
    LAYER_KINDS,
    ComputeModel,
    ExecModule,
    LayerRule,
    MemoryLevel,
    SoC,
    SpatialDim,
)
from archs.schema import ArchError, ArchWarning, builtin_names, from_dict, from_yaml_text, to_dict
from archs.zigzag import from_zigzag

__all__ = [
    "DIMS", "OPERANDS", "LAYER_KINDS", "LoopDim", "Operand", "ComputeModel", "ExecModule", "LayerRule",
    "MemoryLevel", "SoC", "SpatialDim", "ArchError", "ArchWarning", "allow_kernel_module", "allowed_kernel_modules",
    "builtin_names", "from_dict", "from_yaml_text", "load", "to_dict",
    "from_zigzag", "is_zigzag_file",
]
