"""Stage-3 structured output: one pydantic model, its JSON Schema, JSON targets, and parsing/grading.

The output object (field order as generated)::

    {"scene": "...", "actions": ["Stop/Slow down"], "reasons": ["Obstacle: car"],
     "justification": "Stop/Slow down because of obstacle: car."}

Actions and reasons are restricted to the taxonomy's phrases, each listed at most once (enums and
``uniqueItems`` in the JSON Schema, which also drives constrained decoding; validation rejects a
repeated phrase). ``structure_score`` grades a text level by level (the R3 reward): strict JSON
object -> required fields with the right types -> distinct values in the taxonomy -> reasons
consistent with the chosen actions -> a non-empty justification; each level gives partial credit.

A clip's JSON target (:func:`json_target_for`) takes its ``scene`` text from the synthetic
descriptions (:func:`scene_texts`) or, for data without them, writes one from the labels.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivekit.core.config import Config
from drivekit.text.formats import Parsed
from drivekit.data.synthetic import read_scenes
from drivekit.core.taxonomy import ACTION_OF_REASON, ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES

MAX_TEXT = 400  # characters of scene / justification: bounds what constrained decoding can generate
ActionPhrase = Literal[ACTION_PHRASES]  # type: ignore[valid-type]
ReasonPhrase = Literal[REASON_PHRASES]  # type: ignore[valid-type]


class DrivingDecision(BaseModel):
    """What the model says about a clip: the scene, what the car may do, why, and a justification."""

    model_config = ConfigDict(extra="forbid")
    scene: str = Field(max_length=MAX_TEXT, description="what the frames show")
    actions: list[ActionPhrase] = Field(min_length=1, max_length=N_ACTIONS, description="possible actions",
                                        json_schema_extra={"uniqueItems": True})
    reasons: list[ReasonPhrase] = Field(max_length=N_REASONS, description="the reasons for them",
                                        json_schema_extra={"uniqueItems": True})
    justification: str = Field(min_length=1, max_length=MAX_TEXT, description="one sentence tying actions to reasons")

    @field_validator("actions", "reasons")
    @classmethod
    def _no_repeats(cls, items: list[str]) -> list[str]:
        repeated = sorted({item for item in items if items.count(item) > 1})
        if repeated:
            raise ValueError(f"items must be unique; repeated: {', '.join(map(repr, repeated))}")
        return items


FIELDS = {"scene": str, "actions": list, "reasons": list, "justification": str}


def json_schema() -> dict:
    """The JSON Schema of :class:`DrivingDecision`."""
    return DrivingDecision.model_json_schema()


def justification(actions, reasons) -> str:
    """A templated sentence joining the chosen actions to their reasons."""
    acts = [ACTION_PHRASES[i] for i in np.flatnonzero(actions)]
    rsns = [REASON_PHRASES[i].lower() for i in np.flatnonzero(reasons)]
    return f"{' and '.join(acts)} because of {' and '.join(rsns) or 'the scene'}."


def json_target(actions, reasons, scene: str) -> str:
    """The Stage-3 target text of a labelled clip (compact JSON, fields in schema order)."""
    decision = DrivingDecision(
        scene=scene,
        actions=[ACTION_PHRASES[i] for i in np.flatnonzero(actions)],
        reasons=[REASON_PHRASES[i] for i in np.flatnonzero(reasons)],
        justification=justification(actions, reasons),
    )
    return decision.model_dump_json()


def scene_texts(cfg: Config) -> dict[str, str]:
    """The ``scene`` text of each clip's JSON target: the synthetic description (``scenes.jsonl``).

    Real BDD-OIA has no descriptions; there :func:`label_scene` writes one from the labels.
    """
    path = cfg.data_root / "scenes.jsonl"
    return {r["file_name"]: r["description"] for r in read_scenes(cfg.data_root)} if path.exists() else {}


def label_scene(reasons) -> str:
    """A scene sentence from the reason labels, for data without descriptions."""
    seen = [REASON_PHRASES[i].lower() for i in np.flatnonzero(reasons)]
    return f"The scene shows: {', '.join(seen)}." if seen else "A road scene."


def json_target_for(item: Mapping, scenes: Mapping[str, str]) -> str:
    """The JSON target of a dataset item (``name``, ``actions``, ``reasons``)."""
    actions, reasons = np.asarray(item["actions"]), np.asarray(item["reasons"])
    return json_target(actions, reasons, scenes.get(item["name"]) or label_scene(reasons))


def load_object(text) -> tuple[dict | None, str | None]:
    """The JSON object of a whole text (strict), else None and what is wrong."""
    if not isinstance(text, str):
        return None, f"expected text, got {type(text).__name__}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"not strict JSON: {e.msg} at line {e.lineno} column {e.colno}"
    except RecursionError:
        return None, "not strict JSON: nested too deeply"
    except ValueError as e:  # e.g. an integer of over 4,300 digits (Python's int max str digits)
        return None, f"not readable JSON: {str(e).split(';')[0]}"
    if not isinstance(obj, dict):
        return None, f"JSON {type(obj).__name__}, not an object"
    return obj, None


def parse_json(text) -> Parsed:
    """Label vectors from a JSON output; never raises. Unknown phrases are reported and skipped."""
    actions, reasons = np.zeros(N_ACTIONS, dtype=int), np.zeros(N_REASONS, dtype=int)
    obj, problem = load_object(text)
    if obj is None:
        return Parsed(actions, reasons, False, [problem])
    problems = [f"{e['loc'][0] if e['loc'] else 'object'}: {e['msg']}" for e in _errors(obj)]
    for name, phrases, vector in (("actions", ACTION_PHRASES, actions), ("reasons", REASON_PHRASES, reasons)):
        items = obj.get(name)
        for item in items if isinstance(items, list) else []:
            if item in phrases:
                vector[phrases.index(item)] = 1
    return Parsed(actions, reasons, not problems, problems)


def _errors(obj: dict) -> list:
    try:
        DrivingDecision.model_validate(obj)
    except ValidationError as e:
        return e.errors()
    return []


@dataclass
class StructureScore:
    """R3 and its levels, each in [0, 1]; ``total`` is their mean."""

    json: float = 0.0
    fields: float = 0.0
    taxonomy: float = 0.0
    consistency: float = 0.0
    justification: float = 0.0

    @property
    def total(self) -> float:
        return (self.json + self.fields + self.taxonomy + self.consistency + self.justification) / 5


def structure_score(text) -> StructureScore:
    """Grade a model output against the schema (see the module docstring). Never raises.

    - json: 1 when the whole text is one strict JSON object (no repair, no surrounding text);
    - fields: share of the 4 required fields present with the right type (extra keys cost a share);
    - taxonomy: share of the listed actions and reasons that are distinct taxonomy phrases (a repeat
      counts like an unknown phrase; 0 if none listed);
    - consistency: share of the distinct known reasons that fit the chosen actions: a reason for an action
      (0-14) needs that action chosen; a "why not" reason (15-20) needs its turn *not* chosen
      (1 when actions are known and no reason is listed, 0 when no known action is listed);
    - justification: 1 for a non-empty justification that names a chosen action, 0.5 if only non-empty.
    Each level after ``json`` is 0 when the text is not a JSON object.
    """
    score = StructureScore()
    obj, _ = load_object(text)
    if obj is None:
        return score
    score.json = 1.0
    typed = [name for name, kind in FIELDS.items() if isinstance(obj.get(name), kind)]
    score.fields = max(0.0, (len(typed) - len(set(obj) - set(FIELDS))) / len(FIELDS))
    actions = [a for a in obj.get("actions", []) if isinstance(a, str)] if "actions" in typed else []
    reasons = [r for r in obj.get("reasons", []) if isinstance(r, str)] if "reasons" in typed else []
    listed = len(obj["actions"] if "actions" in typed else []) + len(obj["reasons"] if "reasons" in typed else [])
    known_actions = {ACTION_PHRASES.index(a) for a in actions if a in ACTION_PHRASES}
    known_reasons = list(dict.fromkeys(REASON_PHRASES.index(r) for r in reasons if r in REASON_PHRASES))
    if listed:
        score.taxonomy = (len(known_actions) + len(known_reasons)) / listed
    if known_actions:  # with no reasons listed there is nothing inconsistent
        fits = [(ACTION_OF_REASON[r] in known_actions) == (r < 15) for r in known_reasons] or [True]
        score.consistency = sum(fits) / len(fits)
    text_ = obj.get("justification") if "justification" in typed else ""
    if text_.strip():
        named = any(ACTION_PHRASES[a].lower() in text_.lower() for a in known_actions)
        score.justification = 1.0 if named else 0.5
    return score
