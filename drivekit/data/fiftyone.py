"""BDD-OIA's public FiftyOne copy, converted into the official layout the rest of drivekit reads.

The official download (a Google Drive folder) answers "access denied" for many users; a public copy
is distributed for FiftyOne in this layout::

    <src>/data/<name>.jpg
    <src>/{train,val,test}_25k_images.json
        {"images": [{"file_name", "id", ...}],
         "annotations": [{"id", "category", "reason", "unsafe", "frames", ...}]}

``category`` is either the official vector (4 values, or 5 with "confuse" last) or one class index
(0 forward, 1 stop, 2 left, 3 right, 4 confuse); ``reason`` is the 21-value vector. The reason
*indices* are the official ones: the copy's per-index counts match the official per-index totals
(DESIGN §4.2, e.g. index 0 is "Follow traffic", 7,805 in all), although that copy's loader prints
other *names* beside them; drivekit names them by :mod:`drivekit.core.taxonomy`.

:func:`convert` writes ``{split}_25k_images_actions.json`` and ``{split}_25k_images_reasons.json``
and links ``data/`` (no image is copied), so ``check-data`` and every notebook read the result as
an official copy; a class index becomes the one-hot vector (index 4 keeps the 5th "confuse" value,
which the reader drops as the official loader does). ``unsafe`` and ``frames`` are not used.

    python -m drivekit convert-fiftyone SRC DST
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from drivekit.core import files
from drivekit.core.taxonomy import N_ACTIONS, N_REASONS
from drivekit.data.bddoia import (SPLITS, BDDOIAFormatError, _check_binary, _get, _images_and_annotations,
                                  actions_path, reasons_path)

CONFUSE = N_ACTIONS  # the class index (and vector position) of "confuse"


def fiftyone_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}_25k_images.json"


def is_fiftyone(root: str | Path) -> bool:
    """Whether ``root`` holds the FiftyOne layout (a ``{split}_25k_images.json`` for some split)."""
    return any(fiftyone_path(root, s).is_file() for s in SPLITS)


def category_vector(value, path: Path, field: str) -> list[int]:
    """An annotation's ``category`` as the official vector: a list is checked and kept, a class index
    becomes one-hot (with the 5th "confuse" value for index 4)."""
    if type(value) is int:
        if not 0 <= value <= CONFUSE:
            raise BDDOIAFormatError(path, field, f"class index {value} is not 0-{CONFUSE} (forward, stop, left, "
                                                 "right, confuse)")
        vector = [0] * (N_ACTIONS + 1)
        vector[value] = 1
        return vector
    if isinstance(value, list):
        _check_binary(path, field, value, (N_ACTIONS, N_ACTIONS + 1))
        return list(value)
    raise BDDOIAFormatError(path, field, f"expected a class index or a list of 0/1, got {value!r}")


def read_split(root: str | Path, split: str) -> tuple[dict, list[dict]]:
    """One FiftyOne split file as (official actions rows, official reasons rows); errors name the field."""
    path = fiftyone_path(root, split)
    data = _images_and_annotations(path)
    names = {}
    for i, image in enumerate(data["images"]):
        image_id = _get(path, image, f"images[{i}]", "id", int)
        names[image_id] = _get(path, image, f"images[{i}]", "file_name", str)
    images, annotations, reasons = [], [], []
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        ann_id = _get(path, ann, where, "id", int)
        if ann_id not in names:
            raise BDDOIAFormatError(path, f"{where}.id", f"id {ann_id} has no image in 'images'")
        name = names[ann_id]
        if "category" not in ann:
            raise BDDOIAFormatError(path, f"{where}.category", "missing")
        category = category_vector(ann["category"], path, f"{where}.category (file_name {name!r})")
        reason = _get(path, ann, where, "reason", list)
        _check_binary(path, f"{where}.reason (file_name {name!r})", reason, (N_REASONS,))
        images.append({"file_name": name, "id": ann_id})
        annotations.append({"id": ann_id, "category": category})
        reasons.append({"file_name": name, "reason": list(reason)})
    return {"images": images, "annotations": annotations}, reasons


def convert(src: str | Path, dst: str | Path, splits=SPLITS) -> dict[str, int]:
    """Write the official layout of the FiftyOne copy at ``src`` into ``dst`` (label files written
    atomically, ``dst/data`` a link to ``src/data``); returns the rows written per split."""
    src, dst = Path(src), Path(dst)
    if not is_fiftyone(src):
        raise BDDOIAFormatError(src, "<folder>", "no {split}_25k_images.json: not the FiftyOne layout")
    if not (src / "data").is_dir():
        raise BDDOIAFormatError(src / "data", "<folder>", "missing images folder")
    dst.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in splits:
        if not fiftyone_path(src, split).is_file():
            continue
        actions, reasons = read_split(src, split)
        files.write_text(actions_path(dst, split), json.dumps(actions) + "\n")
        files.write_text(reasons_path(dst, split), json.dumps(reasons) + "\n")
        written[split] = len(reasons)
    link = dst / "data"
    if not link.exists():
        os.symlink((src / "data").resolve(), link, target_is_directory=True)
    return written


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m drivekit convert-fiftyone", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the FiftyOne copy (holds data/ and {split}_25k_images.json)")
    parser.add_argument("dst", help="where to write the official layout (data/ becomes a link to src/data)")
    a = parser.parse_args(argv)
    written = convert(a.src, a.dst)
    print("wrote " + ", ".join(f"{split} {n} rows" for split, n in written.items()) + f" into {a.dst}")
    print(f"next: python -m drivekit check-data {a.dst}   (then DRIVEKIT_DATA={a.dst} for the paper profile)")
