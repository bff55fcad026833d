"""The fresh test split (drivekit.data.fresh_split): new clips of the toy test's shape, drawn once, kept."""
import json

import numpy as np
import pytest

from drivekit.core import config
from drivekit.core.taxonomy import N_ACTIONS
from drivekit.data import fresh_split, synthetic
from drivekit.data.toy_split import load_or_make_toy_split, single_label


@pytest.fixture
def cfg(tmp_path):
    root = synthetic.generate(tmp_path / "data", n_clips=300, n_frames=2, size=(32, 32), seed=0, workers=1,
                              progress=False)
    return config.load("tiny", data_root=root, cache_dir=tmp_path / "cache", seed=0)


def test_the_fresh_split_has_the_toy_tests_action_shares_and_is_new(cfg):
    fresh = fresh_split.fresh_test(cfg, 90)
    split = load_or_make_toy_split(cfg)
    test = np.bincount([split.actions[n] for n in split.test], minlength=N_ACTIONS)
    counts = np.bincount([s.actions.index(1) for s in fresh.samples], minlength=N_ACTIONS)
    assert counts.sum() == 90 and counts.tolist() == fresh_split.action_counts(cfg, 90)
    assert np.abs(counts - test * 90 / test.sum()).max() < 1  # the toy test's shares, rounded
    assert all(single_label(s) for s in fresh.samples)
    # new clips: another generator seed, another name, another folder, frames that differ from the toy clips'
    assert all(s.name.startswith("fresh") for s in fresh.samples) and fresh.root == fresh_split.fresh_root(cfg)
    generator = json.loads((fresh.root / "generator.json").read_text())
    assert generator["seed"] == cfg.seed + fresh_split.SEED_OFFSET == 2 and generator["n_frames"] == 2
    item = fresh[0]
    assert len(item["images"]) == 2 and item["images"][0].size == (32, 32)
    toy_frame = (cfg.data_root / "data" / fresh.samples[0].name.replace("fresh", "syn")).read_bytes()
    assert (fresh.root / "data" / fresh.samples[0].name).read_bytes() != toy_frame


def test_the_fresh_split_is_drawn_once_and_read_back(cfg, monkeypatch):
    first = [s.name for s in fresh_split.fresh_test(cfg, 40).samples]
    monkeypatch.setattr(fresh_split, "generate", lambda *a, **k: pytest.fail("generated again"))
    assert [s.name for s in fresh_split.fresh_test(cfg, 40).samples] == first
    with pytest.raises(ValueError, match="synthetic"):
        fresh_split.fresh_test(cfg.replace(synthetic=False), 40)
