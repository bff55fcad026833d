"""A2C actor–critic fine-tuning of the VLM (proposal §2.2, §2.4.1, §5.3; DESIGN 6).

**Actor** π_θ: the VLM itself; only its LoRA parameters θ are trained. **Critic** V_w: a small
MLP (:class:`ValueHead`) on the shared body's last hidden state h(s_t), the very vector the LM
head turns into π(·|s_t). State s_t = (frames, first t generated tokens); s_0 is the prompt's
last position, so one hidden state gives both π(a_{t+1}|s_t) and V(s_t). The head is trained
jointly with the LoRA parameters and saved beside the adapter (``value_head.safetensors``).

One :meth:`A2CTrainer.step`:

1. **Rollout** (:func:`rollout`): a batch of clips, images-only prompts, sampled from the current
   policy with temperature / top-k / top-p, batched and KV-cached: one prefill over the prompts (images
   included), then one single-token forward per generated token for the whole batch. The
   sampling pass records every token's behaviour log-prob and V(s_t) from the hidden state it
   computes anyway: no extra forward for them.
2. **Rewards**: R of the completions (a :class:`drivekit.action_reward.WeightedReward`, e.g.
   α·R1 + β·R2, or R1 alone for Stage 1). Per-token rewards are ``terminal`` (R(T) on the last
   token) or ``incremental`` r_{k+1} = R(T_{k+1}) − R(T_k) (§2.4.1) with R(T_0) = R("") = 0, so
   they telescope to R(T). To bound the cost, prefixes are scored at word boundaries only
   (``prefix_every="word"``: after a token followed by whitespace, and at the end), all prefixes
   of the batch in one reward call; the reward of a word then lands on its last token.
   ``prefix_every="token"`` scores every prefix.
3. **Returns and advantages**: G_t = Σ_{k≥t} γ^{k−t} r_{k+1} (:func:`discounted_returns`),
   A_t = G_t − V(s_t) (:func:`advantages`; V detached; optionally whitened over the batch).
4. **Loss** = policy gradient −mean_t A_t·log π(a_{t+1}|s_t) + c_v·mean_t (V(s_t) − G_t)²
   − c_e·mean_t H(π(·|s_t)) [+ c_kl·mean_t KL(π ‖ π_ref)], means over the valid tokens of the batch
   (the end-of-utterance token is an action too). KL uses the k3 estimator
   exp(Δ) − Δ − 1, Δ = log π_ref − log π, on the sampled tokens; π_ref is the SFT policy: a frozen
   copy of the start adapter (``reference_adapter``) or, with none, the base model with the adapter
   disabled (right for Stage 1, which starts from the base). The gradients of the LoRA parameters
   and of the value head are clipped to ``max_grad_norm`` separately; the optimizer holds only
   those parameters. ``critic_detach`` stops the value loss at the head (the body then learns from
   the policy gradient and KL alone). The first ``critic_warmup`` steps train the value head alone
   (loss = c_v·value loss, body detached): a fresh head says V ≈ 0, so without a warm-up every
   token of a well-scored sample gets A_t ≈ R > 0 and the first updates reinforce whatever was
   sampled, mistakes included (measured on the JSON stage: benchmarks/RESULTS.md).

**Log-probs and values with gradients.** The update needs log π and V *with* gradients. Two ways,
``A2CConfig.single_pass``:

- ``False`` (default): the rollout runs without gradients (cheap: a KV cache, no stored
  activations), then one teacher-forced forward over prompt + completion recomputes log π, H and
  V with gradients. This is the only second forward, and the backward pass needs its activations
  anyway; it reruns the prompt (and vision encoder), whose keys and values depend on the LoRA
  weights too, so the gradient is exact.
- ``True``: the rollout itself runs with gradients and keeps its graph; log π, H and V come
  straight from the sampling pass, with no second forward at all. Memory grows with tokens ×
  layers (the graph of every decoding step), so it suits short completions and small models.

The KL penalty needs π_ref's log-probs: one extra no-grad teacher-forced forward, only when
``kl_coef > 0``. Log-probs and entropies are those of the distribution sampling draws from
(:func:`sampling_logits`: softmax(z/T) cut to the top-k / top-p tokens and renormalised), so the
policy gradient is on-policy even with a cut; without one it is the plain tempered softmax.
(trl ignores the cut; then a negative advantage pushes probability into the cut-off tail, which
sampling never visits to correct: the entropy of the full distribution climbs.) π_ref's log-probs
are compared with the policy's uncut softmax(z/T), so the KL is exactly 0 at the start.

**Robustness.** A non-finite reward is replaced by 0 and counted (``nonfinite``); an empty
completion scores 0; a step that raises (a bad batch, a reward that fails) or produces a
non-finite loss is logged with its error and skipped without touching the weights; only
``max_failures`` consecutive failures stop the run.

**Logs and checkpoints.** Every step appends a row (each reward component, total reward, policy
and value loss, entropy, KL, gradient norm, lengths, time) to ``trainer.log`` and
``<run_dir>/log.jsonl``. Every ``checkpoint_every`` steps ``<run_dir>/checkpoint-<step>/`` holds
the adapter (peft's ``save_pretrained``), the value head and the optimizer state;
:meth:`A2CTrainer.resume` continues from the latest one (same batches and samples as an
uninterrupted run: both are seeded by step).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from .models import keep_4bit_trainable

VALUE_HEAD_WEIGHTS = "value_head.safetensors"
VALUE_HEAD_CONFIG = "value_head.json"
TRAINER_STATE = "trainer_state.pt"
LOG_FILE = "log.jsonl"
CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


# ---------------------------------------------------------------------------------------------
# Configuration (plain data)
# ---------------------------------------------------------------------------------------------
@dataclass
class A2CConfig:
    """Hyper-parameters of an A2C run. ``A2CConfig.tiny()`` / ``A2CConfig.paper()`` give the profiles' defaults."""

    steps: int = 60
    batch_size: int = 8  # completions per step
    samples_per_clip: int = 1  # completions sampled for each clip of a step (batch_size / this clips)
    lr: float = 2e-4  # LoRA parameters
    value_lr: float = 1e-3  # value head
    weight_decay: float = 0.0
    gamma: float = 1.0  # discount γ
    value_coef: float = 0.5  # c_v
    entropy_coef: float = 0.0  # c_e
    kl_coef: float = 0.0  # c_kl (0: no reference forward)
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    max_new_tokens: int = 32
    reward_mode: str = "incremental"  # incremental | terminal
    prefix_every: str = "word"  # word | token (incremental mode)
    normalize_advantages: bool = True  # whiten A_t over the batch's tokens
    value_hidden: int = 256  # width of the value MLP
    critic_detach: bool = False  # True: value loss trains the head only, not the shared LoRA body
    critic_warmup: int = 0  # first steps train the value head alone (policy frozen), so V is fitted first
    single_pass: bool = False  # see the module docstring
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    max_failures: int = 5  # consecutive failed steps before the run stops
    seed: int = 0
    # The reward of the course pipeline (make_reward / run); the trainer itself takes any reward.
    alpha: float = 1.0  # weight of R1 (CLIP)
    beta: float = 1.0  # weight of R2 (action-reasoning)
    r2: str = "bleu"  # R2 variant: bleu | bleu_raw | label_f1 | judge

    @classmethod
    def tiny(cls, **changes) -> "A2CConfig":
        """CPU-sized defaults for the tiny model (a minute on 2 cores). Measured (benchmarks/RESULTS.md):
        with the proposal's thresholded BLEU as R2, no KL and lr 2e-4 the policy drifts from SFT's
        answer format and F1 drops; label-F1 R2 with a KL penalty to SFT holds it. Advantages are not
        whitened: most answers on the SFT-trained clips score the same, and whitening would blow the
        critic's small errors up to unit-size advantages."""
        base = dict(lr=1e-4, kl_coef=0.1, r2="label_f1", normalize_advantages=False)
        return cls(**{**base, **changes})

    @classmethod
    def paper(cls, **changes) -> "A2CConfig":
        """Defaults for SmolVLM-Instruct with 4-bit QLoRA on a GPU."""
        base = dict(steps=500, batch_size=4, lr=1e-5, value_lr=1e-4, max_new_tokens=64, top_p=0.9,
                    kl_coef=0.05, entropy_coef=0.001, checkpoint_every=50, keep_checkpoints=3)
        return cls(**{**base, **changes})

    def replace(self, **changes) -> "A2CConfig":
        return dataclasses.replace(self, **changes)


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


def _ban(logits: torch.Tensor, banned: Sequence[int]) -> torch.Tensor:
    if not banned:
        return logits
    return logits.index_fill(-1, torch.tensor(list(banned), device=logits.device), float("-inf"))


class ValueHead(nn.Module):
    """V_w(s_t) = MLP(h(s_t)): Linear(hidden, width) → tanh → Linear(width, 1), in float32.

    ``(..., hidden)`` → ``(...)``. The output layer starts at zero, so V starts at 0.
    """

    def __init__(self, hidden: int, width: int = 256):
        super().__init__()
        self.hidden, self.width = hidden, width
        self.net = nn.Sequential(nn.Linear(hidden, width), nn.Tanh(), nn.Linear(width, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.float()).squeeze(-1)

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, folder / VALUE_HEAD_WEIGHTS)
        (folder / VALUE_HEAD_CONFIG).write_text(json.dumps({"hidden": self.hidden, "width": self.width}))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "ValueHead":
        from safetensors.torch import load_file

        folder = Path(folder)
        head = cls(**json.loads((folder / VALUE_HEAD_CONFIG).read_text()))
        head.load_state_dict(load_file(folder / VALUE_HEAD_WEIGHTS))
        return head.to(device)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The LoRA parameters of ``model``; every other parameter is frozen (only LoRA may update)."""
    params = []
    for name, p in model.named_parameters():
        if "lora_" in name and p.requires_grad:
            params.append(p)
        else:
            p.requires_grad_(False)
    if not params:
        raise ValueError("the model has no trainable LoRA parameters: wrap it with peft (e.g. drivekit.models.load_vlm)")
    return params


def _zero_dropout(model: nn.Module) -> None:
    """RL samples and scores with the same network: no dropout (LoRA dropout included)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


@contextmanager
def reference_policy(model: nn.Module, adapter: str | None):
    """Run ``model`` as the reference policy: the frozen ``adapter`` active, or (None) all adapters disabled."""
    if not hasattr(model, "peft_config"):
        yield
        return
    if adapter is None:
        with model.disable_adapter():
            yield
        return
    active = model.active_adapter
    model.set_adapter(adapter, inference_mode=True)
    try:
        yield
    finally:
        model.set_adapter(active)  # re-enables gradients on the trained adapter, freezes the reference


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


def rollout(model: nn.Module, value_head: ValueHead | None, inputs: Mapping, *, max_new_tokens: int,
            eos_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
            top_k: int = 0, generator: torch.Generator | None = None, with_grad: bool = False) -> Rollout:
    """Sample completions for a batch of prompts, batched and KV-cached.

    ``inputs`` are the processor's tensors for left-padded prompts (``input_ids``,
    ``attention_mask`` and, for a VLM, ``pixel_values`` / ``pixel_attention_mask``). Rows that
    have emitted an end token (``eos_ids``) are padded with ``pad_id`` afterwards; the loop stops
    when all rows have ended or after ``max_new_tokens``. ``with_grad`` keeps the graph (the
    single-pass update); otherwise everything runs under ``torch.no_grad``.
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
    with torch.set_grad_enabled(with_grad):
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


def score_tokens(model: nn.Module, value_head: ValueHead | None, prompt: Mapping, tokens: torch.Tensor,
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


# ---------------------------------------------------------------------------------------------
# Rewards per token, returns, advantages
# ---------------------------------------------------------------------------------------------
def completion_texts(tokens: torch.Tensor, mask: torch.Tensor, decode: Callable[[list[int]], str]) -> list[str]:
    """The decoded text of each completion (special tokens, such as the end token, are the
    decoder's business: pass one that skips them), stripped."""
    return [decode(row[m].tolist()).strip() for row, m in zip(tokens.cpu(), mask.cpu())]


def prefix_ends(ids: Sequence[int], decode: Callable[[list[int]], str], every: str = "word") -> list[int]:
    """Prefix lengths k (1..n) at which R(T_k) is evaluated; always includes n.

    ``every="token"``: all of them. ``"word"``: k where the next token's text starts with
    whitespace (a word has just ended), and n.
    """
    n = len(ids)
    if n == 0:
        return []
    if every == "token":
        return list(range(1, n + 1))
    if every != "word":
        raise ValueError(f"prefix_every must be 'word' or 'token', not {every!r}")
    texts = [decode(list(ids[:k])) for k in range(1, n + 1)]
    ends = []
    for k in range(1, n):
        before, after = texts[k - 1], texts[k]
        grew = after[len(before):] if after.startswith(before) else after[len(before.rstrip()):]
        if grew[:1].isspace() and before.strip():
            ends.append(k)
    ends.append(n)
    return ends


def incremental_rewards(values_at_ends: Sequence[float], ends: Sequence[int], length: int) -> np.ndarray:
    """r of each token: r[k-1] = R(T_k) − R(T_{previous end}) at each evaluated prefix length k,
    0 elsewhere, with R(T_0) = 0. They sum to R(T_n)."""
    r = np.zeros(length)
    previous = 0.0
    for k, value in zip(ends, values_at_ends):
        r[k - 1] = value - previous
        previous = value
    return r


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = Σ_{k≥t} γ^{k−t} r_{k+1} over each row's valid tokens (``rewards[:, t]`` is r_{t+1}); 0 on padding."""
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running * mask[:, t]
        returns[:, t] = running
    return returns * mask


def advantages(returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """A_t = G_t − V(s_t) (V detached), optionally whitened over the valid tokens; 0 on padding."""
    adv = (returns - values.detach()) * mask
    if normalize:
        m = mask.bool()
        if m.sum() > 1:
            mean, std = adv[m].mean(), adv[m].std()
            adv = (adv - mean) / (std + 1e-6) * mask
    return adv


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


# ---------------------------------------------------------------------------------------------
# Data helpers
# ---------------------------------------------------------------------------------------------
def reward_columns(items: Sequence[Mapping], skip: Sequence[str] = ("frames", "images")) -> dict:
    """trl-style batch columns (``{column: [value per item]}``) of a batch of items, without the images."""
    keys = [k for k in items[0] if k not in skip] if items else []
    return {k: [item.get(k) for item in items] for k in keys}


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of step ``step``'s batch: consecutive slices of a seeded permutation per epoch."""
    out = []
    for j in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(j, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[k]))
    return out


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
class A2CTrainer:
    """A2C on a peft-wrapped VLM (see the module docstring).

    - ``items``: the training clips, each a dict with ``frames`` (PIL images) and the reward's
      columns (``file_name`` for R1, ``actions``/``reasons`` for R2).
    - ``make_inputs(items) -> dict``: left-padded prompt tensors (e.g. ``drivekit.prompts.encode``).
    - ``decode(ids) -> str``: token ids to text, skipping special tokens.
    - ``reward``: a :class:`drivekit.action_reward.WeightedReward` (or any object with
      ``evaluate(completions, **batch) -> RewardResult``).
    - ``reference_adapter``: name of a frozen peft adapter holding the SFT policy for the KL term
      (None: the base model with adapters disabled).
    """

    def __init__(self, model: nn.Module, items: Sequence[Mapping], make_inputs: Callable[[Sequence[Mapping]], Mapping],
                 decode: Callable[[list[int]], str], reward, cfg: A2CConfig | None = None, *,
                 eos_ids: Sequence[int], pad_id: int, value_head: ValueHead | None = None,
                 run_dir: str | Path | None = None, reference_adapter: str | None = None):
        self.model, self.items, self.make_inputs, self.decode = model, list(items), make_inputs, decode
        self.reward, self.cfg = reward, cfg or A2CConfig()
        self.eos_ids, self.pad_id = list(eos_ids), pad_id
        self.device = model_device(model)
        with torch.random.fork_rng():  # a fresh head's first layer is random: seeded, so runs repeat
            torch.manual_seed(self.cfg.seed)
            self.value_head = (value_head or ValueHead(hidden_size(model), self.cfg.value_hidden)).to(self.device)
        self.run_dir = Path(run_dir) if run_dir else None
        self.reference_adapter = reference_adapter
        _zero_dropout(model)
        keep_4bit_trainable(model)
        self.policy_params = trainable_parameters(model)
        self.optimizer = torch.optim.AdamW([
            dict(params=self.policy_params, lr=self.cfg.lr),
            dict(params=list(self.value_head.parameters()), lr=self.cfg.value_lr),
        ], weight_decay=self.cfg.weight_decay)
        self.step_count = 0
        self.failures = 0
        self.log: list[dict] = []

    # -- one step ------------------------------------------------------------------------------
    def batch(self, step: int | None = None) -> list[Mapping]:
        """The items of step ``step``: ``batch_size / samples_per_clip`` clips, each repeated."""
        step = self.step_count if step is None else step
        repeat = max(1, self.cfg.samples_per_clip)
        clips = max(1, self.cfg.batch_size // repeat)
        return [self.items[i] for i in batch_indices(len(self.items), clips, step, self.cfg.seed) for _ in range(repeat)]

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)

    def token_rewards(self, roll: Rollout, columns: Mapping) -> tuple[torch.Tensor, dict]:
        """Per-token rewards ``(B, T)`` (terminal or incremental) and the log of the final texts' rewards."""
        cfg = self.cfg
        tokens, mask = roll.tokens.cpu(), roll.mask.cpu()
        rows = [row[m].tolist() for row, m in zip(tokens, mask)]
        texts = [self.decode(r).strip() for r in rows]
        r = np.zeros(tuple(tokens.shape))
        if cfg.reward_mode == "terminal":
            result = self.reward.evaluate(texts, **columns)
            for i, row in enumerate(rows):
                if row:
                    r[i, len(row) - 1] = result.total[i]
        elif cfg.reward_mode == "incremental":
            from .action_reward import RewardResult, _take

            ends = [prefix_ends(row, self.decode, cfg.prefix_every) for row in rows]
            owner = [i for i, e in enumerate(ends) for _ in e]
            prefixes = [self.decode(rows[i][:k]).strip() for i, e in enumerate(ends) for k in e]
            every = self.reward.evaluate(prefixes, **{k: _take(v, owner) for k, v in columns.items()})
            final = np.cumsum([len(e) for e in ends]) - 1  # each row's full text is its last prefix
            for i, e in enumerate(ends):
                r[i, : len(rows[i])] = incremental_rewards(every.total[final[i] - len(e) + 1: final[i] + 1], e, len(rows[i]))
            result = RewardResult(total=every.total[final], components={k: v[final] for k, v in every.components.items()},
                                  nonfinite=every.nonfinite, empty=sum(1 for t in texts if not t))
        else:
            raise ValueError(f"reward_mode must be 'terminal' or 'incremental', not {cfg.reward_mode!r}")
        info = {"reward": float(np.mean(result.total)) if len(texts) else 0.0,
                **{f"reward_{k}": float(np.mean(v)) for k, v in result.components.items()},
                # spread within the batch: 0 means a saturated term, which gives no learning signal
                **{f"spread_{k}": float(np.std(v)) for k, v in result.components.items()},
                "nonfinite": int(sum(result.nonfinite.values())), "empty": int(result.empty)}
        return torch.tensor(r, dtype=torch.float32, device=self.device), info

    def step(self) -> dict:
        """One A2C update on the next batch; never raises for a bad batch (see the module docstring)."""
        cfg, step = self.cfg, self.step_count
        t0 = time.perf_counter()
        row: dict = {"step": step + 1}
        try:
            items = self.batch(step)
            columns = reward_columns(items)
            inputs = self.make_inputs(items)
            self.model.eval()
            roll = rollout(self.model, self.value_head, inputs, max_new_tokens=cfg.max_new_tokens,
                           eos_ids=self.eos_ids, pad_id=self.pad_id, temperature=cfg.temperature, top_p=cfg.top_p,
                           top_k=cfg.top_k, generator=self.generator(step), with_grad=cfg.single_pass)
            rewards, info = self.token_rewards(roll, columns)
            row.update(info)
            mask = roll.mask.float()
            warmup = step < cfg.critic_warmup  # the critic alone learns: no policy loss, body detached
            if cfg.single_pass:
                logp, entropy, values, logp_full = roll.logprobs, roll.entropy, roll.values, roll.logprobs_full
                if cfg.critic_detach or warmup:
                    raise ValueError("critic_detach and critic_warmup need single_pass=False")
            else:
                self.model.train()
                logp, entropy, values, logp_full = score_tokens(
                    self.model, self.value_head, roll.prompt, roll.tokens, roll.mask, cfg.temperature,
                    cfg.critic_detach or warmup, cfg.top_k, cfg.top_p)
            returns = discounted_returns(rewards, mask, cfg.gamma)
            adv = advantages(returns, values, mask, cfg.normalize_advantages)
            policy_loss = -masked_mean(adv * logp, mask)
            value_loss = masked_mean((values - returns) ** 2, mask)
            entropy_mean = masked_mean(entropy, mask)
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy_mean
            kl = torch.zeros((), device=self.device)
            if warmup:
                loss = cfg.value_coef * value_loss
            elif cfg.kl_coef > 0:
                with torch.no_grad(), reference_policy(self.model, self.reference_adapter):
                    ref_logp = score_tokens(self.model, None, roll.prompt, roll.tokens, roll.mask, cfg.temperature).logp
                delta = ref_logp - logp_full  # both uncut: KL(π ‖ π_ref) is 0 at the start
                kl = masked_mean(delta.exp() - delta - 1, mask)
                loss = loss + cfg.kl_coef * kl
            row["logp_gap"] = masked_mean((logp.detach() - roll.logprobs).abs(), mask).item()  # 0 when on-policy
            row.update(policy_loss=policy_loss.item(), value_loss=value_loss.item(), entropy=entropy_mean.item(),
                       kl=kl.item(), loss=loss.item(), value=masked_mean(values.detach(), mask).item(),
                       ret=masked_mean(returns, mask).item(), length=float(roll.lengths.float().mean()),
                       finished=float(roll.finished.float().mean()), rollout_s=roll.seconds)
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"non-finite loss {row['loss']}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Clipped separately: a large critic gradient must not shrink the policy's step.
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy_params, cfg.max_grad_norm)
            value_grad_norm = torch.nn.utils.clip_grad_norm_(list(self.value_head.parameters()), cfg.max_grad_norm)
            if not (torch.isfinite(grad_norm) and torch.isfinite(value_grad_norm)):
                raise FloatingPointError(f"non-finite gradient norm {grad_norm.item()} / {value_grad_norm.item()}")
            self.optimizer.step()
            row.update(grad_norm=float(grad_norm), value_grad_norm=float(value_grad_norm), skipped=False, error="",
                       warmup=warmup)
            self.failures = 0
        except Exception as err:  # a bad batch must not kill the loop
            self.optimizer.zero_grad(set_to_none=True)
            self.failures += 1
            row.update(skipped=True, error=f"{type(err).__name__}: {err}"[:500])
            row["traceback"] = traceback.format_exc()[-3000:]
            if self.failures >= cfg.max_failures:
                self._append(row)
                raise RuntimeError(f"{self.failures} consecutive A2C steps failed; last: {row['error']}") from err
        finally:
            self.model.eval()
        row["seconds"] = time.perf_counter() - t0
        self._append(row)
        return row

    def _append(self, row: dict) -> None:
        self.step_count = row["step"]
        self.log.append(row)
        if self.run_dir:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / LOG_FILE, "w" if row["step"] == 1 else "a") as f:  # a new run replaces an old log
                f.write(json.dumps({k: v for k, v in row.items() if k != "traceback"}) + "\n")

    # -- the loop --------------------------------------------------------------------------------
    def train(self, steps: int | None = None, progress: bool = True,
              callback: Callable[["A2CTrainer", dict], None] | None = None) -> pd.DataFrame:
        """Run until ``steps`` (default ``cfg.steps``) steps in total have been taken; returns the log."""
        from tqdm.auto import tqdm

        total = self.cfg.steps if steps is None else steps
        bar = tqdm(total=total, initial=min(self.step_count, total), desc="A2C", disable=not progress,
                   mininterval=1.0)
        while self.step_count < total:
            row = self.step()
            bar.update()
            if row.get("skipped"):
                bar.set_postfix(skipped=row["error"][:40], refresh=False)
            else:
                bar.set_postfix(R=f"{row['reward']:.3f}", V=f"{row['value_loss']:.3f}", refresh=False)
            if callback:
                callback(self, row)
            every = self.cfg.checkpoint_every
            if self.run_dir and every and self.step_count % every == 0:
                self.save_checkpoint()
        bar.close()
        if self.run_dir:
            self.save_checkpoint()
        return self.log_frame()

    def log_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.log)
        return frame.drop(columns=[c for c in ("traceback",) if c in frame])

    # -- saving, resuming ------------------------------------------------------------------------
    def save_policy(self, folder: str | Path) -> Path:
        """The trained adapter (peft ``save_pretrained``) and the value head, side by side."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        adapter = getattr(self.model, "active_adapter", None)
        if hasattr(self.model, "save_pretrained") and hasattr(self.model, "peft_config"):
            self.model.save_pretrained(folder, selected_adapters=[adapter])
        self.value_head.save(folder)
        return folder

    def save_checkpoint(self) -> Path:
        folder = self.run_dir / f"checkpoint-{self.step_count:06d}"
        self.save_policy(folder)
        torch.save({"step": self.step_count, "optimizer": self.optimizer.state_dict(), "failures": self.failures,
                    "config": asdict(self.cfg), "log": self.log}, folder / TRAINER_STATE)
        checkpoints = sorted(p for p in self.run_dir.glob("checkpoint-*") if CHECKPOINT.search(p.name))
        for old in checkpoints[: max(0, len(checkpoints) - max(1, self.cfg.keep_checkpoints))]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def latest_checkpoint(self) -> Path | None:
        if not self.run_dir or not self.run_dir.is_dir():
            return None
        found = sorted((int(m.group(1)), p) for p in self.run_dir.glob("checkpoint-*")
                       if (m := CHECKPOINT.search(p.name)) and (p / TRAINER_STATE).is_file())
        return found[-1][1] if found else None

    def load_checkpoint(self, folder: str | Path) -> None:
        """Adapter weights, value head, optimizer, step and log from ``folder``."""
        folder = Path(folder)
        load_adapter_weights(self.model, folder)
        self.value_head.load_state_dict(ValueHead.load(folder, self.device).state_dict())
        state = torch.load(folder / TRAINER_STATE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count, self.failures, self.log = state["step"], state["failures"], list(state["log"])
        if self.run_dir:  # the log file follows the checkpoint
            with open(self.run_dir / LOG_FILE, "w") as f:
                for row in self.log:
                    f.write(json.dumps({k: v for k, v in row.items() if k != "traceback"}) + "\n")

    def resume(self) -> bool:
        """Continue from the latest checkpoint in ``run_dir``; False when there is none."""
        latest = self.latest_checkpoint()
        if latest is None:
            return False
        self.load_checkpoint(latest)
        return True

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, items: Sequence[Mapping], batch_size: int = 32, temperature: float = 0.0,
                 max_new_tokens: int | None = None) -> list[str]:
        """Completions of ``items`` with the current policy (greedy by default), batched and KV-cached."""
        texts = []
        self.model.eval()
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            roll = rollout(self.model, None, self.make_inputs(chunk), max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                           eos_ids=self.eos_ids, pad_id=self.pad_id, temperature=temperature, top_p=self.cfg.top_p,
                           generator=self.generator(10**9 + start))
            texts += completion_texts(roll.tokens, roll.mask, self.decode)
        return texts


def load_adapter_weights(model: nn.Module, folder: str | Path, adapter: str | None = None) -> None:
    """Copy the adapter weights saved in ``folder`` (peft layout) into ``model``'s ``adapter`` (default: active)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no adapter weights in {folder}")
    adapter = adapter or model.active_adapter
    result = set_peft_model_state_dict(model, load_file(weights), adapter_name=adapter)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise ValueError(f"{len(unexpected)} adapter weights in {folder} do not fit the model, e.g. {unexpected[:3]}")


# ---------------------------------------------------------------------------------------------
# The course pipeline: policy, data, reward, trainer, evaluation (tiny and paper profiles)
# ---------------------------------------------------------------------------------------------
STAGES = ("stage1", "action")  # Stage 1: free descriptions rewarded by R1; action: α·R1 + β·R2
REFERENCE_ADAPTER = "reference"
CURVE_COLUMNS = ("reward", "value_loss", "policy_loss", "entropy", "kl")


def load_policy(cfg, start: str | Path = "sft", device=None):
    """``(model, processor, reference_adapter)``: the VLM with a trainable LoRA adapter.

    ``start="sft"``: the SFT adapter of notebook 02 (``drivekit.sft.ensure`` trains it when
    missing), trained further; a frozen copy of it is loaded as adapter ``"reference"`` (π_ref for
    the KL term). ``"base"``: the pretrained model with a new LoRA adapter (Stage 1); π_ref is the
    base itself (adapter disabled), so ``reference_adapter`` is None. Otherwise a path to a
    saved adapter folder, treated like ``"sft"``.
    """
    from . import sft
    from .models import load_vlm

    if str(start) == "base":
        model, processor = load_vlm(cfg, lora=sft.settings_for(cfg).lora, device=device)
        return model, processor, None
    adapter = sft.ensure(cfg).best if str(start) == "sft" else Path(start)
    model, processor = load_vlm(cfg, adapter=adapter, trainable=True, device=device)
    active = model.active_adapter
    model.load_adapter(str(adapter), adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    model.set_adapter(active)
    return model, processor, REFERENCE_ADAPTER


def dataset_items(dataset) -> list[dict]:
    """The items of a ``BDDOIADataset`` (``name``, ``images``, ``actions``, ``reasons``), loaded once."""
    return [dataset[i] for i in range(len(dataset))]


def make_reward(cfg, stage: str = "action", alpha: float = 1.0, beta: float = 1.0, r2: str = "bleu",
                clip_reward=None, **r2_kwargs):
    """R for a stage: ``"stage1"`` α·R1; ``"action"`` α·R1 + β·R2 (``r2`` a variant of
    :func:`drivekit.action_reward.action_reward`). ``clip_reward`` reuses a loaded R1."""
    from .action_reward import combined_reward
    from .rewards import ClipReward

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    r1 = clip_reward if clip_reward is not None else ClipReward.from_config(cfg)
    if stage == "stage1":
        return combined_reward(r1=r1, r2=None, alpha=alpha)
    return combined_reward(r1=r1, r2=r2, alpha=alpha, beta=beta, **r2_kwargs)


def build_trainer(cfg, items: Sequence[Mapping], reward, a2c: A2CConfig | None = None, *, policy=None,
                  start: str | Path = "sft", run_dir: str | Path | None = None,
                  instruction: str | None = None) -> A2CTrainer:
    """An :class:`A2CTrainer` on images-only prompts (``drivekit.prompts``) for ``items``.

    ``policy`` is a ``load_policy`` result to reuse (else one is loaded from ``start``). The
    processor is kept as ``trainer.processor``.
    """
    from . import prompts

    model, processor, reference = policy or load_policy(cfg, start)
    tokenizer = processor.tokenizer

    def make_inputs(batch):
        return prompts.encode(processor, [item["images"] for item in batch], instruction=instruction)

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    trainer = A2CTrainer(model, items, make_inputs, decode, reward, a2c or A2CConfig.tiny(),
                         eos_ids=[prompts.end_of_utterance_id(processor)], pad_id=tokenizer.pad_token_id,
                         run_dir=run_dir, reference_adapter=reference)
    trainer.processor = processor
    return trainer


def predictions(trainer: A2CTrainer, items: Sequence[Mapping], batch_size: int = 32,
                max_new_tokens: int = 32, target: str = "plain") -> list[dict]:
    """Greedy answers of the current policy, as SFT's ``predictions.jsonl`` rows
    (file_name, text, actions_pred, reasons_pred, actions_true, reasons_true, ok, problems);
    ``target="json"`` parses them as Stage-3 JSON."""
    from .sft import prediction_row

    texts = trainer.generate(items, batch_size=batch_size, max_new_tokens=max_new_tokens)
    return [prediction_row(item["name"], text, item["actions"], item["reasons"], target)
            for item, text in zip(items, texts)]


def prediction_rewards(rows: Sequence[Mapping], reward) -> dict:
    """Mean R and mean of each component over prediction rows (scored against their clips and labels)."""
    result = reward.evaluate([row["text"] for row in rows], file_name=[row["file_name"] for row in rows],
                             actions=[row["actions_true"] for row in rows],
                             reasons=[row["reasons_true"] for row in rows])
    return {"R": float(np.mean(result.total)), **{k: float(np.mean(v)) for k, v in result.components.items()}}


def compare(named_rows: Mapping[str, Sequence[Mapping]], reward=None) -> pd.DataFrame:
    """One row per model: F1_act, F1_rsn, pair F1 (sample-level, fractions), unparseable answers,
    and with ``reward`` the mean test reward R and its components."""
    from .sft import score

    table = {}
    for name, rows in named_rows.items():
        s = score(list(rows))
        entry = {"F1_act": s["actions"]["f1_all"], "F1_rsn": s["reasons"]["f1_all"], "F1_pair": s["pair_f1"],
                 "unparseable": s["unparseable"]}
        if reward is not None:
            entry.update(prediction_rewards(rows, reward))
        table[name] = entry
    return pd.DataFrame.from_dict(table, orient="index")


def curves(log: pd.DataFrame, columns: Sequence[str] = CURVE_COLUMNS) -> pd.DataFrame:
    """The log columns plotted like the paper's Fig. 3 (``drivekit.plots.plot_loss_curves``), with
    each reward component; skipped steps dropped."""
    if "skipped" in log:
        log = log[~log["skipped"].astype(bool)]
    extra = [c for c in log.columns if c.startswith("reward_")]
    keep = ["step", *[c for c in columns if c in log], *extra]
    return log[keep].reset_index(drop=True)


class ShortRuns:
    """Short A2C runs, each from the same start adapter (the reward widgets' backend).

    ``ShortRuns(cfg, policy, items, clip_reward)(alpha=, beta=, gamma=, lr=, steps=)`` restores
    the start adapter (``start``: a saved adapter folder; default: the adapter as it is when the
    ShortRuns is made), builds R = α·R1 + β·R2 and trains ``steps`` steps with a fresh value head;
    returns the log. ``a2c`` holds the other settings. ``make_reward(alpha, beta, gamma)`` replaces
    R = α·R1 + β·R2; γ is then its third weight (the JSON stage's R3) instead of the discount.
    """

    def __init__(self, cfg, policy, items: Sequence[Mapping], clip_reward, r2: str | None = None,
                 a2c: A2CConfig | None = None, stage: str = "action", start: str | Path | None = None,
                 make_reward: Callable[[float, float, float], object] | None = None):
        from peft import get_peft_model_state_dict

        self.cfg, self.policy, self.items, self.clip_reward = cfg, policy, list(items), clip_reward
        self.a2c, self.stage = a2c or A2CConfig.tiny(), stage
        self.r2 = r2 or self.a2c.r2
        model = policy[0]
        self.adapter = model.active_adapter
        self.start_dir = Path(start) if start is not None else None
        self.start = None if start is not None else {
            k: v.detach().clone() for k, v in get_peft_model_state_dict(model, adapter_name=self.adapter).items()}
        self.make_reward = make_reward
        self.trainer: A2CTrainer | None = None

    def restore(self) -> None:
        """Put the start adapter back: from ``start`` (a saved adapter folder) or the snapshot taken at creation."""
        from peft import set_peft_model_state_dict

        if self.start_dir is not None:
            load_adapter_weights(self.policy[0], self.start_dir, self.adapter)
        else:
            set_peft_model_state_dict(self.policy[0], self.start, adapter_name=self.adapter)

    def __call__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, lr: float | None = None,
                 steps: int | None = None, progress: bool = False, **changes) -> pd.DataFrame:
        self.restore()
        if self.make_reward is None:
            reward = make_reward(self.cfg, self.stage, alpha, beta, self.r2, clip_reward=self.clip_reward)
            changes = dict(gamma=gamma, **changes)
        else:
            reward = self.make_reward(alpha, beta, gamma)
        a2c = self.a2c.replace(lr=self.a2c.lr if lr is None else lr, steps=self.a2c.steps if steps is None else steps,
                               **changes)
        self.trainer = build_trainer(self.cfg, self.items, reward, a2c, policy=self.policy)
        return self.trainer.train(progress=progress)


# ---------------------------------------------------------------------------------------------
# Artifacts of the default action-stage run (notebook 04 writes them; later notebooks read them)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class A2CArtifacts:
    """Where an A2C run keeps its outputs: ``policy/`` (adapter + value head), ``log.csv``,
    ``predictions.jsonl`` (SFT's format, toy test split) and ``summary.json``."""

    dir: Path

    @property
    def policy(self) -> Path:
        return Path(self.dir) / "policy"

    @property
    def log(self) -> Path:
        return Path(self.dir) / "log.csv"

    @property
    def predictions(self) -> Path:
        return Path(self.dir) / "predictions.jsonl"

    @property
    def summary(self) -> Path:
        return Path(self.dir) / "summary.json"

    def complete(self) -> bool:
        return all(p.exists() for p in (self.policy, self.log, self.predictions, self.summary))


def artifacts(cfg) -> A2CArtifacts:
    return A2CArtifacts(Path(cfg.runs_dir) / "a2c")


def write_artifacts(out: A2CArtifacts, trainer: A2CTrainer, rows: Sequence[Mapping], table: pd.DataFrame | None = None,
                    **info) -> dict:
    """Save the policy, the log, the predictions and a summary (F1s, test rewards, settings)."""
    from .sft import score, write_predictions

    trainer.save_policy(out.policy)
    trainer.log_frame().to_csv(out.log, index=False)
    write_predictions(list(rows), out.predictions)
    s = score(list(rows))
    summary = dict(config=asdict(trainer.cfg), steps=trainer.step_count, f1_act=s["actions"]["f1_all"],
                   f1_rsn=s["reasons"]["f1_all"], unparseable=s["unparseable"], report=s,
                   comparison=None if table is None else table.to_dict(orient="index"), **info)
    out.summary.write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run(cfg=None, a2c: A2CConfig | None = None, out: str | Path | None = None, progress: bool = True) -> A2CArtifacts:
    """The default action stage: A2C from the SFT adapter on the toy train subset with
    R = α·R1 + β·R2, then greedy predictions on the toy test split, compared with SFT's."""
    from . import sft
    from .config import load
    from .rewards import ClipReward

    cfg = cfg or load()
    a2c = a2c or A2CConfig.tiny()
    result = A2CArtifacts(Path(out)) if out else artifacts(cfg)
    data = sft.toy_data(cfg)
    r1 = ClipReward.from_config(cfg)
    reward = make_reward(cfg, "action", a2c.alpha, a2c.beta, a2c.r2, clip_reward=r1)
    trainer = build_trainer(cfg, dataset_items(data.train), reward, a2c, start="sft", run_dir=result.dir / "run")
    test = dataset_items(data.test)
    sft_rows = predictions(trainer, test)
    t0 = time.perf_counter()
    trainer.train(progress=progress)
    seconds = time.perf_counter() - t0
    rows = predictions(trainer, test)
    table = compare({"SFT": sft_rows, "A2C": rows}, reward)
    write_artifacts(result, trainer, rows, table, train_seconds=round(seconds, 1))
    return result


def ensure(cfg=None) -> A2CArtifacts:
    """The A2C artifacts of ``cfg`` (default settings), made by :func:`run` when missing."""
    from .config import load

    cfg = cfg or load()
    result = artifacts(cfg)
    return result if result.complete() else run(cfg)
