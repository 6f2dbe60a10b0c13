"""Import graph of the packages, read from the source (every import statement, function-level ones
included): no cycle between modules, and the layering archs <- costmodel <- mapper <- tvm_bridge <-
benchmarks holds (a package imports only packages below it; only tvm_bridge imports tvm)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("archs", "costmodel", "mapper", "tvm_bridge", "explorer", "benchmarks")  # each may import only those before it
TVM_USERS = ("tvm_bridge", "benchmarks")  # benchmarks reach tvm only through tvm_bridge (checked below)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in LAYERS for p in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``path``: a package's submodule where it names one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if sub in modules else base, node.lineno))
    return out


def import_graph() -> nx.DiGraph:
    """Module -> module edges (``line`` attribute) over our packages, plus external top-level packages."""
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target, line in _imports(path, name, modules):
            if target != name:
                graph.add_edge(name, target, line=line)
    return graph


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # tvm_bridge.relax_import imports tflite inside from_tflite(), not at module level
    assert graph.has_edge("tvm_bridge.relax_import", "tflite")
    assert graph.has_edge("tvm_bridge.partition", "tvm_bridge.relax_codegen")


def _cycles(graph: nx.DiGraph, packages: tuple[str, ...]) -> list[list[str]]:
    ours = graph.subgraph(n for n in graph if _top(n) in packages)
    return sorted(sorted(c) for c in nx.simple_cycles(ours))


def test_no_import_cycles_in_the_libraries():
    assert _cycles(import_graph(), ("archs", "costmodel", "mapper", "tvm_bridge")) == []


def test_no_import_cycles_in_the_benchmarks():
    assert _cycles(import_graph(), LAYERS) == []


def test_layering():
    graph = import_graph()
    wrong = []
    for src, dst, data in graph.edges(data=True):
        a, b = _top(src), _top(dst)
        where = f"{src} (line {data['line']}) imports {dst}"
        if b in LAYERS and LAYERS.index(b) > LAYERS.index(a):
            wrong.append(f"{where}: {a} may import only {', '.join(LAYERS[:LAYERS.index(a)]) or 'no package of ours'}")
        if b == "tvm" and a not in TVM_USERS[:1]:
            wrong.append(f"{where}: only tvm_bridge imports tvm")
    assert wrong == []
