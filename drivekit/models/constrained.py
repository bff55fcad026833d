"""Grammar-constrained decoding: generate() can only emit JSON that matches the Stage-3 schema.

Uses an xgrammar grammar as a transformers logits processor, built field by field from the JSON
Schema of ``json_output.DrivingDecision``:

- the text fields come from xgrammar's JSON-schema grammar (length bounds included);
- a list of taxonomy phrases with ``uniqueItems`` (actions, reasons) is an *ordered subset*: each
  phrase at most once, in taxonomy order, the order the JSON targets list them in. xgrammar
  (0.2.9) ignores ``uniqueItems``, so its own array grammar would let a model repeat a phrase
  (``["Turn right", "Turn right", ...]``); a grammar that forbids repeats in any order would need
  one state per subset of phrases (2^21 for the reasons), taxonomy order needs one rule per phrase.

Tokens that contain raw control characters are suppressed too: xgrammar's length-bounded strings
would otherwise admit them, and strict JSON does not.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import xgrammar as xgr

from drivekit.text.json_output import json_schema


def _literal(text: str) -> str:
    """``text`` as an EBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ordered_subset_ebnf(phrases: Sequence[str], min_items: int = 0) -> str:
    """EBNF of a compact JSON array of distinct ``phrases`` in their given order, at least ``min_items``.

    ``from_j`` is a non-empty increasing run whose first phrase has index >= j; ``tail_j`` what may
    follow phrase j. Linear in the number of phrases.
    """
    if min_items not in (0, 1):
        raise ValueError(f"an ordered-subset array supports minItems 0 or 1, not {min_items}")
    n = len(phrases)
    items = [_literal(json.dumps(p)) for p in phrases]
    rules = ['root ::= "[" from_0 "]"' + ('' if min_items else ' | "[" "]"')]
    for j in range(n):
        rules.append(f"from_{j} ::= {items[j]} tail_{j}" + (f" | from_{j + 1}" if j + 1 < n else ""))
        rules.append(f'tail_{j} ::= ""' + (f' | "," from_{j + 1}' if j + 1 < n else ""))
    return "\n".join(rules)


def _field_grammar(prop: dict) -> xgr.Grammar:
    items = prop.get("items", {})
    if prop.get("type") == "array" and "enum" in items and prop.get("uniqueItems"):
        if prop.get("maxItems", len(items["enum"])) < len(items["enum"]):
            raise ValueError("an ordered-subset array cannot bound maxItems below the number of phrases")
        return xgr.Grammar.from_ebnf(ordered_subset_ebnf(items["enum"], prop.get("minItems", 0)))
    return xgr.Grammar.from_json_schema(json.dumps(prop), any_whitespace=False, separators=(",", ":"))


def decision_grammar(schema: dict | None = None) -> xgr.Grammar:
    """The grammar of one compact JSON object of ``schema`` (default: the Stage-3 schema), fields in order.

    Every property must be required and no other allowed (as in ``DrivingDecision``).
    """
    schema = schema or json_schema()
    props = schema["properties"]
    if schema.get("required") != list(props) or schema.get("additionalProperties") is not False:
        raise ValueError("the schema must require every property, in order, and forbid others")
    parts = [xgr.Grammar.from_ebnf('root ::= " " | ""')]  # optional leading space (see JsonConstraint)
    for i, (key, prop) in enumerate(props.items()):
        opening = ("{" if i == 0 else ",") + json.dumps(key) + ":"
        parts += [xgr.Grammar.from_ebnf(f"root ::= {_literal(opening)}"), _field_grammar(prop)]
    parts.append(xgr.Grammar.from_ebnf('root ::= "}"'))
    return xgr.Grammar.concat(*parts)


class JsonConstraint:
    """Compiles the schema once per tokenizer; ``generate_kwargs()`` gives fresh per-call state.

    The grammar matches the training targets' layout: compact JSON (separators ``,`` and ``:``
    without spaces, as ``json_output.json_target`` writes it) after an optional leading space (the
    answer follows ``Assistant:`` in the chat template, and the targets are tokenised with one).
    A grammar that insists on another layout pushes the model off the token sequences it learnt.
    """

    def __init__(self, tokenizer, vocab_size: int):
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.grammar = xgr.GrammarCompiler(info).compile_grammar(decision_grammar())
        self.control_tokens = [i for i, piece in enumerate(info.decoded_vocab) if any(b < 0x20 for b in piece)]

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate``; the logits processor keeps state, so one per call."""
        return dict(logits_processor=[xgr.contrib.hf.LogitsProcessor(self.grammar)],
                    suppress_tokens=self.control_tokens)
