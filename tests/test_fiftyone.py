"""BDD-OIA's public FiftyOne copy, read as it is (drivekit.data.bddoia, check-data) and converted into the
official layout (drivekit.data.fiftyone).

The FiftyOne copy is built here from the session's ``official_layout`` fixture (tests/conftest.py), with
the same labels: a sample with exactly one action gets ``category`` as a class index (as that copy
stores it), the others keep the official vector, and every annotation carries the copy's extra
fields (``unsafe``, ``frames``). Read directly or converted back, it must give the same labels, the same
rows dropped, and the same toy split.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drivekit.data import bddoia, check_data, fiftyone, toy_split


def to_fiftyone(official: Path, dst: Path, as_index: bool = True) -> Path:
    dst.mkdir(parents=True)
    shutil.copytree(official / "data", dst / "data")
    for split in bddoia.SPLITS:
        actions = json.loads(bddoia.actions_path(official, split).read_text())
        reasons = {r["file_name"]: r["reason"] for r in json.loads(bddoia.reasons_path(official, split).read_text())}
        names = {im["id"]: im["file_name"] for im in actions["images"]}
        annotations = []
        for ann in actions["annotations"]:
            category = ann["category"]
            if as_index and sum(category) == 1:
                category = category.index(1)  # one action (or "confuse" alone): the copy's class index
            annotations.append({"id": ann["id"], "category": category, "reason": reasons[names[ann["id"]]],
                                "unsafe": 1, "frames": []})
        images = [{**im, "height": 720, "width": 1280} for im in actions["images"]]
        (dst / f"{split}_25k_images.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return dst


@pytest.fixture(scope="module")
def fiftyone_copy(official_layout, tmp_path_factory):
    return to_fiftyone(official_layout, tmp_path_factory.mktemp("fo") / "bddoia-fiftyone-v2")


def test_converted_copy_reads_as_the_official_layout_with_the_same_labels(official_layout, fiftyone_copy, tmp_path):
    written = fiftyone.convert(fiftyone_copy, tmp_path / "bdd-oia")
    original, converted = bddoia.read_splits(official_layout), bddoia.read_splits(tmp_path / "bdd-oia")
    assert written == {s: len(original[s].samples) + original[s].dropped for s in bddoia.SPLITS}
    for split in bddoia.SPLITS:
        assert converted[split].samples == original[split].samples
        assert converted[split].dropped == original[split].dropped
    assert bddoia.validate(tmp_path / "bdd-oia") == []


def test_the_toy_split_from_the_copy_equals_the_one_from_the_official_layout(official_layout, fiftyone_copy,
                                                                               tmp_path):
    fiftyone.convert(fiftyone_copy, tmp_path / "bdd-oia")

    def split_of(root):
        samples = [s for labels in bddoia.read_splits(root).values() for s in labels.samples]
        return toy_split.make_toy_split(samples, seed=0)

    assert split_of(tmp_path / "bdd-oia") == split_of(official_layout)


def test_the_copy_is_read_as_it_is_with_the_labels_and_the_toy_split_of_the_official_layout(official_layout,
                                                                                            fiftyone_copy):
    assert all(bddoia.layout(fiftyone_copy, s) == "fiftyone" for s in bddoia.SPLITS)
    assert all(bddoia.layout(official_layout, s) == "official" for s in bddoia.SPLITS)
    direct, original = bddoia.read_splits(fiftyone_copy), bddoia.read_splits(official_layout)
    for split in bddoia.SPLITS:
        assert direct[split].samples == original[split].samples
        assert direct[split].dropped == original[split].dropped

    def split_of(splits):
        return toy_split.make_toy_split([s for labels in splits.values() for s in labels.samples], seed=0)

    assert split_of(direct) == split_of(original)
    assert bddoia.validate(fiftyone_copy) == []


def test_check_data_accepts_the_copy_as_it_is(official_layout, fiftyone_copy):
    done = subprocess.run([sys.executable, "-m", "drivekit", "check-data", str(fiftyone_copy)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report, official = check_data.check(fiftyone_copy), check_data.check(official_layout)
    assert report.ok and report.hint == ""
    for split in bddoia.SPLITS:
        ours, theirs = report.splits[split], official.splits[split]
        assert (ours.kept, ours.dropped, ours.present, ours.action_counts, ours.reason_counts) == \
            (theirs.kept, theirs.dropped, theirs.present, theirs.action_counts, theirs.reason_counts)
        assert f"{split}: {ours.rows} rows in {split}_25k_images.json (the FiftyOne layout)" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("usable:")


def test_check_data_names_the_copys_file_and_field(fiftyone_copy, tmp_path):
    bad = Path(shutil.copytree(fiftyone_copy, tmp_path / "bad", symlinks=True))
    path = bad / "train_25k_images.json"
    data = json.loads(path.read_text())
    data["annotations"][5]["reason"] = data["annotations"][5]["reason"][:20]
    path.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "drivekit", "check-data", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"ERROR {path}: annotations[5].reason" in done.stdout and "has length 20, expected 21" in done.stdout


def test_a_class_index_is_one_hot_and_index_4_is_dropped_as_confuse(fiftyone_copy, tmp_path):
    copy = Path(shutil.copytree(fiftyone_copy, tmp_path / "confuse", symlinks=True))
    path = copy / "val_25k_images.json"
    data = json.loads(path.read_text())
    data["annotations"][2]["category"] = 4
    path.write_text(json.dumps(data))
    before, after = bddoia.read_split(fiftyone_copy, "val"), bddoia.read_split(copy, "val")
    assert (after.dropped, len(after.samples)) == (before.dropped + 1, len(before.samples) - 1)
    where = tmp_path / "x.json"
    assert bddoia.category_vector(2, where, "c") == [0, 0, 1, 0, 0]
    assert bddoia.category_vector([1, 0, 0, 1], where, "c") == [1, 0, 0, 1]
    confuse = bddoia.category_vector(4, where, "c")
    assert confuse[4] == 1


@pytest.mark.parametrize("category, problem", [(7, "class index 7 is not 0-4"), ("left", "expected a class index"),
                                               ([1, 0], "has length 2")])
def test_a_bad_category_names_the_file_and_the_field(fiftyone_copy, tmp_path, category, problem):
    bad = Path(shutil.copytree(fiftyone_copy, tmp_path / "bad", symlinks=True))
    path = bad / "val_25k_images.json"
    data = json.loads(path.read_text())
    data["annotations"][3]["category"] = category
    path.write_text(json.dumps(data))
    with pytest.raises(bddoia.BDDOIAFormatError) as err:
        fiftyone.convert(bad, tmp_path / "out")
    assert str(err.value).startswith(f"{path}: annotations[3].category")
    assert problem in str(err.value)


def test_a_folder_that_is_not_the_fiftyone_layout_is_named(official_layout, tmp_path):
    with pytest.raises(bddoia.BDDOIAFormatError, match="not the FiftyOne layout"):
        fiftyone.convert(official_layout, tmp_path / "out")


def test_convert_fiftyone_on_the_command_line(fiftyone_copy, tmp_path):
    done = subprocess.run([sys.executable, "-m", "drivekit", "convert-fiftyone", str(fiftyone_copy),
                           str(tmp_path / "bdd-oia")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "check-data" in done.stdout
    assert bddoia.validate(tmp_path / "bdd-oia") == []
