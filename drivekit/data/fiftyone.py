"""``python -m drivekit convert-fiftyone SRC DST``: BDD-OIA's public FiftyOne copy written in the official layout.

drivekit reads the FiftyOne copy as it is (:mod:`drivekit.data.bddoia`, which describes that layout;
``check-data`` and every notebook accept it). This converter is for tools that expect the official
files: it writes ``{split}_25k_images_actions.json`` and ``{split}_25k_images_reasons.json`` (atomically)
with the same rows, "confuse" ones included, and links ``data/`` (no image is copied). A class-index
``category`` becomes the one-hot vector (index 4 keeps the 5th "confuse" value, which the reader drops
as the official loader does); image ids are renumbered in file_name order.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from drivekit.core import files
from drivekit.data.bddoia import SPLITS, BDDOIAFormatError, actions_path, fiftyone_path, read_label_rows, reasons_path


def is_fiftyone(root: str | Path) -> bool:
    """Whether ``root`` holds the FiftyOne layout (a ``{split}_25k_images.json`` for some split)."""
    return any(fiftyone_path(root, s).is_file() for s in SPLITS)


def official_rows(root: str | Path, split: str) -> tuple[dict, list[dict]]:
    """One split of the copy at ``root`` as (actions file, reasons file) contents; errors name the field."""
    categories, reasons = read_label_rows(root, split)
    names = sorted(categories)
    actions = {"images": [{"file_name": name, "id": i} for i, name in enumerate(names)],
               "annotations": [{"id": i, "category": categories[name]} for i, name in enumerate(names)]}
    return actions, [{"file_name": name, "reason": reasons[name]} for name in names]


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
        actions, reasons = official_rows(src, split)
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
