"""The rewards RL trains on and is scored with, and what label-free training may see.

:func:`rl_reward` per reward family, :func:`yardstick` (the one test reward of every method),
:func:`unlabelled` (the pool without its labels), the tiny CLIP that saw none of the toy split's clips
(:func:`unseen_clip`, :func:`label_free_clip`), and two readings made after training, by the harness:
how often the self-consistency majority was right (:func:`majority_accuracy`) and how well R1 judges
SFT's errors (:func:`judge_accuracy`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from drivekit.core.config import Config
from drivekit.core.files import read_json_object
from drivekit.rewards.clip_reward import ClipReward
from drivekit.rewards.weighted_reward import RewardSettings, make_reward


def rl_reward(family: str, clip_reward: ClipReward | None = None):
    """The reward RL trains on: ``"label"`` label-F1 R2; ``"clip"`` R1 (CLIP) alone; ``"vote"`` the
    majority-vote R2 (self-consistency), which reads no label."""
    if family == "label":
        return make_reward(RewardSettings(r2="label_f1"))
    if family == "clip":
        if clip_reward is None:
            raise ValueError("label-free RL with R1 needs a CLIP reward (label_free_clip)")
        return make_reward(RewardSettings(r2=None), clip_reward)
    if family == "vote":
        return make_reward(RewardSettings(r2="majority"))
    raise ValueError(f"reward family must be 'label', 'clip' or 'vote', not {family!r}")


def yardstick(clip_reward: ClipReward):
    """The test reward every method is scored with: R = R1 + label-F1 R2."""
    return make_reward(RewardSettings(r2="label_f1"), clip_reward)


def unlabelled(items: Sequence[Mapping]) -> Sequence[dict]:
    """``items`` without ``actions`` and ``reasons``: what label-free training gets, so that no reward
    (nor anything else) can read a pool label. A list gives a list; items streamed from disk
    (``toy_split.StreamedItems``) stay streamed."""
    if isinstance(items, list):
        return [_without_labels(item) for item in items]
    return Unlabelled(items)


def _without_labels(item: Mapping) -> dict:
    return {k: v for k, v in item.items() if k not in ("actions", "reasons")}


class Unlabelled(Sequence):
    """:func:`unlabelled` of a sequence read lazily: each item loses its labels when indexed."""

    def __init__(self, items: Sequence[Mapping]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [_without_labels(item) for item in self.items[index]]
        return _without_labels(self.items[index])


def majority_accuracy(reward, truth: Mapping[str, tuple[Sequence[int], Sequence[int]]], window: int = 40) -> dict:
    """How often the self-consistency majority was the truth (``{clip: (actions, reasons)}``, the pool's
    labels, read by the harness after training; the reward never saw them): overall, in the first and
    in the last ``window`` steps, and how many votes there were."""
    vote = reward.terms["r2"][1]
    truth = {str(k): (tuple(int(v) for v in a), tuple(int(v) for v in r)) for k, (a, r) in truth.items()}
    per_call = [[majority == truth.get(clip) for clip, majority in votes.items()] for votes in vote.votes]
    share = lambda calls: float(np.mean([x for c in calls for x in c])) if any(calls) else None  # noqa: E731
    return dict(right=share(per_call), first=share(per_call[:window]), last=share(per_call[-window:]),
                votes=sum(len(c) for c in per_call))


def unseen_clip(cfg: Config, progress: bool = False) -> Path:
    """A tiny CLIP that never saw a clip of ``cfg``'s dataset, for label-free RL (built when missing).

    The shipped tiny CLIP trained on every clip outside the toy test split, the RL pool included,
    with its labels and descriptions. This one trains the same way on a second synthetic dataset
    (same generator and size, seed ``cfg.seed + 1``, in ``<cache_dir>/synthetic-unseen``): its
    captions are the action + reason texts of 5,490 other clips from the same generator, so R1 on
    the toy split's clips reads none of their labels or descriptions, but it did learn from labelled
    clips of the same kind. Folder: ``<cache_dir>/tiny-clip-unseen``.
    """
    from drivekit.models.clip import WEIGHTS_FILE, build_clip
    from drivekit.data.synthetic import generate

    out = Path(cfg.cache_dir) / "tiny-clip-unseen"
    if (out / WEIGHTS_FILE).is_file():
        return out
    if not cfg.synthetic:
        raise ValueError("an unseen-data CLIP is built for the synthetic (tiny) profile only; the paper "
                         "profile's pretrained CLIP never saw BDD-OIA's labels")
    settings = read_json_object(Path(cfg.data_root) / "generator.json", ("n_clips", "n_frames", "size"))
    other = cfg.replace(data_root=Path(cfg.cache_dir) / "synthetic-unseen", seed=cfg.seed + 1)
    if not (other.data_root / "test_25k_images_reasons.json").exists():
        generate(other.data_root, settings["n_clips"], settings["n_frames"], tuple(settings["size"]), other.seed,
                 progress=progress)
    return build_clip(other, out, progress=progress)


def judge_accuracy(sft_rows: Sequence[Mapping], clip_reward: ClipReward) -> dict:
    """How well R1 could teach: on the clips SFT answered wrong (``sft_rows``, prediction rows), the share
    where ``clip_reward`` scores the true answer's text above SFT's answer (ties count half), and how
    many such clips there were. A judge that often prefers the wrong answer cannot teach much."""
    from drivekit.text.formats import target_text

    wrong = [r for r in sft_rows if list(r["actions_pred"]) != list(r["actions_true"])
             or list(r["reasons_pred"]) != list(r["reasons_true"])]
    if not wrong:
        return dict(right=None, n=0)
    names = [r["file_name"] for r in wrong]
    truth = clip_reward([target_text(r["actions_true"], r["reasons_true"]) for r in wrong], file_name=names)
    answer = clip_reward([r["text"] for r in wrong], file_name=names)
    wins = [1.0 if t > a else 0.5 if t == a else 0.0 for t, a in zip(truth, answer)]
    return dict(right=float(np.mean(wins)), n=len(wrong))


def label_free_clip(cfg: Config) -> ClipReward:
    """R1 for label-free RL: in the tiny profile a CLIP trained on other synthetic clips
    (:func:`unseen_clip`; the shipped one saw the pool's labels and descriptions), in the paper
    profile its pretrained CLIP."""
    return ClipReward.from_config(cfg.replace(clip=str(unseen_clip(cfg))) if cfg.synthetic else cfg)
