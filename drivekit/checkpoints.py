"""Numbered checkpoint folders of a training run: ``<run_dir>/checkpoint-<step>/``.

Shared by the training loops (A2C, SFT): which checkpoints a run directory holds, the latest
complete one (a folder counts once its trainer-state file is written, so a run killed while
saving resumes from the one before), and pruning all but the newest few.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def folder(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint-{step:06d}"


def listed(run_dir: str | Path | None, state_file: str | None = None) -> list[Path]:
    """The checkpoint folders of ``run_dir``, oldest first; with ``state_file``, only those holding it."""
    if not run_dir or not Path(run_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint-*") if (m := CHECKPOINT.search(p.name))
             and (state_file is None or (p / state_file).is_file())]
    return [p for _, p in sorted(found)]


def latest(run_dir: str | Path | None, state_file: str) -> Path | None:
    """The newest checkpoint of ``run_dir`` that holds ``state_file``, or None."""
    found = listed(run_dir, state_file)
    return found[-1] if found else None


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (at least 1) checkpoints."""
    found = listed(run_dir)
    for old in found[: max(0, len(found) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
