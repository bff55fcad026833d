"""Print pip constraints that pin each runtime dependency of pyproject.toml to its lower bound.

    python .ci/lower_bounds.py > lowest.txt    # then: pip install -c lowest.txt -e ".[dev]"

Every ``name>=X`` in ``[project] dependencies`` becomes ``name==X``; a dependency without a lower bound
(``scipy``, ``pandas``...) is left to the resolver. The dev tools (pytest, nbval...) are not pinned: they
run the tests, they are not what the course runs on. ``.ci/lowest`` uses this.
"""
import re
import sys
import tomllib
from pathlib import Path

LOWER = re.compile(r">=\s*([^,;\s]+)")
NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")


def lower_bounds(pyproject: Path) -> dict[str, str]:
    """``{name: lower bound}`` of every runtime dependency that has one."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    bounds = {}
    for dep in deps:
        found = LOWER.search(dep.split(";")[0])
        if found:
            bounds[NAME.match(dep).group(1)] = found.group(1)
    return bounds


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    for name, version in lower_bounds(root / "pyproject.toml").items():
        print(f"{name}=={version}")
