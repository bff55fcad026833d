"""fp16 that cannot overflow silently (issue 37, item 4): an inf or NaN loss (or logits) stops SFT, A2C and GRPO
with a message naming the step and the remedy; trainable weights stay float32; loss scaling is on only where
the model computes in fp16 on a GPU (never on a CPU, whose numbers stay as they were)."""
import math
from functools import partial

import pytest
import torch

from drivekit.algorithms import a2c, grpo, sft
from drivekit.models import prompts
from drivekit.models.vlm import REMEDY, LoraSettings, NonFinite, fp16_compute, load_vlm, trainable_in_float32
from drivekit.rewards.structure_reward import structure_reward
from drivekit.rewards.weighted_reward import WeightedReward

from micro import items

_items = partial(items, n_frames=1)
LORA = LoraSettings(r=4)


def inf_loss_at(model, step: int):
    """A forward hook on ``model`` that makes the ``step``-th training forward's loss inf."""
    calls = []

    def hook(module, args, kwargs, output):
        if not module.training:
            return output
        calls.append(1)
        if len(calls) == step and getattr(output, "loss", None) is not None:
            output.loss = output.loss * float("inf")
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


def test_the_message_names_algorithm_step_value_and_remedy():
    assert str(NonFinite("A2C", 17, "loss", float("nan"))) == \
        f"A2C step 17: loss is nan (fp16 overflow?): {REMEDY}"
    assert REMEDY == "use compute dtype float32/bfloat16 or lower the lr"


def test_on_a_cpu_nothing_is_scaled_and_trainable_weights_are_float32(saved):
    model, _ = load_vlm(saved[0], quantize_4bit=True, lora=LORA, device="cpu")
    assert not fp16_compute(model)  # CPU: float32 compute, no loss scaler, no fp16 in trl
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    layer = torch.nn.Linear(2, 2).half()
    assert trainable_in_float32(layer) == 2 and layer.weight.dtype == torch.float32
    frozen = torch.nn.Linear(2, 2).half().requires_grad_(False)
    assert trainable_in_float32(frozen) == 0 and frozen.weight.dtype == torch.float16
    assert grpo.config(grpo.GRPOSettings(), "out").fp16 is False
    with pytest.raises(ValueError, match="fp16 loss scaling needs a GPU"):
        grpo.config(grpo.GRPOSettings(), "out", "cpu", fp16=True)


def test_sft_stops_on_an_inf_loss_naming_the_step(saved, tmp_path):
    settings = sft.SFTSettings(epochs=2, batch_size=2, grad_accum=1, lr=1e-2, lora=LORA, gradient_checkpointing=False,
                               eval_every=2, eval_batch_size=2, max_new_tokens=6)
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LORA, device="cpu", seed=0)
    inf_loss_at(model, 3)
    with pytest.raises(NonFinite, match=rf"^SFT step 3: loss is inf \(fp16 overflow\?\): {REMEDY}$"):
        sft.train(model, processor, _items(4), _items(2, seed=1), settings, tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-2"]  # step 3 saved nothing


def length_reward(completions, **batch):
    """A reward that differs between samples, so that the loss and its gradients are not 0."""
    return [len(text) / 10 for text in completions]


def a2c_trainer(saved, **changes):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LORA, device="cpu", seed=0)
    settings = a2c.A2CSettings(steps=4, batch_size=2, max_new_tokens=4, reward_mode="terminal").replace(**changes)
    return a2c.A2CTrainer(model, _items(4), lambda batch: prompts.encode(processor, [i["images"] for i in batch]),
                          lambda ids: processor.tokenizer.decode(ids, skip_special_tokens=True),
                          WeightedReward({"len": (1.0, length_reward)}), settings,
                          eos_ids=[prompts.end_of_utterance_id(processor)], pad_id=processor.tokenizer.pad_token_id,
                          progress=False)


def test_a2c_skips_an_inf_loss_then_stops_naming_the_step_and_remedy(saved, monkeypatch):
    t = a2c_trainer(saved, max_failures=2)
    real = a2c.masked_mean
    calls = []

    def policy_loss_inf_from_step_2(x, mask):  # the first masked_mean of a step is its policy loss
        out = real(x, mask)
        calls.append(1)
        return out * float("inf") if t.step_count >= 1 else out

    monkeypatch.setattr(a2c, "masked_mean", policy_loss_inf_from_step_2)
    with pytest.raises(RuntimeError, match=rf"^A2C step 3: loss is (inf|nan) \(fp16 overflow\?\): {REMEDY} "
                                           r"\(2 consecutive A2C steps failed\)$"):
        t.train(progress=False)
    log = t.log_frame()
    assert log["skipped"].tolist() == [False, True, True]
    assert log["error"].iloc[1].startswith("NonFinite: A2C step 2: loss is")


def test_a2c_stops_on_inf_logits_before_sampling(saved):
    t = a2c_trainer(saved, max_failures=1)
    _, head = a2c.body_and_head(t.model)
    head.register_forward_hook(lambda module, args, output: output * float("inf"))
    with pytest.raises(RuntimeError, match=rf"^A2C step 1: logits of sampled token 1 is (inf|nan|-inf) "
                                           rf"\(fp16 overflow\?\): {REMEDY}"):
        t.train(progress=False)


def test_grpo_stops_on_an_inf_loss_naming_the_step(micro_vlm, tmp_path):
    micro = micro_vlm(LORA, lora_b_std=0.5)
    model, processor = load_vlm(micro.model, quantize_4bit=True, adapter=micro.adapter, trainable=True, device="cpu")
    settings = grpo.GRPOSettings(steps=3, clips_per_step=1, num_generations=2, max_completion_length=4,
                                 checkpoint_every=1)
    trainer = grpo.build_trainer(model, processor, _items(2), WeightedReward({"r3": (1.0, structure_reward)}),
                                 settings, tmp_path)
    compute_loss = trainer.compute_loss

    def inf_at_step_2(*args, **kwargs):
        loss = compute_loss(*args, **kwargs)
        return loss * float("inf") if trainer.state.global_step == 1 else loss

    trainer.compute_loss = inf_at_step_2
    with pytest.raises(NonFinite, match=rf"^GRPO step 2: loss is (inf|nan) \(fp16 overflow\?\): {REMEDY}$"):
        grpo.train(trainer)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-1"]  # nothing saved from step 2


def test_a2c_with_a_loss_scaler_skips_an_overflowing_step_and_lowers_the_scale(saved):
    """The fp16 path's logic, run on the CPU with a scaler forced on: a scale so high that the gradients
    overflow skips the update (weights unchanged, not a failure) and halves the scale; then steps go on."""
    t = a2c_trainer(saved, steps=2, max_failures=1)
    assert not t.scaler.is_enabled()  # a CPU: no loss scaling
    t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127, growth_interval=1000)
    before = [p.detach().clone() for p in t.policy_params]
    row = t.step()
    assert row["skipped"] and row["error"] == "fp16 gradient overflow: loss scale lowered to 8.50706e+37"
    assert t.failures == 0 and all(torch.equal(a, p) for a, p in zip(before, t.policy_params))
    t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    row = t.step()
    assert not row["skipped"] and math.isfinite(row["grad_norm"]) and t.scaler.get_scale() == 2.0 ** 8
    assert not all(torch.equal(a, p) for a, p in zip(before, t.policy_params))
