"""The answers a reward explorer ranks: answers built to differ in one way each, beside the model's own.

A sample of a trained policy is mostly the same answer several times, so no setting of the reward's
weights reorders it (issue 36). :func:`constructed_answers` writes, for each clip, answers that a
good reward must tell apart, in the clip's format (plain ``Action: ...; Reason: ...`` text or the
Stage-3 JSON object):

- ``true answer``: the clip's labels;
- ``right action, wrong reason``: the true actions with a reason of the same action that is not true;
- ``wrong action, right reason``: another action (stop/slow down, or move forward when stopping is
  true) with the true reasons;
- plain text: ``verbose`` (the true answer, then the clip's scene description on a new line) and
  ``malformed`` (the true labels without the ``Action:`` / ``Reason:`` fields);
- JSON: ``another clip's scene`` (the true labels with the scene description of another clip),
  ``verbose (extra key)`` (the true object with a ``notes`` field the schema does not have) and
  ``cut off`` (the true object cut where a ``max_new_tokens`` limit would cut it);
- ``SFT's answer``: the SFT model's greedy answer to the clip.

Some pairs differ in one term only, so that each weight reorders them for any clip: in JSON the true answer
and ``another clip's scene`` differ in R1 alone (R1 reads the scene), the true answer and ``verbose (extra
key)`` in R3 alone; in plain text the true and the verbose answer tie under the label-F1 R2 and differ in R1.

:func:`sampled_answers` adds the policy's samples, and :func:`gather` merges the answers a clip got
more than once (a sample equal to the true answer is one row, ``true answer = sampled ×2``), so
that every distinct answer is one row of the explorer's table and no two rows tie only because they
are the same text. :func:`explorer_clips` picks clips where SFT is right and some where it is wrong.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from drivekit.core.taxonomy import ACTION_PHRASES, REASON_PHRASES, REASONS_FOR_ACTION
from drivekit.text.formats import target_text
from drivekit.text.json_output import json_target, label_scene

STOP, FORWARD = 1, 0
NOTES = "I looked at the whole scene and at every road user before deciding."  # the verbose JSON's extra field
PLAIN_KINDS = ("true answer", "right action, wrong reason", "wrong action, right reason", "verbose", "malformed",
               "SFT's answer")
JSON_KINDS = ("true answer", "right action, wrong reason", "wrong action, right reason", "another clip's scene",
              "verbose (extra key)", "cut off", "SFT's answer")
SAMPLED = "sampled"


def _vector(values) -> np.ndarray:
    return np.asarray(values.tolist() if hasattr(values, "tolist") else values, dtype=int).reshape(-1)


def wrong_reason(actions, reasons) -> np.ndarray:
    """The reasons of a right-action, wrong-reason answer: the first reason of a true action that is not
    true (all of them true: the first reason of another action)."""
    actions, reasons = _vector(actions), _vector(reasons)
    mine = [r for a in np.flatnonzero(actions) for r in REASONS_FOR_ACTION[int(a)]]
    pick = next((r for r in mine if not reasons[r]), None)
    if pick is None:
        pick = next(r for r in range(len(REASON_PHRASES)) if not reasons[r])
    out = np.zeros_like(reasons)
    out[pick] = 1
    return out


def wrong_action(actions) -> np.ndarray:
    """The actions of a wrong-action answer: stop/slow down, or move forward when stopping is true."""
    actions = _vector(actions)
    out = np.zeros_like(actions)
    out[FORWARD if actions[STOP] else STOP] = 1
    return out


def plain_answers(actions, reasons, scene: str) -> dict[str, str]:
    """The constructed plain-text answers of a clip (:data:`PLAIN_KINDS` but SFT's), by kind."""
    truth = target_text(actions, reasons)
    said = [ACTION_PHRASES[i] for i in np.flatnonzero(actions)] + [REASON_PHRASES[i].lower()
                                                                    for i in np.flatnonzero(reasons)]
    return {"true answer": truth,
            "right action, wrong reason": target_text(actions, wrong_reason(actions, reasons)),
            "wrong action, right reason": target_text(wrong_action(actions), reasons),
            "verbose": f"{truth}\n{scene}",
            "malformed": ", ".join(said)}


def json_answers(actions, reasons, scene: str, other_scene: str) -> dict[str, str]:
    """The constructed JSON answers of a clip (:data:`JSON_KINDS` but SFT's), by kind; ``other_scene``: another
    clip's scene description."""
    truth = json_target(actions, reasons, scene)
    verbose = {**json.loads(truth), "notes": NOTES}
    return {"true answer": truth,
            "right action, wrong reason": json_target(actions, wrong_reason(actions, reasons), scene),
            "wrong action, right reason": json_target(wrong_action(actions), reasons, scene),
            "another clip's scene": json_target(actions, reasons, other_scene),
            "verbose (extra key)": json.dumps(verbose, separators=(",", ":"), ensure_ascii=False),
            "cut off": truth[: len(truth) * 2 // 3]}


def _sft_texts(sft: Mapping[str, str] | Sequence[Mapping] | None) -> dict[str, str]:
    if sft is None:
        return {}
    if isinstance(sft, Mapping):
        return dict(sft)
    return {row["file_name"]: row["text"] for row in sft}


def _row(item: Mapping, text: str, kind: str) -> dict:
    return dict(file_name=item["name"], text=text, actions=_vector(item["actions"]).tolist(),
                reasons=_vector(item["reasons"]).tolist(), source=kind)


def constructed_answers(items: Sequence[Mapping], sft: Mapping[str, str] | Sequence[Mapping] | None = None,
                        target: str = "plain", scenes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per constructed answer of each clip (``items``: ``name``, ``actions``, ``reasons``):
    ``file_name``, ``text``, ``actions``, ``reasons`` (the truth) and ``source`` (its kind). ``sft``: SFT's
    answers (``{clip: text}`` or prediction rows); ``scenes``: each clip's scene description (the verbose
    answer's second line and the JSON ``scene``; default: a sentence written from the reasons)."""
    sft_texts, scenes = _sft_texts(sft), scenes or {}
    described = [scenes.get(item["name"]) or label_scene(_vector(item["reasons"])) for item in items]
    rows = []
    for i, item in enumerate(items):
        actions, reasons = _vector(item["actions"]), _vector(item["reasons"])
        scene = described[i]
        if target == "json":
            others = [s for s in described[i + 1:] + described[:i] if s != scene]  # the next clip's, if it differs
            other = others[0] if others else label_scene(wrong_reason(actions, reasons))
            made = json_answers(actions, reasons, scene, other)
        else:
            made = plain_answers(actions, reasons, scene)
        if item["name"] in sft_texts:
            made["SFT's answer"] = sft_texts[item["name"]]
        rows += [_row(item, text, kind) for kind, text in made.items()]
    return pd.DataFrame(rows, columns=["file_name", "text", "actions", "reasons", "source"])


def sampled_answers(items: Sequence[Mapping], texts: Sequence[str]) -> pd.DataFrame:
    """The policy's samples as explorer rows: ``texts`` answer ``items`` in order, the same number for each
    clip (e.g. ``[clip for clip in items for _ in range(4)]`` was sampled)."""
    if not items or len(texts) % len(items):
        raise ValueError(f"{len(texts)} sampled texts for {len(items)} clips: give the same number for each clip")
    per = len(texts) // len(items)
    return pd.DataFrame([_row(item, text, SAMPLED) for i, item in enumerate(items)
                         for text in texts[i * per:(i + 1) * per]],
                        columns=["file_name", "text", "actions", "reasons", "source"])


def _label(kinds: list[str]) -> str:
    named = [k for k in dict.fromkeys(kinds) if k != SAMPLED]
    n = kinds.count(SAMPLED)
    return " = ".join(named + ([f"{SAMPLED} ×{n}" if n > 1 else SAMPLED] if n else []))


def gather(*answers: pd.DataFrame) -> pd.DataFrame:
    """The answers of every frame, one row per clip and distinct text (clips and texts in the order they
    first appear); ``source`` names every kind that gave the text (``true answer = SFT's answer =
    sampled ×3``) and ``count`` how many answers it stands for."""
    every = pd.concat(answers, ignore_index=True)
    rows = []
    for (_, text), group in every.groupby(["file_name", "text"], sort=False):
        first = group.iloc[0]
        rows.append(dict(file_name=first["file_name"], text=text, actions=first["actions"], reasons=first["reasons"],
                         source=_label(group["source"].tolist()), count=len(group)))
    return pd.DataFrame(rows, columns=["file_name", "text", "actions", "reasons", "source", "count"])


def explorer_clips(items: Sequence[Mapping], sft_rows: Sequence[Mapping], n: int = 6, wrong: int = 2) -> list:
    """``n`` clips for an explorer, in the order of ``items``: the first ``wrong`` that SFT answers wrongly
    (its parsed labels in ``sft_rows`` differ from the truth) and the first that SFT answers right; when there
    are too few of either, the next clips of ``sft_rows``. ``items`` are read only up to the last clip picked."""
    def is_wrong(row):
        return row["actions_pred"] != row["actions_true"] or row["reasons_pred"] != row["reasons_true"]

    bad = [row["file_name"] for row in sft_rows if is_wrong(row)][:wrong]
    good = [row["file_name"] for row in sft_rows if not is_wrong(row)][: n - len(bad)]
    rest = [row["file_name"] for row in sft_rows if row["file_name"] not in {*bad, *good}]
    wanted, picked = {*bad, *good, *rest[: n - len(bad) - len(good)]}, []  # too few right (or wrong): the next ones
    for item in items:
        if item["name"] in wanted:
            picked.append(item)
            if len(picked) == len(wanted):
                break
    return picked
