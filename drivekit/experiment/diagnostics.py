"""What the harness reads after training, with the labels label-free RL never saw: why a method learnt what it did.

- **The answers' form** (:func:`form_counts`, :func:`form_curves`): how many answers name no action or no reason
  the parser can read, on a split's predictions, and per step among the answers RL sampled (the reward's
  monitors, ``drivekit.rewards.structure_reward.FORMAT_MONITORS``, in every run's ``log.csv``).
- **The vote** (:func:`majority_accuracy`): how often the self-consistency majority was the pool clip's truth,
  per step, in windows of steps with a Wilson interval, and whether it drifts over training (the
  Cochran-Armitage trend test over every vote, :func:`drivekit.evaluation.stats.trend_test`: the score test of a
  logistic regression's slope on the step, which uses every vote instead of a first and a last window and needs
  no fitting; one vote call per step, as A2C (terminal rewards) and trl's GRPO make).
- **The judge** (:func:`judge_errors`, on a seed's validation clips; :func:`judge_accuracy`, its older reading):
  R1's two directions of error. RL breaks a clip SFT answers right when R1 prefers a wrong answer to the right
  one; it can fix a clip SFT answers wrong only when R1 prefers the right answer to SFT's.

Diagnostics choose nothing: no setting depends on them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from drivekit.evaluation import stats
from drivekit.rewards.action_reward import MajorityVoteReward
from drivekit.text.formats import target_text

FORM_KEYS = ("no_action", "no_reason")
LOG_COLUMNS = {"no_action": ("reward_no_action", "rewards/no_action/mean"),  # A2C's column, trl's
               "no_reason": ("reward_no_reason", "rewards/no_reason/mean")}


# ---------------------------------------------------------------------------------------------
# The answers' form
# ---------------------------------------------------------------------------------------------
def form_counts(rows: Sequence[Mapping]) -> dict:
    """Of prediction rows: how many name no action (``no_action``), no reason (``no_reason``), or did not parse
    cleanly (``unparseable``), and how many rows there are (``n``)."""
    return dict(no_action=sum(not any(r["actions_pred"]) for r in rows),
                no_reason=sum(not any(r["reasons_pred"]) for r in rows),
                unparseable=sum(not r.get("ok", True) for r in rows), n=len(rows))


def form_curves(log: pd.DataFrame) -> dict[str, list[float]]:
    """Per step, the share of sampled answers without an action / a reason, from a run's ``log.csv`` (A2C's
    ``reward_no_action`` or trl's ``rewards/no_action/mean``); ``{}`` for a log from before the monitors."""
    curves = {}
    for key, columns in LOG_COLUMNS.items():
        column = next((c for c in columns if c in log), None)
        if column is not None:
            curves[key] = [round(float(v), 4) for v in log[column].fillna(0.0)]
    return curves


# ---------------------------------------------------------------------------------------------
# The vote
# ---------------------------------------------------------------------------------------------
def vote_of(reward) -> MajorityVoteReward:
    """The :class:`MajorityVoteReward` inside a reward (a term, or the reward a gate wraps)."""
    for _, fn in getattr(reward, "terms", {}).values():
        while fn is not None and not isinstance(fn, MajorityVoteReward):
            fn = getattr(fn, "reward", None)
        if fn is not None:
            return fn
    raise ValueError("the reward holds no majority vote")


def majority_accuracy(reward, truth: Mapping[str, tuple[Sequence[int], Sequence[int]]], window: int = 40) -> dict:
    """How often the vote's majority was the truth (``{clip: (actions, reasons)}``, the pool's labels, read by
    the harness after training; the reward never saw them).

    ``right`` over every vote, ``votes``, ``silent`` (clips where a confident vote gave no signal);
    ``per_step``: right and votes of each step (one vote call each); ``windows``: per ``window`` steps the share
    right with its 95 % Wilson interval; ``trend``: the Cochran-Armitage test over every vote (``z`` > 0: the
    majority grows more often right as training goes on)."""
    vote = vote_of(reward)
    truth = {str(k): (tuple(int(v) for v in a), tuple(int(v) for v in r)) for k, (a, r) in truth.items()}
    right = [[int(m == truth.get(c)) for c, m in call.items() if m is not None] for call in vote.votes]
    silent = [sum(m is None for m in call.values()) for call in vote.votes]
    steps = [s + 1 for s, calls in enumerate(right) for _ in calls]
    outcomes = [x for calls in right for x in calls]
    windows = []
    for start in range(0, len(right), window):
        k, n = sum(sum(c) for c in right[start:start + window]), sum(len(c) for c in right[start:start + window])
        low, high = stats.wilson(k, n)
        windows.append(dict(first_step=start + 1, last_step=min(start + window, len(right)), votes=n, right=k,
                            share=k / n if n else None, low=low if n else None, high=high if n else None))
    return dict(right=float(np.mean(outcomes)) if outcomes else None, votes=len(outcomes), silent=sum(silent),
                per_step=dict(right=[sum(c) for c in right], votes=[len(c) for c in right], silent=silent),
                windows=windows, trend=dict(test="Cochran-Armitage over steps", **stats.trend_test(steps, outcomes)))


# ---------------------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------------------
def _exact(row: Mapping) -> bool:
    return list(row["actions_pred"]) == list(row["actions_true"]) and list(row["reasons_pred"]) == list(row["reasons_true"])


def _beats(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


def judge_accuracy(sft_rows: Sequence[Mapping], clip_reward) -> dict:
    """How well R1 could teach: on the clips SFT answered wrong (``sft_rows``, prediction rows), the share
    where ``clip_reward`` scores the true answer's text above SFT's answer (ties count half), and how
    many such clips there were. A judge that often prefers the wrong answer cannot teach much."""
    wrong = [r for r in sft_rows if not _exact(r)]
    if not wrong:
        return dict(right=None, n=0)
    names = [r["file_name"] for r in wrong]
    truth = clip_reward([target_text(r["actions_true"], r["reasons_true"]) for r in wrong], file_name=names)
    answer = clip_reward([r["text"] for r in wrong], file_name=names)
    return dict(right=float(np.mean([_beats(t, a) for t, a in zip(truth, answer)])), n=len(wrong))


def judge_errors(sft_rows: Sequence[Mapping], answers: Sequence[tuple[Sequence[int], Sequence[int]]],
                 clip_reward) -> dict:
    """R1's two directions of error on SFT's answers to a seed's validation clips (``sft_rows``).

    ``answers``: the well-formed answers SFT was taught (the labelled subset's distinct (actions, reasons)), the
    wrong answers RL can plausibly sample. On the clips SFT answers right (``n_right``):

    - ``wrong_over_right``: the share of (clip, wrong answer) pairs where R1 scores the wrong answer above the
      right one (ties half): what lets RL break a clip;
    - ``any_wrong_over_right``: the share of clips where some wrong answer scores above the right one;
    - ``no_reason_over_right``: the share of clips where the right action *without* its reason scores above the
      whole right answer (ties half): what lets RL drop the reason.

    On the clips SFT answers wrong (``n_wrong``): ``right_over_wrong``, the share where R1 scores the right answer
    above SFT's (ties half; :func:`judge_accuracy`), what lets RL fix a clip; ``1 - right_over_wrong`` is the
    other error rate."""
    right = [r for r in sft_rows if _exact(r)]
    result = dict(n_right=len(right), n_answers=len(answers), **{
        k: None for k in ("wrong_over_right", "any_wrong_over_right", "no_reason_over_right")})
    texts = {tuple(map(tuple, a)): target_text(*a) for a in answers}
    if right:
        names, queries, owners = [], [], []
        for i, r in enumerate(right):
            truth = target_text(r["actions_true"], r["reasons_true"])
            others = [t for t in texts.values() if t != truth]
            for text in (truth, truth.split("; Reason:")[0], *others):
                names.append(r["file_name"])
                queries.append(text)
                owners.append(i)
        scores = np.asarray(clip_reward(queries, file_name=names), dtype=float)
        owners = np.asarray(owners)
        pairs, anyone, dropped = [], [], []
        for i in range(len(right)):
            s = scores[owners == i]
            truth, no_reason, others = s[0], s[1], s[2:]
            pairs += [_beats(o, truth) for o in others]
            anyone.append(float(len(others) > 0 and others.max() > truth))
            dropped.append(_beats(no_reason, truth))
        result.update(wrong_over_right=float(np.mean(pairs)) if pairs else None,
                      any_wrong_over_right=float(np.mean(anyone)), no_reason_over_right=float(np.mean(dropped)))
    fixes = judge_accuracy(sft_rows, clip_reward)
    return {**result, "right_over_wrong": fixes["right"], "n_wrong": fixes["n"]}
