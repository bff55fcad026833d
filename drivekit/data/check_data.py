"""``python -m drivekit check-data PATH``: is a BDD-OIA copy on disk complete, and what does it hold?

The copy is read through :mod:`drivekit.data.bddoia`, the reader the course uses, in the official layout or
the public FiftyOne copy's (one label file per split). Per split the report gives the rows of the label files, the rows the official loader keeps and the ones it drops
("confuse": a 5th action value of 1), which images of the kept rows are present under ``data/``,
and the label counts; then one verdict line. Every problem is a
:class:`~drivekit.data.bddoia.BDDOIAFormatError` naming the file and the field. :func:`check` returns the
report as data (for tests and notebooks); :func:`main` prints it and exits 1 on a broken copy.

Each present image (and frame) of a kept row is also opened and its header read, which is cheap (a few
bytes, no decoding): a 0-byte file, bytes that are not a JPEG (a PNG named ``.jpg``, say), an unreadable
header and a frame size other than the copy's are errors naming the clips. The expected size is
:data:`FRAME_SIZE` (1280x720, every BDD-OIA frame) unless the copy has a ``generator.json`` (written by
``python -m drivekit generate``), whose ``size`` it then is. A smaller frame of the same shape (a
downscaled copy) is only a warning: the processor resizes frames anyway. ``--decode`` also decodes every
image in full. ``--labels-only`` checks the two label files of each split alone (for a copy whose images
are elsewhere, or not yet unzipped) and says whether they are usable as labels.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import JpegImagePlugin

from drivekit.data.bddoia import (
    SPLITS, BDDOIAFormatError, frame_paths, image_path, label_files, load_image, read_split,
)
from drivekit.core.taxonomy import ACTION_PHRASES, REASON_KEYS

SHOW = 5  # names listed in a message (missing images, say); the rest are counted
IMAGES_FIELD = "images[].file_name"
FRAME_SIZE = (1280, 720)  # (width, height) of every BDD-OIA frame
GENERATOR = "generator.json"  # the synthetic writer's settings; its "size" is the copy's frame size
JPEG_MAGIC = b"\xff\xd8\xff"
SHAPE_TOLERANCE = 0.01  # a frame of the expected width/height ratio within 1% has "the same shape"
# What each kind of bad image is, as an error says it ("N of M present images <text>"), in report order.
IMAGE_PROBLEMS = {
    "empty": "are empty (0 bytes)",
    "not_jpeg": "are not JPEG data",
    "bad_header": "have a JPEG header that cannot be read",
    "wrong_size": "are not {size} ({source})",
}


@dataclass
class SplitReport:
    """What one split of the copy holds; ``errors`` is empty when the split is usable."""

    split: str
    kept: int = 0
    dropped: int = 0  # rows whose 5th action value is 1 ("confuse"), skipped as the official loader does
    present: int = 0  # kept rows whose image is under data/
    missing: list[str] = field(default_factory=list)  # kept rows whose image is not
    corrupt: list[str] = field(default_factory=list)  # images that do not decode (``decode=True`` only)
    # kind (IMAGE_PROBLEMS) -> {clip: what is wrong with its first bad image or frame}, from the headers
    image_problems: dict[str, dict[str, str]] = field(default_factory=dict)
    downscaled: dict[str, str] = field(default_factory=dict)  # clip -> its size, smaller at the same shape
    warnings: list[str] = field(default_factory=list)  # what does not stop the copy from being usable
    action_counts: dict[str, int] = field(default_factory=dict)  # positives per action, kept rows
    reason_counts: dict[str, int] = field(default_factory=dict)  # positives per reason key, kept rows
    errors: list[BDDOIAFormatError] = field(default_factory=list)
    labels_read: bool = False  # False: the label files could not be read (see ``errors``)

    @property
    def rows(self) -> int:
        """Rows in the actions file, which are the rows in the reasons file (the reader checks it), or in the
        FiftyOne file."""
        return self.kept + self.dropped

    @property
    def reasons_seen(self) -> list[str]:
        return [key for key, count in self.reason_counts.items() if count]


@dataclass
class DataReport:
    root: Path
    splits: dict[str, SplitReport]
    decoded: bool = False  # every present image was decoded, not only found
    hint: str = ""  # e.g. where the label files are when PATH is one folder too high
    labels_only: bool = False  # only the label files were checked, not the images
    frame_size: tuple[int, int] | None = FRAME_SIZE  # (width, height) the images should have; None: unknown
    size_source: str = "a BDD-OIA frame"  # where frame_size comes from
    copy_errors: list[BDDOIAFormatError] = field(default_factory=list)  # of the copy, not of a split

    @property
    def errors(self) -> list[BDDOIAFormatError]:
        return [*self.copy_errors, *(err for report in self.splits.values() for err in report.errors)]

    @property
    def warnings(self) -> list[str]:
        return [w for report in self.splits.values() for w in report.warnings]

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"BDD-OIA copy at {self.root}"]
        if not self.labels_only and self.frame_size:
            lines.append(f"frames: {_size(self.frame_size)} JPEGs expected ({self.size_source})")
        lines += [f"ERROR {err}" for err in self.copy_errors]
        for report in self.splits.values():
            lines += _split_lines(self.root, report, self.labels_only)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        lines.append(_verdict(self))
        return "\n".join(lines)


def check(root: str | Path, splits: Sequence[str] = SPLITS, decode: bool = False,
          labels_only: bool = False) -> DataReport:
    """Check the copy at ``root``: labels of ``splits``, images of their kept rows (present, a JPEG of the
    expected size by its header; decoded too if ``decode``). ``labels_only``: the label files alone."""
    if decode and labels_only:
        raise ValueError("give decode=True (decode every image) or labels_only=True (no image), not both")
    root = Path(root)
    if labels_only:
        reports = {split: _check_split(root, split, set(), False, None, labels_only=True) for split in splits}
        return DataReport(root, reports, hint=_hint(root), labels_only=True, frame_size=None, size_source="")
    frame_size, source, copy_errors = expected_size(root)
    listing = _listing(root / "data")
    expected = (frame_size, source) if frame_size else None
    reports = {split: _check_split(root, split, listing, decode, expected) for split in splits}
    report = DataReport(root, reports, decoded=decode, hint=_hint(root), frame_size=frame_size,
                        size_source=source, copy_errors=copy_errors)
    if not report.hint and not copy_errors and _only_image_errors(report):
        report.hint = "the label files are fine: --labels-only checks them alone"
    return report


def expected_size(root: Path) -> tuple[tuple[int, int] | None, str, list[BDDOIAFormatError]]:
    """``(width, height)`` the copy's frames should have, where that comes from, and a problem with it:
    ``generator.json``'s ``size`` when the copy has one (the synthetic writer), else :data:`FRAME_SIZE`."""
    path = root / GENERATOR
    if not path.is_file():
        return FRAME_SIZE, "a BDD-OIA frame", []
    try:
        size = json.loads(path.read_bytes()).get("size")
    except (OSError, ValueError, AttributeError) as err:
        return None, "", [BDDOIAFormatError(path, "<file>", f"unreadable ({err})")]
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)):
        return None, "", [BDDOIAFormatError(path, "size", f"expected [width, height] in pixels, got {size!r}")]
    return (size[0], size[1]), f"the size in {GENERATOR}", []


def _only_image_errors(report: DataReport) -> bool:
    """Whether the labels are usable but a split has none of its images (labels without images): every
    split's labels were read and every error is about the images."""
    splits = report.splits.values()
    return (bool(report.errors) and all(r.labels_read for r in splits) and any(r.kept and not r.present for r in splits)
            and all(err.field == IMAGES_FIELD for err in report.errors))


def _check_split(root: Path, split: str, listing: set[str], decode: bool,
                 expected: tuple[tuple[int, int], str] | None, labels_only: bool = False) -> SplitReport:
    report = SplitReport(split)
    try:
        labels = read_split(root, split)
    except BDDOIAFormatError as err:
        report.errors.append(err)
        return report
    except OSError as err:  # e.g. a label file that cannot be read
        report.errors.append(BDDOIAFormatError(err.filename or root, "<file>", err.strerror or str(err)))
        return report
    samples = labels.samples
    report.labels_read, report.kept, report.dropped = True, len(samples), labels.dropped
    report.action_counts = {p: sum(s.actions[i] for s in samples) for i, p in enumerate(ACTION_PHRASES)}
    report.reason_counts = {k: sum(s.reasons[i] for s in samples) for i, k in enumerate(REASON_KEYS)}
    a_path = label_files(root, split)[0]  # the file that lists the images (actions file, or the FiftyOne file)
    if not samples:
        report.errors.append(BDDOIAFormatError(a_path, "images", "no row is kept: the split is empty"))
    if labels_only:
        return report
    names = [s.name for s in samples]
    report.missing = [n for n in names if n not in listing and not image_path(root, n).is_file()]
    report.present = len(names) - len(report.missing)
    if report.missing:
        report.errors.append(BDDOIAFormatError(a_path, IMAGES_FIELD, _missing_problem(root, report)))
    missing = set(report.missing)
    present = [n for n in names if n not in missing]
    if expected is not None:
        _check_headers(root, report, present, listing, *expected)
        for kind, clips in report.image_problems.items():
            if clips:
                what = IMAGE_PROBLEMS[kind].format(size=_size(expected[0]), source=expected[1])
                problem = f"{len(clips)} of {len(present)} present images {what}: {_details(clips)}"
                report.errors.append(BDDOIAFormatError(a_path, IMAGES_FIELD, problem))
        if report.downscaled:
            report.warnings.append(
                f"{a_path}: {IMAGES_FIELD}: {len(report.downscaled)} of {len(present)} present images are "
                f"smaller than {_size(expected[0])} ({expected[1]}) at the same shape: {_details(report.downscaled)} "
                "(a downscaled copy: usable, with less detail per frame)")
    if decode:
        flagged = {clip for clips in report.image_problems.values() for clip in clips}
        present = [n for n in present if n not in flagged]  # each bad clip is named once
        report.corrupt, first = _undecodable(root, present)
        if report.corrupt:
            problem = (f"{len(report.corrupt)} of {len(present)} present images do not decode "
                       f"({_names(report.corrupt)}); first: {first}")
            report.errors.append(BDDOIAFormatError(a_path, IMAGES_FIELD, problem))
    return report


def _undecodable(root: Path, names: list[str]) -> tuple[list[str], BDDOIAFormatError | None]:
    """The clips among ``names`` with a frame or image that does not decode, and the first such error."""
    bad, first = [], None
    for name in names:
        for path in dict.fromkeys([*frame_paths(root, name), image_path(root, name)]):
            try:
                load_image(path)
            except BDDOIAFormatError as err:
                bad.append(name)
                first = first or err
                break
    return bad, first


def _check_headers(root: Path, report: SplitReport, names: list[str], listing: set[str],
                   size: tuple[int, int], source: str) -> None:
    """Read the header of each clip's image and frames (first bad file of a clip only) into ``report``."""
    kinds = {kind: {} for kind in IMAGE_PROBLEMS}
    for name in names:
        for path in _clip_files(root, name, listing):
            kind, detail = _header_problem(path, size)
            where = "" if path.name == name else f" ({path.name})"
            if kind == "downscaled":
                report.downscaled.setdefault(name, detail + where)
            elif kind:
                kinds[kind][name] = detail + where
                report.downscaled.pop(name, None)  # the error says it
                break
    report.image_problems = {kind: clips for kind, clips in kinds.items() if clips}


def _clip_files(root: Path, name: str, listing: set[str]) -> list[Path]:
    """The clip's frames ``<stem>_f0.jpg …`` (found in the listing, no stat) and its image."""
    data, stem, frames = root / "data", name.removesuffix(".jpg"), []
    while (frame := f"{stem}_f{len(frames)}.jpg") in listing:
        frames.append(data / frame)
    return [*frames, image_path(root, name)]


def image_header(path: Path) -> tuple[str, tuple[int, int] | str]:
    """``("jpeg", (width, height))`` from the header of a JPEG file (a few bytes read, nothing decoded,
    whatever size the header claims), else ``(kind, what)`` with kind ``empty``, ``not_jpeg`` or ``bad_header``."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if not head:
                return "empty", "0 bytes"
            if not head.startswith(JPEG_MAGIC):
                return "not_jpeg", _format_of(head)
            f.seek(0)
            return "jpeg", JpegImagePlugin.JpegImageFile(f).size  # no decompression-bomb check: a header only
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as err:
        return "bad_header", f"header unreadable ({err})"


def _header_problem(path: Path, size: tuple[int, int]) -> tuple[str | None, str]:
    """(kind, detail) of what is wrong with the image at ``path`` (kind ``downscaled`` is a warning), else (None, "")."""
    kind, found = image_header(path)
    if kind != "jpeg":
        return kind, found
    if found == size:
        return None, ""
    (w, h), (width, height) = found, size
    same_shape = abs(w / h - width / height) <= SHAPE_TOLERANCE * width / height
    if same_shape and w < width and h < height:
        return "downscaled", _size(found)
    return "wrong_size", _size(found) + (" (portrait)" if h > w and width > height else "")


def _format_of(head: bytes) -> str:
    for magic, name in ((b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"RIFF", "RIFF/WebP"),
                        (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")):
        if head.startswith(magic):
            return f"{name} data"
    return f"starts with {head[:4]!r}"


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _details(clips: dict[str, str]) -> str:
    """``'a.jpg' 7x3, 'b.jpg' PNG data …``: the first few clips with what is wrong, the rest counted."""
    items = list(clips.items())
    shown = ", ".join(f"{name!r} {detail}" for name, detail in items[:SHOW])
    return shown + (f" and {len(items) - SHOW} more" if len(items) > SHOW else "")


def _listing(folder: Path) -> set[str]:
    """The file names in ``folder`` (one directory listing: far faster than a stat per image on a mounted drive)."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries}
    except OSError:
        return set()


def _missing_problem(root: Path, report: SplitReport) -> str:
    data = root / "data"
    where = f"{data} does not exist" if not data.is_dir() else f"not in {data}"
    listed = f"{len(report.missing)} of {report.kept} listed images"
    return f"{listed} are missing ({_names(report.missing)}): {where}"


def _hint(root: Path) -> str:
    if not root.is_dir():
        return f"{root} is not a folder: give the folder that holds data/ and the *_25k_images_*.json files"
    if any(root.glob("*_25k_images_actions.json")) or any(root.glob("*_25k_images.json")):
        return ""
    below = sorted({str(p.parent) for pattern in ("*/*_25k_images_actions.json", "*/*_25k_images.json")
                    for p in root.glob(pattern)})
    if below:
        return f"the label files are in {_names(below, quote=False)}: point check-data (and DRIVEKIT_DATA) there"
    return ("no *_25k_images_actions.json (official layout) or *_25k_images.json (FiftyOne copy) here: is this "
            "the folder the release was unzipped into?")


def _count(items: Sequence, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _names(names: Sequence[str], quote: bool = True) -> str:
    shown = ", ".join(repr(n) if quote else n for n in names[:SHOW])
    return shown + (f" and {len(names) - SHOW} more" if len(names) > SHOW else "")


def _split_lines(root: Path, r: SplitReport, labels_only: bool = False) -> list[str]:
    if not r.labels_read:
        return [f"{r.split}: labels not read", *(f"  ERROR {err}" for err in r.errors)]
    names = [path.name for path in label_files(root, r.split)]
    files = f"each of {names[0]} and {names[1]}" if len(names) == 2 else f"{names[0]} (the FiftyOne layout)"
    dropped = (f"dropped {r.dropped} (5th action value 1, \"confuse\": the official loader skips these rows)"
               if r.dropped else "dropped 0 (no row has a 5th action value of 1, \"confuse\")")
    images = f"images: {r.present} of {r.kept} kept rows present in data/"
    if labels_only:
        images = "images: not checked (--labels-only)"
    if r.missing:
        images += f", {len(r.missing)} missing (named below)"
    bad = sum(len(clips) for clips in r.image_problems.values())
    if bad:
        images += f", {bad} not usable by their header (named below)"
    if r.corrupt:
        images += f", {len(r.corrupt)} corrupt (named below)"
    never = [k for k in REASON_KEYS if k not in r.reasons_seen]
    reasons = f"reasons: {len(r.reasons_seen)} of {len(REASON_KEYS)} ever positive"
    if never:
        reasons += f" (never: {_names(never, quote=False)})"
    actions = " · ".join(f"{p} {n}" for p, n in r.action_counts.items())
    return [
        f"{r.split}: {r.rows} rows in {files}",
        f"  kept {r.kept}, {dropped}",
        f"  {images}",
        f"  actions (positives in kept rows): {actions}",
        f"  {reasons}",
        *(f"  ERROR {err}" for err in r.errors),
        *(f"  WARNING {w}" for w in r.warnings),
    ]


def _verdict(report: DataReport) -> str:
    if not report.ok:
        return f"NOT USABLE: {_count(report.errors, 'problem')} (each ERROR line names the file and the field)"
    splits = report.splits.values()
    kept, dropped = sum(r.kept for r in splits), sum(r.dropped for r in splits)
    rows = f"{_count(report.splits, 'split')}, {kept} rows kept, {dropped} dropped as \"confuse\""
    if report.labels_only:
        return f"usable as labels: {rows} (images not checked: --labels-only)"
    images = "present and decoded" if report.decoded else "present"
    size = f", a {_size(report.frame_size)} JPEG" if report.frame_size else ""
    warned = f", a JPEG ({_count(report.warnings, 'warning')} above)" if report.warnings else ""
    size = "" if report.warnings else size
    return f"usable: {rows}, every image of a kept row {images}{size}{warned}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m drivekit check-data",
                                description="Check a BDD-OIA copy on disk and print what it holds.")
    p.add_argument("path", type=Path, nargs="?",
                   help="the folder that holds data/ and the *_25k_images_*.json files (default: the configuration's "
                        "data folder, $DRIVEKIT_DATA or the $DRIVEKIT_PROFILE's)")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), metavar="SPLIT",
                   help="splits to check (default: train val test)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--decode", action="store_true",
                      help="also decode every image of a kept row (slower: reads every JPEG in full)")
    mode.add_argument("--labels-only", action="store_true",
                      help="check the label files alone, not the images (usable as labels or not)")
    a = p.parse_args(argv)
    if a.path is None:
        from drivekit.core.config import load

        a.path = load().data_root
    report = check(a.path, a.splits, decode=a.decode, labels_only=a.labels_only)
    print(report.text())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
