"""The import graph: layers point one way and no module imports itself back through others.

Every import counts, deferred ones inside functions included: a cycle hidden in
a function is still a cycle a maintainer must keep in their head.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: source folder -> the package it installs as
FOLDERS = {"embedstore": "embedstore", "trainers": "embedstore.trainers", "cli": "embedstore.cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, pkg in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = path
    return mods


def _canonical(name: str) -> str:
    for folder, pkg in FOLDERS.items():
        if folder != pkg and (name == folder or name.startswith(folder + ".")):
            return pkg + name[len(folder):]
    return name


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (a package's ``__init__`` counts as the package)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [_canonical(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
                        if node.level else _canonical(node.module or ""))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    edges[mod].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_import_graph_has_no_cycle():
    assert _cycles(_graph()) == []


def test_layers_point_one_way():
    edges = _graph()
    wrong = []
    for mod, targets in edges.items():
        for t in targets:
            core = not mod.startswith(("embedstore.trainers", "embedstore.cli"))
            if core and t.startswith(("embedstore.trainers", "embedstore.cli")):
                wrong.append(f"{mod} -> {t} (embedstore never imports trainers or cli)")
            if mod.startswith("embedstore.trainers") and t.startswith("embedstore.cli"):
                wrong.append(f"{mod} -> {t} (trainers never import cli)")
    assert wrong == []


def test_the_graph_sees_deferred_and_relative_imports():
    edges = _graph()
    assert "embedstore.store" in edges["embedstore.extract"]  # top-level relative import
    assert "embedstore.trainers.train" in edges["embedstore.cli.train"]  # deferred, inside a command


#: The store's own modules: they match canonical model ids and keys, and never parse a user's model id.
STORE_SIDE = ["store", "store_compat", "data", "dataset", "neighbors", "snapshot", "versions", "model_registry",
              "schema", "keys", "maintenance", "upgrade", "doctor", "writes", "formats", "runs", "heads"]


def _reachable(edges: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports, directly or through others: ``{module: the module importing it}``."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        mod = todo.pop()
        for t in sorted(edges[mod]):
            if t not in seen and t != start:
                seen[t] = mod
                todo.append(t)
    return seen


def test_the_store_never_imports_the_extractors():
    """No arrow, direct or through other modules, from the store into extractors' id parsing (refs.py is the edge)."""
    edges = _graph()
    wrong = []
    for name in STORE_SIDE:
        mod = f"embedstore.{name}"
        assert mod in edges, mod
        for t, via in _reachable(edges, mod).items():
            if t == "embedstore.extractors" or t.startswith("embedstore.extractors.") or t == "embedstore.refs":
                wrong.append(f"{mod} reaches {t} (through {via})")
    assert wrong == []
