"""No image or other special token is ever sampled (issue 37, item 6), in A2C and in GRPO: with the micro model's
logits pushed toward those tokens, the completions hold none of them (only the end token may end them)."""
from functools import partial

import pytest
import torch

from drivekit.algorithms import a2c, grpo
from drivekit.models import prompts
from drivekit.models.vlm import LoraSettings, banned_token_ids, load_vlm, unsampleable_token_ids
from drivekit.rewards.weighted_reward import WeightedReward

from micro import items

_items = partial(items, n_frames=1)
IMAGE_TOKENS = ("<image>", "<fake_token_around_image>", "<global-img>", "<row_1_col_1>", "<row_2_col_3>")


@pytest.fixture(scope="module")
def policy(micro_vlm):
    micro = micro_vlm(LoraSettings(r=4), lora_b_std=0.5)
    return load_vlm(micro.model, quantize_4bit=True, adapter=micro.adapter, trainable=True, device="cpu")


def push_toward(model, ids, by: float = 30.0):
    """A forward hook on the LM head adding ``by`` to the logits of ``ids``: unbanned, they would be sampled
    almost always."""
    _, head = a2c.body_and_head(model)
    bias = torch.zeros(head.out_features)
    bias[list(ids)] = by
    return head.register_forward_hook(lambda module, args, output: output + bias.to(output))


def test_every_special_token_but_the_end_tokens_is_unsampleable(policy):
    model, processor = policy
    tokenizer = processor.tokenizer
    ids = unsampleable_token_ids(processor, model)
    for token in IMAGE_TOKENS + ("<|im_start|>",):
        assert tokenizer.convert_tokens_to_ids(token) in ids, token
    assert model.config.image_token_id in ids
    assert prompts.end_of_utterance_id(processor) not in ids and tokenizer.eos_token_id not in ids
    assert banned_token_ids(model) == ids  # load_vlm recorded them on the model; A2C reads them there


def test_a2c_never_samples_an_image_or_special_token(policy):
    model, processor = policy
    banned = banned_token_ids(model)
    end = prompts.end_of_utterance_id(processor)
    inputs = prompts.encode(processor, [item["images"] for item in _items(4)])
    handle = push_toward(model, banned + [end])
    try:
        unbanned = a2c.body_and_head(model)[1](torch.zeros(1, a2c.hidden_size(model))).argmax(-1).item()
        assert unbanned in banned + [end]  # the push works: the most likely token is a banned one (or the end)
        roll = a2c.rollout(model, None, inputs, max_new_tokens=8, eos_ids=[end],
                           pad_id=processor.tokenizer.pad_token_id, temperature=1.0,
                           generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    sampled = roll.tokens[roll.mask]
    assert not torch.isin(sampled, torch.tensor(banned)).any(), sampled.tolist()
    # with the end token pushed as hard, every completion ends at once: nothing else could be sampled
    assert roll.finished.all() and (roll.lengths == 1).all()


def test_grpo_never_samples_an_image_or_special_token(policy, tmp_path):
    model, processor = policy
    banned = banned_token_ids(model)
    seen = []

    def record(completions, completion_ids, **batch):
        seen.extend(completion_ids)
        return [0.0 for _ in completions]

    settings = grpo.GRPOSettings(steps=1, clips_per_step=2, num_generations=2, max_completion_length=6)
    trainer = grpo.build_trainer(model, processor, _items(2), WeightedReward({"r": (1.0, record)}), settings, tmp_path)
    assert trainer.generation_kwargs["suppress_tokens"] == banned
    handle = push_toward(trainer.model, banned)  # not the end token: completions run to their full length
    try:
        grpo.train(trainer, resume=False)
    finally:
        handle.remove()
    assert seen and sum(map(len, seen)) >= 4 * 6 - 4  # sampled at length, so the push was felt
    assert not set(banned) & {int(i) for ids in seen for i in ids}


def test_padding_after_the_end_token_keeps_the_kl_finite(policy):
    """A row that ended is padded with the pad token, itself unsampleable (log-prob -inf): its positions must
    still score finitely, or k3's exp(Δ) − Δ − 1 is NaN there and ``x * mask`` does not remove it
    (notebook 04's Stage 1 stopped on 'loss is nan' at every step before this)."""
    model, processor = policy
    pad, end = processor.tokenizer.pad_token_id, prompts.end_of_utterance_id(processor)
    assert pad in banned_token_ids(model)
    inputs = prompts.encode(processor, [item["images"] for item in _items(8)])
    handle = push_toward(model, [end], by=4.0)  # some rows end early, others run on: padding inside the batch
    try:
        roll = a2c.rollout(model, None, inputs, max_new_tokens=8, eos_ids=[end], pad_id=pad, temperature=1.0,
                           generator=torch.Generator().manual_seed(0))
        scores = a2c.score_tokens(model, None, roll.prompt, roll.tokens, roll.mask)
    finally:
        handle.remove()
    assert (~roll.mask).any() and roll.mask.any(dim=1).all()  # padded positions exist
    assert (roll.tokens[~roll.mask] == pad).all()
    for logp in (roll.logprobs, roll.logprobs_full, scores.logp, scores.logp_full, roll.entropy, scores.entropy):
        assert torch.isfinite(logp).all()
    delta = scores.logp_full - roll.logprobs_full
    assert torch.isfinite(a2c.masked_mean(delta.exp() - delta - 1, roll.mask.float()))
