"""A2C and a reward that gives no signal (``None``, trl's convention): those answers are left out of every loss."""
import numpy as np
import torch

from drivekit.algorithms import a2c
from drivekit.rewards.weighted_reward import WeightedReward
from test_rl import EOS, PAD, clips, decode, make_inputs, trainer


def silent_on_odd_clips(completions, file_name, **batch):
    return [None if int(f.removeprefix("clip")) % 2 else 1.0 for f in file_name]


def test_rows_the_reward_is_silent_on_are_nan_in_both_modes():
    t = trainer(reward=WeightedReward({"v": (1.0, silent_on_odd_clips)}))
    roll = a2c.rollout(t.model, None, make_inputs(clips(4)), max_new_tokens=4, eos_ids=[EOS], pad_id=PAD,
                      generator=torch.Generator().manual_seed(0))
    names = {"file_name": ["clip0", "clip1", "clip2", "clip3"]}
    for mode in ("terminal", "incremental"):
        r, result = a2c.per_token_rewards(t.reward, roll.tokens, roll.mask, decode, names, mode, "token")
        assert np.isnan(r[[1, 3]]).all() and not np.isnan(r[[0, 2]]).any()
        assert list(result.abstained) == [False, True, False, True]


def test_a_step_with_no_signal_leaves_the_policy_and_the_critic_as_they_were():
    t = trainer(reward=WeightedReward({"v": (1.0, lambda c, **b: [None] * len(c))}), kl_coef=0.0,
                normalize_advantages=False)
    torch.nn.init.constant_(t.value_head.net[-1].bias, 1.0)  # a critic expecting 1: a reward of 0 would teach
    before = {n: p.detach().clone() for n, p in t.model.named_parameters() if p.requires_grad}
    head = [p.detach().clone() for p in t.value_head.parameters()]
    row = t.step()
    assert not row["skipped"] and row["policy_loss"] == row["value_loss"] == 0.0
    assert all(torch.equal(p, before[n]) for n, p in t.model.named_parameters() if p.requires_grad)
    assert all(torch.equal(p, q) for p, q in zip(t.value_head.parameters(), head))
    moved = trainer(reward=WeightedReward({"v": (1.0, silent_on_odd_clips)}), kl_coef=0.0,
                    normalize_advantages=False)
    start = {n: p.detach().clone() for n, p in moved.model.named_parameters() if p.requires_grad}
    row = moved.step()
    assert row["value_loss"] > 0 and row["reward"] == 1.0  # the mean over the answers scored
    assert any(not torch.equal(p, start[n]) for n, p in moved.model.named_parameters() if p.requires_grad)
