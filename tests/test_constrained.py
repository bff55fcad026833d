import json

import numpy as np
import pytest
import torch
import xgrammar as xgr
from xgrammar.testing import _is_grammar_accept_string as accepts

from drivekit.text import json_output
from drivekit.models import prompts, zoo
from drivekit.data import render, scene
from drivekit.models.constrained import JsonConstraint, decision_grammar, ordered_subset_ebnf
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES


@pytest.fixture(scope="module")
def untrained():
    rng = np.random.default_rng(0)
    scenes = [scene.sample_scene(rng) for _ in range(20)]
    model, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in scenes]),
                                     zoo.TinySpec(text_layers=1, vision_layers=1))
    return model.eval(), processor, scenes


def compact(**changes) -> str:
    obj = dict(scene="A car ahead.", actions=["Stop/Slow down"], reasons=["Obstacle: car"],
               justification="Stop/Slow down because of obstacle: car.")
    return json.dumps({**obj, **changes}, separators=(",", ":"))


def test_constrained_decoding_gives_only_valid_json(untrained):
    """Even an untrained model (random weights) produces parseable, schema-valid JSON under the constraint."""
    model, processor, scenes = untrained
    clips = [render.render_clip(s, 2, (96, 96), seed=i) for i, s in enumerate(scenes[:4])]
    constraint = JsonConstraint(processor.tokenizer, model.config.text_config.vocab_size)
    torch.manual_seed(0)
    texts = prompts.generate(model, processor, clips, max_new_tokens=1200, do_sample=True,
                             **constraint.generate_kwargs())
    for text in texts:
        parsed = json_output.parse_json(text)  # (validation rejects repeated phrases)
        assert parsed.ok, (parsed.problems, text[:200])
        assert json_output.structure_score(text).json == 1


def test_xgrammar_ignores_unique_items():
    """Why the arrays get a grammar of their own: xgrammar's JSON-schema grammar allows repeats."""
    schema_grammar = xgr.Grammar.from_json_schema(json.dumps(json_output.json_schema()), any_whitespace=False,
                                                  separators=(",", ":"))
    assert json_output.json_schema()["properties"]["actions"]["uniqueItems"]
    assert accepts(schema_grammar, compact(actions=["Turn right"] * 4))
    assert not accepts(decision_grammar(), compact(actions=["Turn right"] * 4))


def test_the_grammar_accepts_every_target():
    grammar = decision_grammar()
    for a in range(N_ACTIONS):
        for r in range(N_REASONS):
            target = json_output.json_target(np.eye(N_ACTIONS, dtype=int)[a], np.eye(N_REASONS, dtype=int)[r], "x")
            assert accepts(grammar, target) and accepts(grammar, " " + target), target
    several = json_output.json_target(np.array([1, 1, 0, 1]), np.eye(N_REASONS, dtype=int)[[0, 3, 20]].sum(0), "x")
    assert accepts(grammar, several)
    assert accepts(grammar, compact(actions=list(ACTION_PHRASES), reasons=list(REASON_PHRASES)))
    assert accepts(grammar, compact(reasons=[]))


@pytest.mark.parametrize("changes", [
    dict(actions=["Turn right", "Turn right"]),  # a repeat
    dict(reasons=["Obstacle: car", "Obstacle: car"]),
    dict(actions=["Turn right", "Move forward"]),  # out of taxonomy order
    dict(reasons=["Obstacle: car", "Follow traffic"]),
    dict(actions=[]),  # at least one action
    dict(actions=["Fly"]),
    dict(justification=""),
    dict(scene="x" * (json_output.MAX_TEXT + 1)),
])
def test_the_grammar_rejects(changes):
    assert not accepts(decision_grammar(), compact(**changes))


def test_ordered_subset_grammar_is_exactly_the_increasing_runs():
    grammar = xgr.Grammar.from_ebnf(ordered_subset_ebnf(["a", "b", "c"]))
    runs = [[], ["a"], ["b"], ["c"], ["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "c"]]
    others = [["a", "a"], ["b", "a"], ["c", "b"], ["a", "c", "b"], ["a", "b", "c", "c"], ["d"]]
    assert all(accepts(grammar, json.dumps(r, separators=(",", ":"))) for r in runs)
    assert not any(accepts(grammar, json.dumps(r, separators=(",", ":"))) for r in others)
    assert not accepts(xgr.Grammar.from_ebnf(ordered_subset_ebnf(["a", "b"], min_items=1)), "[]")
    with pytest.raises(ValueError, match="minItems"):
        ordered_subset_ebnf(["a"], min_items=2)


def test_the_compiled_constraint_forbids_a_repeated_reason_token_by_token(untrained):
    _, processor, _ = untrained
    constraint = JsonConstraint(processor.tokenizer, len(processor.tokenizer))
    prefix = compact(reasons=["Obstacle: car", "Obstacle: person"]).split('"Obstacle: person"')[0]
    for follow, allowed in (('"Obstacle: person"', True), ('"Obstacle: car"', False), ('"Follow traffic"', False)):
        matcher = xgr.GrammarMatcher(constraint.grammar)
        assert matcher.accept_string(prefix)
        assert matcher.accept_string(follow) == allowed, follow
