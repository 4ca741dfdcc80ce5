"""The import lines show the layers: no import cycles between project modules (counting
imports inside functions too), and no function-local imports of project modules outside
the command-line boundary, where lazy imports keep `rollcall --help` and each command's
start fast.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("firmware", "console", "models", "provisioning")
# Command modules: each is imported only when its command runs (firmware/cli/__init__.py).
LAZY_OK = ("firmware.cli", "firmware.bench", "models.cli", "console.bench", "provisioning.")
# firmware.config.write_config_atomic needs firmware.store.atomic, and the store package
# needs the config schema: importing it at module level would be a real cycle.
KNOWN = {("firmware.config", "firmware.store.atomic")}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts).removesuffix(".__init__")] = path
    return out


def _project_imports(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
        names = [f"{node.module}.{a.name}" for a in node.names]
        return [node.module, *(n for n in names if n in modules)]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    return []


def _function_local(tree: ast.AST, modules: dict[str, Path]) -> list[tuple[str, int]]:
    found = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                found += [(name, node.lineno) for name in _project_imports(node, modules)[:1]]
    return found


def test_no_function_local_imports_of_project_modules_outside_the_cli():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        if name.startswith(LAZY_OK):
            continue
        for target, line in _function_local(ast.parse(path.read_text()), modules):
            if (name, target) not in KNOWN:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target} inside a function")
    assert not bad, "import at module level (or break the cycle that forced it):\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_even_through_function_local_imports():
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph[name]
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _project_imports(node, modules):
                if target in modules and target != name and not name.startswith(target + ".") \
                        and (name, target) not in KNOWN:
                    graph[name].add(target)
    assert _cycles(graph) == []
