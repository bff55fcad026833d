"""The toy split on random label vectors (and once on the bddoia_mini fixture)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from drivekit.core import config
from drivekit.data.bddoia import Sample
from drivekit.core.taxonomy import ACTION_KEYS, N_ACTIONS, N_REASONS
from drivekit.data.toy_split import (
    ToySplit, load_or_make_toy_split, make_toy_split, single_label, toy_split_path,
)

FIXTURE = Path(__file__).parent / "fixtures" / "bddoia_mini"
ACTION_SHARES = (0.45, 0.3, 0.12, 0.13)


def one_hot(index: int, size: int) -> tuple[int, ...]:
    return tuple(int(i == index) for i in range(size))


def random_samples(n: int = 4000, seed: int = 0) -> list[Sample]:
    """Half single-label samples (imbalanced actions), half random multi-hot vectors."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        if i % 2:
            actions = tuple(rng.integers(0, 2, N_ACTIONS).tolist())
            reasons = tuple(rng.integers(0, 2, N_REASONS).tolist())
        else:
            actions = one_hot(rng.choice(N_ACTIONS, p=ACTION_SHARES), N_ACTIONS)
            reasons = one_hot(rng.integers(N_REASONS), N_REASONS)
        samples.append(Sample(f"clip_{i:05d}.jpg", ("train", "val", "test")[i % 3], actions, reasons))
    return samples


def shares(split: ToySplit, names: list[str]) -> np.ndarray:
    return np.bincount([split.actions[n] for n in names], minlength=N_ACTIONS) / len(names)


@pytest.fixture(scope="module")
def samples():
    return random_samples()


@pytest.fixture(scope="module")
def split(samples):
    return make_toy_split(samples, seed=3)


def test_single_label():
    assert single_label(Sample("a", "train", one_hot(1, 4), one_hot(5, 21)))
    assert not single_label(Sample("a", "train", (0, 1, 1, 0), one_hot(5, 21)))
    assert not single_label(Sample("a", "train", one_hot(1, 4), (0,) * 21))
    assert not single_label(Sample("a", "train", (0,) * 4, one_hot(5, 21)))


def test_pool_is_the_single_label_samples(samples, split):
    pool = {s.name for s in samples if single_label(s)}
    assert len(pool) > 1900
    assert set(split.train_full) | set(split.test) == pool == set(split.actions)
    assert not set(split.train_full) & set(split.test)
    assert set(split.train) <= set(split.train_full)
    by_name = {s.name: s for s in samples}
    assert all(split.actions[n] == by_name[n].actions.index(1) for n in pool)


def test_sizes(split):
    pool = len(split.train_full) + len(split.test)
    assert abs(len(split.test) - 0.2 * pool) <= 1
    assert abs(len(split.train) - len(split.train_full) / 8) <= N_ACTIONS


def test_stratified_by_action(split):
    pool = shares(split, split.train_full + split.test)
    assert np.allclose(pool, ACTION_SHARES, atol=0.03)
    assert np.allclose(shares(split, split.test), pool, atol=0.005)
    assert np.allclose(shares(split, split.train_full), pool, atol=0.005)
    assert np.allclose(shares(split, split.train), pool, atol=0.01)


def test_deterministic_per_seed(samples, split):
    shuffled = list(samples)
    np.random.default_rng(1).shuffle(shuffled)
    assert make_toy_split(shuffled, seed=3) == split
    other = make_toy_split(samples, seed=4)
    assert other.seed == 4
    assert set(other.test) != set(split.test) and set(other.train) != set(split.train)
    assert split.train == sorted(split.train) and split.test == sorted(split.test)


def test_counts(split):
    counts = split.counts()
    assert list(counts.index) == [*ACTION_KEYS, "total"]
    assert list(counts.columns) == ["pool", "train_full", "train", "test"]
    assert counts.loc["total"].tolist() == [
        len(split.actions), len(split.train_full), len(split.train), len(split.test)]
    assert (counts["pool"] == counts["train_full"] + counts["test"]).all()


def test_tiny_classes_are_kept():
    samples = [Sample(f"f{i}", "train", one_hot(0, 4), one_hot(0, 21)) for i in range(40)]
    samples += [Sample("s0", "val", one_hot(1, 4), one_hot(3, 21))]  # one stop sample
    samples += [Sample(f"l{i}", "test", one_hot(2, 4), one_hot(9, 21)) for i in range(3)]
    for seed in range(5):
        split = make_toy_split(samples, seed=seed)
        assert "s0" in split.train  # too few to test on, still trained on
        assert {split.actions[n] for n in split.train} == {0, 1, 2}
        assert counts_of(split, split.test) == {0: 8, 2: 1}


def counts_of(split: ToySplit, names: list[str]) -> dict[int, int]:
    return {a: c for a, c in enumerate(np.bincount([split.actions[n] for n in names])) if c}


def test_rejects_empty_pool_and_duplicate_names():
    with pytest.raises(ValueError, match="exactly one action"):
        make_toy_split([Sample("a", "train", (1, 1, 0, 0), one_hot(0, 21))])
    twice = [Sample("a", split, one_hot(0, 4), one_hot(0, 21)) for split in ("train", "test")]
    with pytest.raises(ValueError, match="more than once"):
        make_toy_split(twice)


def test_subset(samples, split):
    train = split.subset(samples)
    assert [s.name for s in train] == split.train and all(single_label(s) for s in train)
    assert [s.name for s in split.subset(samples, "test")] == split.test
    with pytest.raises(ValueError):
        split.subset(samples, "seed")


def test_save_and_load(tmp_path, split):
    path = tmp_path / "deep" / "toy.json"
    split.save(path)
    assert ToySplit.load(path) == split


def test_load_or_make(tmp_path, samples):
    cfg = config.load("tiny", data_root=tmp_path / "synth", cache_dir=tmp_path / "cache", seed=7)
    assert toy_split_path(cfg) == tmp_path / "cache" / "toy_split" / "synth.json"
    made = load_or_make_toy_split(cfg, samples)
    assert made.seed == 7 and toy_split_path(cfg).is_file()
    assert made == make_toy_split(samples, seed=7)
    mtime = toy_split_path(cfg).stat().st_mtime_ns
    assert load_or_make_toy_split(cfg, samples) == made
    assert toy_split_path(cfg).stat().st_mtime_ns == mtime  # reused, not rewritten
    assert load_or_make_toy_split(cfg, samples, seed=8) == make_toy_split(samples, seed=8)
    assert ToySplit.load(toy_split_path(cfg)).seed == 8
    fewer = samples[:1000]
    assert load_or_make_toy_split(cfg, fewer, seed=8) == make_toy_split(fewer, seed=8)  # stale pool


def test_load_or_make_reads_the_labels(tmp_path):
    root = tmp_path / "bddoia_mini"
    shutil.copytree(FIXTURE, root)
    cfg = config.load("paper", data_root=root, cache_dir=tmp_path / "cache")
    split = load_or_make_toy_split(cfg)
    assert set(split.actions) == {"t_a.jpg", "t_b.jpg", "v_a.jpg", "s_a.jpg", "s_b.jpg"}
    assert toy_split_path(cfg).name == "bddoia_mini.json"


@pytest.mark.parametrize("labels", ["subset", "all", "subset+val"])
def test_toy_data_parts_are_disjoint_and_cover_the_train_part(labels, tmp_path):
    from drivekit.data import synthetic, toy_split

    root = synthetic.generate(tmp_path / "data", n_clips=400, n_frames=1, size=(32, 32), seed=2, workers=1,
                              progress=False)
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache", synthetic=False)
    data = toy_split.toy_data(cfg, val_size=16, labels=labels)
    split = load_or_make_toy_split(cfg)
    names = {part: {s.name for s in getattr(data, part).samples} for part in ("train", "val", "test", "pool")}
    if labels == "subset+val":  # SFT+val: the labelled subset and the validation clips, the same pool
        subset = toy_split.toy_data(cfg, val_size=16)
        assert names["train"] == set(split.train) | names["val"] and len(data.train) == len(split.train) + 16
        assert names["pool"] == {s.name for s in subset.pool.samples}
        names["train"] -= names["val"]
    assert all(not names[a] & names[b] for a in names for b in names if a < b)
    assert names["train"] | names["val"] | names["pool"] == set(split.train_full)
    assert names["test"] == set(split.test) and len(names["val"]) == 16
    if labels != "all":
        assert names["train"] == set(split.train)
    else:
        assert not names["pool"] and names["train"] > set(split.train)
    assert toy_split.toy_data(cfg, val_size=16, labels="subset").val.samples == data.val.samples
    with pytest.raises(ValueError, match="labels must be"):
        toy_split.toy_data(cfg, labels="half")


def test_a_smaller_labelled_fraction_has_its_own_saved_split(tmp_path, samples):
    cfg = config.load("tiny", data_root=tmp_path / "synth", cache_dir=tmp_path / "cache", seed=7)
    eighth = load_or_make_toy_split(cfg, samples)
    small = load_or_make_toy_split(cfg, samples, fraction=1 / 32)
    assert toy_split_path(cfg, 1 / 32) == tmp_path / "cache" / "toy_split" / "synth-f0.03125.json"
    assert toy_split_path(cfg).is_file() and toy_split_path(cfg, 1 / 32).is_file()
    assert small == make_toy_split(samples, seed=7, train_fraction=1 / 32) and small.train_fraction == 1 / 32
    assert small.test == eighth.test and small.train_full == eighth.train_full  # only the labelled share differs
    assert len(small.train) == pytest.approx(len(eighth.train_full) / 32, abs=N_ACTIONS)
    assert load_or_make_toy_split(cfg, samples) == eighth  # the 1/8 file is not overwritten
    with pytest.raises(ValueError, match="fraction"):
        load_or_make_toy_split(cfg, samples, fraction=0)


def test_a_split_saved_before_fractions_were_recorded_loads_as_the_eighth(tmp_path, split):
    path = tmp_path / "old.json"
    split.save(path)
    saved = json.loads(path.read_text())
    del saved["train_fraction"]
    path.write_text(json.dumps(saved))
    assert ToySplit.load(path) == split and split.train_fraction == 1 / 8


def test_each_draw_has_its_own_labelled_subset_validation_and_pool_with_the_same_test(tmp_path):
    from drivekit.data import synthetic, toy_split

    root = synthetic.generate(tmp_path / "data", n_clips=400, n_frames=1, size=(32, 32), seed=2, workers=1,
                              progress=False)
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache", synthetic=False)
    split = load_or_make_toy_split(cfg, fraction=1 / 8)
    parts = {}
    for draw in (None, 0, 1):
        data = toy_split.toy_data(cfg, val_size=16, fraction=1 / 8, draw=draw)
        parts[draw] = {p: [s.name for s in getattr(data, p).samples] for p in ("train", "val", "test", "pool")}
        names = {p: set(v) for p, v in parts[draw].items()}
        assert all(not names[a] & names[b] for a in names for b in names if a < b)
        assert names["train"] | names["val"] | names["pool"] == set(split.train_full)
        assert parts[draw]["test"] == split.test and len(names["val"]) == 16 and len(names["train"]) == len(split.train)
        actions = lambda ns: sorted(split.actions[n] for n in ns)  # noqa: E731
        assert actions(names["train"]) == actions(split.train)  # the same count of each action
    assert parts[None]["train"] == split.train  # no draw: the saved split's subset (the notebooks')
    for a, b in ((None, 0), (0, 1), (None, 1)):
        assert parts[a]["train"] != parts[b]["train"] and parts[a]["val"] != parts[b]["val"]
    again = toy_split.toy_data(cfg, val_size=16, fraction=1 / 8, draw=1)
    assert [s.name for s in again.train.samples] == parts[1]["train"]  # a draw is repeatable
    assert [s.name for s in again.val.samples] == parts[1]["val"]
    all_labels = toy_split.toy_data(cfg, val_size=16, labels="all", fraction=1 / 8, draw=1)
    assert [s.name for s in all_labels.val.samples] == parts[1]["val"]  # SFT-all keeps the draw's validation


def test_streamed_items_read_each_clip_when_indexed_and_the_paper_profile_streams(tmp_path):
    from drivekit.data import synthetic, toy_split

    root = synthetic.generate(tmp_path / "data", n_clips=40, n_frames=1, size=(32, 32), seed=2, workers=1,
                              progress=False)
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache", synthetic=False)
    data = toy_split.toy_data(cfg, val_size=2)
    reads = []

    class Counted:  # the dataset, counting the clips it reads from disk
        def __len__(self):
            return len(data.test)

        def __getitem__(self, i):
            reads.append(i)
            return data.test[i]

    streamed = toy_split.dataset_items(Counted(), stream=True)
    assert len(streamed) == len(data.test) and reads == []  # nothing read up front
    first, last = streamed[0], streamed[-1]
    assert first["name"] == data.test.samples[0].name and last["name"] == data.test.samples[-1].name
    assert [item["name"] for item in streamed[1:3]] == [s.name for s in data.test.samples[1:3]]
    assert reads == [0, len(data.test) - 1, 1, 2]
    with pytest.raises(IndexError):
        streamed[len(data.test)]
    assert isinstance(toy_split.items_of(cfg, data.test), toy_split.StreamedItems)  # real data: streamed
    listed = toy_split.items_of(cfg.replace(synthetic=True), data.test)  # the tiny profile's small clips
    assert isinstance(listed, list) and [i["name"] for i in listed] == [i["name"] for i in streamed]
    from drivekit.algorithms.grpo import dataset

    rows, lazy = dataset(listed[:3]), dataset(streamed)  # a list in memory; streamed items via an Arrow file
    assert lazy.num_rows == len(data.test) and lazy[:3]["file_name"] == rows["file_name"]
    assert lazy[0]["actions"] == rows[0]["actions"]
