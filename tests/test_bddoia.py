"""The BDD-OIA reader on a hand-written split set in the official format (tests/fixtures/bddoia_mini)."""
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from drivekit.data import bddoia
from drivekit.data.bddoia import BDDOIADataset, BDDOIAFormatError, Sample
from drivekit.core.taxonomy import ACTION_KEYS, REASON_KEYS

FIXTURE = Path(__file__).parent / "fixtures" / "bddoia_mini"
KEPT = {
    "train": ["t_a.jpg", "t_b.jpg", "t_d.jpg", "t_e.jpg"],
    "val": ["v_a.jpg", "v_c.jpg"],
    "test": ["s_a.jpg", "s_b.jpg"],
}
DROPPED = {"train": 2, "val": 1, "test": 0}


def write_jpeg(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 8), color).save(path, "JPEG")


@pytest.fixture
def root(tmp_path) -> Path:
    """A copy of the fixture with a tiny JPEG for every row (dropped ones too)."""
    root = tmp_path / "bddoia_mini"
    shutil.copytree(FIXTURE, root)
    for split in bddoia.SPLITS:
        for image in json.loads(bddoia.actions_path(root, split).read_text())["images"]:
            write_jpeg(root / "data" / image["file_name"])
    return root


def reason_vector(*indices: int) -> tuple[int, ...]:
    return tuple(int(i in indices) for i in range(len(REASON_KEYS)))


def test_kept_samples_match_the_official_loader(root):
    splits = bddoia.read_splits(root)
    assert {s: [x.name for x in labels.samples] for s, labels in splits.items()} == KEPT
    assert {s: labels.dropped for s, labels in splits.items()} == DROPPED
    train = {x.name: x for x in splits["train"].samples}
    assert train["t_a.jpg"] == Sample("t_a.jpg", "train", (1, 0, 0, 0), reason_vector(0))
    assert train["t_b.jpg"].actions == (0, 1, 0, 0)  # the 5th value 0 is not kept
    assert train["t_d.jpg"].actions == (0, 0, 0, 0) and train["t_d.jpg"].reasons == reason_vector()
    assert train["t_e.jpg"].actions == (0, 0, 1, 1) and train["t_e.jpg"].reasons == reason_vector(9, 12)
    assert splits["val"].samples[1].reasons == reason_vector(7, 8)
    assert len(splits["val"]) == 2


def test_sample_arrays():
    sample = Sample("x.jpg", "train", (0, 1, 0, 0), reason_vector(3))
    assert sample.action_array.tolist() == [0, 1, 0, 0]
    assert sample.reason_array.sum() == 1 and sample.reason_array[3] == 1


def test_split_summary_and_label_frame(root):
    splits = bddoia.read_splits(root)
    summary = bddoia.split_summary(splits)
    assert summary["kept"].to_dict() == {"train": 4, "val": 2, "test": 2}
    assert summary["dropped"].to_dict() == DROPPED
    frame = bddoia.label_frame(splits)
    assert list(frame.columns) == ["name", "split", *ACTION_KEYS, *REASON_KEYS]
    assert len(frame) == 8 and frame["split"].value_counts().to_dict() == {"train": 4, "val": 2, "test": 2}
    row = frame.set_index("name").loc["t_e.jpg"]
    assert (row["left"], row["right"], row["l_front_car"], row["r_front_car"]) == (1, 1, 1, 1)
    assert frame[list(ACTION_KEYS)].sum().tolist() == [2, 2, 2, 2]
    assert bddoia.label_frame(splits["test"]).equals(bddoia.label_frame(splits["test"].samples))


def test_dataset_items(root):
    data = BDDOIADataset(root, split="train")
    assert len(data) == 4
    item = data[3]
    assert item["name"] == "t_e.jpg"
    assert item["actions"].dtype == torch.long and item["actions"].tolist() == [0, 0, 1, 1]
    assert item["reasons"].shape == (21,) and item["reasons"].sum() == 2
    (image,) = item["images"]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (16, 8)


def test_dataset_from_samples_with_transform(root):
    samples = bddoia.read_split(root, "val").samples
    data = BDDOIADataset(root, samples=samples, transform=lambda im: im.size)
    assert data[0]["images"] == [(16, 8)]


def test_dataset_needs_split_or_samples(root):
    with pytest.raises(ValueError):
        BDDOIADataset(root)
    with pytest.raises(ValueError):
        BDDOIADataset(root, split="val", samples=[])


def test_labels_only_needs_no_images(root):
    shutil.rmtree(root / "data")
    item = BDDOIADataset(root, split="test", labels_only=True)[1]
    assert set(item) == {"name", "actions", "reasons"}
    assert item["actions"].tolist() == [0, 0, 1, 0]


def test_frame_paths(root):
    data = root / "data"
    assert bddoia.frame_paths(root, "t_a.jpg") == [data / "t_a.jpg"]
    assert bddoia.frame_paths(root, "t_a.jpg", n_frames=3) == [data / "t_a.jpg"]
    for i in range(3):
        write_jpeg(data / f"t_a_f{i}.jpg", color=(0, 80 * i, 0))
    assert bddoia.frame_paths(root, "t_a.jpg") == [data / f"t_a_f{i}.jpg" for i in range(3)]
    assert bddoia.frame_paths(root, "t_a.jpg", n_frames=2) == [data / "t_a_f1.jpg", data / "t_a_f2.jpg"]
    images = BDDOIADataset(root, split="train", n_frames=2)[0]["images"]
    assert [round(im.getpixel((8, 4))[1] / 80) for im in images] == [1, 2]


def test_missing_image_raises_on_access(root):
    (root / "data" / "t_b.jpg").unlink()
    data = BDDOIADataset(root, split="train")
    with pytest.raises(BDDOIAFormatError, match="t_b.jpg") as err:
        data[1]
    assert err.value.path == root / "data" / "t_b.jpg" and "missing" in str(err.value)


@pytest.mark.parametrize("corrupt", [lambda b: b[: len(b) // 2], lambda b: b"not a jpeg"])
def test_corrupt_image_raises_on_access(root, corrupt):
    path = root / "data" / "t_b.jpg"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(BDDOIAFormatError, match="corrupt") as err:
        BDDOIADataset(root, split="train")[1]
    assert err.value.path == path and str(path) in str(err.value)


def test_validate_lists_every_bad_file(root):
    assert bddoia.validate(root) == []
    data = root / "data"
    (data / "t_a.jpg").unlink()
    (data / "s_b.jpg").write_bytes(b"garbage")
    for i in range(3):
        write_jpeg(data / f"v_a_f{i}.jpg")
    (data / "v_a_f1.jpg").write_bytes((data / "v_a_f1.jpg").read_bytes()[:40])
    (data / "t_c.jpg").unlink()  # a dropped row's image is not needed
    problems = bddoia.validate(root)
    assert len(problems) == 3
    assert [p.split()[0] for p in problems] == ["train", "val", "test"]
    assert str(data / "t_a.jpg") in problems[0] and "missing" in problems[0]
    assert str(data / "v_a_f1.jpg") in problems[1] and "corrupt" in problems[1]
    assert str(data / "s_b.jpg") in problems[2] and "corrupt" in problems[2]
    assert bddoia.validate(root, splits=("val",)) == problems[1:2]


def test_error_pickles():
    err = BDDOIAFormatError("a.json", "images[0].id", "missing")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.field == "images[0].id"


# --- malformed label files: each error names the file and the field ---------------------------

def _row(rows, name):
    return next(r for r in rows if r["file_name"] == name)


def _annotation(actions, name):
    image_id = _row(actions["images"], name)["id"]
    return next(a for a in actions["annotations"] if a["id"] == image_id)


def _set_category(name, category):
    def edit(actions, reasons):
        _annotation(actions, name)["category"] = category
    return edit


def _set_reason(name, reason):
    def edit(actions, reasons):
        _row(reasons, name)["reason"] = reason
    return edit


def _add_image(actions, reasons):
    actions["images"].append({"file_name": "t_new.jpg", "id": 99})
    actions["annotations"].append({"id": 99, "category": [1, 0, 0, 0]})


def _add_reason_row(actions, reasons):
    reasons.append({"file_name": "t_new.jpg", "reason": list(reason_vector(0))})


def _duplicate_image_name(actions, reasons):
    actions["images"].append({"file_name": "t_a.jpg", "id": 99})
    actions["annotations"].append({"id": 99, "category": [1, 0, 0, 0]})


def _duplicate_image_id(actions, reasons):
    actions["images"].append({"file_name": "t_new.jpg", "id": 0})


def _duplicate_annotation(actions, reasons):
    actions["annotations"].append({"id": 0, "category": [1, 0, 0, 0]})


def _annotation_without_image(actions, reasons):
    actions["annotations"].append({"id": 42, "category": [1, 0, 0, 0]})


def _image_without_annotation(actions, reasons):
    actions["annotations"] = [a for a in actions["annotations"] if a["id"] != 0]


def _duplicate_reason(actions, reasons):
    reasons.append(dict(_row(reasons, "t_a.jpg")))


def _drop_category(actions, reasons):
    del _annotation(actions, "t_a.jpg")["category"]


def _numeric_file_name(actions, reasons):
    actions["images"][0]["file_name"] = 7


def _no_images(actions, reasons):
    del actions["images"]


def _scalar_reason_row(actions, reasons):
    reasons[0] = "t_d.jpg"


A, R = "train_25k_images_actions.json", "train_25k_images_reasons.json"
BAD_LABELS = {
    "category too short": (_set_category("t_a.jpg", [1, 0, 0]), A, "category", ["t_a.jpg", "length 3"]),
    "category too long": (_set_category("t_a.jpg", [1, 0, 0, 0, 0, 0]), A, "category", ["length 6"]),
    "category value 2": (_set_category("t_a.jpg", [2, 0, 0, 0]), A, "category", ["t_a.jpg", "value 2"]),
    "confuse value 2": (_set_category("t_b.jpg", [0, 1, 0, 0, 2]), A, "category", ["t_b.jpg", "index 4"]),
    "category bool": (_set_category("t_a.jpg", [True, 0, 0, 0]), A, "category", ["True"]),
    "category float": (_set_category("t_a.jpg", [1.0, 0, 0, 0]), A, "category", ["1.0"]),
    "category missing": (_drop_category, A, "category", ["missing"]),
    "category not a list": (_set_category("t_a.jpg", "1000"), A, "category", ["expected list"]),
    "reason too short": (_set_reason("t_b.jpg", [0] * 20), R, "reason", ["t_b.jpg", "length 20"]),
    "reason value -1": (_set_reason("t_b.jpg", [-1] + [0] * 20), R, "reason", ["t_b.jpg", "-1"]),
    "reason value str": (_set_reason("t_b.jpg", ["1"] + [0] * 20), R, "reason", ["'1'"]),
    "name only in actions": (_add_image, R, "file_name", ["t_new.jpg", A]),
    "name only in reasons": (_add_reason_row, A, "file_name", ["t_new.jpg", R]),
    "duplicate image name": (_duplicate_image_name, A, "file_name", ["duplicate", "t_a.jpg"]),
    "duplicate image id": (_duplicate_image_id, A, "images[6].id", ["duplicate id 0"]),
    "duplicate annotation": (_duplicate_annotation, A, "annotations[6].id", ["duplicate", "t_a.jpg"]),
    "duplicate reason name": (_duplicate_reason, R, "[6].file_name", ["duplicate", "t_a.jpg"]),
    "annotation without image": (_annotation_without_image, A, "annotations[6].id", ["id 42", "no image"]),
    "image without annotation": (_image_without_annotation, A, "annotations", ["t_a.jpg"]),
    "file_name not a string": (_numeric_file_name, A, "images[0].file_name", ["expected str"]),
    "images missing": (_no_images, A, "images", ["not a list"]),
    "reason row not an object": (_scalar_reason_row, R, "[0]", ["expected an object"]),
}


@pytest.mark.parametrize("case", BAD_LABELS, ids=list(BAD_LABELS))
def test_bad_labels_name_file_and_field(root, case):
    edit, file, field, words = BAD_LABELS[case]
    actions = json.loads((root / A).read_text())
    reasons = json.loads((root / R).read_text())
    edit(actions, reasons)
    (root / A).write_text(json.dumps(actions))
    (root / R).write_text(json.dumps(reasons))
    with pytest.raises(BDDOIAFormatError) as err:
        bddoia.read_split(root, "train")
    message = str(err.value)
    assert err.value.path == root / file and str(root / file) in message
    assert field in err.value.field and err.value.field in message
    for word in words:
        assert word in message
    bddoia.read_split(root, "val")  # other splits are unaffected


@pytest.mark.parametrize("file", [A, R])
def test_missing_split_file(root, file):
    (root / file).unlink()
    with pytest.raises(BDDOIAFormatError, match="missing split file") as err:
        bddoia.read_splits(root)
    assert err.value.path == root / file


def test_malformed_json_reports_line_and_column(root):
    (root / R).write_text('[\n {"file_name": "t_a.jpg",\n  "reason": [1, 0,, 0]}\n]')
    with pytest.raises(BDDOIAFormatError, match=r"malformed JSON at line 3, column 19") as err:
        bddoia.read_split(root, "train")
    assert err.value.path == root / R


def test_top_level_of_wrong_type(root):
    (root / A).write_text("[]")
    with pytest.raises(BDDOIAFormatError, match="top level") as err:
        bddoia.read_split(root, "train")
    assert err.value.path == root / A


def write_bomb(path: Path, width: int = 60000, height: int = 60000) -> None:
    """A 16x8 JPEG whose header (SOF0) claims ``width`` x ``height``: PIL refuses it as a decompression bomb
    (``DecompressionBombError``, not an ``OSError``) before decoding a pixel. A few hundred bytes."""
    write_jpeg(path)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_a_decompression_bomb_is_a_named_error(root):
    path = root / "data" / "t_b.jpg"
    write_bomb(path)
    assert path.stat().st_size < 1000
    with pytest.raises(Image.DecompressionBombError):  # what PIL raises: not an OSError
        Image.open(path)
    with pytest.raises(BDDOIAFormatError, match="too large to decode") as err:
        bddoia.load_image(path)
    assert err.value.path == path and err.value.field == "image" and str(path) in str(err.value)
    with pytest.raises(BDDOIAFormatError, match="too large to decode"):
        BDDOIADataset(root, split="train")[1]
    (problem,) = bddoia.validate(root)
    assert problem.startswith("train 't_b.jpg': ") and str(path) in problem and "too large to decode" in problem
