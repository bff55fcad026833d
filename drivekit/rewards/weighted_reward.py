"""The reward RL trains on: R = w1·R1 + w2·R2 (+ w3·R3), one object for every algorithm.

The sum is built once, trl-style, from named terms ``{name: (weight, reward callable)}``, and
handed unchanged to drivekit's A2C (:mod:`drivekit.algorithms.a2c`, which calls :meth:`WeightedReward.evaluate`)
and to trl's GRPO (:mod:`drivekit.algorithms.grpo`, which passes the callables as ``reward_funcs`` and the
weights as ``reward_weights``). The weights are not any algorithm's settings: they live in
:class:`RewardSettings`, each profile's in ``.tiny()`` / ``.paper()`` (its ``PROFILES``).

- R1 (:mod:`drivekit.rewards.clip_reward`): CLIP semantic alignment of the text with the clip.
- R2 (:mod:`drivekit.rewards.action_reward`): the action-reasoning reward, by variant name.
- R3 (:mod:`drivekit.rewards.structure_reward`): the structure of a Stage-3 JSON output.
- :class:`GatedReward`: any of them where a plain answer is well formed, its minimum elsewhere.

For JSON outputs (``target="json"``) R1 reads the JSON's ``scene`` and ``justification`` and R2
its labels written back as ``Action: ...; Reason: ...`` (:class:`OnJson`); an output that is no
JSON object of the schema scores 0 there without the reward being asked.

:class:`WeightedReward` is a trl reward function itself (the total) and reports every component
(:class:`RewardResult`). Empty completions score 0 in every component (the callables are not
asked about them), and a non-finite score (NaN, inf) is replaced by 0 and counted. A term may return ``None``
for a completion: *no signal* (trl's convention, e.g. a vote without a confident majority); it adds nothing to
that completion's total, and a completion every weighted term returns ``None`` for is *abstained*
(``RewardResult.abstained``): A2C leaves it out of its losses, trl gives it advantage 0. *Monitors* are terms of
weight 0 that are always evaluated, on every completion, so that a training log records them (e.g. the share of
answers without an action, :data:`drivekit.rewards.structure_reward.FORMAT_MONITORS`).
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
from drivekit.rewards.structure_reward import structure_reward, well_formed

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
    """Per completion: the weighted ``total`` (0 where abstained), each component's score (after cleaning; NaN
    where the term returned ``None``) and whether every weighted term abstained (``abstained``)."""

    total: np.ndarray
    components: dict[str, np.ndarray]
    nonfinite: dict[str, int] = field(default_factory=dict)
    empty: int = 0
    abstained: np.ndarray | None = None

    def __post_init__(self):
        if self.abstained is None:
            self.abstained = np.zeros(len(self.total), dtype=bool)

    def summary(self) -> dict:
        """Batch means of the total over the completions scored (``reward``) and of each component over those
        it scored (``reward_<name>``), each component's spread (``spread_<name>``: 0 means a saturated term, no
        learning signal), and the counts of non-finite scores and empty completions."""
        scored = self.total[~self.abstained]
        return {"reward": float(np.mean(scored)) if len(scored) else 0.0,
                **{f"reward_{k}": _nan_mean(v) for k, v in self.components.items()},
                **{f"spread_{k}": _nan_std(v) for k, v in self.components.items()},
                "nonfinite": int(sum(self.nonfinite.values())), "empty": int(self.empty)}


def _nan_mean(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(np.mean(v)) if len(v) else 0.0


def _nan_std(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(np.std(v)) if len(v) else 0.0


class WeightedReward:
    """R = Σ_name weight·reward_name(completions, **batch) over named trl-style reward callables.

    ``terms`` maps a name to ``(weight, callable)``; :meth:`set_weight` changes a weight (the
    widgets do). A term of weight 0 is not evaluated. Empty (whitespace-only) completions score 0
    and are not passed to the callables; non-finite scores become 0 and are counted in
    ``RewardResult.nonfinite`` (and in the running total ``nonfinite_total``); ``None`` is no signal (see
    the module docstring). ``monitors`` (name -> callable) join ``terms`` at weight 0 and are evaluated on
    every completion, empty ones included: trl, which calls every term, logs them too.
    """

    __name__ = "weighted_reward"

    def __init__(self, terms: Mapping[str, tuple[float, RewardFn]], monitors: Mapping[str, RewardFn] | None = None):
        self.terms = {name: (float(w), fn) for name, (w, fn) in terms.items()}
        clash = sorted(set(self.terms) & set(monitors or {}))
        if clash:
            raise ValueError(f"monitors {clash} have the names of reward terms")
        self.terms.update({name: (0.0, fn) for name, fn in (monitors or {}).items()})
        self.monitors = frozenset(monitors or {})
        self.nonfinite_total = 0

    @property
    def weights(self) -> dict[str, float]:
        return {name: w for name, (w, _) in self.terms.items()}

    def set_weight(self, name: str, weight: float) -> None:
        if name in self.monitors:
            raise ValueError(f"{name!r} is a monitor: it carries no weight")
        self.terms[name] = (float(weight), self.terms[name][1])

    def evaluate(self, completions: Sequence, **batch) -> RewardResult:
        texts = [completion_text(c) for c in completions]
        n = len(texts)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        total = np.zeros(n)
        components, nonfinite = {}, {}
        signal = np.zeros(n, dtype=bool)  # some weighted term scored the completion
        weighted = False
        for name, (weight, fn) in self.terms.items():
            scores = np.zeros(n)
            rows = list(range(n)) if name in self.monitors else keep
            if (weight != 0 or name in self.monitors) and rows:
                out = list(fn([texts[i] for i in rows], **{k: take(v, rows) for k, v in batch.items()}))
                raw = np.asarray([np.nan if v is None else v for v in out], dtype=float).reshape(-1)
                if raw.shape != (len(rows),):
                    raise ValueError(f"reward {name!r} returned {raw.size} scores for {len(rows)} completions")
                silent = np.array([v is None for v in out], dtype=bool).reshape(-1)
                bad = ~np.isfinite(raw) & ~silent
                nonfinite[name] = int(bad.sum())
                scores[rows] = np.where(silent, np.nan, np.where(bad, 0.0, raw))
            if weight != 0:
                weighted = True
                signal |= ~np.isnan(scores)
            components[name] = scores
            total += weight * np.nan_to_num(scores, nan=0.0)
        self.nonfinite_total += sum(nonfinite.values())
        abstained = ~signal if weighted else np.zeros(n, dtype=bool)
        return RewardResult(total, components, nonfinite, empty=n - len(keep), abstained=abstained)

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


class GatedReward:
    """A reward that breaking the answer's form cannot raise: ``reward`` where a plain answer is well formed
    (:func:`drivekit.rewards.structure_reward.well_formed`: it parses cleanly as ``Action: ...; Reason: ...``
    with an action and a reason), ``floor`` (the reward's minimum) elsewhere, without asking ``reward`` about
    those. The wrapped reward sees the well-formed answers only (a vote counts theirs alone); a ``None`` it
    returns (no signal) is passed on."""

    def __init__(self, reward: RewardFn, floor: float):
        self.reward, self.floor = reward, float(floor)
        self.__name__ = f"{getattr(reward, '__name__', 'reward')}_gated"

    def __call__(self, completions: Sequence, **batch) -> list[float | None]:
        texts = [completion_text(c) for c in completions]
        keep = [i for i, t in enumerate(texts) if well_formed(t)]
        scores: list[float | None] = [self.floor] * len(texts)
        if keep:
            inner = list(self.reward([texts[i] for i in keep], **{k: take(v, keep) for k, v in batch.items()}))
            if len(inner) != len(keep):
                raise ValueError(f"{self.__name__}: {len(inner)} scores for {len(keep)} completions")
            for i, score in zip(keep, inner):
                scores[i] = None if score is None else float(score)
        return scores


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
                target: str = "plain", monitors: Mapping[str, RewardFn] | None = None, **r2_kwargs) -> WeightedReward:
    """The weighted sum of ``settings``: ``r1`` (``clip_reward``, when given), ``r2`` (the variant
    ``settings.r2``, with ``r2_kwargs``; none when None) and, for ``target="json"``, ``r3``; on JSON
    outputs R1 and R2 read the JSON's views (:class:`OnJson`). ``monitors``: :class:`WeightedReward`'s."""
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
    return WeightedReward(terms, monitors)
