import json

import numpy as np
import pytest

from drivekit.text import json_output as J
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES

STOP_CAR = (np.eye(N_ACTIONS, dtype=int)[1], np.eye(N_REASONS, dtype=int)[3])
VALID = J.json_target(*STOP_CAR, scene="The car ahead is stopped close to us.")


def test_target_is_valid_and_round_trips():
    obj = json.loads(VALID)
    assert list(obj) == ["scene", "actions", "reasons", "justification"]
    assert obj["actions"] == ["Stop/Slow down"] and obj["reasons"] == ["Obstacle: car"]
    parsed = J.parse_json(VALID)
    assert parsed.ok and parsed.problems == []
    np.testing.assert_array_equal(parsed.actions, STOP_CAR[0])
    np.testing.assert_array_equal(parsed.reasons, STOP_CAR[1])


@pytest.mark.parametrize("a", range(N_ACTIONS))
def test_every_single_label_target_scores_full_marks(a):
    for r in range(N_REASONS):
        actions = np.eye(N_ACTIONS, dtype=int)[a]
        reasons = np.eye(N_REASONS, dtype=int)[r]
        text = J.json_target(actions, reasons, scene="x")
        consistent = (r < 15) == (J.ACTION_OF_REASON[r] == a)
        assert J.structure_score(text).total == pytest.approx(1.0 if consistent else 0.8)
        assert J.parse_json(text).ok


def test_schema_export_restricts_phrases():
    schema = J.json_schema()
    assert schema["required"] == ["scene", "actions", "reasons", "justification"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["actions"]["items"]["enum"] == list(ACTION_PHRASES)
    assert props["reasons"]["items"]["enum"] == list(REASON_PHRASES)
    assert props["actions"]["uniqueItems"] is True and props["reasons"]["uniqueItems"] is True


def _obj(**changes):
    obj = json.loads(VALID)
    obj.update(changes)
    return json.dumps(obj)


CRAFTED = {  # text -> expected (json, fields, taxonomy, consistency, justification)
    "valid": (VALID, (1, 1, 1, 1, 1)),
    "truncated": (VALID[:-10], (0, 0, 0, 0, 0)),
    "extra text around": ("Sure! " + VALID + " Hope this helps.", (0, 0, 0, 0, 0)),
    "wrong enum value": (_obj(actions=["Stop"]), (1, 1, 0.5, 0, 0.5)),
    "inconsistent": (_obj(actions=["Move forward"], justification="Move forward because of a car."),
                     (1, 1, 1, 0, 1)),
    "empty": ("", (0, 0, 0, 0, 0)),
    "missing field": (json.dumps({k: v for k, v in json.loads(VALID).items() if k != "scene"}), (1, 0.75, 1, 1, 1)),
    "extra key": (_obj(speed=3), (1, 0.75, 1, 1, 1)),
    "empty justification": (_obj(justification="  "), (1, 1, 1, 1, 0)),
    "a JSON list": ("[1, 2]", (0, 0, 0, 0, 0)),
    "1 MB string": ("{" * 2**20, (0, 0, 0, 0, 0)),
    "1 MB valid-looking": (_obj(scene="x" * 2**20), (1, 1, 1, 1, 1)),
    # a repeated phrase counts like an unknown one at the taxonomy level: 2 distinct of 3 listed
    "repeated action": (_obj(actions=["Stop/Slow down"] * 2), (1, 1, 2 / 3, 1, 1)),
    "repeated reason": (_obj(reasons=["Obstacle: car"] * 2), (1, 1, 2 / 3, 1, 1)),
    # what constrained decoding once produced: 2 distinct of 5 listed; an obstacle is no reason to turn
    "4 x Turn right": (_obj(actions=["Turn right"] * 4, justification="Turn right."), (1, 1, 2 / 5, 0, 1)),
}


@pytest.mark.parametrize("name", CRAFTED)
def test_structure_score_levels(name):
    text, expected = CRAFTED[name]
    s = J.structure_score(text)
    assert (s.json, s.fields, s.taxonomy, s.consistency, s.justification) == pytest.approx(expected)
    assert s.total == pytest.approx(sum(expected) / 5)


@pytest.mark.parametrize("name", ["truncated", "extra text around", "wrong enum value", "empty", "1 MB string",
                                  "repeated action", "repeated reason", "4 x Turn right"])
def test_parse_json_never_raises_and_reports(name):
    parsed = J.parse_json(CRAFTED[name][0])
    assert not parsed.ok and parsed.problems
    assert parsed.actions.shape == (N_ACTIONS,) and parsed.reasons.shape == (N_REASONS,)


def test_parse_json_keeps_known_phrases_of_an_invalid_object():
    parsed = J.parse_json(_obj(actions=["Stop/Slow down", "Fly"]))
    assert not parsed.ok and any("actions" in p for p in parsed.problems)
    assert parsed.actions.tolist() == [0, 1, 0, 0]


def test_validation_rejects_repeated_phrases():
    for field, phrase in (("actions", "Turn right"), ("reasons", "Obstacle: car")):
        obj = json.loads(VALID)
        obj[field] = [phrase] * 4
        with pytest.raises(ValueError, match="unique"):
            J.DrivingDecision.model_validate(obj)
        parsed = J.parse_json(json.dumps(obj))
        assert not parsed.ok and parsed.problems == [f"{field}: Value error, items must be unique; repeated: {phrase!r}"]
        assert (parsed.actions if field == "actions" else parsed.reasons).sum() == 1  # the phrase is still read
    obj = json.loads(VALID)
    obj["actions"] = ["Stop/Slow down", "Move forward"]  # distinct but out of taxonomy order: valid
    assert J.parse_json(json.dumps(obj)).ok


def test_garbage_types_score_zero():
    for text in (None, 3, b"{}", ["a"]):
        assert J.structure_score(text).total == 0
        assert not J.parse_json(text).ok


LONG_NUMBER = "9" * 4301  # one digit over Python's int max str digits: json.loads raises ValueError


@pytest.mark.parametrize("text", [LONG_NUMBER, f"[{LONG_NUMBER}]", _obj(actions=[LONG_NUMBER]).replace(f'"{LONG_NUMBER}"', LONG_NUMBER),
                                  f'{{"scene": {LONG_NUMBER}}}'])
def test_a_number_too_long_to_read_is_unparseable_not_a_crash(text):
    parsed = J.parse_json(text)
    assert not parsed.ok and parsed.problems == ["not readable JSON: Exceeds the limit (4300 digits) for integer "
                                                 "string conversion: value has 4301 digits"]
    assert parsed.actions.sum() == 0 and parsed.reasons.sum() == 0
    assert J.structure_score(text).total == 0
