"""drivekit's import graph: layers import downwards only, no cycles (the layers: ``drivekit/__init__.py``).

Every import counts, a deferred one inside a function too: a deferred import that dodges a cycle
is still one.
"""
import ast
from pathlib import Path

import pytest

import drivekit

PACKAGE = Path(drivekit.__file__).resolve().parent


def imports_of(source: str, package: str, modules: set[str]) -> set[str]:
    """The modules of ``package`` (names in ``modules``) that ``source`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                raise AssertionError(f"relative import beyond the package: level {node.level}")
            base = node.module or ""
            if node.level == 0 and not (base == package or base.startswith(package + ".")):
                continue
            base = base.removeprefix(package).lstrip(".") if node.level == 0 else base
            names = [base] if base else []
            names += [f"{base}.{a.name}".lstrip(".") for a in node.names]  # from . import x / from .x import y
        else:
            continue
        for name in names:
            name = name.removeprefix(package + ".")
            top = name.split(".")[0]
            if top in modules:
                found.add(top)
    return found


def import_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself excluded)."""
    files = {p.stem: p for p in folder.glob("*.py") if p.stem != "__init__"}
    return {name: imports_of(path.read_text(), package, set(files)) - {name} for name, path in files.items()}


def violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every upward import, every module without a layer, and every cycle."""
    problems = [f"{m} has no layer in drivekit.LAYERS" for m in graph if m not in layers]
    problems += [f"{m} (layer {layers[m]}) imports {d} (layer {layers[d]}), a higher layer"
                 for m, deps in graph.items() for d in sorted(deps)
                 if m in layers and d in layers and layers[d] > layers[m]]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                problems.append("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return problems


def test_every_module_has_a_layer_and_every_layer_entry_a_module():
    graph = import_graph(PACKAGE, "drivekit")
    assert set(graph) == set(drivekit.LAYERS)


def test_drivekit_imports_downwards_only_without_cycles():
    assert violations(import_graph(PACKAGE, "drivekit"), drivekit.LAYERS) == []


@pytest.fixture
def toy_package(tmp_path):
    def write(**modules):
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(source)
        return import_graph(tmp_path, "pkg")
    return write


def test_checker_finds_an_upward_import_even_inside_a_function(toy_package):
    graph = toy_package(low="def f():\n    from .high import g\n", high="from . import low\nimport pkg.low\n")
    assert graph == {"low": {"high"}, "high": {"low"}}
    found = violations(graph, {"low": 1, "high": 2})
    assert "low (layer 1) imports high (layer 2), a higher layer" in found
    assert any(p.startswith("import cycle: high -> low -> high") for p in found)


def test_checker_finds_a_cycle_within_one_layer_and_a_module_without_layer(toy_package):
    graph = toy_package(a="from .b import x\n", b="from pkg.c import y\n", c="import os\nfrom pkg import a\n",
                        d="import json\n")
    found = violations(graph, {"a": 3, "b": 3, "c": 3})
    assert found == ["d has no layer in drivekit.LAYERS", "import cycle: a -> b -> c -> a"]


def test_checker_accepts_a_clean_layering(toy_package):
    graph = toy_package(base="import numpy\n", mid="from .base import x\n", top="from . import base, mid\n")
    assert violations(graph, {"base": 1, "mid": 2, "top": 2}) == []
