"""Reader for BDD-OIA in its official layout (described below); the synthetic clips use the same layout.

```
<root>/data/<name>.jpg
<root>/{split}_25k_images_actions.json   {"images": [{file_name, id}], "annotations": [{id, category}]}
<root>/{split}_25k_images_reasons.json   [{file_name, reason}]
```
It also reads the public FiftyOne copy (the official download answers "access denied" for many users),
where one file per split holds both labels::

    <root>/{split}_25k_images.json   {"images": [{file_name, id, ...}],
                                      "annotations": [{id, category, reason, unsafe, frames, ...}]}

``category`` is there either the official vector (4 values, or 5 with "confuse" last) or one class index
(0 forward, 1 stop, 2 left, 3 right, 4 confuse: the one-hot vector, "confuse" as a 5th value);
``reason`` is the 21-value vector in the official order (the copy's per-index counts match the official
per-index totals, DESIGN §4.2, although that copy's loader prints other *names* beside them);
``unsafe`` and ``frames`` are not used. A split is read from the official files when either exists,
else from the FiftyOne file (:func:`layout`).
Like the official loader, samples are sorted by file_name and a row whose action vector has a
5th value of 1 ("confuse") is dropped. Unlike it, images and annotations are joined by ``id``
and reasons by ``file_name`` (not by list position), and any inconsistency raises
:class:`BDDOIAFormatError` naming the file and the field.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from drivekit.core.taxonomy import ACTION_KEYS, N_ACTIONS, N_REASONS, REASON_KEYS

SPLITS = ("train", "val", "test")


class BDDOIAFormatError(ValueError):
    """A BDD-OIA file that breaks the format: ``path``, ``field`` and ``problem`` say where and what."""

    def __init__(self, path: str | Path, field: str, problem: str):
        self.path, self.field, self.problem = Path(path), field, problem
        super().__init__(f"{path}: {field}: {problem}")

    def __reduce__(self):
        return type(self), (self.path, self.field, self.problem)


@dataclass(frozen=True)
class Sample:
    """One labelled clip: ``name`` is its file name under ``data/``."""

    name: str
    split: str
    actions: tuple[int, ...]  # N_ACTIONS values 0/1, taxonomy.ACTIONS order
    reasons: tuple[int, ...]  # N_REASONS values 0/1, taxonomy.REASONS order

    @property
    def action_array(self) -> np.ndarray:
        return np.array(self.actions, dtype=np.int64)

    @property
    def reason_array(self) -> np.ndarray:
        return np.array(self.reasons, dtype=np.int64)


@dataclass
class SplitLabels:
    """The kept samples of one split and how many rows were dropped as "confuse"."""

    split: str
    samples: list[Sample]
    dropped: int

    def __len__(self) -> int:
        return len(self.samples)


def actions_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}_25k_images_actions.json"


def reasons_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}_25k_images_reasons.json"


def image_path(root: str | Path, name: str) -> Path:
    return Path(root) / "data" / name


def _load_json(path: Path):
    if not path.is_file():
        raise BDDOIAFormatError(path, "<file>", "missing split file")
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        raise BDDOIAFormatError(
            path, "<file>", f"malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from err
    except UnicodeDecodeError as err:
        raise BDDOIAFormatError(path, "<file>", f"not UTF-8 text: {err}") from err


def _get(path: Path, row, where: str, key: str, kind: type):
    """``row[key]``, checked to be a ``kind`` (bool does not pass for int)."""
    if not isinstance(row, dict):
        raise BDDOIAFormatError(path, where, f"expected an object, got {type(row).__name__}")
    if key not in row:
        raise BDDOIAFormatError(path, f"{where}.{key}", "missing")
    value = row[key]
    if type(value) is not kind:
        raise BDDOIAFormatError(path, f"{where}.{key}", f"expected {kind.__name__}, got {value!r}")
    return value


def _check_binary(path: Path, field: str, vector: list, lengths: tuple[int, ...]) -> None:
    if len(vector) not in lengths:
        expected = " or ".join(map(str, lengths))
        raise BDDOIAFormatError(path, field, f"has length {len(vector)}, expected {expected}")
    for i, v in enumerate(vector):
        if type(v) is not int or v not in (0, 1):
            raise BDDOIAFormatError(path, field, f"value {v!r} at index {i} is not 0 or 1")


def _images_and_annotations(path: Path) -> dict:
    """A JSON object with lists ``images`` and ``annotations`` (an actions file, or the FiftyOne copy's
    split file), else :class:`BDDOIAFormatError` naming the field."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise BDDOIAFormatError(path, "<top level>", "expected an object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise BDDOIAFormatError(path, key, "missing or not a list")
    return data


CONFUSE = N_ACTIONS  # the FiftyOne copy's class index (and the vector position) of "confuse"


def category_vector(value, path: Path, field: str) -> list[int]:
    """A FiftyOne annotation's ``category`` as the official vector: a list is checked and kept, a class
    index becomes one-hot (with the 5th "confuse" value for index 4)."""
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


def _read_actions(path: Path, reasons: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """file_name -> category (4 or 5 values) from an actions file, joined by id. With ``reasons`` (a dict to
    fill) the file is the FiftyOne copy's: ``category`` may be a class index, and each annotation's
    ``reason`` goes into ``reasons``."""
    data = _images_and_annotations(path)
    names: dict[int, str] = {}  # id -> file_name
    seen: set[str] = set()
    for i, image in enumerate(data["images"]):
        name = _get(path, image, f"images[{i}]", "file_name", str)
        image_id = _get(path, image, f"images[{i}]", "id", int)
        if image_id in names:
            raise BDDOIAFormatError(path, f"images[{i}].id", f"duplicate id {image_id} ({name!r})")
        if name in seen:
            raise BDDOIAFormatError(path, f"images[{i}].file_name", f"duplicate file_name {name!r}")
        names[image_id] = name
        seen.add(name)
    categories: dict[str, list[int]] = {}
    for i, annotation in enumerate(data["annotations"]):
        ann_id = _get(path, annotation, f"annotations[{i}]", "id", int)
        if ann_id not in names:
            raise BDDOIAFormatError(path, f"annotations[{i}].id", f"id {ann_id} has no image in 'images'")
        name = names[ann_id]
        if name in categories:
            problem = f"duplicate annotation for id {ann_id} ({name!r})"
            raise BDDOIAFormatError(path, f"annotations[{i}].id", problem)
        field = f"annotations[{i}].category (id {ann_id}, file_name {name!r})"
        if reasons is None:
            category = _get(path, annotation, f"annotations[{i}]", "category", list)
            _check_binary(path, field, category, (N_ACTIONS, N_ACTIONS + 1))
        else:
            if "category" not in annotation:
                raise BDDOIAFormatError(path, f"annotations[{i}].category", "missing")
            category = category_vector(annotation["category"], path, field)
            reason = _get(path, annotation, f"annotations[{i}]", "reason", list)
            _check_binary(path, f"annotations[{i}].reason (id {ann_id}, file_name {name!r})", reason, (N_REASONS,))
            reasons[name] = list(reason)
        categories[name] = category
    for image_id, name in names.items():
        if name not in categories:
            raise BDDOIAFormatError(path, "annotations", f"no annotation for id {image_id} ({name!r})")
    return categories


def _read_reasons(path: Path) -> dict[str, list[int]]:
    """file_name -> reason vector from a reasons file."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise BDDOIAFormatError(path, "<top level>", "expected a list of {'file_name', 'reason'} objects")
    reasons: dict[str, list[int]] = {}
    for i, row in enumerate(data):
        name = _get(path, row, f"[{i}]", "file_name", str)
        if name in reasons:
            raise BDDOIAFormatError(path, f"[{i}].file_name", f"duplicate file_name {name!r}")
        reason = _get(path, row, f"[{i}]", "reason", list)
        _check_binary(path, f"[{i}].reason (file_name {name!r})", reason, (N_REASONS,))
        reasons[name] = reason
    return reasons


def _only_in(names: set[str], here: Path, there: Path) -> None:
    if names:
        first, *rest = sorted(names)
        more = f" (and {len(rest)} more)" if rest else ""
        raise BDDOIAFormatError(there, "file_name", f"{first!r}{more} is in {here.name} but not in this file")


def fiftyone_path(root: str | Path, split: str) -> Path:
    """The FiftyOne copy's label file of ``split`` (both labels in one file)."""
    return Path(root) / f"{split}_25k_images.json"


def layout(root: str | Path, split: str) -> str:
    """``"official"`` when either official label file of ``split`` exists (or none of the FiftyOne one does,
    so that a missing split names the official file), else ``"fiftyone"``."""
    official = actions_path(root, split).is_file() or reasons_path(root, split).is_file()
    return "fiftyone" if not official and fiftyone_path(root, split).is_file() else "official"


def label_files(root: str | Path, split: str) -> list[Path]:
    """The label files ``split`` is read from (:func:`layout`): the actions file first."""
    if layout(root, split) == "fiftyone":
        return [fiftyone_path(root, split)]
    return [actions_path(root, split), reasons_path(root, split)]


def read_label_rows(root: str | Path, split: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """``(file_name -> category, file_name -> reason)`` of every row of ``split``, "confuse" rows included,
    from either layout; every file_name in both."""
    if layout(root, split) == "fiftyone":
        reasons: dict[str, list[int]] = {}
        return _read_actions(fiftyone_path(root, split), reasons), reasons
    a_path, r_path = actions_path(root, split), reasons_path(root, split)
    categories, reasons = _read_actions(a_path), _read_reasons(r_path)
    _only_in(categories.keys() - reasons.keys(), a_path, r_path)
    _only_in(reasons.keys() - categories.keys(), r_path, a_path)
    return categories, reasons


def read_split(root: str | Path, split: str) -> SplitLabels:
    """The labels of ``split``, sorted by file_name, "confuse" rows dropped (as the official loader), from
    either layout (:func:`layout`)."""
    categories, reasons = read_label_rows(root, split)
    samples, dropped = [], 0
    for name in sorted(categories):
        category = categories[name]
        if len(category) == N_ACTIONS or category[N_ACTIONS] == 0:
            samples.append(Sample(name, split, tuple(category[:N_ACTIONS]), tuple(reasons[name])))
        else:
            dropped += 1
    return SplitLabels(split, samples, dropped)


def read_splits(root: str | Path, splits: Sequence[str] = SPLITS) -> dict[str, SplitLabels]:
    return {split: read_split(root, split) for split in splits}


def split_summary(splits: Mapping[str, SplitLabels]) -> pd.DataFrame:
    """Kept and dropped ("confuse") rows per split."""
    rows = [(name, len(labels), labels.dropped) for name, labels in splits.items()]
    return pd.DataFrame(rows, columns=["split", "kept", "dropped"]).set_index("split")


def frame_paths(root: str | Path, name: str, n_frames: int | None = None) -> list[Path]:
    """The frames ``data/<stem>_f0.jpg …`` of clip ``name`` if it has them, else ``[data/<name>]``.

    ``n_frames`` keeps the last frames (``None``: all of them).
    """
    data, stem = Path(root) / "data", name.removesuffix(".jpg")
    frames = []
    while (frame := data / f"{stem}_f{len(frames)}.jpg").is_file():
        frames.append(frame)
    if not frames:
        return [data / name]
    return frames[-n_frames:] if n_frames else frames


def load_image(path: str | Path) -> Image.Image:
    """The RGB image at ``path``, fully decoded; a missing or corrupt file raises BDDOIAFormatError.

    So does a header that claims more pixels than PIL's decompression-bomb limit (PIL raises
    ``DecompressionBombError``, which is not an ``OSError``).
    """
    path = Path(path)
    if not path.is_file():
        raise BDDOIAFormatError(path, "image", "missing")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Image.DecompressionBombError as err:
        raise BDDOIAFormatError(path, "image", f"too large to decode ({err})") from err
    except (OSError, ValueError, SyntaxError, MemoryError) as err:
        raise BDDOIAFormatError(path, "image", f"corrupt ({err})") from err


def validate(root: str | Path, splits: Sequence[str] = SPLITS) -> list[str]:
    """Decode every image (all frames too) of the kept samples; one problem string per bad file.

    Label files are read with :func:`read_splits`, so a malformed label file still raises.
    """
    problems = []
    for split, labels in read_splits(root, splits).items():
        for sample in labels.samples:
            for path in dict.fromkeys([*frame_paths(root, sample.name), image_path(root, sample.name)]):
                try:
                    load_image(path)
                except BDDOIAFormatError as err:
                    problems.append(f"{split} {sample.name!r}: {err}")
    return problems


def _samples_of(data: Mapping[str, SplitLabels] | SplitLabels | Iterable[Sample]) -> list[Sample]:
    if isinstance(data, SplitLabels):
        return data.samples
    if isinstance(data, Mapping):
        return [s for labels in data.values() for s in labels.samples]
    return list(data)


def label_frame(data: Mapping[str, SplitLabels] | SplitLabels | Iterable[Sample]) -> pd.DataFrame:
    """One row per sample: name, split, one 0/1 column per action key and per reason key."""
    rows = [(s.name, s.split, *s.actions, *s.reasons) for s in _samples_of(data)]
    return pd.DataFrame(rows, columns=["name", "split", *ACTION_KEYS, *REASON_KEYS])


class BDDOIADataset(Dataset):
    """Items ``{name, images, actions, reasons}``; ``images`` is the clip's frames (PIL RGB).

    Give either ``split`` (read from ``root``) or ``samples``. ``n_frames`` keeps the last frames
    of multi-frame clips; ``transform`` is applied to each image; ``labels_only`` skips the
    images (and so works without them).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        samples: Sequence[Sample] | None = None,
        n_frames: int | None = None,
        transform: Callable | None = None,
        labels_only: bool = False,
    ):
        if (split is None) == (samples is None):
            raise ValueError("give exactly one of split= or samples=")
        self.root = Path(root)
        self.samples = read_split(root, split).samples if samples is None else list(samples)
        self.n_frames, self.transform, self.labels_only = n_frames, transform, labels_only

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        item = dict(
            name=sample.name,
            actions=torch.tensor(sample.actions, dtype=torch.long),
            reasons=torch.tensor(sample.reasons, dtype=torch.long),
        )
        if not self.labels_only:
            images = [load_image(p) for p in frame_paths(self.root, sample.name, self.n_frames)]
            item["images"] = [self.transform(im) for im in images] if self.transform else images
        return item
