"""The import graph of repogen.trt (converters, helpers, the NumPy backend...), read with ``ast``: no cycles,
and converters import shared helpers, never each other.

Every import statement counts, also the ones inside functions: a deferred import still ties two modules
together, it only hides the cycle from the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import repogen.trt

ROOT = Path(repogen.trt.__file__).resolve().parent
PACKAGE = "repogen.trt"
CONVERTERS = PACKAGE + ".converters"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Absolute names an import statement asks for (module, or module.attribute for ``from m import a``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """module -> the repogen.trt modules it imports (a package stands for its __init__)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(node, module, is_package):
                # "from pkg import sub" names a module; "from mod import func" names mod itself
                target = name if name in modules else name.rsplit(".", 1)[0]
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def _is_converter(module: str) -> bool:
    return module.startswith(CONVERTERS + ".")


def test_the_graph_is_read() -> None:
    graph = import_graph()
    # the parse sees absolute, relative and deferred imports (the test could not fail otherwise)
    assert CONVERTERS + ".conv" in graph[CONVERTERS]
    assert PACKAGE + ".numpy_trt._types" in graph[PACKAGE + ".numpy_trt"]
    assert CONVERTERS in graph[PACKAGE + ".registry"]
    assert len([m for m in graph if _is_converter(m)]) >= 20


def test_no_import_cycle() -> None:
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_converters_do_not_import_each_other() -> None:
    graph = import_graph()
    bad = {m: sorted(n for n in deps if n == CONVERTERS or _is_converter(n))
           for m, deps in graph.items() if _is_converter(m)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_only_the_registry_loads_converters() -> None:
    """passes, check, fold, convert... reach converters through the table, and helpers live outside them."""
    graph = import_graph()
    importers = {m for m, deps in graph.items()
                 if not _is_converter(m) and m != CONVERTERS and any(n == CONVERTERS or _is_converter(n) for n in deps)}
    assert importers == {PACKAGE + ".registry"}
