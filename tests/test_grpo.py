"""GRPO through trl (drivekit.algorithms.grpo) on a saved micro Idefics3 (``micro_vlm``), with drivekit's rewards."""
from functools import partial

import numpy as np
import pytest
import torch

from drivekit.algorithms import grpo
from drivekit.rewards.action_reward import action_reward
from drivekit.rewards.structure_reward import structure_reward
from drivekit.rewards.weighted_reward import WeightedReward
from drivekit.models.vlm import LoraSettings, load_vlm

from micro import items

_items = partial(items, n_frames=2)  # two frames a clip unless a test says otherwise


@pytest.fixture(scope="module")
def start_adapter(micro_vlm):
    """A saved micro model and a saved LoRA adapter on it (the 'SFT best' GRPO starts from), its
    lora_B drawn at random: a non-trivial start, unlike a fresh adapter."""
    micro = micro_vlm(LoraSettings(r=4), lora_b_std=0.5)
    return micro.model, micro.adapter


def length_reward(completions, **batch):
    """A reward that varies between samples of one clip, so every group has a learning signal."""
    return [float(len(str(c[0]["content"] if isinstance(c, list) else c))) / 10 for c in completions]


def test_dataset_rows_carry_the_images_only_prompt_and_the_reward_columns():
    items = _items(2)
    rows = grpo.dataset(items)
    assert rows[0]["prompt"] == [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}]
    assert len(rows[0]["images"]) == 2 and rows[0]["file_name"] == "clip0.jpg"
    assert np.array_equal(np.asarray(rows[0]["images"][1]), np.asarray(items[0]["images"][1]))  # lossless
    assert rows[0]["actions"] == items[0]["actions"].tolist() and len(rows[0]["reasons"]) == 21


def test_grpo_trains_the_adapter_against_a_frozen_copy_of_it(start_adapter, tmp_path):
    base, adapter = start_adapter
    model, processor = load_vlm(base, quantize_4bit=True, adapter=adapter, trainable=True, device="cpu")
    settings = grpo.GRPOSettings(steps=2, clips_per_step=2, num_generations=4, lr=5e-2, lr_schedule="linear",
                                 kl_coef=0.1, max_completion_length=6)
    reward = WeightedReward({"r2": (1.0, action_reward("label_f1")), "r3": (0.5, structure_reward),
                             "len": (1.0, length_reward)})
    trainer = grpo.build_trainer(model, processor, _items(4), reward, settings, tmp_path)
    assert trainer.args.reward_weights == [1.0, 0.5, 1.0]  # the same object A2C takes, weights and all
    lora = {n: p for n, p in trainer.model.named_parameters() if "lora_" in n}
    assert all(p.dtype == torch.float32 for p in lora.values())  # cast back from trl's bf16
    start = {n: p.detach().clone() for n, p in lora.items()}
    trainer.train()
    log = grpo.log_frame(trainer)
    assert log["step"].tolist() == [1, 2]
    for column in ("reward", "reward_std", "frac_reward_zero_std", "kl", "rewards/length_reward/mean",
                   "rewards/r2_label_f1/mean", "rewards/structure_reward/mean"):
        assert column in log and log[column].notna().all(), column
    assert log["kl"].iloc[0] == 0.0  # dropout off, and π_ref is exactly the start adapter
    lr = log["learning_rate"].tolist()
    assert lr[0] > lr[1] and max(lr) <= settings.lr  # lr_schedule="linear": trl's linear decay to 0
    moved = [n for n in start if ".default." in n and not torch.equal(start[n], lora[n])]
    frozen = [n for n in start if ".ref." in n and torch.equal(start[n], lora[n])]
    assert moved and frozen and len(frozen) == sum(".ref." in n for n in start)


def test_an_unknown_lr_schedule_is_refused_before_training(tmp_path):
    assert grpo.config(grpo.GRPOSettings(lr_schedule="linear"), tmp_path).lr_scheduler_type == "linear"
    with pytest.raises(ValueError, match="lr_schedule must be .constant. or .linear., not 'cosine'"):
        grpo.config(grpo.GRPOSettings(lr_schedule="cosine"), tmp_path)
