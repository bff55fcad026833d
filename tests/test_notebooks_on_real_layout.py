"""Notebooks 00-01 run unchanged on a directory in the official BDD-OIA layout (paper profile)."""
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("name", ["00_data_exploration", "01_toy_split"])
def test_notebook_runs_on_official_layout(name, official_layout, tmp_path, monkeypatch):
    monkeypatch.setenv("DRIVEKIT_PROFILE", "paper")
    monkeypatch.setenv("DRIVEKIT_DATA", str(official_layout))
    monkeypatch.setenv("DRIVEKIT_HOME", str(tmp_path))  # figures and caches go here, not into the repo
    shutil.copy(NOTEBOOKS / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    nb = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    if name == "00_data_exploration":
        assert "profile=paper" in outputs
    assert any((tmp_path / "figures").glob("*_paper.png"))
