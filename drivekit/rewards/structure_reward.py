"""R3, the structure of an answer: the graded score of a Stage-3 JSON output, and the plain answer's form
(proposal §2.4.3).

- R3 (:func:`structure_reward`) is :func:`drivekit.text.json_output.structure_score` of a completion, graded level
  by level (parses as JSON → the required fields → values in the taxonomy → reasons consistent with the action),
  in [0, 1]: a plain trl-style callable ``reward(completions, **batch) -> list[float]``. It needs no ground truth.
- A plain Stage-2 answer is *well formed* (:func:`well_formed`) when it parses cleanly as
  ``Action: ...; Reason: ...`` (:func:`drivekit.text.formats.parse_text` reports no problem) and names at least
  one action and one reason. :func:`no_action` and :func:`no_reason` say, per completion, whether it
  names no action / no reason (1.0) or does (0.0): the :data:`FORMAT_MONITORS` a training log records the share
  of (:class:`drivekit.rewards.weighted_reward.WeightedReward`'s monitors).
- a reward gated by the form (:class:`drivekit.rewards.weighted_reward.GatedReward`) cannot be raised by
  breaking it: an answer that is not well formed scores the reward's minimum.

How R1 and R2 read a JSON output, and the weighted sum R = w1·R1 + w2·R2 + w3·R3, are
:mod:`drivekit.rewards.weighted_reward`.
"""
from __future__ import annotations

from collections.abc import Sequence

from drivekit.text.formats import completion_text, parse_text
from drivekit.text.json_output import structure_score


def structure_reward(completions: Sequence, **batch) -> list[float]:
    """R3: the graded structure score of each completion, in [0, 1]."""
    return [structure_score(completion_text(c)).total for c in completions]


# ---------------------------------------------------------------------------------------------
# The plain answer's form
# ---------------------------------------------------------------------------------------------
def well_formed(completion) -> bool:
    """Whether a plain answer parses cleanly as ``Action: ...; Reason: ...`` with at least one action and one
    reason (``Action: none`` and any text the parser ignores fail); never raises."""
    parsed = parse_text(completion_text(completion))
    return bool(parsed.ok and parsed.actions.any() and parsed.reasons.any())


def no_action(completions: Sequence, **batch) -> list[float]:
    """1.0 for each completion that names no action the parser can read, else 0.0."""
    return [float(not parse_text(completion_text(c)).actions.any()) for c in completions]


def no_reason(completions: Sequence, **batch) -> list[float]:
    """1.0 for each completion that names no reason the parser can read, else 0.0."""
    return [float(not parse_text(completion_text(c)).reasons.any()) for c in completions]


FORMAT_MONITORS = {"no_action": no_action, "no_reason": no_reason}  # monitor name -> callable (trl logs it so too)
