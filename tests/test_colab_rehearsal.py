"""A rehearsal of the Colab path: notebook 00 run from its setup cell onwards in ONE kernel of a stand-in
for a Colab runtime, where ``import drivekit`` must work without a restart.

The stand-in: a fresh virtual environment whose preinstalled stack is this environment's site-packages
(a ``.pth`` line, as Colab preinstalls torch and transformers; nothing large is downloaded), with an
older sacrebleu of its own (2.5.1, below drivekit's bound, as a runtime lacks or has an old library),
``google.colab`` in ``sys.modules`` at kernel start (an IPython startup file), the kernel started in a
folder standing in for ``/content``, and a bare clone of this repository's HEAD standing in for GitHub
(``$DRIVEKIT_REPO``). The setup cell must clone it, make the clone's ``drivekit`` importable in that
kernel, upgrade sacrebleu and nothing else, and say that no restart is needed; when the old library
was already imported, it must say that a restart is needed. Needs PyPI (sacrebleu 2.5.1), as CI has.
"""
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from drivekit.core import config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "00_data_exploration.ipynb"
OLD = "sacrebleu==2.5.1"  # drivekit needs >=2.6: the setup cell must upgrade it
# A real runtime imports google.colab as a package with a spec (libraries such as accelerate call
# importlib.util.find_spec("google.colab"), which raises on a module whose __spec__ is None).
FAKE_COLAB = ('import importlib.machinery, sys, types\n'
              'colab = types.ModuleType("google.colab")\n'
              'colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None, is_package=True)\n'
              'sys.modules["google.colab"] = colab\n')
KERNEL = "colab-rehearsal"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """``(python, site-packages, remote, jupyter path)`` of the stand-in runtime, shared by the tests."""
    tmp = tmp_path_factory.mktemp("colab")
    remote = tmp / "drivekit.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(remote)], check=True)
    venv = tmp / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    preinstalled = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "preinstalled.pth").write_text("\n".join(preinstalled) + "\n")
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                  "display_name": "Colab stand-in", "language": "python"}))
    return python, site, remote, tmp / "jupyter"


def start(runtime, tmp_path, monkeypatch, startup: str):
    """The stand-in's ``/content`` with an old sacrebleu installed and the kernel's environment set."""
    python, site, remote, jupyter = runtime
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", OLD], check=True)
    check = subprocess.run([str(python), "-c", "import drivekit"], cwd=tmp_path, capture_output=True)
    assert check.returncode != 0, "drivekit importable before the setup cell: the rehearsal would prove nothing"
    ipython = tmp_path / "ipython"
    (ipython / "profile_default" / "startup").mkdir(parents=True)
    (ipython / "profile_default" / "startup" / "00-colab.py").write_text(startup)
    content = tmp_path / "content"
    content.mkdir()
    for var in ("PYTHONPATH", "DRIVEKIT_PROFILE", "DRIVEKIT_PRESET", *config.ENVIRONMENT.values()):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("IPYTHONDIR", str(ipython))
    monkeypatch.setenv("DRIVEKIT_REPO", remote.as_uri())
    monkeypatch.setenv("DRIVEKIT_HOME", str(content / "drivekit"))
    monkeypatch.setenv("DRIVEKIT_RUNS", str(tmp_path / "drive" / "runs"))  # not under /content/drive: no mount
    monkeypatch.setenv("DRIVEKIT_DATA", str(config.load("tiny").data_root))  # this checkout's synthetic clips, shared
    return content


def run(cells, content):
    """Execute ``cells`` in one kernel of the stand-in, started in ``content``; each cell's printed text."""
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(content)}}).execute()
    return ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in nb.cells]


def test_notebook_00_runs_from_its_setup_cell_in_one_kernel(runtime, tmp_path, monkeypatch):
    content = start(runtime, tmp_path, monkeypatch, FAKE_COLAB)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    check = nbformat.v4.new_code_cell("import drivekit\nprint(drivekit.__file__, config.HOME, os.getcwd(), sep='\\n')")
    outputs = run([*nb.cells, check], content)
    setup = outputs[1]
    assert "no restart needed" in setup, setup
    installed = setup.rsplit("Installed: ", 1)[1].strip().split(", ")
    assert "sacrebleu" in installed and "torch" not in installed, setup
    clone = content / "drivekit"
    assert outputs[-1].split() == [str(clone / "drivekit" / "__init__.py"), str(clone), str(clone / "notebooks")]
    _, site, _, _ = runtime
    assert (site / "sacrebleu").is_dir() and not (site / "torch").exists()  # upgraded what was old, kept the rest


def test_setup_cell_says_a_restart_is_needed_when_it_changed_an_imported_library(runtime, tmp_path, monkeypatch):
    content = start(runtime, tmp_path, monkeypatch, FAKE_COLAB + "import sacrebleu\n")
    setup = nbformat.read(NOTEBOOK, as_version=4).cells[1]
    output = run([setup], content)[0]
    assert output.startswith("RESTART NEEDED: pip changed sacrebleu"), output
