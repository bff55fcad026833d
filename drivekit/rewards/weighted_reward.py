"""The reward RL trains on: R = w1·R1 + w2·R2 (+ w3·R3), one object for every algorithm.

The sum is built once, trl-style, from named terms ``{name: (weight, reward callable)}``, and
handed unchanged to drivekit's A2C (:mod:`drivekit.algorithms.a2c`, which calls :meth:`WeightedReward.evaluate`)
and to trl's GRPO (:mod:`drivekit.algorithms.grpo`, which passes the callables as ``reward_funcs`` and the
weights as ``reward_weights``). The weights are not any algorithm's settings: they live in
:class:`RewardSettings`, each profile's in ``.tiny()`` / ``.paper()`` (its ``PROFILES``).

- R1 (:mod:`drivekit.rewards.clip_reward`): CLIP semantic alignment of the text with the clip.
- R2 (:mod:`drivekit.rewards.action_reward`): the action-reasoning reward, by variant name.
- R3 (:mod:`drivekit.rewards.structure_reward`): the structure of a Stage-3 JSON output.

For JSON outputs (``target="json"``) R1 reads the JSON's ``scene`` and ``justification`` and R2
its labels written back as ``Action: ...; Reason: ...`` (:class:`OnJson`); an output that is no
JSON object of the schema scores 0 there without the reward being asked.

:class:`WeightedReward` is a trl reward function itself (the total) and reports every component
(:class:`RewardResult`). Empty completions score 0 in every component (the callables are not
asked about them), and a non-finite score (NaN, inf) is replaced by 0 and counted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from drivekit.core.settings import Settings
from drivekit.rewards.action_reward import RewardFn, action_reward
from drivekit.text.formats import completion_text, target_text
from drivekit.text.json_output import load_object, parse_json
from drivekit.rewards.structure_reward import structure_reward

TARGETS = ("plain", "json")


# ---------------------------------------------------------------------------------------------
# Batch columns: trl passes a reward one value per completion for each dataset column
# ---------------------------------------------------------------------------------------------
def take(value, index: list[int]):
    """Rows ``index`` of a batch column (list, tuple, numpy array or tensor); other values as they are."""
    if isinstance(value, (list, tuple)):
        return [value[i] for i in index]
    if hasattr(value, "shape") and getattr(value, "ndim", 0) >= 1:
        return value[index]
    return value


# ---------------------------------------------------------------------------------------------
# The weighted sum
# ---------------------------------------------------------------------------------------------
@dataclass
class RewardResult:
    """Per completion: the weighted ``total`` and each component's score (after cleaning)."""

    total: np.ndarray
    components: dict[str, np.ndarray]
    nonfinite: dict[str, int] = field(default_factory=dict)
    empty: int = 0

    def summary(self) -> dict:
        """Batch means of the total (``reward``) and of each component (``reward_<name>``), each
        component's spread (``spread_<name>``: 0 means a saturated term, no learning signal), and the
        counts of non-finite scores and empty completions."""
        return {"reward": float(np.mean(self.total)) if len(self.total) else 0.0,
                **{f"reward_{k}": float(np.mean(v)) for k, v in self.components.items()},
                **{f"spread_{k}": float(np.std(v)) for k, v in self.components.items()},
                "nonfinite": int(sum(self.nonfinite.values())), "empty": int(self.empty)}


class WeightedReward:
    """R = Σ_name weight·reward_name(completions, **batch) over named trl-style reward callables.

    ``terms`` maps a name to ``(weight, callable)``; :meth:`set_weight` changes a weight (the
    widgets do). A term of weight 0 is not evaluated. Empty (whitespace-only) completions score 0
    and are not passed to the callables; non-finite scores become 0 and are counted in
    ``RewardResult.nonfinite`` (and in the running total ``nonfinite_total``).
    """

    __name__ = "weighted_reward"

    def __init__(self, terms: Mapping[str, tuple[float, RewardFn]]):
        self.terms = {name: (float(w), fn) for name, (w, fn) in terms.items()}
        self.nonfinite_total = 0

    @property
    def weights(self) -> dict[str, float]:
        return {name: w for name, (w, _) in self.terms.items()}

    def set_weight(self, name: str, weight: float) -> None:
        self.terms[name] = (float(weight), self.terms[name][1])

    def evaluate(self, completions: Sequence, **batch) -> RewardResult:
        texts = [completion_text(c) for c in completions]
        n = len(texts)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        sub = {k: take(v, keep) for k, v in batch.items()}
        total = np.zeros(n)
        components, nonfinite = {}, {}
        for name, (weight, fn) in self.terms.items():
            scores = np.zeros(n)
            if weight != 0 and keep:
                raw = np.asarray(list(fn([texts[i] for i in keep], **sub)), dtype=float).reshape(-1)
                if raw.shape != (len(keep),):
                    raise ValueError(f"reward {name!r} returned {raw.size} scores for {len(keep)} completions")
                bad = ~np.isfinite(raw)
                nonfinite[name] = int(bad.sum())
                scores[keep] = np.where(bad, 0.0, raw)
            components[name] = scores
            total += weight * scores
        self.nonfinite_total += sum(nonfinite.values())
        return RewardResult(total, components, nonfinite, empty=n - len(keep))

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        return self.evaluate(completions, **batch).total.tolist()


# ---------------------------------------------------------------------------------------------
# R1 and R2 on JSON outputs
# ---------------------------------------------------------------------------------------------
def json_text(completion) -> str:
    """``scene`` + ``justification`` of a JSON output ('' when it is not a JSON object of the schema)."""
    obj, _ = load_object(completion_text(completion))
    if obj is None:
        return ""
    return " ".join(str(obj.get(k, "")) for k in ("scene", "justification") if isinstance(obj.get(k), str)).strip()


def json_labels(completion) -> str:
    """The JSON's labels as the plain Stage-2 text ('' when nothing could be read)."""
    parsed = parse_json(completion_text(completion))
    return target_text(parsed.actions, parsed.reasons) if parsed.actions.any() or parsed.reasons.any() else ""


class OnJson:
    """Apply a reward to a view of JSON outputs; an empty view scores 0 without asking the reward."""

    views = {"text": json_text, "labels": json_labels}

    def __init__(self, reward: RewardFn, view: str):
        self.reward, self.view = reward, self.views[view]
        self.__name__ = f"{getattr(reward, '__name__', 'reward')}_on_json_{view}"

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [self.view(c) for c in completions]
        keep = [i for i, t in enumerate(texts) if t]
        scores = np.zeros(len(texts))
        if keep:
            sub = {k: take(v, keep) for k, v in batch.items()}
            scores[keep] = self.reward([texts[i] for i in keep], **sub)
        return scores.tolist()


# ---------------------------------------------------------------------------------------------
# Settings and the one builder
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RewardSettings(Settings):
    """The reward's weights and R2 variant (plain data): R = r1_weight·R1 + r2_weight·R2 + r3_weight·R3.

    ``r2=None`` leaves R2 out (Stage 1: R1 alone). R1 is in the sum when a CLIP reward is given to
    :func:`make_reward`; R3 only for JSON outputs. ``RewardSettings.tiny()`` / ``.paper()`` are the
    profiles' defaults for the action stage (``config.profile_defaults(RewardSettings, cfg)``): the tiny
    profile keeps the label-grounded R2 (parsed labels' F1; the thresholded BLEU without KL drifts from
    SFT's format on the tiny model, benchmarks/RESULTS.md, "A2C"), the paper profile the proposal's R2,
    BLEU-4 thresholded at 0.5.
    """

    r1_weight: float = 1.0
    r2_weight: float = 1.0
    r3_weight: float = 1.0
    r2: str | None = "label_f1"

    PROFILES: ClassVar[dict] = {"paper": dict(r2="bleu")}


def make_reward(settings: RewardSettings = RewardSettings(), clip_reward: RewardFn | None = None,
                target: str = "plain", **r2_kwargs) -> WeightedReward:
    """The weighted sum of ``settings``: ``r1`` (``clip_reward``, when given), ``r2`` (the variant
    ``settings.r2``, with ``r2_kwargs``; none when None) and, for ``target="json"``, ``r3``; on JSON
    outputs R1 and R2 read the JSON's views (:class:`OnJson`)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    on_json = target == "json"
    terms: dict[str, tuple[float, RewardFn]] = {}
    if clip_reward is not None:
        terms["r1"] = (settings.r1_weight, OnJson(clip_reward, "text") if on_json else clip_reward)
    if settings.r2 is not None:
        r2 = action_reward(settings.r2, **r2_kwargs)
        terms["r2"] = (settings.r2_weight, OnJson(r2, "labels") if on_json else r2)
    if on_json:
        terms["r3"] = (settings.r3_weight, structure_reward)
    if not terms:
        raise ValueError("a reward needs at least one term: give a CLIP reward or an R2 variant")
    return WeightedReward(terms)
