"""Every number README, RESULTS and the notebooks' markdown quote about an experiment comes from a
committed results file.

A passage that quotes one is fenced by two comments naming its files (paths from the repository root):

    <!-- numbers: benchmarks/results/rl_vs_sft.json -->
    ... A2C closes 0.73 / 0.72 of the gap, fixes 93 clips for 2 it breaks (p = 2.3e-25) ...
    <!-- /numbers -->

Inside a fence every decimal number (``0.73``, ``2.3e-25``, ``97.4``) must be a value of one of those
files (any number in it, at the precision quoted, as a fraction or in percent), and every ``a/b``
count pair both of whose sides are in the files. Whole numbers alone (a seed, a step count) are not
checked: too many of them are settings rather than results.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"<!-- numbers: (?P<files>[^>]*?) -->(?P<body>.*?)<!-- /numbers -->", re.S)
DECIMAL = re.compile(r"(?<![\w.])[-−]?\d+\.\d+(?:e[-−+]?\d+)?|(?<![\w.])\d+e[-−+]?\d+")
PAIR = re.compile(r"(?<![\w./])(\d+)/(\d+)(?![\w/])")


def values(data) -> list[float]:
    """Every number in a JSON value."""
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):
        return [float(data)] if math.isfinite(data) else []
    if isinstance(data, dict):
        return [v for x in data.values() for v in values(x)]
    if isinstance(data, list):
        return [v for x in data for v in values(x)]
    return []


def quoted(text: str) -> float:
    return float(text.replace("−", "-"))


def matches(text: str, known: list[float]) -> bool:
    """Whether the quoted ``text`` is one of ``known`` rounded to the digits quoted (as is, or ×100)."""
    q = quoted(text)
    if "e" in text.lower():  # 2.3e-25: the same two significant digits
        digits = len(text.lower().split("e")[0].replace("-", "").replace("−", "").replace(".", "")) - 1
        return any(v != 0 and f"{v:.{digits}e}" == f"{q:.{digits}e}" for v in known)
    places = len(text.split(".")[1])
    step = 10 ** -places
    return any(abs(round(v, places) - q) < step / 2 or abs(round(100 * v, places) - q) < step / 2
               or abs(v - q) <= step / 2 for v in known)


def problems(text: str, root: Path = ROOT) -> list[str]:
    """Each fenced number of ``text`` that its files do not hold, and each fence naming a missing file."""
    found = []
    for fence in FENCE.finditer(text):
        files = fence["files"].split()
        known: list[float] = []
        for name in files:
            path = root / name
            if not path.is_file():
                found.append(f"{name}: no such file")
                continue
            known += values(json.loads(path.read_text()))
        body = fence["body"]
        for number in DECIMAL.findall(body):
            if not matches(number, known):
                found.append(f"{number} is in none of {', '.join(files)}")
        for a, b in PAIR.findall(body):
            if not (matches(f"{a}.0", known) and matches(f"{b}.0", known)):
                found.append(f"{a}/{b} is not a pair of counts in {', '.join(files)}")
    return found


def documents() -> dict[str, str]:
    """README, RESULTS and every notebook's markdown cells, by name."""
    docs = {"README.md": (ROOT / "README.md").read_text(),
            "benchmarks/RESULTS.md": (ROOT / "benchmarks" / "RESULTS.md").read_text()}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        docs[f"notebooks/{nb.name}"] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return docs


@pytest.mark.parametrize("name", sorted(documents()))
def test_every_fenced_number_is_in_its_results_files(name):
    assert problems(documents()[name]) == []


def test_the_check_finds_a_number_no_file_holds(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"gap": 0.7291, "p": 2.30e-25, "fixed": 93, "broken": 2,
                                                 "f1": [0.9796, 0.95]}))
    good = ("<!-- numbers: r.json -->A2C closes 0.73 of the gap (72.9 %), 93/2, p = 2.3e-25, "
            "F1 0.980 on seed 0, 0.95 on seed 1, in 320 steps.<!-- /numbers -->")
    assert problems(good, tmp_path) == []
    bad = good.replace("0.73", "0.74").replace("93/2", "93/3").replace("2.3e-25", "2.4e-25")
    assert problems(bad, tmp_path) == ["0.74 is in none of r.json", "2.4e-25 is in none of r.json",
                                       "93/3 is not a pair of counts in r.json"]
    assert problems("<!-- numbers: gone.json -->0.5<!-- /numbers -->", tmp_path)[0] == "gone.json: no such file"
    assert problems("0.123 outside any fence", tmp_path) == []
