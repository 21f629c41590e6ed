"""The layers of the package, read from every import statement (the ones inside functions too: a deferred
import still ties two modules together, it only hides the tie from the interpreter): library packages import
only the layers below them, nothing imports the command line, no package imports the tests, and there are
no import circles. dev/LAYERS.md draws the same order."""

from __future__ import annotations

import ast
from pathlib import Path

import repogen

ROOT = Path(repogen.__file__).resolve().parent

#: bottom to top; a module may import its own layer and the layers below it
LAYERS = [
    ("repogen", "repogen.errors", "repogen.ir", "repogen.naming", "repogen.npz"),
    ("repogen.paddle",),
    ("repogen.reference",),
    ("repogen.trt",),
    ("repogen.repository",),
    ("repogen.storage",),
    ("repogen.pipelines",),
    ("repogen.verify",),
    ("repogen.partition",),
    ("repogen.build",),
    ("repogen.harness",),
    ("repogen.deploy",),
    ("repogen.examples",),
    ("repogen.cli", "repogen.__main__"),  # `python -m repogen` is the command line too
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), i
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def imports() -> dict[str, set[str]]:
    """module -> the repogen (and tests) modules it imports."""
    out: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "served" in path.parts:  # files copied into model folders: they run inside Triton, not as repogen
            continue
        module = _module(path)
        found = out.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m: {t for t in targets if t.split(".")[0] in ("repogen", "tests")} for m, targets in out.items()}


def test_every_import_points_down_the_layers():
    upward = []
    graph = imports()
    modules = set(graph)
    for module, targets in graph.items():
        for t in targets:
            if t.startswith("tests"):
                upward.append(f"{module} imports {t} (test support stays in tests/)")
                continue
            target = t if t in modules else t.rsplit(".", 1)[0]
            if target in modules and _layer(target) > _layer(module):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_no_import_circles_between_modules():
    graph = imports()
    modules = set(graph)
    edges = {m: {t if t in modules else t.rsplit(".", 1)[0] for t in ts} & modules - {m} for m, ts in graph.items()}
    # a package's __init__ re-exporting its modules is not a circle with them
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}
    state: dict[str, int] = {}
    circles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                circles.append(" -> ".join(path[path.index(t):] + [t]) if t in path else f"{m} -> {t}")
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_only_the_command_line_reads_arguments():
    """Library modules take typed parameters: no argparse, no ``run(args)`` command functions and no
    ``getattr(args, ...)`` outside repogen/cli."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if "argparse" in [a.name for a in node.names] + [getattr(node, "module", None) or ""]:
                    offenders.append(f"{where} imports argparse")
            elif isinstance(node, ast.FunctionDef) and [a.arg for a in node.args.args] == ["args"]:
                offenders.append(f"{where} defines {node.name}(args)")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                  and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "args"):
                offenders.append(f"{where} reads getattr(args, ...)")
    assert offenders == []
