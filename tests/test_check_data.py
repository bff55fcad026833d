"""``python -m drivekit check-data``: the report on a valid copy, and a named error on each broken one.

Every broken copy is a copy of the session's ``official_layout`` fixture (tests/conftest.py) in
``tmp_path``, broken in one place.
"""
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from drivekit.data import bddoia, check_data
from drivekit.__main__ import main as drivekit_main
from drivekit.core.taxonomy import ACTION_PHRASES, N_REASONS


def run(argv, capsys) -> tuple[int, str]:
    """Exit code and printed report of ``python -m drivekit check-data <argv>``."""
    with pytest.raises(SystemExit) as exit_:
        drivekit_main(["check-data", *map(str, argv)])
    return exit_.value.code, capsys.readouterr().out


@pytest.fixture
def copy(official_layout, tmp_path) -> Path:
    return Path(shutil.copytree(official_layout, tmp_path / "bdd-oia"))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_valid_copy_reports_what_the_reader_reads(official_layout, capsys):
    splits = bddoia.read_splits(official_layout)
    report = check_data.check(official_layout)
    assert report.ok and report.errors == []
    for split, labels in splits.items():
        r = report.splits[split]
        assert (r.kept, r.dropped, r.rows, r.present, r.missing) == (len(labels), 0, len(labels), len(labels), [])
        frame = bddoia.label_frame(labels)
        assert list(r.action_counts.values()) == frame.iloc[:, 2:6].sum().tolist()
        assert list(r.reason_counts.values()) == frame.iloc[:, 6:].sum().tolist()
        assert len(r.reasons_seen) == int((frame.iloc[:, 6:].sum() > 0).sum())
    code, out = run([official_layout], capsys)
    assert code == 0
    train = report.splits["train"]
    assert f"train: {train.rows} rows in each of train_25k_images_actions.json and train_25k_images_reasons.json" in out
    assert f"images: {train.kept} of {train.kept} kept rows present in data/" in out
    assert f"{ACTION_PHRASES[0]} {train.action_counts[ACTION_PHRASES[0]]}" in out
    assert f"reasons: {len(train.reasons_seen)} of {N_REASONS} ever positive" in out
    total = sum(len(labels) for labels in splits.values())
    # the fixture's frames are 128x72, a real copy's 1280x720: a downscaled copy, usable with a warning per split
    assert out.splitlines()[-1] == (f'usable: 3 splits, {total} rows kept, 0 dropped as "confuse", '
                                    "every image of a kept row present, a JPEG (3 warnings above)")
    assert "frames: 1280x720 JPEGs expected (a BDD-OIA frame)" in out
    assert (f"WARNING {bddoia.actions_path(official_layout, 'train')}: images[].file_name: {train.kept} of {train.kept} "
            "present images are smaller than 1280x720 (a BDD-OIA frame) at the same shape: ") in out
    assert report.splits["train"].downscaled == {s.name: "128x72" for s in splits["train"].samples}


def test_confuse_rows_are_reported_dropped(copy, capsys):
    path = bddoia.actions_path(copy, "train")
    edit_json(path, lambda d: d["annotations"][0]["category"].append(1))  # 5th value 1: "confuse"
    edit_json(path, lambda d: d["annotations"][1]["category"].append(0))  # 5th value 0: kept
    before = len(bddoia.read_split(copy, "val"))
    rows = len(json.loads(path.read_text())["images"])
    (copy / "data" / json.loads(path.read_text())["images"][0]["file_name"]).unlink()  # not needed once dropped
    report = check_data.check(copy)
    assert report.ok
    train = report.splits["train"]
    assert (train.rows, train.kept, train.dropped) == (rows, rows - 1, 1)
    assert report.splits["val"].kept == before
    code, out = run([copy], capsys)
    assert code == 0
    assert f'kept {rows - 1}, dropped 1 (5th action value 1, "confuse": the official loader skips these rows)' in out
    assert 'dropped as "confuse"' in out.splitlines()[-1] and ", 1 dropped" in out.splitlines()[-1]


def first_image(root: Path, split: str) -> str:
    return json.loads(bddoia.actions_path(root, split).read_text())["images"][0]["file_name"]


def missing_split_file(root):
    bddoia.reasons_path(root, "val").unlink()
    return bddoia.reasons_path(root, "val"), "<file>", "missing split file"


def short_reason_vector(root):
    edit_json(bddoia.reasons_path(root, "test"), lambda d: d[2].update(reason=d[2]["reason"][:20]))
    return bddoia.reasons_path(root, "test"), "[2].reason", "has length 20, expected 21"


def non_binary_action(root):
    edit_json(bddoia.actions_path(root, "train"), lambda d: d["annotations"][1]["category"].__setitem__(0, 2))
    return bddoia.actions_path(root, "train"), "annotations[1].category", "value 2 at index 0 is not 0 or 1"


def missing_image(root):
    name = first_image(root, "val")
    (root / "data" / name).unlink()
    return bddoia.actions_path(root, "val"), "images[].file_name", f"1 of {len(bddoia.read_split(root, 'val'))} listed images are missing ('{name}')"


def id_without_image(root):
    edit_json(bddoia.actions_path(root, "train"), lambda d: d["annotations"][0].update(id=99999))
    return bddoia.actions_path(root, "train"), "annotations[0].id", "id 99999 has no image in 'images'"


def file_name_mismatch(root):
    edit_json(bddoia.reasons_path(root, "test"), lambda d: d[0].update(file_name="elsewhere.jpg"))
    return bddoia.reasons_path(root, "test"), "file_name", "is in test_25k_images_actions.json but not in this file"


def malformed_json(root):
    bddoia.actions_path(root, "val").write_text('{"images": [')
    return bddoia.actions_path(root, "val"), "<file>", "malformed JSON"


def no_data_folder(root):
    shutil.rmtree(root / "data")
    return bddoia.actions_path(root, "train"), "images[].file_name", f"{root / 'data'} does not exist"


BROKEN = [missing_split_file, short_reason_vector, non_binary_action, missing_image, id_without_image,
          file_name_mismatch, malformed_json, no_data_folder]


@pytest.mark.parametrize("break_copy", BROKEN, ids=[f.__name__ for f in BROKEN])
def test_each_broken_copy_is_a_named_error(copy, capsys, break_copy):
    path, field, problem = break_copy(copy)
    report = check_data.check(copy)
    assert not report.ok
    err = report.errors[0]
    assert (err.path, err.field.split(" ")[0]) == (path, field) and problem in err.problem
    code, out = run([copy], capsys)
    assert code == 1
    assert f"ERROR {path}: {field}" in out and problem in out
    assert out.splitlines()[-1].startswith("NOT USABLE: ")
    assert "Traceback" not in out


def test_the_other_splits_are_still_reported(copy):
    missing_split_file(copy)
    report = check_data.check(copy)
    assert len(report.errors) == 1 and not report.splits["val"].labels_read
    assert report.splits["train"].kept == len(bddoia.read_split(copy, "train"))


def test_missing_images_are_listed_first_few_then_counted(copy, capsys):
    names = [s.name for s in bddoia.read_split(copy, "train").samples]
    for name in names[:7]:
        (copy / "data" / name).unlink()
    report = check_data.check(copy)
    train = report.splits["train"]
    assert train.missing == names[:7] and train.present == len(names) - 7
    code, out = run([copy], capsys)
    assert code == 1
    shown = ", ".join(repr(n) for n in names[:5])
    assert f"images: {len(names) - 7} of {len(names)} kept rows present in data/, 7 missing (named below)" in out
    assert f"7 of {len(names)} listed images are missing ({shown} and 2 more): not in {copy / 'data'}" in out


def test_decode_finds_a_corrupt_image(copy, capsys):
    name = first_image(copy, "test")
    kept = {s.name for s in bddoia.read_split(copy, "test").samples}
    assert name in kept
    path = copy / "data" / name
    path.write_bytes(path.read_bytes()[:-200])  # the header is whole, the last pixels are cut off
    assert run([copy], capsys)[0] == 0  # present, and a JPEG of the right shape: without --decode the copy passes
    code, out = run([copy, "--decode"], capsys)
    assert code == 1
    assert f"ERROR {bddoia.actions_path(copy, 'test')}: images[].file_name: 1 of" in out and "do not decode" in out
    assert f"{copy / 'data' / name}: image: corrupt" in out
    (copy / "data" / name).unlink()
    shutil.copy(copy / "data" / sorted(kept - {name})[0], copy / "data" / name)
    code, out = run([copy, "--decode"], capsys)
    assert code == 0 and out.splitlines()[-1].endswith("every image of a kept row present and decoded, a JPEG (3 warnings above)")


def test_splits_option_checks_only_those(copy, capsys):
    missing_split_file(copy)  # val
    code, out = run([copy, "--splits", "train", "test"], capsys)
    assert code == 0 and "\nval:" not in out and "val_25k" not in out
    assert out.splitlines()[-1].startswith("usable: 2 splits")


def test_empty_split_is_an_error(copy):
    edit_json(bddoia.actions_path(copy, "val"), lambda d: d.update(images=[], annotations=[]))
    bddoia.reasons_path(copy, "val").write_text("[]")
    (err,) = check_data.check(copy).errors
    assert (err.path, err.field) == (bddoia.actions_path(copy, "val"), "images") and "empty" in err.problem


def test_a_folder_one_level_too_high_gets_a_hint(copy, capsys):
    code, out = run([copy.parent], capsys)
    assert code == 1 and f"hint: the label files are in {copy}: point check-data (and DRIVEKIT_DATA) there" in out
    code, out = run([copy / "nowhere"], capsys)
    assert code == 1 and "is not a folder" in out and "missing split file" in out


# ---------------------------------------------------------------------------------------------
# Images that are present but not usable: file size, format and frame size, read from the header
# ---------------------------------------------------------------------------------------------
def jpeg_bytes(size, fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, fmt)
    return buf.getvalue()


def claiming(width: int, height: int) -> bytes:
    """A 16x9 JPEG whose header (SOF0) claims ``width`` x ``height``: no big file, nothing to decode."""
    data = bytearray(jpeg_bytes((16, 9)))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


BAD_IMAGES = {  # what the image becomes -> (kind, how the error says it, the clip's detail)
    "0 bytes": (b"", "empty", "are empty (0 bytes)", "0 bytes"),
    "PNG named .jpg": (jpeg_bytes((1280, 720), "PNG"), "not_jpeg", "are not JPEG data", "PNG data"),
    "7x3": (jpeg_bytes((7, 3)), "wrong_size", "are not 1280x720 (a BDD-OIA frame)", "7x3"),
    "9000x9000": (claiming(9000, 9000), "wrong_size", "are not 1280x720 (a BDD-OIA frame)", "9000x9000"),
    "portrait": (jpeg_bytes((72, 128)), "wrong_size", "are not 1280x720 (a BDD-OIA frame)", "72x128 (portrait)"),
    "decompression bomb": (claiming(60000, 60000), "wrong_size", "are not 1280x720 (a BDD-OIA frame)",
                           "60000x60000"),
    "2560x1440": (claiming(2560, 1440), "wrong_size", "are not 1280x720 (a BDD-OIA frame)", "2560x1440"),
    "not an image": (b"\xff\xd8\xff\xe0 cut", "bad_header", "have a JPEG header that cannot be read",
                     "header unreadable"),
}


@pytest.mark.parametrize("decode", [False, True], ids=["header", "decode"])
@pytest.mark.parametrize("bad", BAD_IMAGES)
def test_each_unusable_image_is_named_per_clip(copy, capsys, bad, decode):
    data, kind, what, detail = BAD_IMAGES[bad]
    name = first_image(copy, "val")
    (copy / "data" / name).write_bytes(data)
    report = check_data.check(copy, decode=decode)
    val = report.splits["val"]
    assert list(val.image_problems) == [kind] and val.image_problems[kind][name].startswith(detail)
    assert val.corrupt == []  # a clip is named once: not decoded again once its header is bad
    (err,) = report.errors
    assert (err.path, err.field) == (bddoia.actions_path(copy, "val"), "images[].file_name")
    assert err.problem.startswith(f"1 of {val.present} present images {what}: '{name}' {detail}")
    code, out = run([copy, *(["--decode"] if decode else [])], capsys)
    assert code == 1 and out.splitlines()[-1].startswith("NOT USABLE: 1 problem")
    assert f"ERROR {err}" in out and "Traceback" not in out


def test_a_bad_frame_is_named_with_its_clip(copy, capsys):
    name = first_image(copy, "train")
    stem = name.removesuffix(".jpg")
    shutil.copy(copy / "data" / name, copy / "data" / f"{stem}_f0.jpg")
    (copy / "data" / f"{stem}_f1.jpg").write_bytes(jpeg_bytes((7, 3)))
    (err,) = check_data.check(copy).errors
    assert f"'{name}' 7x3 ({stem}_f1.jpg)" in err.problem


def test_the_expected_size_is_the_one_generator_json_claims(copy, capsys):
    (copy / "generator.json").write_text(json.dumps(dict(n_clips=120, n_frames=1, size=[128, 72], seed=3)))
    report = check_data.check(copy)
    assert report.ok and report.frame_size == (128, 72) and report.warnings == []
    code, out = run([copy], capsys)
    assert code == 0 and "frames: 128x72 JPEGs expected (the size in generator.json)" in out
    assert out.splitlines()[-1].endswith("every image of a kept row present, a 128x72 JPEG")
    name = first_image(copy, "test")
    (copy / "data" / name).write_bytes(jpeg_bytes((96, 96)))
    (err,) = check_data.check(copy).errors
    assert f"are not 128x72 (the size in generator.json): '{name}' 96x96" in err.problem
    (copy / "generator.json").write_text(json.dumps(dict(size=[128])))
    (err,) = check_data.check(copy).errors
    assert (err.path, err.field) == (copy / "generator.json", "size") and "[width, height]" in err.problem


def test_labels_only_checks_the_label_files_alone(copy, capsys):
    shutil.rmtree(copy / "data")
    report = check_data.check(copy)
    assert not report.ok and report.hint == "the label files are fine: --labels-only checks them alone"
    code, out = run([copy, "--labels-only"], capsys)
    total = sum(len(bddoia.read_split(copy, split)) for split in bddoia.SPLITS)
    assert code == 0 and "images: not checked (--labels-only)" in out and "frames:" not in out
    assert out.splitlines()[-1] == (f'usable as labels: 3 splits, {total} rows kept, 0 dropped as "confuse" '
                                    "(images not checked: --labels-only)")
    path, field, problem = short_reason_vector(copy)
    code, out = run([copy, "--labels-only"], capsys)
    assert code == 1 and f"ERROR {path}: {field}" in out and out.splitlines()[-1].startswith("NOT USABLE: 1 problem")
    assert "--labels-only checks them alone" not in check_data.check(copy).hint  # the labels are not fine
    with pytest.raises(SystemExit) as exit_:
        drivekit_main(["check-data", str(copy), "--labels-only", "--decode"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_the_path_defaults_to_the_configured_data_folder(copy, capsys, monkeypatch):
    monkeypatch.setenv("DRIVEKIT_DATA", str(copy))
    code, out = run([], capsys)
    assert code == 0 and out.splitlines()[0] == f"BDD-OIA copy at {copy}"
