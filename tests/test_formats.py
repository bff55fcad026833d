
import numpy as np
import pytest

from drivekit.core import taxonomy
from drivekit.text.formats import _LOOKUP, parse_many, parse_text, target_text


def one_hot(size, *indices):
    v = np.zeros(size, dtype=int)
    v[list(indices)] = 1
    return v


def act(*i):
    return one_hot(taxonomy.N_ACTIONS, *i)


def rsn(*i):
    return one_hot(taxonomy.N_REASONS, *i)


def test_target_text_format():
    assert target_text(act(0, 2), rsn(0, 10)) == (
        "Action: Move forward | Turn left; Reason: Follow traffic | On the left-turn lane"
    )
    assert target_text(act(1), rsn()) == "Action: Stop/Slow down; Reason: none"
    assert target_text([0, 0, 0, 0], rsn(7)) == "Action: none; Reason: Traffic light"


@pytest.mark.parametrize(
    "actions, reasons",
    [([1, 0, 0], rsn()), (act(0), rsn()[:-1]), (act(0) * 2, rsn()), ([[1, 0, 0, 0]], rsn())],
)
def test_target_text_rejects_bad_vectors(actions, reasons):
    with pytest.raises(ValueError):
        target_text(actions, reasons)


def test_phrases_stay_distinct_after_normalisation():
    assert len(_LOOKUP["action"]) == taxonomy.N_ACTIONS
    assert len(_LOOKUP["reason"]) == taxonomy.N_REASONS


@pytest.mark.parametrize("a", range(taxonomy.N_ACTIONS))
def test_round_trip_every_action_reason_pair(a):
    for r in range(taxonomy.N_REASONS):
        parsed = parse_text(target_text(act(a), rsn(r)))
        assert parsed.ok, parsed.problems
        np.testing.assert_array_equal(parsed.actions, act(a))
        np.testing.assert_array_equal(parsed.reasons, rsn(r))


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random_multi_label(seed):
    rng = np.random.default_rng(seed)
    for density in (0.05, 0.3, 0.8):
        actions = (rng.random((100, taxonomy.N_ACTIONS)) < density).astype(int)
        reasons = (rng.random((100, taxonomy.N_REASONS)) < density).astype(int)
        texts = [target_text(a, r) for a, r in zip(actions, reasons)]
        got_a, got_r, ok = parse_many(texts)
        assert ok.all()
        np.testing.assert_array_equal(got_a, actions)
        np.testing.assert_array_equal(got_r, reasons)


@pytest.mark.parametrize(
    "text, actions, reasons",
    [
        ("action: move FORWARD;   reason:  road is clear", act(0), rsn(1)),
        ("Action: Stop / slow-down; Reason: Obstacle : car.", act(1), rsn(3)),
        ("  Action: Turn right; Reason: Traffic light allows(right)!\n\n", act(3), rsn(14)),
        ("Action: Move forward; Reason: Follow traffic<end_of_utterance>", act(0), rsn(0)),
        ("Action: Move forward; Reason: Follow traffic</s><|im_end|>", act(0), rsn(0)),
        ("Action: Turn left\nReason: No lane on the right", act(2), rsn(19)),
        ("Reason: Traffic sign; Action: Stop/Slow down", act(1), rsn(8)),
        ("Actions: Move forward, Turn left; Reasons: Follow traffic; Road is clear |", act(0, 2), rsn(0, 1)),
        ("**Action:** Move forward; **Reason:** Traffic light is green", act(0), rsn(2)),
        ("Action: Move forward; Reason: NONE.", act(0), rsn()),
    ],
)
def test_tolerated_variants(text, actions, reasons):
    parsed = parse_text(text)
    assert parsed.ok, parsed.problems
    np.testing.assert_array_equal(parsed.actions, actions)
    np.testing.assert_array_equal(parsed.reasons, reasons)


@pytest.mark.parametrize(
    "reason_text, expected",
    [
        ("Traffic light", rsn(7)),
        ("Traffic light is green", rsn(2)),
        ("Traffic light allows (left)", rsn(11)),
        ("Traffic light allows (right) | Traffic light", rsn(7, 14)),
        ("Obstacle: others", rsn(6)),
    ],
)
def test_whole_phrases_not_prefixes(reason_text, expected):
    parsed = parse_text(f"Action: Stop/Slow down; Reason: {reason_text}")
    assert parsed.ok, parsed.problems
    np.testing.assert_array_equal(parsed.reasons, expected)


@pytest.mark.parametrize(
    "text, actions, reasons, problem",
    [
        ("Action: Move forward; Reason: Traffic light is red", act(0), rsn(), "unknown reason"),
        ("Action: Move forward; Reason: Traffic light is", act(0), rsn(), "unknown reason 'traffic light is'"),
        ("Action: Stop; Reason: Traffic light", act(), rsn(7), "unknown action 'stop'"),
        ("Action: Turn left | Turn left; Reason: none", act(2), rsn(), "repeated action 'turn left'"),
        ("Action: Move forward", act(0), rsn(), "no 'Reason:' field"),
        ("Reason: Road is clear", act(), rsn(1), "no 'Action:' field"),
        ("Action: ; Reason: Follow traffic", act(), rsn(0), "empty action field"),
        ("Assistant: Action: Move forward; Reason: none", act(0), rsn(), "ignored text 'assistant'"),
        ("Action: Move forward; Reason: none\nbecause it is clear", act(0), rsn(), "ignored text 'because"),
        ("Action: Turn left; Reason: none Action: Stop", act(2), rsn(), "ignored text 'action stop'"),
    ],
)
def test_problems_are_reported_and_the_rest_kept(text, actions, reasons, problem):
    parsed = parse_text(text)
    assert not parsed.ok
    assert any(p.startswith(problem) for p in parsed.problems), parsed.problems
    np.testing.assert_array_equal(parsed.actions, actions)
    np.testing.assert_array_equal(parsed.reasons, reasons)


def test_many_unknown_phrases_are_summarised():
    parsed = parse_text("Action: Move forward; Reason: " + " | ".join(f"thing {i}" for i in range(100)))
    assert len(parsed.problems) == 6
    assert parsed.problems[-1] == "... and 95 more: unknown reason"


MB = 2**20
GARBAGE = {
    "none": None,
    "int": 42,
    "empty": "",
    "whitespace": " \n\t  \r\n",
    "bytes": b"\xff\xfe garbage",
    "words": "The car in front is red and the sky is blue.",
    "eos only": "<end_of_utterance>",
    "1 MB letters": "x" * MB,
    "1 MB words": "lorem ipsum dolor " * (MB // 18),
    "1 MB labels": "Action:" * (MB // 7),
    "1 MB open tags": "<" * MB,
    "1 MB spaces after label": "action" + " " * MB,
    "1 MB near-phrases": "Reason: " + "Obstacle: cars | " * (MB // 17),
}


@pytest.mark.parametrize("name", GARBAGE)
def test_garbage_parses_to_empty_labels_with_a_reason(name):
    parsed = parse_text(GARBAGE[name])
    assert not parsed.actions.any()
    assert not parsed.reasons.any()
    assert parsed.actions.shape == (taxonomy.N_ACTIONS,) and parsed.reasons.shape == (taxonomy.N_REASONS,)
    assert not parsed.ok and parsed.problems
    assert all(len(p) < 200 for p in parsed.problems)


def test_parse_many_shapes():
    actions, reasons, ok = parse_many(["Action: Turn right; Reason: On the right-turn lane", "junk", None])
    assert actions.shape == (3, 4) and reasons.shape == (3, 21)
    np.testing.assert_array_equal(ok, [True, False, False])
    np.testing.assert_array_equal(actions[0], act(3))
    np.testing.assert_array_equal(reasons[0], rsn(13))
    empty = parse_many([])
    assert empty[0].shape == (0, 4) and empty[1].shape == (0, 21) and empty[2].shape == (0,)
