"""Every TVM version shim of the bridge, in one place (apache-tvm 0.27 pinned; 0.25/0.26 names as fallbacks).

API moves handled here (Relay is gone since TVM 0.20; the bridge works on Relax):

- expression types: ``expr.ty`` (0.26+) vs ``expr.struct_info`` (0.25);
- variable names: ``Var.name`` (0.27) vs ``Var.name_hint``;
- constants: ``tvm.ir.expr.GenericConst(.value)`` (0.27) vs ``relax.Constant(.data)`` (<= 0.26);
- scalar attributes / clip bounds: ``FloatImm``/``IntImm`` (``.value``) or plain Python numbers;
- ``tvm.register_global_func`` vs ``tvm.register_func``; ``tvm.runtime.tensor`` vs ``tvm.nd.array``;
- ``tvm.compile`` vs ``relax.build``.

Importing this module imports TVM; nothing else in it runs at import time.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import tvm
from tvm import relax

TVM_VERSION = tvm.__version__


def expr_type(expr: Any) -> Any:
    """The static type of a Relax expression (``TensorType``, ``TupleType``, ...)."""
    ty = getattr(expr, "ty", None)
    return ty if ty is not None else getattr(expr, "struct_info", None)


def tensor_shape(expr: Any) -> Optional[tuple[int, ...]]:
    """Static shape of a tensor-typed expression; None when unknown or symbolic (dynamic)."""
    ty = expr_type(expr)
    shape = getattr(ty, "shape", None)
    if shape is None:
        return None
    values = getattr(shape, "values", shape)
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        elif hasattr(v, "value") and isinstance(v.value, int):
            out.append(int(v.value))
        else:
            return None
    return tuple(out)


def tensor_dtype(expr: Any) -> str:
    """Element type of a tensor-typed expression as a string (``"int8"``); ``""`` if not a tensor."""
    ty = expr_type(expr)
    dtype = getattr(ty, "dtype", None)
    return str(dtype) if dtype is not None else ""


def is_tensor(expr: Any) -> bool:
    return isinstance(expr_type(expr), getattr(relax, "TensorType", ())) or (
        hasattr(relax, "TensorStructInfo") and isinstance(expr_type(expr), relax.TensorStructInfo))


def var_name(var: Any) -> str:
    """Name of a Relax ``Var`` / ``GlobalVar``."""
    for attr in ("name", "name_hint"):
        value = getattr(var, attr, None)
        if isinstance(value, str):
            return value
    return str(var)


_CONST_TYPES: tuple = tuple(t for t in (getattr(tvm.ir.expr, "GenericConst", None), getattr(relax, "Constant", None))
                            if isinstance(t, type))


def is_constant(expr: Any) -> bool:
    """True for a Relax tensor constant (not an IntImm/FloatImm)."""
    return isinstance(expr, _CONST_TYPES)


def constant_value(expr: Any) -> np.ndarray:
    """numpy value of a Relax tensor constant."""
    data = getattr(expr, "value", None)
    if data is None or not hasattr(data, "numpy"):
        data = expr.data
    return data.numpy()


def scalar_value(value: Any) -> float:
    """A Python number from a FloatImm/IntImm, a scalar constant or a number."""
    if is_constant(value):
        return constant_value(value).item()
    inner = getattr(value, "value", value)
    return inner.item() if hasattr(inner, "item") else inner


def op_name(expr: Any) -> str:
    """``"relax.nn.conv2d"`` for a call of a Relax operator; ``""`` for anything else."""
    op = getattr(expr, "op", None)
    return op.name if isinstance(op, tvm.ir.Op) else ""


def is_call(expr: Any) -> bool:
    return isinstance(expr, relax.Call)


def function_attr(func: Any, key: str, default: Any = None) -> Any:
    """A function attribute as a Python value (str for strings), ``default`` if absent."""
    attrs = getattr(func, "attrs", None)
    if attrs is None or key not in attrs:
        return default
    value = attrs[key]
    return str(value) if isinstance(value, (str, tvm.ir.expr.StringImm)) or type(value).__name__ == "String" else value


def register_global_func(name: str, func: Callable) -> Callable:
    """Register ``func`` as TVM global function ``name`` (overriding an earlier registration)."""
    register = getattr(tvm, "register_global_func", None) or tvm.register_func
    return register(name, func, override=True)


def get_global_func(name: str, allow_missing: bool = False) -> Optional[Callable]:
    return tvm.get_global_func(name, allow_missing=allow_missing)


def to_runtime_tensor(array: np.ndarray, device: Any = None) -> Any:
    """numpy -> TVM runtime tensor on ``device`` (CPU by default)."""
    device = device if device is not None else tvm.cpu()
    make = getattr(tvm.runtime, "tensor", None)
    if make is not None:
        return make(np.ascontiguousarray(array), device)
    return tvm.nd.array(np.ascontiguousarray(array), device)  # pragma: no cover - TVM < 0.26


def compile_relax(mod: Any, target: str = "llvm", opt_level: Optional[int] = None) -> Any:
    """Compile a Relax IRModule for the host into a VM executable (``opt_level``: LLVM's, default TVM's)."""
    if opt_level is not None:
        target = tvm.target.Target({"kind": target, "opt-level": int(opt_level)})
    if hasattr(tvm, "compile"):
        return tvm.compile(mod, target=target)
    return relax.build(mod, target=target)  # pragma: no cover - TVM < 0.26


def virtual_machine(executable: Any, device: Any = None) -> Any:
    return relax.VirtualMachine(executable, device if device is not None else tvm.cpu())


def get_module_function(module: Any, name: str) -> Optional[Callable]:
    """Function ``name`` of a runtime module or one of its imports (None if absent)."""
    try:
        return module.get_function(name, query_imports=True)
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    except Exception:  # tvm_ffi raises its own error types  # noqa: BLE001
        return None


def tensor_type(shape: tuple[int, ...], dtype: str) -> Any:
    """A Relax tensor type (for hand-built functions' return types)."""
    if hasattr(relax, "TensorType"):
        return relax.TensorType(shape, dtype)
    return relax.TensorStructInfo(shape, dtype)  # pragma: no cover - TVM 0.25


def call_with_args(call: Any, args: list) -> Any:
    """A copy of Relax call ``call`` with new arguments (``ty_args`` since 0.26, ``sinfo_args`` before)."""
    extra = getattr(call, "ty_args", None)
    if extra is None:
        extra = getattr(call, "sinfo_args", None)
    return relax.Call(call.op, args, call.attrs, extra)
