"""Building the compiled model's shared library, faster than a plain ``export_library``.

``export_library`` first emits TVM's LLVM host code, then runs g++ once on the generated C++ of
every offloaded layer and links. ``PrecompiledSource`` starts that g++ ``-c`` in a child process as
soon as the C++ source is known (before ``tvm.compile`` runs LLVM), so the two overlap on two
cores, and keeps the object in a cache keyed by the SHA-256 of the source, the flags and the
compiler's version (``$MATCH_BRIDGE_CACHE``, default ``~/.cache/match-mapper/objects``, at most
``CACHE_ENTRIES`` objects; ``off`` disables it), so an unchanged model rebuilds without compiling C++ at all. ``link`` is the
``fcompile`` for ``export_library``: it swaps TVM's copy of that source for the object if the texts
are identical (else it compiles the source as ``export_library`` would) and links.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from tvm.support import cc as _cc


def include_options() -> list[str]:
    """The ``-I`` flags ``export_library`` adds for C/C++ modules (TVM and TVM-FFI headers)."""
    import tvm
    from tvm_ffi import libinfo as ffi_libinfo

    paths = [tvm.libinfo.find_include_path(), ffi_libinfo.find_include_path(), ffi_libinfo.find_dlpack_include_path()]
    flat = []
    for path in paths:
        flat += path if isinstance(path, (list, tuple)) else [path]
    return ["-I" + p for p in flat]


@lru_cache(maxsize=None)
def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return compiler


def cache_dir() -> Optional[Path]:
    """The object cache directory, or None when ``$MATCH_BRIDGE_CACHE`` is ``off``."""
    setting = os.environ.get("MATCH_BRIDGE_CACHE", "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    return Path(setting) if setting else Path.home() / ".cache" / "match-mapper" / "objects"


#: objects kept in the cache (the least recently written beyond this are deleted)
CACHE_ENTRIES = 256


def _prune(directory: Path, keep: int = CACHE_ENTRIES) -> None:
    entries = sorted(directory.glob("*.o"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)


class PrecompiledSource:
    """``g++ -c`` of one C++ source, started at construction in a child process (or found in the cache)."""

    def __init__(self, source: str, workdir: Path, options: Sequence[str]):
        self.source = source
        self.compiler = _cc.get_cc() or "g++"
        self.options = ["-c", "-fPIC", *options, *include_options()]
        key = hashlib.sha256("\0".join([source, *self.options, _compiler_version(self.compiler)]).encode()).hexdigest()
        cache = cache_dir()
        self.cached = cache / f"{key}.o" if cache is not None else None
        self.object = Path(workdir) / "offloaded_layers.o"
        self._process: Optional[subprocess.Popen] = None
        if self.cached is not None and self.cached.is_file():
            shutil.copyfile(self.cached, self.object)
            self.cache_hit = True
            return
        self.cache_hit = False
        src = Path(workdir) / "offloaded_layers.cc"
        src.write_text(source)
        self._process = subprocess.Popen([self.compiler, *self.options, "-o", str(self.object), str(src)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait(self) -> Path:
        """The object file (raises RuntimeError with g++'s output if it failed)."""
        if self._process is not None:
            out, _ = self._process.communicate()
            if self._process.returncode != 0:
                raise RuntimeError(f"g++ failed on the generated layers:\n{out.decode(errors='replace')[-4000:]}")
            self._process = None
            if self.cached is not None:
                self.cached.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.cached.parent, suffix=".o.tmp")
                os.close(fd)
                shutil.copyfile(self.object, tmp)
                os.replace(tmp, self.cached)  # atomic: concurrent builds never see half an object
                _prune(self.cached.parent)
        return self.object

    def cancel(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def linker(pre: Optional[PrecompiledSource]):
    """An ``export_library`` ``fcompile``: TVM's ``.cc`` with ``pre``'s exact source -> ``pre``'s object."""

    def link(output: str, objects: Sequence[str], options: Optional[Sequence[str]] = None, **kwargs) -> None:
        files = list(objects)
        if pre is not None:
            for i, path in enumerate(files):
                if path.endswith((".cc", ".cpp")) and Path(path).read_text() == pre.source:
                    files[i] = str(pre.wait())
        _cc.create_shared(output, files, list(options or []), **kwargs)

    return link
