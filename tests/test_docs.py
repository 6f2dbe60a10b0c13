"""Docs cite only files that are in the repository (README, docs/, docstrings and comments, YAML comments)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("archs", "mapper", "costmodel", "tvm_bridge", "benchmarks", "docs", "tests", "shared")
CITATION = re.compile(rf"(?<![\w/.-])(?:{'|'.join(TOP)})/[\w./*{{}}<>-]*[\w*}}>]")


def _documents() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for top in TOP[:-1]:
        files += sorted(p for ext in ("*.py", "*.yaml", "*.md", "*.h") for p in (ROOT / top).rglob(ext))
    return [p for p in files if p.is_file()]


def test_cited_files_exist():
    missing = []
    for doc in _documents():
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for cited in CITATION.findall(line):
                if "*" in cited or "<" in cited or "{" in cited:
                    continue
                if not (ROOT / cited.rstrip(".")).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{number}: {cited}")
    assert missing == []


def test_no_working_notes():
    assert not (ROOT / "docs" / "notes").exists()
