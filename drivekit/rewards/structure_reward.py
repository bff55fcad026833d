"""R3, the structure-formatting reward on Stage-3 JSON outputs (proposal §2.4.3).

R3 is :func:`drivekit.text.json_output.structure_score` of a completion, graded level by level
(parses as JSON → the required fields → values in the taxonomy → reasons consistent with the
action), in [0, 1]: a plain trl-style callable ``reward(completions, **batch) -> list[float]``.
It needs no ground truth. How R1 and R2 read a JSON output, and the weighted sum
R = w1·R1 + w2·R2 + w3·R3, are :mod:`drivekit.rewards.weighted_reward`.
"""
from __future__ import annotations

from collections.abc import Sequence

from drivekit.text.formats import completion_text
from drivekit.text.json_output import structure_score


def structure_reward(completions: Sequence, **batch) -> list[float]:
    """R3: the graded structure score of each completion, in [0, 1]."""
    return [structure_score(completion_text(c)).total for c in completions]
