"""R2, the action-reasoning reward (proposal §2.3.2, §5.3.2).

Every reward is a plain callable with trl's ``reward_funcs`` signature
``reward(completions: list[str], **batch) -> list[float]``, where ``batch`` holds the dataset
columns of each completion's clip (one value per completion). The ground truth of a completion
comes from the columns ``actions`` and ``reasons`` (0/1 vectors, written out with
:func:`drivekit.text.formats.target_text`) or, failing those, from a ``target`` column of texts.

R2 variants, chosen by name with :func:`action_reward`:

- ``"bleu"`` — the proposal's definition: sacrebleu's sentence BLEU-4 between the generated and
  the ground-truth ``Action: ...; Reason: ...`` text, thresholded at 0.5 -> {0, 1}
  (``threshold=None`` gives the raw BLEU in [0, 1]). Beware: the right action with the wrong
  reason already scores about 0.64, so the threshold barely looks at the reason.
- ``"label_f1"`` — label-grounded: the text parsed back to label vectors
  (:func:`drivekit.text.formats.parse_text`), then the mean of the per-sample F1 of the actions and of
  the reasons against the truth, in [0, 1].
- ``"majority"`` — label-free self-consistency (TTRL, Zuo et al., 2025): the answers sampled for
  one clip vote, and each answer scores the label F1 above against the group's most frequent
  parsed answer instead of the truth. It reads no label, only which clip an answer is for
  (``file_name`` or ``name``); it needs several answers per clip (GRPO's group; A2C with
  ``samples_per_clip > 1`` and ``reward_mode="terminal"``). Its known failure: a wrong majority is
  rewarded, and so locked in; :attr:`MajorityVoteReward.votes` keeps every group's majority so a
  harness that holds the labels can count how often it was wrong. With ``min_agree=m`` it votes only
  where at least m answers of the group agree and no other answer is as frequent; elsewhere every
  answer of the group gets ``None``: no signal (trl's convention; drivekit's A2C leaves such answers
  out of its losses, trl gives them advantage 0).
- ``"judge"`` — the paper profile's LLM-as-judge: any local causal LM (a directory for
  ``from_pretrained``) reads the proposal's prompt ``Explanation: ... Reason: ... Score:`` and its
  greedy continuation is parsed into a score in [0, 1] (:func:`parse_score`: ``0.7``, ``7``,
  ``7/10``, ``70%``, ``7 out of 10``...). When no number can be read, the score is the expected
  value of the judge's first-token distribution over the digits 0-9 (divided by 9), or 0 if its
  vocabulary has no single-digit tokens. Judges see no ground truth: they score how well the
  generated action and its justification hang together.

The weighted sum R = w1·R1 + w2·R2 (+ w3·R3) that RL trains on is :mod:`drivekit.rewards.weighted_reward`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from drivekit.text.formats import completion_text, parse_text, target_text

RewardFn = Callable[..., Sequence[float]]
JUDGE_TEMPLATE = "Explanation: {explanation}\nReason: {reason}\nScore:"  # the proposal's §5.3.2 prompt


# ---------------------------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------------------------
def truth_texts(n: int, batch: Mapping) -> list[str]:
    """The ground-truth target text of each of ``n`` completions, from ``actions``+``reasons`` or ``target``."""
    if batch.get("actions") is not None and batch.get("reasons") is not None:
        actions, reasons = batch["actions"], batch["reasons"]
        texts = [target_text(np.asarray(a).astype(int), np.asarray(r).astype(int)) for a, r in zip(actions, reasons)]
    elif batch.get("target") is not None:
        texts = [str(t) for t in batch["target"]]
    else:
        raise ValueError("R2 needs the ground truth: pass the columns actions=[...] and reasons=[...] (or target=[...])")
    if len(texts) != n:
        raise ValueError(f"{n} completions but {len(texts)} ground-truth rows")
    return texts


def truth_labels(n: int, batch: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Action (n, 4) and reason (n, 21) matrices of the ground truth (parsed from ``target`` if needed)."""
    if batch.get("actions") is not None and batch.get("reasons") is not None:
        a = np.array([np.asarray(v).astype(int) for v in batch["actions"]])
        r = np.array([np.asarray(v).astype(int) for v in batch["reasons"]])
        if len(a) != n or len(r) != n:
            raise ValueError(f"{n} completions but {len(a)} action and {len(r)} reason rows")
        return a, r
    parsed = [parse_text(t) for t in truth_texts(n, batch)]
    return np.array([p.actions for p in parsed]), np.array([p.reasons for p in parsed])


# ---------------------------------------------------------------------------------------------
# R2 variants
# ---------------------------------------------------------------------------------------------
def bleu4(hypothesis: str, reference: str) -> float:
    """sacrebleu's sentence BLEU-4 (its default exponential smoothing) as a fraction in [0, 1]."""
    import sacrebleu

    if not hypothesis.strip():
        return 0.0
    return sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100.0


class BleuReward:
    """R2 = 1 if BLEU-4(generated, truth) >= ``threshold`` else 0 (``threshold=None``: the BLEU itself)."""

    def __init__(self, threshold: float | None = 0.5):
        self.threshold = threshold
        self.__name__ = "r2_bleu" if threshold is not None else "r2_bleu_raw"

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [completion_text(c) for c in completions]
        scores = [bleu4(t, ref) for t, ref in zip(texts, truth_texts(len(texts), batch))]
        if self.threshold is None:
            return scores
        return [float(s >= self.threshold) for s in scores]


def _f1(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-row F1 of 0/1 matrices; a row empty in both scores 1."""
    tp = (pred & true).sum(1)
    denominator = pred.sum(1) + true.sum(1)
    return np.where(denominator == 0, 1.0, 2 * tp / np.maximum(denominator, 1))


class LabelF1Reward:
    """R2 = (F1 of the parsed actions + F1 of the parsed reasons) / 2 against the truth, per sample."""

    __name__ = "r2_label_f1"

    def __init__(self, action_weight: float = 0.5):
        self.action_weight = action_weight

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [completion_text(c) for c in completions]
        true_a, true_r = truth_labels(len(texts), batch)
        parsed = [parse_text(t) for t in texts]
        pred_a = np.array([p.actions for p in parsed], dtype=int).reshape(-1, true_a.shape[1])
        pred_r = np.array([p.reasons for p in parsed], dtype=int).reshape(-1, true_r.shape[1])
        w = self.action_weight
        score = w * _f1(pred_a, true_a.astype(int)) + (1 - w) * _f1(pred_r, true_r.astype(int))
        return score.astype(float).tolist()


class MajorityVoteReward:
    """R2 without labels: label F1 (as :class:`LabelF1Reward`) against the majority of the answers of
    the same clip in the batch. The majority is the most frequent parsed (actions, reasons) among the
    group's answers that parse (ties: the earliest); a group with no parsed answer scores 0. Each
    call appends ``{clip: (actions, reasons)}`` of its majorities to :attr:`votes`.

    ``min_agree`` (m): a confidence threshold. A group votes only when its most frequent answer has at least
    m answers and no other answer as many; otherwise every answer of that clip gets ``None`` (no signal) and
    :attr:`votes` holds ``None`` for the clip. ``min_agree=1`` (the default) is the plain majority above."""

    __name__ = "r2_majority"

    def __init__(self, action_weight: float = 0.5, min_agree: int = 1):
        if min_agree < 1:
            raise ValueError(f"min_agree must be at least 1, not {min_agree}")
        self.action_weight, self.min_agree = action_weight, int(min_agree)
        self.votes: list[dict[str, tuple[tuple[int, ...], tuple[int, ...]] | None]] = []
        if self.min_agree > 1:
            self.__name__ = f"r2_majority_{self.min_agree}"

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        texts = [completion_text(c) for c in completions]
        clips = batch.get("file_name", batch.get("name"))
        if clips is None or len(clips) != len(texts):
            raise ValueError("the majority-vote R2 needs the column file_name (or name): which clip each "
                             f"completion answers; got {None if clips is None else len(clips)} for {len(texts)}")
        parsed = [parse_text(t) for t in texts]
        answers = [(tuple(int(v) for v in p.actions), tuple(int(v) for v in p.reasons)) for p in parsed]
        majority, silent = {}, set()
        for clip in dict.fromkeys(str(c) for c in clips):
            group = [a for a, c, p in zip(answers, clips, parsed) if str(c) == clip and (p.actions.any() or p.reasons.any())]
            counts = {}
            for a in group:
                counts[a] = counts.get(a, 0) + 1
            top = sorted(counts.values(), reverse=True)[:2]
            if self.min_agree > 1 and (not top or top[0] < self.min_agree or (len(top) > 1 and top[1] == top[0])):
                silent.add(clip)  # no confident majority: no signal
            elif group:
                majority[clip] = max(counts, key=counts.get)  # first maximal in insertion order: the earliest
        self.votes.append({**dict(majority), **{clip: None for clip in silent}})
        voted = [str(c) in majority for c in clips]
        scores: list[float | None] = [None if str(c) in silent else 0.0 for c in clips]
        rows = [i for i, v in enumerate(voted) if v]
        if rows:
            pred_a, pred_r = (np.array([answers[i][k] for i in rows], dtype=int) for k in (0, 1))
            vote_a, vote_r = (np.array([majority[str(clips[i])][k] for i in rows], dtype=int) for k in (0, 1))
            w = self.action_weight
            for i, score in zip(rows, w * _f1(pred_a, vote_a) + (1 - w) * _f1(pred_r, vote_r)):
                scores[i] = float(score)
        return scores


_NUMBER = re.compile(
    r"(?<![\w.])(-?\d+(?:\.\d+)?|-?\.\d+)\s*(?:(%)|(?:/|out\s+of|of)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)


def parse_score(text) -> float | None:
    """The first number in a judge's answer as a score in [0, 1], or None when there is none.

    ``0.7`` -> 0.7; ``7`` -> 0.7 (a 0-10 scale is assumed for numbers in (1, 10]); ``70`` -> 0.7
    (0-100 for (10, 100]); ``70%`` -> 0.7; ``7/10``, ``7 out of 10`` -> 0.7; results are clipped to
    [0, 1]. Never raises.
    """
    text = completion_text(text)
    match = _NUMBER.search(text)
    if not match:
        return None
    try:
        value = float(match.group(1))
        if match.group(2):
            value /= 100.0
        elif match.group(3):
            value /= max(float(match.group(3)), 1e-9)
        elif value > 10:
            value /= 100.0
        elif value > 1:
            value /= 10.0
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    return float(min(1.0, max(0.0, value)))


def split_explanation(text: str) -> tuple[str, str]:
    """(explanation, reason) of a completion: the action part and the reason part of
    ``Action: ...; Reason: ...``; a text without ``Reason:`` is all explanation."""
    parts = re.split(r"\breasons?\s*:", text, maxsplit=1, flags=re.IGNORECASE)
    explanation = re.sub(r"^\s*actions?\s*:", "", parts[0], flags=re.IGNORECASE).strip(" ;\n\t")
    reason = parts[1].strip(" ;\n\t") if len(parts) > 1 else ""
    return explanation, reason


class JudgeReward:
    """LLM-as-judge R2: a local causal LM scores ``JUDGE_TEMPLATE`` filled with each completion.

    ``model`` is a directory (or hub id, paper profile with internet) for ``from_pretrained``, or an
    already loaded ``(model, tokenizer)`` pair. ``unparsed`` counts answers without a number.
    """

    __name__ = "r2_judge"

    def __init__(self, model, tokenizer=None, template: str = JUDGE_TEMPLATE, max_new_tokens: int = 6,
                 batch_size: int = 16, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(model, (str, Path)):
            if not Path(model).expanduser().is_dir():  # a hub id: the local cache, else the hub, else a clear error
                from drivekit.models.vlm import hub_source

                model = hub_source(str(model), "the judge's model (action_reward('judge', model=...))")
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model)
        if tokenizer is None:
            raise ValueError("give the judge's tokenizer with a loaded model")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.template, self.max_new_tokens, self.batch_size = template, max_new_tokens, batch_size
        self.digit_ids = self._digit_ids()
        self.unparsed = 0

    def _digit_ids(self) -> list[int] | None:
        ids = []
        for d in "0123456789":
            encoded = self.tokenizer(d, add_special_tokens=False)["input_ids"]
            spaced = self.tokenizer(" " + d, add_special_tokens=False)["input_ids"]
            token = encoded if len(encoded) == 1 else spaced if len(spaced) == 1 else None
            if token is None:
                return None
            ids.append(token[0])
        return ids if len(set(ids)) == 10 else None

    def prompts(self, completions: Sequence) -> list[str]:
        out = []
        for c in completions:
            explanation, reason = split_explanation(completion_text(c))
            out.append(self.template.format(explanation=explanation, reason=reason))
        return out

    def __call__(self, completions: Sequence, **batch) -> list[float]:
        import torch

        prompts = self.prompts(completions)
        scores: list[float] = []
        tok = self.tokenizer
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start:start + self.batch_size]
            side, tok.padding_side = tok.padding_side, "left"
            try:
                inputs = tok(chunk, return_tensors="pt", padding=True).to(self.device)
            finally:
                tok.padding_side = side
            with torch.no_grad():
                out = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens,
                                          pad_token_id=tok.pad_token_id, output_scores=True,
                                          return_dict_in_generate=True)
            answers = tok.batch_decode(out.sequences[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            first = out.scores[0].float() if out.scores else None
            for i, answer in enumerate(answers):
                score = parse_score(answer)
                if score is None:
                    self.unparsed += 1
                    score = 0.0
                    if self.digit_ids is not None and first is not None:
                        p = torch.softmax(first[i, self.digit_ids], dim=-1)
                        score = float((p * torch.arange(10, device=p.device)).sum() / 9)
                scores.append(score)
        return scores


def action_reward(name: str = "bleu", **kwargs) -> RewardFn:
    """An R2 callable by name: ``"bleu"`` (thresholded), ``"bleu_raw"``, ``"label_f1"`` or ``"judge"``
    (``judge`` needs ``model=<local path>``)."""
    if name == "bleu":
        return BleuReward(**{"threshold": 0.5, **kwargs})
    if name == "bleu_raw":
        return BleuReward(threshold=None)
    if name == "label_f1":
        return LabelF1Reward(**kwargs)
    if name == "majority":
        return MajorityVoteReward(**kwargs)
    if name == "judge":
        return JudgeReward(**kwargs)
    raise ValueError(f"unknown R2 variant {name!r}; choose bleu, bleu_raw, label_f1, majority or judge")


LABEL_FREE = ("majority", "judge")  # R2 variants that read no ground truth
