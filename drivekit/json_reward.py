"""Rewards on Stage-3 JSON outputs (proposal §2.4.3): R = α·R1 + β·R2 + γ·R3.

- R1 (CLIP) scores the JSON's ``scene`` and ``justification`` text against the clip;
- R2 (any variant of :mod:`drivekit.action_reward`) scores the JSON's actions and reasons, written
  back as the plain ``Action: ...; Reason: ...`` text (nothing when the output is not valid JSON);
- R3 is :func:`drivekit.json_output.structure_score`, graded level by level.

Each is a trl-style callable ``reward(completions, **batch) -> list[float]``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .action_reward import RewardFn, WeightedReward, _take, action_reward
from .formats import target_text
from .json_output import load_object, parse_json, structure_score
from .rewards import completion_text


def structure_reward(completions: Sequence, **batch) -> list[float]:
    """R3: the graded structure score of each completion, in [0, 1]."""
    return [structure_score(completion_text(c)).total for c in completions]


def _field_text(completion) -> str:
    """``scene`` + ``justification`` of a JSON output ('' when it is not a JSON object of the schema)."""
    obj, _ = load_object(completion_text(completion))
    if obj is None:
        return ""
    return " ".join(str(obj.get(k, "")) for k in ("scene", "justification") if isinstance(obj.get(k), str)).strip()


def _plain_text(completion) -> str:
    """The JSON's labels as the plain Stage-2 text ('' when nothing could be read)."""
    parsed = parse_json(completion_text(completion))
    return target_text(parsed.actions, parsed.reasons) if parsed.actions.any() or parsed.reasons.any() else ""


class OnJson:
    """Apply a reward to a view of JSON outputs; an empty view scores 0 without asking the reward."""

    views = {"text": _field_text, "labels": _plain_text}

    def __init__(self, reward: RewardFn, view: str):
        self.reward, self.view = reward, self.views[view]

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [self.view(c) for c in completions]
        keep = [i for i, t in enumerate(texts) if t]
        scores = np.zeros(len(texts))
        if keep:
            sub = {k: _take(v, keep) for k, v in batch.items()}
            scores[keep] = self.reward([texts[i] for i in keep], **sub)
        return scores.tolist()


def json_reward(clip_reward: RewardFn | None, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                r2: str | RewardFn = "label_f1", **r2_kwargs) -> WeightedReward:
    """R = α·R1(scene + justification) + β·R2(actions, reasons) + γ·R3(structure) for JSON outputs."""
    r2_fn = action_reward(r2, **r2_kwargs) if isinstance(r2, str) else r2
    terms = {"r2": (beta, OnJson(r2_fn, "labels")), "r3": (gamma, structure_reward)}
    if clip_reward is not None:
        terms = {"r1": (alpha, OnJson(clip_reward, "text")), **terms}
    return WeightedReward(terms)
