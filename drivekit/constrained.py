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
    """Compiles the schema once per tokenizer; ``generate_kwargs()`` gives fresh per-call state."""

    def __init__(self, tokenizer, vocab_size: int):
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.grammar = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(json_schema()), any_whitespace=False)
        self.control_tokens = [i for i, piece in enumerate(info.decoded_vocab) if any(b < 0x20 for b in piece)]

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate``; the logits processor keeps state, so one per call."""
        return dict(logits_processor=[xgr.contrib.hf.LogitsProcessor(self.grammar)],
                    suppress_tokens=self.control_tokens)
