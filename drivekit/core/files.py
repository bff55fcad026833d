"""Files that mark work as done: written atomically, read back with the file named.

A summary, a results file, a checkpoint or a trainer state is written to a temporary file beside
its destination and renamed over it (``os.replace`` is atomic on one file system), so a run killed
while writing leaves the old file or none, never half of one. Reading one back, anything short of a
whole, well-formed file is :class:`Unfinished`, whose message names the file and why:
``runs/sft/summary.json: unfinished (not JSON: Expecting ',' delimiter: line 1 column 23)``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class Unfinished(ValueError):
    """A file that should mark finished work is missing, truncated or unreadable."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: unfinished ({reason})")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``text`` to ``path``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data, **dumps) -> Path:
    """``data`` as JSON (indent 2 unless given) to ``path``, atomically."""
    dumps.setdefault("indent", 2)
    return write_text(path, json.dumps(data, **dumps) + "\n")


def read_json(path: str | Path):
    """The JSON in ``path``; :class:`Unfinished` naming the file when it is missing, empty or not JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Unfinished(path, "missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Unfinished(path, f"unreadable: {e}") from None
    if not text.strip():
        raise Unfinished(path, "empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Unfinished(path, f"not JSON: {e}") from None


def read_json_object(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """:func:`read_json` for a JSON object holding every key in ``required``, else :class:`Unfinished`."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise Unfinished(path, f"expected a JSON object, found {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise Unfinished(path, f"no {', '.join(missing)}")
    return data
