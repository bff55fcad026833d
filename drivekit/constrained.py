"""Grammar-constrained decoding: generate() can only emit JSON that matches the Stage-3 schema.

Uses xgrammar's JSON-schema grammar as a transformers logits processor. Tokens that contain raw
control characters are suppressed too: xgrammar's length-bounded strings would otherwise admit
them, and strict JSON does not.
"""
from __future__ import annotations

import json

import xgrammar as xgr

from .json_output import json_schema


class JsonConstraint:
    """Compiles the schema once per tokenizer; ``generate_kwargs()`` gives fresh per-call state.

    The grammar matches the training targets' layout: compact JSON (separators ``,`` and ``:``
    without spaces, as ``json_output.json_target`` writes it) after an optional leading space (the
    answer follows ``Assistant:`` in the chat template, and the targets are tokenised with one).
    A grammar that insists on another layout pushes the model off the token sequences it learnt.
    """

    def __init__(self, tokenizer, vocab_size: int):
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        schema = xgr.Grammar.from_json_schema(json.dumps(json_schema()), any_whitespace=False, separators=(",", ":"))
        grammar = xgr.Grammar.concat(xgr.Grammar.from_ebnf('root ::= " " | ""'), schema)
        self.grammar = xgr.GrammarCompiler(info).compile_grammar(grammar)
        self.control_tokens = [i for i, piece in enumerate(info.decoded_vocab) if any(b < 0x20 for b in piece)]

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate``; the logits processor keeps state, so one per call."""
        return dict(logits_processor=[xgr.contrib.hf.LogitsProcessor(self.grammar)],
                    suppress_tokens=self.control_tokens)
