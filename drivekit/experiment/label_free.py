"""The rewards RL trains on and is scored with, and what label-free training may see.

:func:`rl_reward` per reward family, :func:`yardstick` (the one test reward of every method),
:func:`unlabelled` (the pool without its labels), and the tiny CLIP that saw none of the toy split's clips
(:func:`unseen_clip`, :func:`label_free_clip`). What the harness reads after training (how often a vote was
right, how R1 judges, how often answers lose their form) is :mod:`drivekit.experiment.diagnostics`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from drivekit.core.config import Config
from drivekit.core.files import read_json_object
from drivekit.experiment.settings import R1_FLOOR, VOTE_FLOOR, VOTE_MIN_AGREE
from drivekit.rewards.action_reward import action_reward
from drivekit.rewards.clip_reward import ClipReward
from drivekit.rewards.structure_reward import FORMAT_MONITORS
from drivekit.rewards.weighted_reward import GatedReward, RewardSettings, WeightedReward, make_reward

FAMILIES = ("label", "clip", "vote", "clip_gated", "vote_confident", "clip_gated+vote")


def rl_reward(family: str, clip_reward: ClipReward | None = None) -> WeightedReward:
    """The reward RL trains on, with the answer-form monitors (:data:`FORMAT_MONITORS`, weight 0: the share of
    sampled answers without an action / a reason in every step's log):

    - ``"label"``: label-F1 R2 (reads the pool's labels);
    - ``"clip"``: R1 (CLIP) alone; ``"vote"``: the majority-vote R2 (self-consistency): issue 25's label-free
      rewards, kept unchanged as the "before";
    - ``"clip_gated"``: R1 gated by the answer's form (:class:`GatedReward`: an answer that is not well formed
      scores R1's minimum, -1), so that dropping the reason cannot raise it;
    - ``"vote_confident"``: the vote where at least :data:`VOTE_MIN_AGREE` of a clip's answers agree (else no
      signal), gated (an answer that is not well formed scores 0, the vote's minimum);
    - ``"clip_gated+vote"``: the two summed (weights 1 and 1): R1 speaks where the vote is silent.

    Label-free families read no label: R1 needs the clips (``clip_reward``), the vote which clip an answer is for."""
    if family not in FAMILIES:
        raise ValueError(f"reward family must be one of {FAMILIES}, not {family!r}")
    if "clip" in family and clip_reward is None:
        raise ValueError("label-free RL with R1 needs a CLIP reward (label_free_clip)")
    if family == "label":
        return make_reward(RewardSettings(r2="label_f1"), monitors=FORMAT_MONITORS)
    if family == "clip":
        return make_reward(RewardSettings(r2=None), clip_reward, monitors=FORMAT_MONITORS)
    if family == "vote":
        return make_reward(RewardSettings(r2="majority"), monitors=FORMAT_MONITORS)
    terms = {}
    if "clip" in family:
        terms["r1"] = (1.0, GatedReward(clip_reward, R1_FLOOR))
    if "vote" in family:
        terms["r2"] = (1.0, GatedReward(action_reward("majority", min_agree=VOTE_MIN_AGREE), VOTE_FLOOR))
    return WeightedReward(terms, FORMAT_MONITORS)


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


def label_free_clip(cfg: Config) -> ClipReward:
    """R1 for label-free RL: in the tiny profile a CLIP trained on other synthetic clips
    (:func:`unseen_clip`; the shipped one saw the pool's labels and descriptions), in the paper
    profile its pretrained CLIP."""
    return ClipReward.from_config(cfg.replace(clip=str(unseen_clip(cfg))) if cfg.synthetic else cfg)
