"""Where a benchmark's numbers came from: every ``benchmarks/bench_*.py`` writes its results through
:func:`write`, as ``benchmarks/results/<name>.json`` (``<name>``: the script's name without
``bench_``) or, with the script's ``--out FILE``, anywhere else.

The file holds one JSON object; the keys before ``results`` say how the numbers were made::

    {
     "command":  "python benchmarks/bench_data.py --clips 600",   # as run, from the repository root
     "commit":   "417323d...",     # git HEAD of the repository
     "clean":    true,             # whether `git status --porcelain` was empty
     "changed":  [],               # otherwise its lines: the changed and untracked paths
     "date":     "2026-11-29T10:12:03+00:00",                    # UTC, when the file was written
     "versions": {"python": "3.11.7", "torch": "2.14.1", ...},  # benchmarks/versions.py
     "machine":  {"platform": ..., "processor": ..., "cpus": 2, "memory_gb": 23.5,
                  "torch_threads": 2, "load_average": [1.9, 2.0, 2.1],
                  "gpu": ..., "gpu_memory_gb": ..., "cuda": ...},  # these three: only when CUDA is available
     "results":  {...}             # what the script measured, as the script built it
    }

A file under ``benchmarks/results/`` must come from a clean tree, so that its commit is the code
that made it: :func:`write` (and :func:`check`, which scripts call before the work starts) refuses
when the tree has changes, the file being replaced aside. Any other path may be written from a
dirty tree; the file then says ``"clean": false`` and lists the changes.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from drivekit.core.provenance import git_state as repository_state
from drivekit.core.files import write_json
from versions import versions

ROOT = Path(__file__).resolve().parent.parent  # the repository


class DirtyTree(SystemExit):
    """Refusal to write under ``benchmarks/results/`` from a tree with changes (exits with the message)."""


def results_dir() -> Path:
    """``benchmarks/results/``: files there need a clean tree."""
    return ROOT / "benchmarks" / "results"


def add_out_option(parser: argparse.ArgumentParser, name: str) -> None:
    """The ``--out FILE`` option every bench script has."""
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help=f"results file (default: benchmarks/results/{name}.json, which needs a clean git tree)")


def git_state(ignore: Path | None = None) -> dict:
    """``commit`` (HEAD), ``clean`` and ``changed``: the paths ``git status --porcelain`` lists,
    but ``ignore`` (the results file about to be replaced); :func:`drivekit.core.provenance.git_state`
    of the repository."""
    return repository_state(ROOT, ignore)


def command() -> str:
    """The command line as run, the script's path relative to the repository root."""
    script = os.path.relpath(Path(sys.argv[0]).resolve(), ROOT)
    return "python " + shlex.join([script, *sys.argv[1:]])


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    """The platform, processor, CPU count, total memory (GiB), torch threads, load average, and the GPU
    (name, memory in GiB, torch's CUDA version) when CUDA is available."""
    info = dict(platform=platform.platform(), processor=_processor(), cpus=os.cpu_count(),
                memory_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                torch_threads=torch.get_num_threads(), load_average=[round(x, 2) for x in os.getloadavg()])
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_properties(0)
        info.update(gpu=gpu.name, gpu_memory_gb=round(gpu.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def provenance(ignore: Path | None = None) -> dict:
    """Every key of a results file but ``results`` (see the module docstring); ``ignore``: as in
    :func:`git_state`."""
    return dict(command=command(), **git_state(ignore), date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                versions=versions(), machine=machine())


def check(name: str, out: str | Path | None = None) -> Path:
    """The file :func:`write` will write; raises :class:`DirtyTree` if that is under
    ``benchmarks/results/`` and the tree has changes other than that file. Scripts call it first, so
    that a long run is refused before it starts rather than after."""
    target = (Path(out) if out else results_dir() / f"{name}.json").resolve()
    if target.is_relative_to(results_dir().resolve()):
        changed = git_state(ignore=target)["changed"]
        if changed:
            raise DirtyTree(f"refusing to write {target}: files under benchmarks/results/ come from a clean git "
                            f"tree, and these paths have changes:\n  " + "\n  ".join(changed) +
                            "\ncommit them, or write elsewhere with --out FILE (record.write(..., out=FILE)).")
    return target


def write(name: str, results, out: str | Path | None = None) -> Path:
    """Write ``{**provenance(), "results": results}`` to ``benchmarks/results/<name>.json`` or
    ``out``; values JSON cannot hold are written as their ``str``. Returns the path written."""
    target = check(name, out)
    return write_json(target, {**provenance(ignore=target), "results": results}, indent=1, default=str)
