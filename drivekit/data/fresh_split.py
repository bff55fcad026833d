"""A fresh test split (tiny profile): clips that no model, no tuning and no earlier look has seen.

The toy test split (:mod:`drivekit.data.toy_split`) has been scored in every round of the RL experiment, and the
choices of earlier rounds looked at it. :func:`fresh_test` draws a new test set once, from the same generator
(:mod:`drivekit.data.synthetic`) with another seed, and keeps it for the final runs to answer once:

- **never seen**: the tiny VLM pretrains, and the shipped tiny CLIP trains, on the clips of ``cfg.data_root``
  (generator seed ``cfg.seed``) outside the toy test split (:mod:`drivekit.models.zoo`,
  :func:`drivekit.models.clip.training_pairs`); the unseen-data CLIP of label-free RL on a second dataset of
  seed ``cfg.seed + 1`` (``experiment.label_free.unseen_clip``). The fresh clips come from seed
  ``cfg.seed + 2`` (:data:`SEED_OFFSET`) and are named ``fresh<i>.jpg`` (:data:`PREFIX`), so that a clip can
  never be looked up in another dataset's folder by mistake;
- **the toy test's shape**: single-label clips (one action, one reason, as the toy split keeps), as many of
  each action as the toy test split has in proportion (``toy_split._allocate``: ``size`` in all), drawn by a
  seeded shuffle within each action from a generated pool large enough to hold them;
- **fixed once drawn**: the chosen names are saved (``<root>/fresh_test_<size>.json``) and read back; the
  frames are generated with the toy dataset's frames per clip and frame size.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from drivekit.core.config import Config
from drivekit.core.files import read_json_object, write_json
from drivekit.core.taxonomy import N_ACTIONS
from drivekit.data.bddoia import BDDOIADataset, read_splits
from drivekit.data.synthetic import ensure_dataset, generate
from drivekit.data.toy_split import _allocate, load_or_make_toy_split, single_label

SEED_OFFSET = 2  # cfg.seed: the toy dataset; cfg.seed + 1: the unseen-data CLIP's dataset
PREFIX = "fresh"


def fresh_root(cfg: Config) -> Path:
    """Where the fresh clips are generated: ``<cache_dir>/synthetic-fresh``."""
    return Path(cfg.cache_dir) / "synthetic-fresh"


def action_counts(cfg: Config, size: int) -> list[int]:
    """Clips per action of a fresh test split of ``size`` clips: the toy test split's action shares."""
    split = load_or_make_toy_split(cfg)
    test = np.bincount([split.actions[n] for n in split.test], minlength=N_ACTIONS)
    return _allocate(test, size / test.sum()).tolist()


def fresh_test(cfg: Config, size: int, progress: bool = False) -> BDDOIADataset:
    """The fresh test split of ``size`` clips (see the module docstring), drawn and saved on first use."""
    if not cfg.synthetic:
        raise ValueError("a fresh test split is drawn in the synthetic (tiny) profile only; BDD-OIA has no more "
                         "clips (ExperimentSettings(fresh_test=0), --fresh-test 0)")
    if size < 1:
        raise ValueError(f"a fresh test split needs at least one clip, not {size}")
    ensure_dataset(cfg)
    root = fresh_root(cfg)
    index = root / f"fresh_test_{size}.json"
    seed = cfg.seed + SEED_OFFSET
    if index.is_file():
        saved = read_json_object(index, ("seed", "names"))
        if saved["seed"] == seed and len(saved["names"]) == size:
            return _dataset(root, saved["names"])
    wanted = action_counts(cfg, size)
    toy = json.loads((Path(cfg.data_root) / "generator.json").read_text())
    toy_samples = [s for part in read_splits(cfg.data_root).values() for s in part.samples]
    single_share = sum(map(single_label, toy_samples)) / len(toy_samples)
    n_clips = math.ceil(1.25 * size / single_share)
    while True:
        generate(root, n_clips, toy["n_frames"], tuple(toy["size"]), seed, workers=1, progress=progress, prefix=PREFIX)
        pool = sorted((s for part in read_splits(root).values() for s in part.samples if single_label(s)),
                      key=lambda s: s.name)
        by_action = [[s.name for s in pool if s.actions.index(1) == a] for a in range(N_ACTIONS)]
        if all(len(names) >= w for names, w in zip(by_action, wanted)):
            break
        n_clips *= 2  # clip i depends on (seed, i) only: the larger draw keeps the smaller one's clips
    rng = np.random.default_rng(seed)
    names = sorted(n for names, w in zip(by_action, wanted) for n in rng.permutation(names)[:w].tolist())
    write_json(index, dict(seed=seed, size=size, generated=n_clips, per_action=wanted, names=names), indent=1)
    return _dataset(root, names)


def _dataset(root: Path, names: list[str]) -> BDDOIADataset:
    by_name = {s.name: s for part in read_splits(root).values() for s in part.samples}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FileNotFoundError(f"{root}: the fresh test split names {len(missing)} clips that are not there "
                                f"(e.g. {missing[0]}); delete {root} to draw it again")
    return BDDOIADataset(root, samples=[by_name[n] for n in names])
