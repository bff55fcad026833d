import dataclasses
import json

import numpy as np
import pytest

from drivekit.data import render
from drivekit.data import scene as G
from drivekit.data import synthetic as S
from drivekit.core.taxonomy import N_ACTIONS, N_REASONS


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    return S.generate(root, n_clips=40, n_frames=3, size=(64, 48), seed=7, workers=1, progress=False)


def _labels(root):
    out = {}
    for split in S.SPLITS:
        acts = json.loads((root / f"{split}_25k_images_actions.json").read_text())
        rsns = json.loads((root / f"{split}_25k_images_reasons.json").read_text())
        by_id = {a["id"]: a["category"] for a in acts["annotations"]}
        for img, r in zip(acts["images"], rsns):
            assert img["file_name"] == r["file_name"]
            out[img["file_name"]] = (by_id[img["id"]], r["reason"])
    return out


def test_official_layout_and_frames(small):
    labels = _labels(small)
    assert len(labels) == 40
    for name, (actions, reasons) in labels.items():
        assert len(actions) == N_ACTIONS and len(reasons) == N_REASONS
        stem = name[:-4]
        frames = [small / "data" / f"{stem}_f{i}.jpg" for i in range(3)]
        assert all(f.exists() for f in frames)
        assert (small / "data" / name).read_bytes() == frames[-1].read_bytes()
    from PIL import Image

    assert Image.open(frames[0]).size == (64, 48)


def test_labels_rederived_from_scenes_equal_written_labels(small):
    labels = _labels(small)
    records = S.read_scenes(small)
    assert {r["file_name"] for r in records} == set(labels)
    for r in records:
        scene = G.Scene(**r["scene"])
        assert tuple(map(list, G.derive_labels(scene))) == tuple(labels[r["file_name"]])
        assert r["description"] == G.describe(scene)


def test_deterministic_for_a_seed(small, tmp_path):
    again = S.generate(tmp_path / "a", n_clips=40, n_frames=3, size=(64, 48), seed=7, workers=2, progress=False)
    for name in ("scenes.jsonl", "train_25k_images_actions.json", "test_25k_images_reasons.json"):
        assert (again / name).read_bytes() == (small / name).read_bytes()
    assert (again / "data" / "syn000005_f1.jpg").read_bytes() == (small / "data" / "syn000005_f1.jpg").read_bytes()
    other = S.generate(tmp_path / "b", n_clips=40, n_frames=3, size=(64, 48), seed=8, workers=1, progress=False)
    assert (other / "scenes.jsonl").read_bytes() != (small / "scenes.jsonl").read_bytes()


def _frames(scene, seed=3):
    return np.stack([np.asarray(f, dtype=np.int16) for f in render.render_clip(scene, 4, (96, 96), seed=seed)])


# One scene per reason whose evidence is that reason's only difference from BASE.
BASE = G.Scene(junction=False)
EVIDENCE_OF = {
    "f_follow_traffic": dict(lead="away"), "f_traffic_light": dict(light="green"),
    "s_ob_car": dict(lead="stopped"), "s_ob_ped": dict(pedestrian=True), "s_ob_rider": dict(rider=True),
    "s_other": dict(cones=True), "s_traffic_light": dict(light="red"), "s_traffic_sign": dict(stop_sign=True),
    "l_front_car": dict(lead="left"), "l_lane": dict(ego_lane="left"), "l_traffic_light": dict(light="red", left_arrow=True),
    "r_front_car": dict(lead="right"), "r_lane": dict(ego_lane="right"), "r_traffic_light": dict(light="red", right_arrow=True),
    "no_l_car": dict(left_car=True), "no_l_lane": dict(left_lane=False), "no_l_solid_line": dict(left_line="solid"),
    "no_r_car": dict(right_car=True), "no_r_lane": dict(right_lane=False), "no_r_solid_line": dict(right_line="solid"),
}


@pytest.mark.parametrize("key", sorted(EVIDENCE_OF))
def test_every_reason_has_visible_evidence(key):
    from drivekit.core.taxonomy import REASON_KEYS

    scene = dataclasses.replace(BASE, **EVIDENCE_OF[key])
    assert G.derive_labels(scene)[1][REASON_KEYS.index(key)] == 1
    base = dataclasses.replace(BASE, **{k: v for k, v in EVIDENCE_OF[key].items() if k == "light" and key.endswith("traffic_light") and key[0] in "lr"})
    diff = np.abs(_frames(scene) - _frames(base)).max(axis=-1)
    assert (diff > 40).sum() >= 4, f"{key}: evidence barely changes the pixels"


def test_motion_reasons_need_several_frames():
    """A lead car moving away and a stopped one can end at the same size: only the motion tells."""
    away, stopped = _frames(G.Scene(lead="away")), _frames(G.Scene(lead="stopped"))
    assert np.abs(np.diff(away, axis=0)).sum() > 0 and np.abs(np.diff(stopped, axis=0)).sum() > 0
    ends = {lab: G.derive_labels(G.Scene(lead=lab))[1] for lab in ("away", "stopped")}
    assert ends["away"] != ends["stopped"]


def test_label_statistics_resemble_bddoia():
    rng = np.random.default_rng(0)
    labels = [G.derive_labels(G.sample_scene(rng)) for _ in range(3000)]
    actions = np.array([a for a, _ in labels])
    reasons = np.array([r for _, r in labels])
    assert actions.sum(0).min() > 0 and reasons.sum(0).min() > 0  # every action and reason occurs
    share = actions.mean(0)
    assert share[0] > share[2] and share[1] > share[3]  # forward/stop common, turns rarer
    assert reasons[:, 5:7].mean() < reasons[:, 3].mean()  # rider/others rare next to "obstacle: car"
    single = (actions.sum(1) == 1) & (reasons.sum(1) == 1)
    assert single.mean() > 0.3
