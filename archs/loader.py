"""``archs.load``: one entry point for hardware files, native (``archs/*.yaml`` schema) or ZigZag.

A file whose top level has ZigZag's ``operational_array`` or a top-level ``memories`` mapping (and
no ``modules`` list, which every native description has) is a ZigZag 3.x accelerator: it is read by
``archs.from_zigzag`` (with ``mapping``, or ZigZag's defaults when ``mapping`` is None). Everything
else is validated against the native schema (``archs.schema.load``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from archs.model import SoC
from archs.schema import ArchError
from archs.schema import load as load_native
from archs.zigzag import from_zigzag

log = logging.getLogger(__name__)

_ZIGZAG_KEY = re.compile(r"^(operational_array|memories)\s*:", re.M)
_NATIVE_KEY = re.compile(r"^modules\s*:", re.M)


def is_zigzag_file(path: Union[str, Path]) -> bool:
    """Whether ``path`` looks like a ZigZag accelerator YAML: a top-level ``operational_array`` or
    ``memories`` key and no top-level ``modules`` (a line scan, no YAML parsing)."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open(errors="replace") as handle:
        text = handle.read(1 << 20)  # the top-level keys are near the start; files above 256 KiB are refused anyway
    return bool(_ZIGZAG_KEY.search(text)) and not _NATIVE_KEY.search(text)


def load(name_or_path: Union[str, Path], mapping: Union[str, Path, Sequence[Mapping[str, Any]], None] = None) -> SoC:
    """Load a shipped SoC by name (``"gap9"``, ``"diana"``, ``"os32_example"``), a native hardware
    YAML by path, or a ZigZag accelerator YAML by path (detected, read with ``archs.from_zigzag``
    and ``mapping``: a ZigZag mapping file, or None for ZigZag's defaults). Raises ``ArchError``
    naming the file, the key path and what is allowed."""
    if is_zigzag_file(name_or_path):
        log.info("%s: a ZigZag accelerator description; reading it with archs.from_zigzag (mapping: %s)",
                 name_or_path, mapping if mapping is not None else "ZigZag's defaults")
        return from_zigzag(name_or_path, mapping=mapping)
    if mapping is not None:
        raise ArchError(str(name_or_path), [("", "mapping= applies to ZigZag accelerator files only (a top-level "
                                                 "'operational_array' and 'memories'); this is a native description")])
    return load_native(name_or_path)


__all__ = ["is_zigzag_file", "load"]
