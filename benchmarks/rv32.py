"""Build and run bare-metal RV32IMC programs: Debian's ``riscv64-unknown-elf-gcc`` + picolibc,
executed on ``qemu-system-riscv32 -machine virt`` with semihosting (stdout, exit code).

Instruction counts: run with ``-icount shift=0`` so that the ``rdinstret`` CSR counts retired
instructions exactly (without ``-icount`` QEMU returns host ticks there). Programs read it with
``match_rdinstret()`` from the prelude below.

Debian packages: ``gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

GCC = "riscv64-unknown-elf-gcc"
NM = "riscv64-unknown-elf-nm"
QEMU = "qemu-system-riscv32"
DEBIAN_PACKAGES = ("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc")
#: Target flags: the RV32IMC cores of the shipped SoCs' hosts, integer ABI.
ARCH_FLAGS = ("-march=rv32imc", "-mabi=ilp32")
#: picolibc with semihosting; code and data in QEMU virt's RAM (0x80000000, 4 + 4 MB).
_LINK_FLAGS = ("--specs=picolibc.specs", "--oslib=semihost", "--crt0=semihost",
               "-Wl,--defsym=__flash=0x80000000", "-Wl,--defsym=__flash_size=0x400000",
               "-Wl,--defsym=__ram=0x80400000", "-Wl,--defsym=__ram_size=0x400000")
#: Prelude for programs: exact retired-instruction counter (under ``-icount``).
RDINSTRET = """
static inline unsigned long match_rdinstret(void) {
    unsigned long v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
}
"""


class Rv32Error(RuntimeError):
    """The cross toolchain or QEMU is missing, a build failed, or a program failed."""


def missing_tools() -> list[str]:
    """Executables of the RV32 flow that are not on PATH (picolibc is checked by a build)."""
    return [tool for tool in (GCC, NM, QEMU) if shutil.which(tool) is None]


def _truncate(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass(frozen=True)
class Rv32Run:
    """Output of one program run."""

    stdout: str
    returncode: int


def build(sources: Sequence[Path], output: Path, *, flags: Sequence[str] = ("-O2",),
          include_dirs: Sequence[Path] = ()) -> Path:
    """Compile and link ``sources`` into the RV32IMC ELF ``output`` (flags after the arch flags)."""
    missing = missing_tools()
    if missing:
        raise Rv32Error(f"missing {', '.join(missing)}; install the Debian packages {' '.join(DEBIAN_PACKAGES)}")
    cmd = [GCC, *ARCH_FLAGS, *flags, *(f"-I{d}" for d in include_dirs), *map(str, sources), *_LINK_FLAGS,
           "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise Rv32Error(f"{GCC} failed on {', '.join(Path(s).name for s in sources)}:\n{_truncate(proc.stderr)}")
    return output


def compile_only(source: Path, *, flags: Sequence[str], include_dirs: Sequence[Path] = ()) -> Path:
    """Compile ``source`` to an object file next to it (no link) with ``flags``; returns its path.
    picolibc's headers are on the include path (``string.h`` for memcpy / memset)."""
    missing = missing_tools()
    if missing:
        raise Rv32Error(f"missing {', '.join(missing)}; install the Debian packages {' '.join(DEBIAN_PACKAGES)}")
    obj = Path(source).with_suffix(".o")
    cmd = [GCC, *ARCH_FLAGS, *flags, "--specs=picolibc.specs", *(f"-I{d}" for d in include_dirs), "-c", str(source),
           "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise Rv32Error(f"{GCC} {' '.join(flags)} failed on {Path(source).name}:\n{_truncate(proc.stderr)}")
    return obj


def undefined_symbols(obj: Path) -> set[str]:
    """Symbols an object file needs from elsewhere (libc, libgcc)."""
    proc = subprocess.run([NM, "-u", str(obj)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise Rv32Error(f"{NM} failed on {Path(obj).name}: {_truncate(proc.stderr)}")
    return {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()}


def run(elf: Path, *, timeout_s: float = 600.0, stdin: Optional[bytes] = None) -> Rv32Run:
    """Run ``elf`` on QEMU's RV32 ``virt`` machine with semihosting and exact instruction counting.

    Raises ``Rv32Error`` (with the program's output) on a non-zero exit or a timeout.
    """
    with tempfile.TemporaryDirectory(prefix="rv32_run_") as tmp:
        log = Path(tmp) / "semihosting.out"  # the program's stdout (semihosting console)
        cmd = [QEMU, "-machine", "virt", "-nographic", "-bios", "none", "-icount", "shift=0",
               "-chardev", f"file,id=semihost,path={log}",
               "-semihosting-config", "enable=on,userspace=on,chardev=semihost", "-kernel", str(elf)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, input=stdin)
        except subprocess.TimeoutExpired as exc:
            raise Rv32Error(f"{Path(elf).name} did not finish within {timeout_s:g} s on {QEMU}") from exc
        out = log.read_text(errors="replace") if log.exists() else ""
    if proc.returncode != 0:
        raise Rv32Error(f"{Path(elf).name} exited with {proc.returncode} on {QEMU}:\n{_truncate(out)}\n"
                        f"{_truncate(proc.stderr.decode(errors='replace'))}")
    return Rv32Run(out, proc.returncode)
