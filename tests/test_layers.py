"""drivekit's layers are its folders: each imports downwards only, and no module import forms a cycle.

``drivekit.LAYERS`` gives each folder (and ``__main__``) its layer. Every import counts, a deferred one
inside a function too: a deferred import that dodges a cycle is still one. Cycles are looked for
between modules (files), so two folders of the same layer may use each other's modules but never in a
loop.
"""
import ast
from pathlib import Path

import pytest

import drivekit

PACKAGE = Path(drivekit.__file__).resolve().parent


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name (relative to the package, a folder's ``__init__`` named by the folder) -> file."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names[".".join(parts)] = path
    return names


def imports_of(source: str, package: str, module: str, modules: set[str], is_package: bool = False) -> set[str]:
    """The modules of ``package`` (dotted names in ``modules``) that ``source`` (module ``module``) imports."""
    here = module.split(".") if is_package else module.split(".")[:-1]  # the folder relative imports start from
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name.removeprefix(package + ".") for a in node.names
                       if a.name == package or a.name.startswith(package + ".")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(here):
                    raise AssertionError(f"{module}: relative import beyond the package (level {node.level})")
                base = ".".join(here[:len(here) - (node.level - 1)] + ([node.module] if node.module else []))
            elif node.module == package or (node.module or "").startswith(package + "."):
                base = node.module.removeprefix(package).lstrip(".")
            else:
                continue
            # from x import module counts the module; from x import name counts x
            targets = [f"{base}.{a.name}".lstrip(".") if f"{base}.{a.name}".lstrip(".") in modules else base
                       for a in node.names]
        else:
            continue
        for name in targets:
            while name and name not in modules:  # drivekit.a.b.func -> drivekit.a.b
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself excluded)."""
    files = module_names(root)
    return {m: imports_of(p.read_text(), package, m, set(files), p.name == "__init__.py") - {m}
            for m, p in files.items()}


def folder(module: str) -> str:
    return module.split(".")[0]


def violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every upward import, every folder without a layer, every module outside a folder, and every cycle."""
    problems = sorted({f"{folder(m)} has no layer in drivekit.LAYERS" for m in graph if folder(m) not in layers})
    problems += [f"{m} ({folder(m)}, layer {layers[folder(m)]}) imports {d} ({folder(d)}, layer "
                 f"{layers[folder(d)]}), a higher layer"
                 for m, deps in sorted(graph.items()) for d in sorted(deps)
                 if folder(m) in layers and folder(d) in layers and layers[folder(d)] > layers[folder(m)]]
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


def test_every_module_sits_in_a_layer_folder():
    graph = import_graph(PACKAGE, "drivekit")
    loose = [m for m in graph if "." not in m and m not in drivekit.LAYERS]
    assert loose == [], "modules outside a layer folder"
    assert {folder(m) for m in graph} == set(drivekit.LAYERS)


def test_drivekit_imports_downwards_only_without_cycles():
    assert violations(import_graph(PACKAGE, "drivekit"), drivekit.LAYERS) == []


def test_the_experiment_package_and_modules_stay_readable():
    """No experiment file over 400 lines; no module outside the algorithm files over 600."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in module_names(PACKAGE).items()}
    assert {m: n for m, n in sizes.items() if folder(m) == "experiment" and n > 400} == {}
    assert {m: n for m, n in sizes.items() if folder(m) != "algorithms" and n > 600} == {}


@pytest.fixture
def toy_package(tmp_path):
    def write(**modules):
        for name, source in modules.items():
            path = tmp_path.joinpath(*name.split("/")).with_suffix(".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        return import_graph(tmp_path, "pkg")
    return write


def test_checker_finds_an_upward_import_even_inside_a_function(toy_package):
    graph = toy_package(**{"low/__init__": "", "low/a": "def f():\n    from ..high.b import g\n",
                           "high/__init__": "", "high/b": "from pkg.low import a\n"})
    assert graph == {"low": set(), "low.a": {"high.b"}, "high": set(), "high.b": {"low.a"}}
    found = violations(graph, {"low": 1, "high": 2})
    assert "low.a (low, layer 1) imports high.b (high, layer 2), a higher layer" in found
    assert any(p.startswith("import cycle: high.b -> low.a -> high.b") for p in found)


def test_checker_finds_a_cycle_within_one_layer_and_a_folder_without_layer(toy_package):
    graph = toy_package(**{"x/a": "from .b import x\n", "x/b": "from pkg.y.c import y\n",
                           "y/c": "import os\nfrom pkg.x import a\n", "z/d": "import json\n"})
    found = violations(graph, {"x": 3, "y": 3})
    assert found == ["z has no layer in drivekit.LAYERS", "import cycle: x.a -> x.b -> y.c -> x.a"]


def test_checker_resolves_relative_imports_and_names_imported_from_modules(toy_package):
    graph = toy_package(**{"base/__init__": "", "base/m": "import numpy\n",
                           "mid/__init__": "from . import n\n", "mid/n": "from ..base.m import x\nfrom ..base import m\n",
                           "top/t": "import pkg.mid.n\nfrom pkg.mid.n import f\n"})
    assert graph["mid.n"] == {"base.m"} and graph["top.t"] == {"mid.n"} and graph["mid"] == {"mid.n"}
    assert violations(graph, {"base": 1, "mid": 2, "top": 3}) == []
