"""The setup cell every notebook starts with (its first code cell), kept here as one source of truth.

    python .ci/setup_cell.py           # write SETUP_CELL into notebooks/0*.ipynb (only that cell changes)
    python .ci/setup_cell.py --check   # exit 1, naming the notebooks, if one differs

On Colab (``google.colab`` imported) the cell clones the course to ``$DRIVEKIT_HOME`` (default
``/content/drivekit``) from ``$DRIVEKIT_REPO`` (default: the GitHub repository), puts the clone first on
``sys.path`` (and on ``PYTHONPATH`` for the processes a notebook starts), so ``import drivekit`` works in
this kernel and ``drivekit.core.config.HOME`` is the clone, whose ``data/zoo`` holds the tiny models; then
pip-installs ``pyproject.toml``'s dependencies under a constraints file (``drivekit-held.txt`` beside the
clone) that holds, at the installed version, each of them the runtime already has within the bounds and
every library the kernel has imported (Colab imports numpy and PIL at start), so pip installs only what
is missing or out of bounds. If that cannot be resolved (an imported library too old for drivekit's
needs), it holds only drivekit's own libraries and lets pip change the rest. It says plainly when a
restart is needed: when pip changed a library this kernel had already imported. Locally (``pip install -e ".[dev]"``) it only sets the ``DRIVEKIT_*``
defaults, which change nothing. ``tests/test_colab_setup.py`` checks the notebooks against this file;
``tests/test_colab_rehearsal.py`` runs it in a stand-in for a Colab runtime.
"""
import json
import sys
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb"))
INDEX = 1  # the cell after the title

SETUP_CELL = '''\
# Setup (the same cell in every notebook; README, "On Colab"). On Colab: clone the course, put it on
# sys.path and install only what the runtime lacks, so `import drivekit` works in this kernel.
# Locally (`pip install -e ".[dev]"`) it only sets the defaults below, which change nothing.
import os, subprocess, sys
COLAB = "google.colab" in sys.modules
os.environ.setdefault("DRIVEKIT_PROFILE", "tiny")  # "paper": SmolVLM on a GPU and real BDD-OIA
os.environ.setdefault("DRIVEKIT_PRESET", "")  # "t4" (with the paper profile): sized for a 16 GB T4
os.environ.setdefault("DRIVEKIT_VLM", "")  # "": the profile's model; or e.g. HuggingFaceTB/SmolVLM-256M-Instruct
os.environ.setdefault("DRIVEKIT_DATA", "/content/bdd-oia" if COLAB and os.environ["DRIVEKIT_PROFILE"] == "paper" else "")
os.environ.setdefault("DRIVEKIT_RUNS", "/content/drive/MyDrive/drivekit/runs" if COLAB else "")  # on Drive: kept between notebooks
if COLAB:
    import importlib, tomllib
    from importlib import metadata
    HOME = os.environ.setdefault("DRIVEKIT_HOME", "/content/drivekit")
    if not os.path.isdir(HOME):
        repo = os.environ.get("DRIVEKIT_REPO", "https://github.com/drivekit/drivekit")
        subprocess.run(["git", "clone", "-q", "--depth", "1", repo, HOME], check=True)
    if os.environ["DRIVEKIT_RUNS"].startswith("/content/drive/"):
        from google.colab import drive
        drive.mount("/content/drive")
    sys.path.insert(0, HOME)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HOME, os.environ.get("PYTHONPATH")]))
    from packaging.requirements import Requirement
    installed = lambda: {d.metadata["Name"]: d.version for d in reversed(list(metadata.distributions())) if d.metadata["Name"]}  # first on sys.path wins
    before = installed()
    with open(os.path.join(HOME, "pyproject.toml"), "rb") as f:
        needs = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
    # Hold what the runtime has, in a pip constraints file: each library drivekit needs that is installed within
    # drivekit's bounds (torch, numpy, pillow...), and every other library this kernel has imported.
    key = lambda name: name.lower().replace("_", "-").replace(".", "-")
    bounds = {key(r.name): r.specifier for r in needs}
    imported = {key(d) for m, ds in metadata.packages_distributions().items() if m in sys.modules for d in ds}
    held = {n: v for n, v in before.items() if (bounds[key(n)].contains(v, prereleases=True) if key(n) in bounds else key(n) in imported)}
    HELD = os.path.join(os.path.dirname(HOME), "drivekit-held.txt")
    def pip(hold):  # install only what is missing or out of bounds; everything in `hold` stays as it is
        with open(HELD, "w") as f:
            f.writelines(f"{name}=={version}\\n" for name, version in sorted(hold.items()))
        return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", HELD, *map(str, needs)], capture_output=True, text=True)
    if pip(held).returncode:  # a library imported here is too old for what drivekit needs: let pip change it
        done = pip({n: v for n, v in held.items() if key(n) in bounds})
        if done.returncode:
            raise RuntimeError(f"pip could not install drivekit's dependencies:\\n{done.stderr}")
    importlib.invalidate_caches()
    changed = {name for name, version in installed().items() if before.get(name) != version}
    stale = sorted({d for m, ds in metadata.packages_distributions().items() if m in sys.modules for d in ds} & changed)
    if stale:
        print(f"RESTART NEEDED: pip changed {', '.join(stale)}, already imported here. Runtime > Restart session, then run this cell again.")
    else:
        print(f"drivekit ready in this kernel, from {HOME}; no restart needed. Installed: {', '.join(sorted(changed)) or 'nothing'}")
    os.chdir(os.path.join(HOME, "notebooks"))
'''


def source_lines(text: str) -> list[str]:
    """A cell's ``source`` as notebooks store it: one string per line, newlines kept, none after the last."""
    return text.rstrip("\n").splitlines(keepends=True)


def differing() -> list[Path]:
    """The notebooks whose setup cell is not ``SETUP_CELL``."""
    wrong = []
    for path in NOTEBOOKS:
        cell = json.loads(path.read_text())["cells"][INDEX]
        if cell["cell_type"] != "code" or "".join(cell["source"]) != SETUP_CELL.rstrip("\n"):
            wrong.append(path)
    return wrong


def write() -> None:
    """``SETUP_CELL`` into every notebook's setup cell; nothing else in the file changes."""
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        cell = nb["cells"][INDEX]
        if cell["cell_type"] != "code":
            raise SystemExit(f"{path.name}: cell {INDEX} is {cell['cell_type']}, not the setup code cell")
        cell["source"] = source_lines(SETUP_CELL)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        bad = differing()
        for path in bad:
            print(f"{path.name}: cell {INDEX} is not .ci/setup_cell.py's SETUP_CELL (run: python .ci/setup_cell.py)")
        sys.exit(1 if bad else 0)
    write()
