"""Where numbers came from: the git state of the repository that made them.

One helper for every file that records its code: the experiment's run summaries (``commit``,
``clean``) and the benchmarks' results files (``benchmarks/record.py``, which adds ``changed``).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from drivekit.core.config import HOME


def git_state(root: str | Path = HOME, ignore: str | Path | None = None) -> dict:
    """``commit`` (HEAD of the repository at ``root``), ``clean`` and ``changed``: the paths
    ``git status --porcelain`` lists, but ``ignore`` (a file about to be replaced). Outside git (or
    without git): ``commit`` None, ``clean`` False and ``changed`` saying why."""
    root = Path(root)
    ignore = Path(ignore).resolve() if ignore is not None else None

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    try:
        commit, status = git("rev-parse", "HEAD").strip(), git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError) as e:
        return dict(commit=None, clean=False, changed=[f"no git state: {getattr(e, 'stderr', None) or e}".strip()])
    changed = [line[3:] for line in status.splitlines() if (root / line[3:]).resolve() != ignore]
    return dict(commit=commit, clean=not changed, changed=changed)

