"""The C/C++ compiler the bridge builds generated code with, found the way TVM finds it.

TVM's ``export_library`` calls ``$CXX``, else ``$CC``, else the first of g++, gcc, clang++, clang,
c++, cc on ``PATH``. ``c_compiler()`` applies the same rule up front and raises ``BridgeError``
saying what to install when that compiler is missing, instead of a bare error from deep in TVM.
"""

from __future__ import annotations

import os
import shlex
import shutil

from tvm_bridge.relax_import import BridgeError

#: Searched on PATH, in TVM's order, when neither CXX nor CC is set.
COMPILER_NAMES = ("g++", "gcc", "clang++", "clang", "c++", "cc")
INSTALL_HINT = ("the TVM bridge compiles the generated C (and TVM's host code) into a shared library with a C/C++ "
                "compiler: install one (Debian/Ubuntu: apt-get install g++) or set CXX to its path")


def c_compiler() -> str:
    """Path of the compiler TVM will call (``$CXX``, ``$CC`` or the first of ``COMPILER_NAMES`` on
    PATH); ``BridgeError`` with an install hint when there is none or the one named does not exist."""
    for variable in ("CXX", "CC"):
        command = os.environ.get(variable)
        if command:
            words = shlex.split(command)
            found = shutil.which(words[0]) if words else None
            if found is None:
                shown = command if len(command) <= 80 else command[:77] + "..."
                raise BridgeError(f"C compiler not found: {variable}={shown!r} is not an executable; {INSTALL_HINT}")
            return found
    for name in COMPILER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise BridgeError(f"no C compiler found (CXX and CC unset, none of {', '.join(COMPILER_NAMES)} on PATH); {INSTALL_HINT}")
