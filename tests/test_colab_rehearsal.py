"""A rehearsal of the Colab path: notebook 00 run from its setup cell onwards in ONE kernel of a stand-in
for a Colab runtime, where ``import drivekit`` must work without a restart.

The stand-in: a fresh virtual environment whose preinstalled stack is this environment's site-packages
(a ``.pth`` line, as Colab preinstalls torch and transformers; nothing large is downloaded), with Colab's
numpy, pillow and widgets of its own (:data:`COLAB`: numpy 2.1.3, pillow 11.3, ipywidgets 7.7.1 with
notebook 6.5.7, DESIGN.md section 11) and an older sacrebleu (2.5.1, below drivekit's bound, as a runtime
lacks or has an old library), ``google.colab``, numpy and PIL imported at kernel start (an IPython
startup file), as Colab does, the kernel started in a folder standing in for ``/content``, and a bare
clone of this repository's HEAD, with this checkout's uncommitted changes committed on top, standing in
for GitHub (``$DRIVEKIT_REPO``). The setup cell must clone
it, make the clone's ``drivekit`` importable in that kernel, keep Colab's numpy and pillow (held by its
constraints file), upgrade sacrebleu and nothing else, and say that no restart is needed; the course's
widgets then run on ipywidgets 7.7.1. When the old library was already imported, it must say that a
restart is needed. Needs PyPI (the versions above), as CI has.
"""
import json
import shutil
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
COLAB = {"numpy": "2.1.3", "pillow": "11.3.0", "ipywidgets": "7.7.1", "notebook": "6.5.7"}  # Colab's, preinstalled
# A real runtime imports google.colab as a package with a spec (libraries such as accelerate call
# importlib.util.find_spec("google.colab"), which raises on a module whose __spec__ is None).
FAKE_COLAB = ('import importlib.machinery, sys, types\n'
              'colab = types.ModuleType("google.colab")\n'
              'colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None, is_package=True)\n'
              'sys.modules["google.colab"] = colab\n'
              'import numpy, PIL.Image\n')  # as Colab's kernel does when it starts
# A widget cell of the course (notebooks 04 and 05's reward explorer, 04's training panel): built, a slider
# moved and the button clicked in the kernel, on the stand-in's ipywidgets.
WIDGETS = """\
import ipywidgets, pandas as pd
from drivekit.course import widgets
from drivekit.text.formats import target_text
stop, go = ([0, 1, 0, 0], [0, 0, 1] + [0] * 18), ([1, 0, 0, 0], [1] + [0] * 20)
answers = pd.DataFrame([dict(file_name=f, text=target_text(*a), actions=stop[0], reasons=stop[1])
                        for f, a in [("a.jpg", stop), ("a.jpg", go), ("b.jpg", go), ("b.jpg", stop)]])
explorer = widgets.reward_explorer(widgets.score_answers(answers))
display(explorer)
explorer.shares["r2"].value = 0.5
explorer.variant.value = "bleu"
panel = widgets.reward_panel(lambda **s: pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.5]}),
                             plot=lambda logs: __import__("matplotlib.pyplot").pyplot.figure())
display(panel)
panel.button.click()
print("widgets", ipywidgets.__version__, explorer.table()[1]["clips"], len(panel.logs))
"""
KERNEL = "colab-rehearsal"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """``(python, site-packages, remote, jupyter path)`` of the stand-in runtime, shared by the tests."""
    tmp = tmp_path_factory.mktemp("colab")
    remote = tmp / "drivekit.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(remote)], check=True)
    work = tmp / "work"  # HEAD plus this checkout's uncommitted changes, so that what is tested is what is here
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    git = lambda *args, cwd=ROOT: subprocess.check_output(["git", *args], cwd=cwd, text=True).split("\0")
    for name in filter(None, git("ls-files", "-z", "-m", "-o", "--exclude-standard")):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
    for name in filter(None, git("ls-files", "-z", "-d")):
        (work / name).unlink(missing_ok=True)
    git("add", "-A", cwd=work)
    git("-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost", "commit", "-q", "--allow-empty",
        "-m", "the checkout's uncommitted changes", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)
    venv = tmp / "runtime"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    preinstalled = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "preinstalled.pth").write_text("\n".join(preinstalled) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *(f"{n}=={v}" for n, v in COLAB.items())], check=True)
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
    outputs = run([*nb.cells, nbformat.v4.new_code_cell(WIDGETS), check], content)
    setup = outputs[1]
    assert "no restart needed" in setup and "RESTART NEEDED" not in setup, setup
    installed = setup.rsplit("Installed: ", 1)[1].strip().split(", ")
    assert "sacrebleu" in installed and not {"torch", "numpy", "pillow", "ipywidgets"} & set(installed), setup
    held = (content / "drivekit-held.txt").read_text().lower().splitlines()
    assert {f"{n}=={v}" for n, v in COLAB.items() if n != "notebook"} <= set(held), held  # what Colab has, kept
    assert outputs[-2].split()[-4:] == ["widgets", COLAB["ipywidgets"], "2", "1"], outputs[-2]
    clone = content / "drivekit"
    assert outputs[-1].split() == [str(clone / "drivekit" / "__init__.py"), str(clone), str(clone / "notebooks")]
    _, site, _, _ = runtime
    assert (site / "sacrebleu").is_dir() and not (site / "torch").exists()  # upgraded what was old, kept the rest


def test_setup_cell_says_a_restart_is_needed_when_it_changed_an_imported_library(runtime, tmp_path, monkeypatch):
    content = start(runtime, tmp_path, monkeypatch, FAKE_COLAB + "import sacrebleu\n")
    setup = nbformat.read(NOTEBOOK, as_version=4).cells[1]
    output = run([setup], content)[0]
    assert output.startswith("RESTART NEEDED: pip changed sacrebleu"), output
