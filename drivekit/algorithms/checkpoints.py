"""Numbered checkpoint folders of a training run: ``<run_dir>/checkpoint-<step>/``.

Shared by the training loops (A2C, SFT; GRPO for its marker file in trl's checkpoints): which checkpoints a
run directory holds, the latest complete one (a folder counts once its trainer-state file is written, so a
run killed while saving resumes from the one before), writing that file atomically (a temporary file renamed over
it: :func:`drivekit.core.files.write_atomic`) and reading it back with ``weights_only=True`` (plain
tensors, numbers, strings, lists and dicts only) and the file named when it cannot be read
(:class:`drivekit.core.files.Unfinished`), refusing a resume whose settings differ from the state's,
pruning all but the newest few, and releasing old ones (their trainer state goes, their adapter stays).
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from drivekit.core.files import Unfinished, write_atomic

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
    """``torch.save(state)`` to ``path`` atomically (:func:`drivekit.core.files.write_atomic`): a run killed
    while saving leaves no half-written trainer state, so its checkpoint does not count. ``state`` holds
    plain data only (tensors, numbers, strings, None, lists, tuples, dicts), which :func:`read_state`
    loads with ``weights_only=True``."""
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def read_state(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """The trainer state at ``path`` (``torch.load(..., weights_only=True)`` on the CPU), holding every key
    in ``required``; :class:`drivekit.core.files.Unfinished` naming the file when it is missing,
    truncated or not a state."""
    path = Path(path)
    if not path.is_file():
        raise Unfinished(path, "missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, a foreign pickle: torch's messages do not name the file
        raise Unfinished(path, f"unreadable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise Unfinished(path, f"expected a dict, found {type(state).__name__}")
    missing = [k for k in required if k not in state]
    if missing:
        raise Unfinished(path, f"no {', '.join(missing)}")
    return state


def check_settings(path: str | Path, then: Mapping, now: Mapping) -> None:
    """A ``ValueError`` naming ``path`` and the first field where the settings a state was written with
    (``then``) differ from the resuming run's (``now``)."""
    for key, value in now.items():
        if then.get(key) != value:
            raise ValueError(f"{path}: written with {key}={then.get(key)!r}, this run has {value!r}; resume with the "
                             f"same settings, or train afresh (without resuming)")
    extra = sorted(set(then) - set(now))
    if extra:
        raise ValueError(f"{path}: written with settings this run does not have: {extra}; train afresh")


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
