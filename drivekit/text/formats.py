"""Stage-2 target texts (``Action: ...; Reason: ...``) and parsing model output back to labels.

``target_text`` writes the phrases of the positive labels in index order, several joined by
``" | "``, and ``none`` for an empty field. ``parse_text`` reads text back into label vectors and
never raises. It tolerates, without complaint:

- case, and any punctuation or whitespace between words: a phrase matches when its words do, so
  ``"stop / slow-down"`` is ``Stop/Slow down``; whole phrases only (``Traffic light`` never
  matches ``Traffic light is green``);
- items separated by ``|``, ``,`` or ``;``; empty items; the plural labels ``Actions:``/``Reasons:``;
- the fields on one line or on two, in either order; special tokens such as ``<end_of_utterance>``.

It reports in ``Parsed.problems`` (and then ``ok`` is False), keeping whatever it did recognise:
a missing or empty field, an unknown or repeated phrase, and any other text, which it ignores
(text before the first label, after a field's line, a second ``Action:``). A field's value runs
to the next label or the end of its line. Everything is linear in the length of the text.

``completion_text`` reads a model completion as every reward gets it (a string, bytes, or trl's
conversational list of messages) and never raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES

SEPARATOR = " | "
NONE = "none"
_FIELDS = {"action": (ACTION_PHRASES, N_ACTIONS), "reason": (REASON_PHRASES, N_REASONS)}
_LABEL = re.compile(r"\b(action|reason)s?[ \t]*:", re.IGNORECASE)
_SPECIAL_TOKEN = re.compile(r"<[^<>\n]{0,40}>")
_NOT_WORD = re.compile(r"[\W_]+")
_ITEM_SEP = re.compile(r"[|,;]")
_MAX_REPORTED = 5  # unknown (or repeated) phrases listed per field; the rest are counted


def _normalise(text: str) -> str:
    """Case-folded words separated by single spaces; punctuation and ``_`` dropped."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


_LOOKUP = {name: {_normalise(p): i for i, p in enumerate(ps)} for name, (ps, _) in _FIELDS.items()}


@dataclass
class Parsed:
    """Label vectors read from a text; ``ok`` is True when ``problems`` is empty."""

    actions: np.ndarray
    reasons: np.ndarray
    ok: bool
    problems: list[str] = field(default_factory=list)


def _field_text(name: str, vector) -> str:
    phrases, size = _FIELDS[name]
    v = np.asarray(vector)
    if v.shape != (size,) or not np.isin(v, (0, 1)).all():
        raise ValueError(f"{name}s must be a 0/1 vector of length {size}, got {v!r}")
    return SEPARATOR.join(phrases[i] for i in np.flatnonzero(v)) or NONE


def target_text(actions, reasons) -> str:
    """``Action: <phrases>; Reason: <phrases>`` for 0/1 vectors of length 4 and 21."""
    return f"Action: {_field_text('action', actions)}; Reason: {_field_text('reason', reasons)}"


def _snippet(text: str, size: int = 40) -> str:
    return repr(text if len(text) <= size else text[:size] + "...")


def _report(problems: list[str], what: str, items: list[str]) -> None:
    problems.extend(f"{what} {_snippet(item)}" for item in items[:_MAX_REPORTED])
    if len(items) > _MAX_REPORTED:
        problems.append(f"... and {len(items) - _MAX_REPORTED} more: {what}")


def _read_items(name: str, value: str, problems: list[str]) -> np.ndarray:
    """The label vector of one field's value, reporting what it cannot read."""
    vector = np.zeros(_FIELDS[name][1], dtype=int)
    items = [n for n in map(_normalise, _ITEM_SEP.split(value)) if n]
    if not items:
        problems.append(f"empty {name} field (write '{NONE}' for no labels)")
    unknown, repeated = [], []
    for item in items:
        index = _LOOKUP[name].get(item)
        if index is None:
            if item != NONE:
                unknown.append(item)
        elif vector[index]:
            repeated.append(item)
        else:
            vector[index] = 1
    _report(problems, f"unknown {name}", unknown)
    _report(problems, f"repeated {name}", repeated)
    return vector


def parse_text(text) -> Parsed:
    """Label vectors from model output (see the module docstring); never raises."""
    problems: list[str] = []
    vectors = {name: np.zeros(size, dtype=int) for name, (_, size) in _FIELDS.items()}
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        problems.append(f"expected text, got {type(text).__name__}")
        return Parsed(vectors["action"], vectors["reason"], False, problems)
    text = _SPECIAL_TOKEN.sub(" ", text)

    # The first label of each kind, and where the label after it starts.
    first: dict[str, re.Match] = {}
    ends: dict[str, int] = {}
    for match in _LABEL.finditer(text):
        for name in first.keys() - ends.keys():
            ends[name] = match.start()
        first.setdefault(match.group(1).lower(), match)
        if len(ends) == len(_FIELDS):
            break

    kept = []  # spans (label start, value end) of the fields that were read
    for name in _FIELDS:
        if name not in first:
            problems.append(f"no '{name.capitalize()}:' field")
            continue
        start = first[name].end()
        newline = text.find("\n", start)
        end = min(ends.get(name, len(text)), newline if newline >= 0 else len(text))
        vectors[name] = _read_items(name, text[start:end], problems)
        kept.append((first[name].start(), end))
    ignored, last = [], 0
    for start, end in sorted(kept):
        ignored.append(text[last:start])
        last = end
    ignored.append(text[last:])
    for piece in filter(None, map(_normalise, ignored)):
        problems.append(f"ignored text {_snippet(piece)}")
    return Parsed(vectors["action"], vectors["reason"], not problems, problems)


def parse_many(texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Action matrix (n, 4), reason matrix (n, 21) and ``ok`` flags (n,) of many texts."""
    parsed = [parse_text(t) for t in texts]
    return (
        np.array([p.actions for p in parsed], dtype=int).reshape(-1, N_ACTIONS),
        np.array([p.reasons for p in parsed], dtype=int).reshape(-1, N_REASONS),
        np.array([p.ok for p in parsed], dtype=bool),
    )


def completion_text(completion) -> str:
    """The text of a completion: a string, bytes, or a list of chat messages (contents joined).

    Anything else reads as the empty string; never raises.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    if isinstance(completion, dict):
        return completion_text(completion.get("content", completion.get("text", "")))
    if isinstance(completion, (list, tuple)):
        return " ".join(filter(None, map(completion_text, completion)))
    return ""
