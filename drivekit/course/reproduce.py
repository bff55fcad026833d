"""Run the course's notebooks headless, in order, so that they regenerate every PNG in ``figures/``."""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from drivekit.core.config import HOME

NOTEBOOKS = HOME / "notebooks"
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's text: " 40%|████      | 2/5 [...]"


def transient(output) -> bool:
    """An output a committed notebook leaves out: stderr (library warnings, some naming this machine's
    paths) and tqdm's progress-bar widgets (GitHub shows only their text, a bar frozen at its start)."""
    if output.get("output_type") == "stream":
        return output.get("name") == "stderr"
    data = output.get("data", {})
    return ("application/vnd.jupyter.widget-view+json" in data
            and PROGRESS_BAR.search("".join(data.get("text/plain", ""))) is not None)


def for_storing(nb) -> None:
    """Drop the transient outputs and the execution timestamps of an executed notebook, in place."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not transient(o)]


def run_notebook(path: Path, timeout: int = 1800, inplace: bool = False) -> float:
    """Execute one notebook in its own folder; returns the seconds it took. ``inplace``: write it back
    with its outputs, as committed (:func:`for_storing`)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if inplace:
        for_storing(nb)
        nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]*_*.ipynb in order (04b after 04)")
    p.add_argument("--inplace", action="store_true",
                   help="keep the outputs in the notebooks, as committed (no stderr, progress bars or timestamps)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    a = p.parse_args(argv)
    paths = a.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))  # "04_a2c" sorts before "04b_grpo"
    for path in paths:
        print(f"{path.name} ...", end=" ", flush=True)
        print(f"{run_notebook(path, a.timeout, a.inplace):.0f} s", flush=True)
    print("figures:", ", ".join(sorted(p.name for p in (HOME / "figures").glob("*.png"))))


if __name__ == "__main__":
    main()
