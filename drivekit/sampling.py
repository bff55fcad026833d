"""Sampling from the VLM policy: batched, KV-cached rollouts and teacher-forced token scores.

Shared by A2C (:mod:`drivekit.a2c`) and evaluation; GRPO samples through trl instead.

- :func:`rollout` samples completions for a batch of images-only prompts: one prefill over the
  prompts (images included), then one single-token forward per generated token for the whole
  batch, reusing the KV cache. It records each token's behaviour log-prob, the entropy and,
  given a value head, V(s_t) from the hidden state it computes anyway.
- :func:`score_tokens` recomputes log π(a_{t+1}|s_t), H(π(·|s_t)) and V(s_t) of given
  completions in one teacher-forced forward over prompt + completion, with gradients.
- Log-probs and entropies are those of the distribution sampling draws from
  (:func:`sampling_logits`: softmax(z/T) cut to the top-k / top-p tokens and renormalised), so a
  policy gradient on them is on-policy even with a cut; ``logp_full`` is log π under the uncut
  softmax(z/T), for a KL term that is exactly 0 at the start.
- :func:`generate` is greedy (or sampled) decoding of many clips in batches, for evaluation.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


# ---------------------------------------------------------------------------------------------
# Model parts
# ---------------------------------------------------------------------------------------------
def base_model(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def body_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(body, lm_head): the body returns ``last_hidden_state`` (Idefics3Model, LlamaModel, ...)."""
    base = base_model(model)
    body = getattr(base, "model", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else getattr(base, "lm_head", None)
    if body is None or head is None:
        raise TypeError(f"cannot find the body and LM head of {type(base).__name__}")
    return body, head


def hidden_size(model: nn.Module) -> int:
    config = base_model(model).config
    text = getattr(config, "text_config", None) or config
    return int(text.hidden_size)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def banned_token_ids(model: nn.Module) -> list[int]:
    """Tokens the policy may never emit: a VLM's image token (it would be read as an image slot)."""
    image_token = getattr(base_model(model).config, "image_token_id", None)
    return [int(image_token)] if image_token is not None else []


@contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode inside the block, its training mode restored after. Rollouts need it:
    in training mode under gradient checkpointing, transformers switches the KV cache off."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        if training:
            model.train()


def _ban(logits: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    if not banned:
        return logits
    return logits.index_fill(-1, torch.tensor(list(banned), device=logits.device), float("-inf"))




# ---------------------------------------------------------------------------------------------
# Rollouts
# ---------------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """A batch of sampled completions. Per-token tensors are ``(B, T)``; position t is the token
    a_{t+1} sampled in state s_t; ``mask`` marks real tokens (the end token included)."""

    prompt: dict
    tokens: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor  # behaviour log π(a_{t+1}|s_t) of the sampling distribution (detached unless single-pass)
    values: torch.Tensor  # V(s_t) (detached unless single-pass)
    entropy: torch.Tensor  # H(π(·|s_t)) (detached unless single-pass)
    finished: torch.Tensor  # (B,) ended with an end token (else cut at max_new_tokens)
    logprobs_full: torch.Tensor | None = None  # log π under the uncut softmax(z/T)
    seconds: float = 0.0

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left- or right-padded rows: 0 at each row's first real token."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _prompt_inputs(inputs: Mapping, device) -> dict:
    """The tensors of a processor output that the body takes, on ``device``."""
    keep = ("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask")
    return {k: inputs[k].to(device) for k in keep if k in inputs and inputs[k] is not None}


def sampling_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                    keep: torch.Tensor | None = None) -> torch.Tensor:
    """The logits of the distribution sampling draws from: ``logits / temperature`` (T <= 0 counts
    as 1) with ``-inf`` outside the ``top_k`` most likely tokens (0: all) and then outside the top-p
    nucleus. ``keep`` (token ids, one per row) stays inside whatever the cut (a recomputation may
    differ from the sampling pass by rounding at the boundary)."""
    z = logits.float() / (temperature if temperature > 0 else 1.0)
    outside = torch.zeros_like(z, dtype=torch.bool)
    if 0 < top_k < z.shape[-1]:
        outside |= z < z.topk(top_k, dim=-1).values[..., -1:]
    if top_p < 1.0:
        probs = torch.softmax(z.masked_fill(outside, float("-inf")), dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        beyond = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set reaching top_p
        outside |= torch.zeros_like(outside).scatter(-1, order, beyond)
    if keep is not None:
        outside = outside.scatter(-1, keep.unsqueeze(-1), False)
    return z.masked_fill(outside, float("-inf"))


def sample_tokens(logits: torch.Tensor, temperature: float, top_p: float = 1.0,
                  generator: torch.Generator | None = None, top_k: int = 0) -> torch.Tensor:
    """One token per row from :func:`sampling_logits`; ``temperature <= 0`` is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(sampling_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def _token_stats(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, top_k: int = 0,
                 top_p: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log π(token) and entropy of the sampling distribution (:func:`sampling_logits`), and
    log π(token) under the uncut softmax(z/T) (the same unless top-k / top-p cut)."""
    logp = torch.log_softmax(sampling_logits(logits, temperature, top_k, top_p, keep=tokens), dim=-1)
    token_logp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp.clamp(min=-1e30)).sum(-1)  # tokens outside: 0 * -inf -> 0
    if top_k <= 0 and top_p >= 1.0:
        return token_logp, entropy, token_logp
    full = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), dim=-1)
    return token_logp, entropy, full.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class TokenScores(NamedTuple):
    """Per-token ``(B, T)`` scores of completions: log π and entropy of the sampling distribution,
    V(s_t), and log π under the uncut tempered softmax (for the KL term)."""

    logp: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    logp_full: torch.Tensor


def rollout(model: nn.Module, value_head: nn.Module | None, inputs: Mapping, *, max_new_tokens: int,
            eos_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
            top_k: int = 0, generator: torch.Generator | None = None, with_grad: bool = False) -> Rollout:
    """Sample completions for a batch of prompts, batched and KV-cached.

    ``inputs`` are the processor's tensors for left-padded prompts (``input_ids``,
    ``attention_mask`` and, for a VLM, ``pixel_values`` / ``pixel_attention_mask``). Rows that
    have emitted an end token (``eos_ids``) are padded with ``pad_id`` afterwards; the loop stops
    when all rows have ended or after ``max_new_tokens``. ``with_grad`` keeps the graph (the
    single-pass update); otherwise everything runs under ``torch.no_grad``. The model runs in eval
    mode (:func:`eval_mode`), so the KV cache stays on with gradient checkpointing enabled.
    """
    start = time.perf_counter()
    body, head = body_and_head(model)
    device = model_device(model)
    banned = banned_token_ids(model)
    prompt = _prompt_inputs(inputs, device)
    mask = prompt["attention_mask"]
    batch = mask.shape[0]
    eos = torch.tensor(sorted(set(eos_ids)), device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens, valid, logps, values, entropies, fulls = [], [], [], [], [], []
    with torch.set_grad_enabled(with_grad), eval_mode(model):
        positions = _positions(mask)
        out = body(**{**prompt, "attention_mask": mask}, position_ids=positions, use_cache=True)
        cache = out.past_key_values
        h = out.last_hidden_state[:, -1]
        position = positions[:, -1:]
        for _ in range(max_new_tokens):
            logits = _ban(head(h).float(), banned)
            with torch.no_grad():
                token = sample_tokens(logits, temperature, top_p, generator, top_k)
            token = torch.where(done, torch.full_like(token, pad_id), token)
            logp, entropy, full = _token_stats(logits, token, temperature, top_k, top_p)
            value = value_head(h) if value_head is not None else torch.zeros_like(logp)
            tokens.append(token)
            valid.append(~done)
            logps.append(logp)
            fulls.append(full)
            entropies.append(entropy)
            values.append(value)
            done = done | torch.isin(token, eos)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            position = position + 1
            out = body(input_ids=token[:, None], attention_mask=mask, position_ids=position,
                       past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            h = out.last_hidden_state[:, -1]
    stack = (lambda xs: torch.stack(xs, 1)) if with_grad else (lambda xs: torch.stack(xs, 1).detach())
    return Rollout(prompt=prompt, tokens=torch.stack(tokens, 1), mask=torch.stack(valid, 1),
                   logprobs=stack(logps), values=stack(values), entropy=stack(entropies), finished=done,
                   logprobs_full=stack(fulls),
                   seconds=time.perf_counter() - start)


def score_tokens(model: nn.Module, value_head: nn.Module | None, prompt: Mapping, tokens: torch.Tensor,
                 mask: torch.Tensor, temperature: float = 1.0, critic_detach: bool = False, top_k: int = 0,
                 top_p: float = 1.0) -> TokenScores:
    """Teacher-forced log π(a_{t+1}|s_t), H(π(·|s_t)) and V(s_t) of given completions, ``(B, T)`` each
    (:class:`TokenScores`).

    One forward over prompt + completion (the prompt left-padded, the completion right-padded);
    gradients flow unless the caller disables them. The LM head and value head only see the T
    completion states.
    """
    body, head = body_and_head(model)
    prompt_mask = prompt["attention_mask"]
    ids = torch.cat([prompt["input_ids"], tokens], dim=1)
    attention = torch.cat([prompt_mask, mask.to(prompt_mask.dtype)], dim=1)
    extra = {k: v for k, v in prompt.items() if k not in ("input_ids", "attention_mask")}
    out = body(input_ids=ids, attention_mask=attention, position_ids=_positions(attention), use_cache=False, **extra)
    p = prompt["input_ids"].shape[1]
    h = out.last_hidden_state[:, p - 1: p - 1 + tokens.shape[1]]
    logp, entropy, full = _token_stats(_ban(head(h).float(), banned_token_ids(model)), tokens, temperature, top_k, top_p)
    values = value_head(h.detach() if critic_detach else h) if value_head is not None else torch.zeros_like(logp)
    return TokenScores(logp, entropy, values, full)


def completion_texts(tokens: torch.Tensor, mask: torch.Tensor, decode: Callable[[list[int]], str]) -> list[str]:
    """The decoded text of each completion (special tokens, such as the end token, are the
    decoder's business: pass one that skips them), stripped."""
    return [decode(row[m].tolist()).strip() for row, m in zip(tokens.cpu(), mask.cpu())]



@torch.no_grad()
def generate(model: nn.Module, items: Sequence[Mapping], make_inputs: Callable[[Sequence[Mapping]], Mapping],
             decode: Callable[[list[int]], str], *, eos_ids: Sequence[int], pad_id: int, max_new_tokens: int,
             batch_size: int = 32, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> list[str]:
    """Completions of ``items`` (greedy by default), ``batch_size`` clips per batched, KV-cached rollout."""
    texts = []
    model.eval()
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        roll = rollout(model, None, make_inputs(chunk), max_new_tokens=max_new_tokens, eos_ids=eos_ids, pad_id=pad_id,
                       temperature=temperature, top_p=top_p, generator=torch.Generator().manual_seed(seed + start))
        texts += completion_texts(roll.tokens, roll.mask, decode)
    return texts
