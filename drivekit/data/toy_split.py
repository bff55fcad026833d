"""The toy split (proposal §5.1): single-label samples, 8:2 by action, train on 1/8.

Both splits are stratified by action with a per-action allocation (largest remainder, as
scikit-learn's stratified splitters do) and a seeded shuffle inside each action. Unlike
``sklearn.model_selection.train_test_split(stratify=...)`` it accepts actions with a single
sample (it goes to the train part) and keeps at least one sample of every action of the train
part in the 1/8 subset.

:func:`toy_data` gives the split as torch datasets (train = the 1/8, val = other train clips, test),
the data every training stage reads.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from drivekit.data.bddoia import BDDOIADataset, Sample, read_splits
from drivekit.core.config import Config
from drivekit.data.synthetic import ensure_dataset
from drivekit.core.taxonomy import ACTION_KEYS, N_ACTIONS


def single_label(sample: Sample) -> bool:
    """Exactly one action and exactly one reason."""
    return sum(sample.actions) == 1 and sum(sample.reasons) == 1


TRAIN_FRACTION = 1 / 8  # the proposal's labelled share of the train part


@dataclass
class ToySplit:
    """Sample names of each part; ``train`` ⊂ ``train_full``; ``actions`` maps every name to its action."""

    train: list[str]
    test: list[str]
    train_full: list[str]
    seed: int
    actions: dict[str, int]
    train_fraction: float = TRAIN_FRACTION

    def counts(self) -> pd.DataFrame:
        """Samples per action (rows, plus a total) in each part (columns)."""
        parts = {"pool": self.train_full + self.test, "train_full": self.train_full,
                 "train": self.train, "test": self.test}
        table = pd.DataFrame(
            {part: np.bincount(np.array([self.actions[n] for n in names], dtype=int), minlength=N_ACTIONS)
             for part, names in parts.items()},
            index=pd.Index(ACTION_KEYS, name="action"),
        )
        table.loc["total"] = table.sum()
        return table

    def subset(self, samples: Iterable[Sample], part: str = "train") -> list[Sample]:
        """The samples named in ``part`` ("train", "train_full" or "test"), in that part's order."""
        if part not in ("train", "train_full", "test"):
            raise ValueError(f"part must be 'train', 'train_full' or 'test', not {part!r}")
        by_name = {s.name: s for s in samples}
        return [by_name[name] for name in getattr(self, part)]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ToySplit:
        return cls(**json.loads(Path(path).read_text()))


def _allocate(counts: np.ndarray, share: float) -> np.ndarray:
    """Per-class sizes near ``share * counts`` that sum to ``round(share * counts.sum())``."""
    exact = share * counts
    sizes = np.floor(exact).astype(int)
    extra = round(share * counts.sum()) - sizes.sum()
    sizes[np.argsort(sizes - exact, kind="stable")[:extra]] += 1
    return sizes


def _stratified_pick(labels: np.ndarray, share: float, rng: np.random.Generator,
                     every_class: bool = False) -> np.ndarray:
    """A boolean mask picking ``share`` of each label's indices (at least one each if ``every_class``)."""
    classes, counts = np.unique(labels, return_counts=True)
    sizes = _allocate(counts, share)
    if every_class:
        sizes = np.maximum(sizes, 1)
    picked = np.zeros(len(labels), dtype=bool)
    for label, size in zip(classes, sizes):
        picked[rng.permutation(np.flatnonzero(labels == label))[:size]] = True
    return picked


def make_toy_split(samples: Iterable[Sample], seed: int = 0, test_size: float = 0.2,
                   train_fraction: float = TRAIN_FRACTION) -> ToySplit:
    """Pool ``samples``, keep the single-label ones, split them by action; deterministic per seed."""
    pool = sorted((s for s in samples if single_label(s)), key=lambda s: s.name)
    if not pool:
        raise ValueError("no sample has exactly one action and exactly one reason")
    names = np.array([s.name for s in pool])
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise ValueError(f"sample names occur more than once: {duplicates[:5]}")
    labels = np.array([s.actions.index(1) for s in pool])
    rng = np.random.default_rng(seed)
    is_test = _stratified_pick(labels, test_size, rng)
    in_train = _stratified_pick(labels[~is_test], train_fraction, rng, every_class=True)
    return ToySplit(
        train=names[~is_test][in_train].tolist(),
        test=names[is_test].tolist(),
        train_full=names[~is_test].tolist(),
        seed=seed,
        actions=dict(zip(names.tolist(), labels.tolist())),
        train_fraction=train_fraction,
    )


def toy_split_path(cfg: Config, fraction: float = TRAIN_FRACTION) -> Path:
    """Where the split of ``cfg.data_root`` is saved (one file per labelled fraction)."""
    tag = "" if fraction == TRAIN_FRACTION else f"-f{fraction:.6g}"
    return cfg.cache_dir / "toy_split" / f"{cfg.data_root.name}{tag}.json"


def load_or_make_toy_split(cfg: Config, samples: Sequence[Sample] | None = None,
                           seed: int | None = None, fraction: float = TRAIN_FRACTION) -> ToySplit:
    """The saved toy split of ``cfg.data_root``; (re)made and saved when missing or stale.

    ``samples`` default to all splits read from ``cfg.data_root`` and ``seed`` to ``cfg.seed``;
    ``fraction`` is the labelled share of the train part (the proposal's 1/8; smaller ones leave
    more to learn from without labels). A saved split is stale when its seed or fraction differs
    or its pool no longer matches the labels.
    """
    seed = cfg.seed if seed is None else seed
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    if samples is None:
        samples = [s for labels in read_splits(cfg.data_root).values() for s in labels.samples]
    path = toy_split_path(cfg, fraction)
    if path.is_file():
        saved = ToySplit.load(path)
        pool = {s.name: s.actions.index(1) for s in samples if single_label(s)}
        if saved.seed == seed and saved.actions == pool and saved.train_fraction == fraction:
            return saved
    split = make_toy_split(samples, seed=seed, train_fraction=fraction)
    split.save(path)
    return split


# ---------------------------------------------------------------------------------------------
# The split as datasets
# ---------------------------------------------------------------------------------------------
# which train clips SFT learns from: the proposal's 1/8, every labelled one, or the 1/8 plus the validation clips
LABELS = ("subset", "all", "subset+val")


@dataclass
class ToyData:
    """The toy split as datasets: ``train`` (the labelled clips SFT learns from), ``val`` (other
    clips of the train part), ``test``, and ``pool``: the train part's clips in neither ``train``
    nor ``val`` (the proposal's unused 7/8, where RL can learn without their labels)."""

    train: BDDOIADataset
    val: BDDOIADataset
    test: BDDOIADataset
    pool: BDDOIADataset


def redraw(split: ToySplit, draw: int) -> ToySplit:
    """``split`` with its labelled subset drawn again from the same train part, by ``draw``: the
    same size per action (stratified, every action kept), other clips. The test part is unchanged."""
    names = np.array(split.train_full)
    labels = np.array([split.actions[n] for n in names])
    picked = _stratified_pick(labels, split.train_fraction, np.random.default_rng([split.seed, draw]), every_class=True)
    return ToySplit(train=names[picked].tolist(), test=list(split.test), train_full=list(split.train_full),
                    seed=split.seed, actions=dict(split.actions), train_fraction=split.train_fraction)


def toy_data(cfg: Config, val_size: int = 64, labels: str = "subset",
             fraction: float = TRAIN_FRACTION, draw: int | None = None) -> ToyData:
    """The toy split of ``cfg.data_root`` (synthetic clips generated first in the tiny profile).

    ``labels="subset"``: train on the labelled ``fraction`` of the train part (the proposal's 1/8);
    ``"all"``: on every train-part clip outside the validation clips (the reference of what labels
    alone can give; the pool is then empty); ``"subset+val"``: on the labelled fraction and the validation
    clips (what the labels that choose settings are worth as training data; ``val`` is then no held-out set).
    The validation clips are the same either way.
    ``draw``: an experiment seed's own draw of the labelled subset, the validation clips and so the
    pool (:func:`redraw`; same sizes, same test part); ``None``: the saved split's (the notebooks').
    """
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, not {labels!r}")
    if cfg.synthetic:
        ensure_dataset(cfg)
    samples = [s for part in read_splits(cfg.data_root).values() for s in part.samples]
    split = load_or_make_toy_split(cfg, samples, fraction=fraction)
    if draw is not None:
        split = redraw(split, draw)
    unused = sorted(set(split.train_full) - set(split.train))
    rng = np.random.default_rng(cfg.seed if draw is None else [cfg.seed, draw, 1])
    picked = rng.permutation(len(unused))[:val_size]
    by_name = {s.name: s for s in samples}
    val = [by_name[unused[i]] for i in sorted(picked)]
    subset = split.subset(samples, "train")
    taken = {s.name for s in val} | set(split.train)
    rest = [s for s in split.subset(samples, "train_full") if s.name not in taken]
    train, pool = {"subset": (subset, rest), "all": (subset + rest, []), "subset+val": (subset + val, rest)}[labels]
    return ToyData(*(BDDOIADataset(cfg.data_root, samples=part) for part in
                     (train, val, split.subset(samples, "test"), pool)))


class StreamedItems(Sequence):
    """The items of a dataset read from disk each time one is indexed (a slice gives a list): what a
    training loop or ``predict`` indexes, without every frame decoded in memory at once."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.dataset[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} of {len(self)}")
        return self.dataset[index % len(self)]


def dataset_items(dataset, stream: bool = False) -> Sequence[dict]:
    """The items of a ``BDDOIADataset`` (``name``, ``images``, ``actions``, ``reasons``): loaded once into
    a list, or with ``stream`` (the paper profile: BDD-OIA's 1280×720 frames, about 2.7 MB each decoded)
    a :class:`StreamedItems` that reads each from disk when it is used."""
    if stream:
        return StreamedItems(dataset)
    return [dataset[i] for i in range(len(dataset))]


def items_of(cfg: Config, dataset) -> Sequence[dict]:
    """:func:`dataset_items` as ``cfg``'s profile wants them: streamed from disk for real data (the
    paper profile), in memory for the small synthetic clips (the tiny profile)."""
    return dataset_items(dataset, stream=not cfg.synthetic)
