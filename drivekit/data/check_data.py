"""``python -m drivekit check-data PATH``: is a BDD-OIA copy on disk complete, and what does it hold?

The copy is read through :mod:`drivekit.data.bddoia`, the reader the course uses. Per split the report
gives the rows of the two label files, the rows the official loader keeps and the ones it drops
("confuse": a 5th action value of 1), which images of the kept rows are present under ``data/``,
and the label counts; then one verdict line. Every problem is a
:class:`~drivekit.data.bddoia.BDDOIAFormatError` naming the file and the field. :func:`check` returns the
report as data (for tests and notebooks); :func:`main` prints it and exits 1 on a broken copy.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivekit.data.bddoia import (
    SPLITS, BDDOIAFormatError, actions_path, frame_paths, image_path, load_image, read_split, reasons_path,
)
from drivekit.core.taxonomy import ACTION_PHRASES, REASON_KEYS

SHOW = 5  # names listed in a message (missing images, say); the rest are counted
IMAGES_FIELD = "images[].file_name"


@dataclass
class SplitReport:
    """What one split of the copy holds; ``errors`` is empty when the split is usable."""

    split: str
    kept: int = 0
    dropped: int = 0  # rows whose 5th action value is 1 ("confuse"), skipped as the official loader does
    present: int = 0  # kept rows whose image is under data/
    missing: list[str] = field(default_factory=list)  # kept rows whose image is not
    corrupt: list[str] = field(default_factory=list)  # images that do not decode (``decode=True`` only)
    action_counts: dict[str, int] = field(default_factory=dict)  # positives per action, kept rows
    reason_counts: dict[str, int] = field(default_factory=dict)  # positives per reason key, kept rows
    errors: list[BDDOIAFormatError] = field(default_factory=list)
    labels_read: bool = False  # False: the label files could not be read (see ``errors``)

    @property
    def rows(self) -> int:
        """Rows in the actions file, which are the rows in the reasons file (the reader checks it)."""
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

    @property
    def errors(self) -> list[BDDOIAFormatError]:
        return [err for report in self.splits.values() for err in report.errors]

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        lines = [f"BDD-OIA copy at {self.root}"]
        for report in self.splits.values():
            lines += _split_lines(self.root, report)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        lines.append(_verdict(self))
        return "\n".join(lines)


def check(root: str | Path, splits: Sequence[str] = SPLITS, decode: bool = False) -> DataReport:
    """Check the copy at ``root``: labels of ``splits``, images of their kept rows (decoded too if ``decode``)."""
    root = Path(root)
    listing = _listing(root / "data")
    reports = {split: _check_split(root, split, listing, decode) for split in splits}
    return DataReport(root, reports, decoded=decode, hint=_hint(root))


def _check_split(root: Path, split: str, listing: set[str], decode: bool) -> SplitReport:
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
    a_path = actions_path(root, split)
    if not samples:
        report.errors.append(BDDOIAFormatError(a_path, "images", "no row is kept: the split is empty"))
    names = [s.name for s in samples]
    report.missing = [n for n in names if n not in listing and not image_path(root, n).is_file()]
    report.present = len(names) - len(report.missing)
    if report.missing:
        report.errors.append(BDDOIAFormatError(a_path, IMAGES_FIELD, _missing_problem(root, report)))
    if decode:
        missing = set(report.missing)
        present = [n for n in names if n not in missing]
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
    if any(root.glob("*_25k_images_actions.json")):
        return ""
    below = sorted({str(p.parent) for p in root.glob("*/*_25k_images_actions.json")})
    if below:
        return f"the label files are in {_names(below, quote=False)}: point check-data (and DRIVEKIT_DATA) there"
    return "no *_25k_images_actions.json here: is this the folder the release was unzipped into?"


def _count(items: Sequence, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _names(names: Sequence[str], quote: bool = True) -> str:
    shown = ", ".join(repr(n) if quote else n for n in names[:SHOW])
    return shown + (f" and {len(names) - SHOW} more" if len(names) > SHOW else "")


def _split_lines(root: Path, r: SplitReport) -> list[str]:
    if not r.labels_read:
        return [f"{r.split}: labels not read", *(f"  ERROR {err}" for err in r.errors)]
    files = f"{actions_path(root, r.split).name} and {reasons_path(root, r.split).name}"
    dropped = (f"dropped {r.dropped} (5th action value 1, \"confuse\": the official loader skips these rows)"
               if r.dropped else "dropped 0 (no row has a 5th action value of 1, \"confuse\")")
    images = f"images: {r.present} of {r.kept} kept rows present in data/"
    if r.missing:
        images += f", {len(r.missing)} missing (named below)"
    if r.corrupt:
        images += f", {len(r.corrupt)} corrupt (named below)"
    never = [k for k in REASON_KEYS if k not in r.reasons_seen]
    reasons = f"reasons: {len(r.reasons_seen)} of {len(REASON_KEYS)} ever positive"
    if never:
        reasons += f" (never: {_names(never, quote=False)})"
    actions = " · ".join(f"{p} {n}" for p, n in r.action_counts.items())
    return [
        f"{r.split}: {r.rows} rows in each of {files}",
        f"  kept {r.kept}, {dropped}",
        f"  {images}",
        f"  actions (positives in kept rows): {actions}",
        f"  {reasons}",
        *(f"  ERROR {err}" for err in r.errors),
    ]


def _verdict(report: DataReport) -> str:
    if not report.ok:
        return f"NOT USABLE: {_count(report.errors, 'problem')} (each ERROR line names the file and the field)"
    splits = report.splits.values()
    kept, dropped = sum(r.kept for r in splits), sum(r.dropped for r in splits)
    images = "present and decoded" if report.decoded else "present"
    return (f"usable: {_count(report.splits, 'split')}, {kept} rows kept, {dropped} dropped as \"confuse\", "
            f"every image of a kept row {images}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m drivekit check-data",
                                description="Check a BDD-OIA copy on disk and print what it holds.")
    p.add_argument("path", type=Path, help="the folder that holds data/ and the *_25k_images_*.json files")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), metavar="SPLIT",
                   help="splits to check (default: train val test)")
    p.add_argument("--decode", action="store_true",
                   help="also decode every image of a kept row (slower: reads every JPEG in full)")
    a = p.parse_args(argv)
    report = check(a.path, a.splits, decode=a.decode)
    print(report.text())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
