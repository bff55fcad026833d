"""R2 variants (BLEU, label F1, LLM judge) and the weighted reward sum (drivekit.rewards.action_reward)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drivekit.rewards import action_reward as ar
from drivekit.rewards import weighted_reward as wr
from drivekit.text.formats import target_text

FORWARD_FOLLOW = (np.eye(4, dtype=int)[0], np.eye(21, dtype=int)[0])  # Move forward; Follow traffic
STOP_CAR = (np.eye(4, dtype=int)[1], np.eye(21, dtype=int)[3])  # Stop/Slow down; Obstacle: car


def batch_of(*labels):
    return dict(actions=[a for a, _ in labels], reasons=[r for _, r in labels])


def test_bleu_is_thresholded_at_one_half():
    truth = target_text(*FORWARD_FOLLOW)
    completions = [truth, "Action: Stop/Slow down; Reason: Obstacle: car", "", "Action: Move forward; Reason: Road is clear"]
    scores = ar.action_reward("bleu")(completions, **batch_of(*[FORWARD_FOLLOW] * 4))
    assert scores == [1.0, 0.0, 0.0, 1.0]  # the last: right action, wrong reason (BLEU 0.64), as the proposal's R2
    raw = ar.action_reward("bleu_raw")(completions, **batch_of(*[FORWARD_FOLLOW] * 4))
    assert raw[0] == pytest.approx(1.0) and 0 < raw[1] < 0.5 and raw[2] == 0.0 and 0.5 < raw[3] < 1


def test_bleu_truth_from_target_column_and_tensors():
    truth = target_text(*STOP_CAR)
    assert ar.action_reward("bleu")([truth], target=[truth]) == [1.0]
    tensors = dict(actions=[torch.tensor(STOP_CAR[0])], reasons=[torch.tensor(STOP_CAR[1])])
    assert ar.action_reward("bleu")([truth], **tensors) == [1.0]
    with pytest.raises(ValueError, match="ground truth"):
        ar.action_reward("bleu")([truth])


def test_label_f1():
    f1 = ar.action_reward("label_f1")
    completions = [
        target_text(*FORWARD_FOLLOW),  # both right
        "Action: Move forward; Reason: Road is clear",  # action right, reason wrong
        "Action: Move forward | Stop/Slow down; Reason: Follow traffic",  # one extra action: F1 2/3
        "total garbage",
        "",
    ]
    scores = f1(completions, **batch_of(*[FORWARD_FOLLOW] * 5))
    assert scores == pytest.approx([1.0, 0.5, 0.5 * 2 / 3 + 0.5, 0.0, 0.0])


@pytest.mark.parametrize("text, score", [
    ("0.7", 0.7), (" 7", 0.7), ("7/10", 0.7), ("7 out of 10", 0.7), ("70%", 0.7), ("85", 0.85),
    ("Score: 1", 1.0), ("10", 1.0), ("-3", 0.0), ("250", 1.0), ("3/5 because", 0.6), (".5", 0.5),
    ("no idea", None), ("", None), (None, None), ("nan", None),
])
def test_parse_score(text, score):
    parsed = ar.parse_score(text)
    assert parsed == (None if score is None else pytest.approx(score))


def test_split_explanation():
    assert ar.split_explanation("Action: Move forward; Reason: Follow traffic") == ("Move forward", "Follow traffic")
    assert ar.split_explanation("The road is clear and wide.") == ("The road is clear and wide.", "")


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    """A randomly initialised causal LM with a word-level tokenizer, saved like any local judge."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<eos>", "Explanation", "Reason", "Score", ":", ";", "Move", "forward", "Follow",
             "traffic", "Stop", "car", *"0123456789", ".", "/"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(True),
                                                 pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         pad_token_id=1, eos_token_id=2, bos_token_id=2))
    folder = tmp_path_factory.mktemp("judge")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_judge_plumbing_with_a_tiny_random_lm(tiny_judge_dir):
    judge = ar.action_reward("judge", model=str(tiny_judge_dir), max_new_tokens=3)
    assert judge.prompts(["Action: Move forward; Reason: Follow traffic"]) == [
        "Explanation: Move forward\nReason: Follow traffic\nScore:"]
    completions = ["Action: Move forward; Reason: Follow traffic", "Action: Stop; Reason: car", "Move"]
    scores = judge(completions)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
    assert judge(completions) == scores  # greedy: deterministic
    assert judge.digit_ids is not None and len(judge.digit_ids) == 10


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown R2"):
        ar.action_reward("rouge")


# ---------------------------------------------------------------------------------------------
# The weighted sum
# ---------------------------------------------------------------------------------------------
def test_weighted_sum_components_and_empty_completions():
    seen = []

    def five(completions, **batch):
        seen.append((list(completions), dict(batch)))
        return [5.0] * len(completions)

    reward = wr.make_reward(wr.RewardSettings(r1_weight=0.5, r2_weight=2.0, r2="label_f1"), five)
    completions = [target_text(*FORWARD_FOLLOW), "   ", ""]
    batch = dict(file_name=["a", "b", "c"], **batch_of(FORWARD_FOLLOW, FORWARD_FOLLOW, STOP_CAR))
    result = reward.evaluate(completions, **batch)
    assert result.components["r1"].tolist() == [5.0, 0.0, 0.0]  # empty completions score 0 ...
    assert result.components["r2"].tolist() == [1.0, 0.0, 0.0]
    assert result.total.tolist() == [0.5 * 5 + 2 * 1, 0.0, 0.0]
    assert result.empty == 2
    assert seen[0][0] == [completions[0]] and seen[0][1]["file_name"] == ["a"]  # ... and are never scored
    assert reward(completions, **batch) == result.total.tolist()  # trl signature: the total


def test_weighted_sum_catches_non_finite_scores():
    reward = wr.WeightedReward({"r": (1.0, lambda c, **b: [math.nan, math.inf, 0.25])})
    result = reward.evaluate(["a", "b", "c"])
    assert result.total.tolist() == [0.0, 0.0, 0.25] and result.nonfinite == {"r": 2}
    assert reward.nonfinite_total == 2


def test_weights_change_and_zero_weight_is_not_evaluated():
    calls = []
    reward = wr.WeightedReward({"a": (1.0, lambda c, **b: calls.append("a") or [1.0] * len(c)),
                                "b": (0.0, lambda c, **b: calls.append("b") or [1.0] * len(c))})
    assert reward(["x"]) == [1.0] and calls == ["a"]
    reward.set_weight("b", 3.0)
    assert reward(["x"]) == [4.0] and reward.weights == {"a": 1.0, "b": 3.0}


def test_a_third_term_slots_in():
    from drivekit.rewards.structure_reward import structure_reward

    reward = wr.WeightedReward({"r2": (1.0, ar.action_reward("bleu")), "r3": (0.5, structure_reward)})
    result = reward.evaluate(["{}"], **batch_of(FORWARD_FOLLOW))
    assert set(result.components) == {"r2", "r3"} and np.isfinite(result.total).all()


def test_a_reward_needs_a_term_and_a_known_target():
    with pytest.raises(ValueError, match="at least one term"):
        wr.make_reward(wr.RewardSettings(r2=None))
    with pytest.raises(ValueError, match="target must be one of"):
        wr.make_reward(wr.RewardSettings(), target="yaml")


def test_profiles_reward_defaults():
    from drivekit.core import config

    assert config.profile_defaults(wr.RewardSettings, config.load("tiny")).r2 == "label_f1"
    assert config.profile_defaults(wr.RewardSettings, config.load("paper")).r2 == "bleu"  # the proposal's R2


def _answer(action: int, reason: int) -> str:
    a, r = [0] * 4, [0] * 21
    a[action], r[reason] = 1, 1
    return target_text(a, r)


def test_majority_vote_rewards_agreement_with_the_clips_majority_and_reads_no_label():
    vote = ar.action_reward("majority")
    stop, go, left = _answer(1, 3), _answer(0, 0), _answer(2, 8)
    completions = [stop, stop, go, stop, "garbage", left, "garbage", "garbage"]
    clips = ["a", "a", "a", "a", "b", "b", "c", "c"]
    scores = vote(completions, file_name=clips)  # no actions / reasons columns
    assert scores[:4] == [1.0, 1.0, 0.0, 1.0]  # a: stop wins 3 to 1
    assert scores[4:6] == [0.0, 1.0]  # b: the one answer that parses is the majority; garbage scores 0
    assert scores[6:] == [0.0, 0.0]  # c: nothing parses, no majority
    assert set(vote.votes[0]) == {"a", "b"} and vote.votes[0]["a"] == ((0, 1, 0, 0), tuple(int(i == 3) for i in range(21)))
    half = vote([_answer(1, 3), _answer(1, 4)], name=["x", "x"])  # a tie: the earliest; right action, wrong reason
    assert half == [1.0, 0.5] and len(vote.votes) == 2
    with pytest.raises(ValueError, match="file_name"):
        vote([stop], actions=[[0, 1, 0, 0]])
    assert "majority" in ar.LABEL_FREE and "label_f1" not in ar.LABEL_FREE


# ---------------------------------------------------------------------------------------------
# Issue 34: a confident vote, a reward gated by the answer's form, monitors and "no signal"
# ---------------------------------------------------------------------------------------------
RIGHT, OTHER = target_text(*FORWARD_FOLLOW), target_text(*STOP_CAR)


def test_a_confident_vote_speaks_only_where_enough_answers_agree():
    vote = ar.action_reward("majority", min_agree=3)
    clips = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    answers = [RIGHT, RIGHT, RIGHT, OTHER,  # 3 of 4: the majority
               RIGHT, RIGHT, OTHER, "garbage",  # 2 of the 3 that parse: below the threshold
               "x", "y", "z", ""]  # nothing parses
    scores = vote(answers, file_name=clips)
    assert scores[:4] == [1.0, 1.0, 1.0, 0.0] and scores[4:] == [None] * 8
    assert vote.votes == [{"a": (tuple(FORWARD_FOLLOW[0]), tuple(FORWARD_FOLLOW[1])), "b": None, "c": None}]
    tie = ar.action_reward("majority", min_agree=2)([RIGHT, RIGHT, OTHER, OTHER], file_name=["a"] * 4)
    assert tie == [None] * 4  # two answers as frequent as each other: no signal
    plain = ar.action_reward("majority")  # issue 25's vote: the earliest of equals, never silent
    assert plain([RIGHT, RIGHT, OTHER, OTHER], file_name=["a"] * 4) == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="min_agree"):
        ar.action_reward("majority", min_agree=0)


def test_a_gated_reward_gives_a_broken_answer_its_minimum_without_asking():
    asked = []

    def length(completions, **batch):
        asked.append((list(completions), batch))
        return [float(len(c)) for c in completions]

    gated = wr.GatedReward(length, floor=-1.0)
    answers = [RIGHT, "Action: Move forward", "Action: Move forward; Reason: none", RIGHT + " and more", "", OTHER]
    scores = gated(answers, file_name=list("abcdef"))
    assert scores == [float(len(RIGHT)), -1.0, -1.0, -1.0, -1.0, float(len(OTHER))]
    assert asked == [([RIGHT, OTHER], {"file_name": ["a", "f"]})]  # only the well-formed, with their columns
    assert gated.__name__ == "length_gated"
    assert wr.GatedReward(lambda c, **b: [None] * len(c), 0.0)([RIGHT, "x"]) == [None, 0.0]  # no signal passes


def test_monitors_are_logged_at_no_weight_and_no_signal_is_abstention():
    from drivekit.rewards.structure_reward import FORMAT_MONITORS

    def silent_on_b(completions, file_name, **batch):
        return [None if f == "b" else 1.0 for f in file_name]

    reward = wr.WeightedReward({"v": (2.0, silent_on_b)}, FORMAT_MONITORS)
    result = reward.evaluate([RIGHT, "Action: Stop/Slow down", RIGHT, ""], file_name=["a", "a", "b", "a"])
    assert list(result.total) == [2.0, 2.0, 0.0, 0.0] and list(result.abstained) == [False, False, True, False]
    # the monitors see every completion, the empty one too
    assert list(result.components["no_action"]) == [0.0, 0.0, 0.0, 1.0]
    assert list(result.components["no_reason"]) == [0.0, 1.0, 0.0, 1.0]
    s = result.summary()
    assert s["reward"] == pytest.approx(4 / 3) and s["reward_no_reason"] == 0.5  # over the 3 answers scored
    assert s["reward_v"] == pytest.approx(2 / 3)  # not over the silent one (the empty one scores 0 unasked)
    assert reward.weights["no_action"] == 0.0 and reward([RIGHT], file_name=["a"]) == [2.0]
    with pytest.raises(ValueError, match="monitor"):
        reward.set_weight("no_action", 1.0)
    with pytest.raises(ValueError, match="names of reward terms"):
        wr.WeightedReward({"no_action": (1.0, silent_on_b)}, FORMAT_MONITORS)
    nan = wr.WeightedReward({"v": (1.0, lambda c, **b: [float("nan")] * len(c))})
    bad = nan.evaluate([RIGHT])
    assert bad.total[0] == 0.0 and not bad.abstained[0] and bad.nonfinite == {"v": 1}  # NaN is an error, not silence
