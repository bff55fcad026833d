"""The notebooks' setup cell: one source of truth (``.ci/setup_cell.py``), and harmless locally."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from drivekit.core import config

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("setup_cell", ROOT / ".ci" / "setup_cell.py")
setup_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_cell)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No DRIVEKIT_* variable set, and every one the cell sets removed again after the test."""
    for var in ("DRIVEKIT_PROFILE", "DRIVEKIT_PRESET", "DRIVEKIT_HOME", *config.ENVIRONMENT.values()):
        monkeypatch.setenv(var, "")  # records the variable, so that the test's setting is undone
        monkeypatch.delenv(var)


def test_every_notebook_starts_with_the_same_setup_cell():
    assert len(setup_cell.NOTEBOOKS) == 8  # 00-06 and 04b
    assert setup_cell.differing() == []
    for path in setup_cell.NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert [c["cell_type"] for c in cells[:2]] == ["markdown", "code"], path.name
        assert all("google.colab" not in "".join(c["source"]) for c in cells[2:]), path.name  # no second setup


def test_readme_shows_the_setup_cell_as_it_is():
    assert "```python\n" + setup_cell.SETUP_CELL + "```" in (ROOT / "README.md").read_text()


def test_a_changed_setup_cell_is_found(tmp_path, monkeypatch):
    nb = json.loads(setup_cell.NOTEBOOKS[0].read_text())
    nb["cells"][1]["source"][-1] += "  # edited by hand"
    copy = tmp_path / "00.ipynb"
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    monkeypatch.setattr(setup_cell, "NOTEBOOKS", [copy, *setup_cell.NOTEBOOKS[1:]])
    assert setup_cell.differing() == [copy]


def test_locally_the_setup_cell_changes_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    before, cwd, path = config.load(), os.getcwd(), list(sys.path)
    exec(setup_cell.SETUP_CELL, {})
    assert config.load() == before and before.profile == "tiny" and before.preset is None
    assert (os.getcwd(), sys.path) == (cwd, path)
    assert {var: os.environ[var] for var in ("DRIVEKIT_PROFILE", "DRIVEKIT_PRESET", "DRIVEKIT_VLM", "DRIVEKIT_DATA",
                                             "DRIVEKIT_RUNS")} == {"DRIVEKIT_PROFILE": "tiny", "DRIVEKIT_PRESET": "",
                                                                   "DRIVEKIT_VLM": "", "DRIVEKIT_DATA": "",
                                                                   "DRIVEKIT_RUNS": ""}


@pytest.mark.parametrize("var,value", [("DRIVEKIT_PROFILE", "paper"), ("DRIVEKIT_DATA", "/data/bdd-oia")])
def test_the_setup_cell_keeps_what_the_environment_already_says(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    exec(setup_cell.SETUP_CELL, {})
    assert os.environ[var] == value
