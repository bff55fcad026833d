"""Numbered checkpoint folders of a training run: ``<run_dir>/checkpoint-<step>/``.

Shared by the training loops (A2C, SFT): which checkpoints a run directory holds, the latest
complete one (a folder counts once its trainer-state file is written, so a run killed while
saving resumes from the one before), writing that file in one piece, pruning all but the newest
few, and releasing old ones (their trainer state goes, their adapter stays).
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def folder(run_dir: str | Path, step: int, width: int = 6) -> Path:
    """``checkpoint-<step>`` with ``step`` zero-padded to ``width`` digits (A2C: 6; SFT: 1, i.e. unpadded)."""
    return Path(run_dir) / f"checkpoint-{step:0{width}d}"


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


def write_state(state: dict, path: str | Path) -> Path:
    """``torch.save`` through a temporary file renamed at the end: a run killed while saving leaves no
    half-written trainer state, so its checkpoint does not count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (at least 1) checkpoints."""
    found = listed(run_dir)
    for old in found[: max(0, len(found) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)


def release(run_dir: str | Path, state_file: str, patterns: Iterable[str] = (), keep: int = 1) -> None:
    """Make all but the newest ``keep`` complete checkpoints plain adapters: delete their ``state_file``
    (first, so none counts half-released) and the files matching ``patterns`` (per-process states).
    ``keep=0`` releases every one (a fresh run in an old run directory)."""
    found = listed(run_dir, state_file)
    for old in found[: max(0, len(found) - keep)]:
        (old / state_file).unlink(missing_ok=True)
        for pattern in patterns:
            for path in old.glob(pattern):
                path.unlink(missing_ok=True)
