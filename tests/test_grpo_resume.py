"""GRPO resumes (issue 37, item 5): a run cut off after a checkpoint and resumed in a fresh trainer ends with the
same adapter as an uninterrupted one; a checkpoint of other settings, or a half-written one, is not resumed."""
from dataclasses import replace
from functools import partial

import pytest
import torch
from transformers import TrainerCallback

from drivekit.algorithms import checkpoints, grpo
from drivekit.models.vlm import LoraSettings, load_vlm
from drivekit.rewards.structure_reward import structure_reward
from drivekit.rewards.weighted_reward import WeightedReward

from micro import items

_items = partial(items, n_frames=1)
SETTINGS = grpo.GRPOSettings(steps=4, clips_per_step=2, num_generations=4, lr=5e-2, lr_schedule="linear", kl_coef=0.1,
                             max_completion_length=6, checkpoint_every=2, keep_checkpoints=2)


def length_reward(completions, **batch):
    return [float(len(str(c[0]["content"] if isinstance(c, list) else c))) / 10 for c in completions]


REWARD = WeightedReward({"r3": (0.5, structure_reward), "len": (1.0, length_reward)})


@pytest.fixture(scope="module")
def start_adapter(micro_vlm):
    micro = micro_vlm(LoraSettings(r=4), lora_b_std=0.5)
    return micro.model, micro.adapter


class StopAt(TrainerCallback):
    """Ends training after step ``step`` (its checkpoint saved), as a disconnect right after it would."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def trainer(start_adapter, out, settings=SETTINGS):
    base, adapter = start_adapter
    model, processor = load_vlm(base, quantize_4bit=True, adapter=adapter, trainable=True, device="cpu")
    t = grpo.build_trainer(model, processor, _items(4), REWARD, settings, out)
    from transformers.trainer_callback import ProgressCallback

    t.remove_callback(ProgressCallback)
    return t


def adapter_weights(t) -> dict:
    return {n: p.detach().clone() for n, p in t.model.named_parameters() if "lora_" in n and ".default." in n}


def test_a_cut_grpo_run_resumes_to_the_adapter_of_an_uninterrupted_one(start_adapter, tmp_path):
    whole = trainer(start_adapter, tmp_path / "whole")
    grpo.train(whole)
    assert [p.name for p in checkpoints.listed(tmp_path / "whole", grpo.CHECKPOINT_STATE)] == \
        ["checkpoint-2", "checkpoint-4"]

    cut = trainer(start_adapter, tmp_path / "cut")
    cut.add_callback(StopAt(2))
    grpo.train(cut)
    assert cut.state.global_step == 2
    assert checkpoints.latest(tmp_path / "cut", grpo.CHECKPOINT_STATE).name == "checkpoint-2"
    del cut

    resumed = trainer(start_adapter, tmp_path / "cut")  # a fresh process's trainer, from the start adapter
    grpo.train(resumed)
    assert resumed.state.global_step == 4
    a, b = adapter_weights(whole), adapter_weights(resumed)
    assert a.keys() == b.keys() and a
    # transformers restores the optimiser, schedule, step, data order and the python/numpy/torch random
    # states of the checkpoint: sampling after the resume draws what the whole run drew, so bit-identical
    assert all(torch.equal(a[k], b[k]) for k in a), max((a[k] - b[k]).abs().max().item() for k in a)
    log_whole, log_resumed = grpo.log_frame(whole), grpo.log_frame(resumed)
    assert log_resumed["step"].tolist()[-2:] == [3, 4]
    assert log_resumed["reward"].tolist()[-2:] == log_whole["reward"].tolist()[-2:]


def test_a_checkpoint_of_other_settings_is_refused_with_the_file_named(start_adapter, tmp_path):
    settings = replace(SETTINGS, steps=2)
    grpo.train(trainer(start_adapter, tmp_path, settings))
    state = tmp_path / "checkpoint-2" / grpo.CHECKPOINT_STATE
    assert checkpoints.read_state(state)["step"] == 2
    assert grpo.resumable(tmp_path, settings) and not grpo.resumable(tmp_path, replace(settings, lr=1e-3))
    other = trainer(start_adapter, tmp_path, replace(settings, lr=1e-3))
    with pytest.raises(ValueError, match=f"{state}: written with lr=0.05, this run has 0.001"):
        grpo.train(other)
    assert other.state.global_step == 0
    # a checkpoint whose state was never written (killed while saving) does not count; resume=False starts afresh
    state.unlink()
    assert checkpoints.latest(tmp_path, grpo.CHECKPOINT_STATE) is None and not grpo.resumable(tmp_path, settings)
