import json

import numpy as np
import pytest

from drivekit.rewards.weighted_reward import OnJson, RewardSettings, WeightedReward, make_reward
from drivekit.text.json_output import json_target, json_target_for
from drivekit.core.taxonomy import N_ACTIONS, N_REASONS

ACTIONS, REASONS = np.eye(N_ACTIONS, dtype=int)[1], np.eye(N_REASONS, dtype=int)[3]
GOOD = json_target(ACTIONS, REASONS, "The car ahead is stopped close to us.")
BATCH = dict(file_name=["a.jpg"], actions=[ACTIONS], reasons=[REASONS])


class Recorder:
    """A reward that records what it was asked and scores each text by its length."""

    def __init__(self):
        self.seen = []

    def __call__(self, completions, **batch):
        self.seen.append((list(completions), batch))
        return [float(len(c)) for c in completions]


def test_views_feed_the_right_text():
    r1, r2 = Recorder(), Recorder()
    reward = make_reward(RewardSettings(), r1, target="json")
    reward.terms["r2"] = (1.0, OnJson(r2, "labels"))  # a recorder in place of the label-F1 R2, behind the same view
    result = reward.evaluate([GOOD, "not json"], file_name=["a.jpg", "b.jpg"],
                             actions=[ACTIONS, ACTIONS], reasons=[REASONS, REASONS])
    assert r1.seen[0][0] == ["The car ahead is stopped close to us. Stop/Slow down because of obstacle: car."]
    assert r1.seen[0][1]["file_name"] == ["a.jpg"]  # only the valid JSON reaches the inner rewards
    assert r2.seen[0][0] == ["Action: Stop/Slow down; Reason: Obstacle: car"]
    assert result.components["r3"].tolist() == [1.0, 0.0]
    assert result.components["r1"][1] == 0 and result.components["r2"][1] == 0


def test_label_f1_r2_and_weights():
    reward = make_reward(RewardSettings(r2_weight=2, r3_weight=0.5), target="json")
    assert isinstance(reward, WeightedReward)
    wrong = json.loads(GOOD)
    wrong["actions"] = ["Move forward"]
    result = reward.evaluate([GOOD, json.dumps(wrong)], **{k: v * 2 for k, v in BATCH.items()})
    assert result.components["r2"][0] == pytest.approx(1.0)
    assert result.components["r2"][1] == pytest.approx(0.5)  # reasons right, action wrong
    assert result.total[0] == pytest.approx(2 * 1.0 + 0.5 * 1.0)
    assert "r1" not in result.components


def test_json_targets_use_scene_text_or_labels():
    item = dict(name="x.jpg", actions=ACTIONS, reasons=REASONS)
    assert json.loads(json_target_for(item, {"x.jpg": "Scene."}))["scene"] == "Scene."
    assert json.loads(json_target_for(item, {}))["scene"] == "The scene shows: obstacle: car."


def test_a_number_too_long_to_read_scores_0_and_the_batch_goes_on():
    from drivekit.rewards.structure_reward import structure_reward

    long_number = "9" * 4301  # json.loads raises ValueError past Python's int max str digits
    bad = GOOD.replace('"The car ahead is stopped close to us."', long_number)
    assert bad != GOOD
    texts = [GOOD, bad, f"[{long_number}]", GOOD]
    assert structure_reward(texts) == [1.0, 0.0, 0.0, 1.0]
    reward = make_reward(RewardSettings(r2_weight=1, r3_weight=1), target="json")
    result = reward.evaluate(texts, file_name=list("abcd"), actions=[ACTIONS] * 4, reasons=[REASONS] * 4)
    alone = reward.evaluate([GOOD], **BATCH)
    assert result.components["r3"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert result.components["r2"].tolist() == [alone.components["r2"][0], 0.0, 0.0, alone.components["r2"][0]]
    assert result.total[[1, 2]].tolist() == [0.0, 0.0] and result.total[0] == result.total[3] == alone.total[0]


def test_a_plain_answer_is_well_formed_with_an_action_and_a_reason_and_nothing_else():
    from drivekit.rewards.structure_reward import no_action, no_reason, well_formed
    from drivekit.text.formats import target_text

    right = target_text(ACTIONS, REASONS)
    assert well_formed(right) and well_formed(right + "<end_of_utterance>")
    for broken in ("Action: Stop/Slow down", "Action: Stop/Slow down; Reason: none", right + " because", "",
                   None, b"\xff", "Reason: Obstacle: car"):
        assert not well_formed(broken)
    texts = [right, "Action: Stop/Slow down", "Reason: Obstacle: car", "nothing"]
    assert no_action(texts) == [0.0, 0.0, 1.0, 1.0] and no_reason(texts) == [0.0, 1.0, 0.0, 1.0]
