"""A2C actor–critic fine-tuning of the VLM (proposal §2.2, §2.4.1, §5.3), in one file.

Everything A2C needs is here, in the order one step runs; nothing else in drivekit holds A2C code.
What it takes from elsewhere is shared with other algorithms: the reward (any
:class:`drivekit.rewards.weighted_reward.WeightedReward`, the same object GRPO gets), the VLM's LoRA
helpers (:mod:`drivekit.models.vlm`) and numbered checkpoint folders (:mod:`drivekit.algorithms.checkpoints`).

**Actor** π_θ: the VLM; only its LoRA parameters train. **Critic** V_w: a small MLP
(:class:`ValueHead`) on the body's last hidden state h(s_t), the vector the LM head turns into
π(·|s_t); s_t = (frames, first t generated tokens). The head is saved beside the adapter.

One :meth:`A2CTrainer.step`:

1. **Rollout** (:func:`rollout`): a batch of images-only prompts sampled with temperature /
   top-k / top-p, batched and KV-cached; each token's log-prob, entropy and V(s_t) are recorded.
2. **Rewards per token** (:func:`per_token_rewards`): ``terminal`` R(T) on the last token, or
   ``incremental`` r_{k+1} = R(T_{k+1}) − R(T_k), which telescope to R(T).
3. **Returns** G_t = Σ_{k≥t} γ^{k−t} r_{k+1} (γ = ``discount``) and **advantages**
   A_t = G_t − V(s_t), V detached (:func:`discounted_returns`, :func:`advantages`).
4. **Loss** = −mean A_t·log π(a_{t+1}|s_t) + c_v·mean (V(s_t) − G_t)² − c_e·mean H(π(·|s_t))
   [+ c_kl·mean KL(π ‖ π_ref)] over valid tokens (c_v ``value_coef``, c_e ``entropy_coef``, c_kl
   ``kl_coef``). KL: the k3 estimator exp(Δ) − Δ − 1, Δ = log π_ref − log π; π_ref is a frozen copy
   of the start adapter, or the base model with adapters disabled (Stage 1). LoRA and value-head
   gradients are clipped separately. The first ``critic_warmup`` steps train the value head alone:
   a fresh head says V ≈ 0, so every token of a well-scored sample would get A_t ≈ R > 0 and
   reinforce whatever was sampled (benchmarks/RESULTS.md).

``single_pass=False`` (default) samples without gradients, then one teacher-forced forward
(:func:`score_tokens`) recomputes log π, H and V with gradients, exactly; ``True`` keeps the
rollout's graph (no second forward, memory growing with tokens × layers). Log-probs are those of
the distribution sampling draws from (:func:`sampling_logits`): on-policy even with a top-k / top-p cut.

**Robustness**: settings that cannot run are refused when they are made (:meth:`A2CSettings.check`),
before any step; a non-finite reward becomes 0 and is counted; an answer the reward abstains on (``None``, no
signal: a vote without a confident majority) is left out of every loss; a step that raises or gives a
non-finite loss or logits is logged and skipped without touching the weights; ``max_failures`` consecutive
failures stop the run, naming the step (and, for an inf or NaN, the remedy: :class:`drivekit.models.vlm.NonFinite`).
Where the model computes in fp16 (a T4) the loss is scaled (``torch.amp.GradScaler``; a step whose scaled
gradients overflow is skipped and the scale lowered); elsewhere the scaler is off and changes nothing.
Sampling never emits the image token or any other special token but the end tokens
(:func:`drivekit.models.vlm.banned_token_ids`).
**Checkpoints**: every ``checkpoint_every`` steps, ``<run_dir>/checkpoint-<step>/``
holds the adapter, value head and, written atomically and last, the trainer state (optimizer, step,
settings, log; :func:`drivekit.algorithms.checkpoints.write_state`); :meth:`A2CTrainer.resume` continues
from the latest (batches and samples are seeded by step), refusing a state written with other settings
or one it cannot read, with the file named. Each step's row goes to ``log.jsonl`` and, with
``$DRIVEKIT_REPORT_TO`` on, to trackio or TensorBoard (:mod:`drivekit.core.tracking`), under the names trl's
GRPO logs where A2C measures the same thing (:func:`tracked_metrics`), so a dashboard plots both on one
chart. :func:`generate` decodes many clips (greedy by default) with the same KV-cached rollout, for evaluation.
"""
from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from drivekit.algorithms import checkpoints
from drivekit.core.config import check_lr_schedule
from drivekit.core.files import write_json
from drivekit.core.settings import Settings
from drivekit.models.vlm import (NonFinite, banned_token_ids, fp16_compute, keep_4bit_trainable, load_adapter_weights,
                                 reference_policy)
from drivekit.core.tracking import Report, Tracker
from drivekit.rewards.weighted_reward import RewardResult, take

VALUE_HEAD_WEIGHTS = "value_head.safetensors"
VALUE_HEAD_CONFIG = "value_head.json"
TRAINER_STATE = "trainer_state.pt"
LOG_FILE = "log.jsonl"
REWARD_MODES = ("terminal", "incremental")
PREFIX_EVERY = ("word", "token")


# ---------------------------------------------------------------------------------------------
# 0. Settings (plain data)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class A2CSettings(Settings):
    """Hyper-parameters of an A2C run. ``A2CSettings.tiny()`` / ``.paper()`` give the profiles' defaults
    (``config.profile_defaults(A2CSettings, cfg)``), written in ``PROFILES``: ``tiny`` is CPU-sized for the
    tiny model (a minute on 2 cores; why each differs: benchmarks/RESULTS.md: whitening blows up the
    critic's small errors, KL holds the policy near SFT's format), ``paper`` is SmolVLM-Instruct with 4-bit
    QLoRA on a GPU. The reward and its weights are not here: the trainer takes any reward object
    (:mod:`drivekit.rewards.weighted_reward`). A bad combination is refused when the settings are made
    (:meth:`check`), before any step."""

    steps: int = 60
    batch_size: int = 8  # completions per step
    samples_per_clip: int = 1  # completions sampled for each clip of a step (batch_size / this clips)
    lr: float = 2e-4  # LoRA parameters
    lr_schedule: str = "constant"  # constant | linear: the LoRA lr falls linearly from lr to 0 at `steps`
    value_lr: float = 1e-3  # value head
    weight_decay: float = 0.0
    discount: float = 1.0  # γ of the returns
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

    # Fields stored under an older name in earlier runs' summaries (read by the experiment's reuse check).
    RENAMED: ClassVar[dict[str, str]] = {"gamma": "discount"}
    PROFILES: ClassVar[dict] = {
        "tiny": dict(lr=1e-4, kl_coef=0.1, normalize_advantages=False),
        "paper": dict(steps=500, batch_size=4, lr=1e-5, value_lr=1e-4, max_new_tokens=64, top_p=0.9, kl_coef=0.05,
                      entropy_coef=0.001, checkpoint_every=50, keep_checkpoints=3),
    }

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """A clear ``ValueError`` naming the field when these settings cannot run (so that a misconfigured
        run stops at once, not after ``max_failures`` skipped steps)."""
        check_lr_schedule(self.lr_schedule)
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, not {self.reward_mode!r}")
        if self.prefix_every not in PREFIX_EVERY:
            raise ValueError(f"prefix_every must be one of {PREFIX_EVERY}, not {self.prefix_every!r}")
        if self.single_pass and (self.critic_detach or self.critic_warmup > 0):
            raise ValueError("critic_detach and critic_warmup need single_pass=False")
        for name in ("steps", "batch_size", "samples_per_clip", "max_new_tokens", "max_failures", "value_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        for name in ("top_k", "critic_warmup", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p!r}")
        if not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be in [0, 1], not {self.discount!r}")


# ---------------------------------------------------------------------------------------------
# 1. The policy: the VLM's body, its LM head, and the distribution sampling draws from
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


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The LoRA parameters of ``model``; every other parameter is frozen (only LoRA may update)."""
    params = []
    for name, p in model.named_parameters():
        if "lora_" in name and p.requires_grad:
            params.append(p)
        else:
            p.requires_grad_(False)
    if not params:
        raise ValueError("the model has no trainable LoRA parameters: wrap it with peft (e.g. drivekit.models.vlm.load_vlm)")
    return params


def zero_dropout(model: nn.Module) -> None:
    """RL samples and scores with the same network: no dropout (LoRA dropout included)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


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


# ---------------------------------------------------------------------------------------------
# 2. The critic
# ---------------------------------------------------------------------------------------------
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
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, folder / VALUE_HEAD_WEIGHTS)
        write_json(folder / VALUE_HEAD_CONFIG, {"hidden": self.hidden, "width": self.width})

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "ValueHead":
        folder = Path(folder)
        head = cls(**json.loads((folder / VALUE_HEAD_CONFIG).read_text()))
        head.load_state_dict(load_file(folder / VALUE_HEAD_WEIGHTS))
        return head.to(device)


# ---------------------------------------------------------------------------------------------
# 3. Rollout: sample completions, batched and KV-cached; rescore them with gradients
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


def rollout(model: nn.Module, value_head: nn.Module | None, inputs: Mapping, *, max_new_tokens: int,
            eos_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
            top_k: int = 0, generator: torch.Generator | None = None, with_grad: bool = False,
            step: int | None = None) -> Rollout:
    """Sample completions for a batch of prompts, batched and KV-cached.

    One prefill over the prompts (images included), then one single-token forward per generated
    token for the whole batch, reusing the KV cache; V(s_t) comes from the hidden state computed
    anyway. ``inputs`` are the processor's tensors for left-padded prompts (``input_ids``,
    ``attention_mask`` and, for a VLM, ``pixel_values`` / ``pixel_attention_mask``). Rows that
    have emitted an end token (``eos_ids``) are padded with ``pad_id`` afterwards; the loop stops
    when all rows have ended or after ``max_new_tokens``. ``with_grad`` keeps the graph (the
    single-pass update); otherwise everything runs under ``torch.no_grad``. The model runs in eval
    mode (:func:`eval_mode`), so the KV cache stays on with gradient checkpointing enabled. Tokens
    :func:`drivekit.models.vlm.banned_token_ids` names (the image token and every other special token but
    the end tokens) are never sampled; inf or NaN logits raise :class:`drivekit.models.vlm.NonFinite`
    (naming ``step``, the A2C step, when given).
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
        for t in range(max_new_tokens):
            raw = head(h).float()
            if not bool(torch.isfinite(raw).all()):  # an fp16 overflow in the body: stop before sampling from it
                raise NonFinite("A2C", step, f"logits of sampled token {t + 1}", raw[~torch.isfinite(raw)][0].item())
            logits = _ban(raw, banned)
            with torch.no_grad():
                token = sample_tokens(logits, temperature, top_p, generator, top_k)
            token = torch.where(done, torch.full_like(token, pad_id), token)
            # a finished row's padding is scored as the row's most likely token (masked out later): padding
            # may be a banned token, whose log-prob is -inf, and -inf - -inf is a NaN no mask removes
            logp, entropy, full = _token_stats(logits, torch.where(done, logits.argmax(-1), token), temperature,
                                               top_k, top_p)
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
                   logprobs_full=stack(fulls), seconds=time.perf_counter() - start)


class TokenScores(NamedTuple):
    """Per-token ``(B, T)`` scores of completions: log π and entropy of the sampling distribution,
    V(s_t), and log π under the uncut tempered softmax (for the KL term)."""

    logp: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    logp_full: torch.Tensor


def score_tokens(model: nn.Module, value_head: nn.Module | None, prompt: Mapping, tokens: torch.Tensor,
                 mask: torch.Tensor, temperature: float = 1.0, critic_detach: bool = False, top_k: int = 0,
                 top_p: float = 1.0) -> TokenScores:
    """Teacher-forced log π(a_{t+1}|s_t), H(π(·|s_t)) and V(s_t) of given completions, ``(B, T)`` each.

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
    logits = _ban(head(h).float(), banned_token_ids(model))
    scored = torch.where(mask.bool(), tokens, logits.argmax(-1))  # padding as in rollout: never a banned token
    logp, entropy, full = _token_stats(logits, scored, temperature, top_k, top_p)
    values = value_head(h.detach() if critic_detach else h) if value_head is not None else torch.zeros_like(logp)
    return TokenScores(logp, entropy, values, full)


def completion_texts(tokens: torch.Tensor, mask: torch.Tensor, decode: Callable[[list[int]], str]) -> list[str]:
    """The decoded text of each completion (special tokens, such as the end token, are the
    decoder's business: pass one that skips them), stripped."""
    return [decode(row[m].tolist()).strip() for row, m in zip(tokens.cpu(), mask.cpu())]


# ---------------------------------------------------------------------------------------------
# 4. Rewards per token (proposal §2.4.1): terminal, or incremental
# ---------------------------------------------------------------------------------------------
def prefix_ends(ids: Sequence[int], decode: Callable[[list[int]], str], every: str = "word") -> list[int]:
    """Prefix lengths k (1..n) at which R(T_k) is evaluated; always includes n.

    ``every="token"``: all of them. ``"word"``: k where the next token's text starts with
    whitespace (a word has just ended), and n. Scoring at word ends bounds the cost; the reward
    of a word then lands on its last token.
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
    0 elsewhere, with R(T_0) = R("") = 0. They sum to R(T_n)."""
    r = np.zeros(length)
    previous = 0.0
    for k, value in zip(ends, values_at_ends):
        r[k - 1] = value - previous
        previous = value
    return r


def reward_columns(items: Sequence[Mapping], skip: Sequence[str] = ("frames", "images")) -> dict:
    """The batch columns a reward reads, trl-style (``{column: [value per item]}``), of a batch of
    items: every field but the images (``file_name`` for R1, ``actions``/``reasons`` for R2)."""
    keys = [k for k in items[0] if k not in skip] if items else []
    return {k: [item.get(k) for item in items] for k in keys}


def per_token_rewards(reward, tokens: torch.Tensor, mask: torch.Tensor, decode: Callable[[list[int]], str],
                      columns: Mapping, mode: str = "incremental",
                      every: str = "word") -> tuple[np.ndarray, RewardResult]:
    """Per-token rewards ``(B, T)`` of the completions ``tokens`` (valid where ``mask``), and the
    :class:`RewardResult` of their full texts. ``reward.evaluate(texts, **columns)`` scores texts,
    all prefixes of the batch in one call (incremental mode). The row of a completion the reward abstained
    on (``RewardResult.abstained``: no signal) is NaN."""
    tokens, mask = tokens.cpu(), mask.cpu()
    rows = [row[m].tolist() for row, m in zip(tokens, mask)]
    texts = [decode(r).strip() for r in rows]
    r = np.zeros(tuple(tokens.shape))
    if mode == "terminal":
        result = reward.evaluate(texts, **columns)
        for i, row in enumerate(rows):
            if row:
                r[i, len(row) - 1] = result.total[i]
        r[result.abstained] = np.nan
    elif mode == "incremental":
        ends = [prefix_ends(row, decode, every) for row in rows]
        owner = [i for i, e in enumerate(ends) for _ in e]
        prefixes = [decode(rows[i][:k]).strip() for i, e in enumerate(ends) for k in e]
        scored = reward.evaluate(prefixes, **{k: take(v, owner) for k, v in columns.items()})
        final = np.cumsum([len(e) for e in ends]) - 1  # each row's full text is its last prefix
        for i, e in enumerate(ends):
            r[i, : len(rows[i])] = incremental_rewards(scored.total[final[i] - len(e) + 1: final[i] + 1], e, len(rows[i]))
        result = RewardResult(total=scored.total[final], components={k: v[final] for k, v in scored.components.items()},
                              nonfinite=scored.nonfinite, empty=sum(1 for t in texts if not t),
                              abstained=scored.abstained[final])
        r[result.abstained] = np.nan
    else:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, not {mode!r}")
    return r, result


# ---------------------------------------------------------------------------------------------
# 5. Returns, advantages, batches
# ---------------------------------------------------------------------------------------------
def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, discount: float) -> torch.Tensor:
    """G_t = Σ_{k≥t} γ^{k−t} r_{k+1} over each row's valid tokens (``rewards[:, t]`` is r_{t+1}); 0 on padding."""
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + discount * running * mask[:, t]
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


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of step ``step``'s batch: consecutive slices of a seeded permutation per epoch."""
    return [int(np.random.default_rng([seed, j // n]).permutation(n)[j % n])
            for j in range(step * batch_size, (step + 1) * batch_size)]


# ---------------------------------------------------------------------------------------------
# 6. The trainer: one step, the loop, checkpoints
# ---------------------------------------------------------------------------------------------
# A step's measures that trl's GRPOTrainer logs too, measured the same way, under trl's names (a
# tracker adds ``train/``): the mean sampled reward, KL (k3) to the reference, the policy's mean token
# entropy, the LoRA learning rate, the loss minimised, the policy's gradient norm before clipping,
# the mean completion length in tokens (the end token included) and the step's seconds.
AS_TRL = {"reward": "reward", "kl": "kl", "entropy": "entropy", "lr": "learning_rate", "loss": "loss",
          "grad_norm": "grad_norm", "length": "completions/mean_length", "seconds": "step_time"}
# A2C's own measures, under their own names: the critic's and the policy's losses, the mean V(s_t) and
# return G_t, the value head's gradient norm, the on-policy check, failed steps.
OWN = ("policy_loss", "value_loss", "value", "ret", "value_grad_norm", "logp_gap", "skipped")


def reward_names(reward) -> dict[str, str]:
    """Each term of ``reward`` (a :class:`drivekit.rewards.weighted_reward.WeightedReward`) -> its name in trl's
    logs: trl names a reward function by what it is called (a label-F1 R2 term ``r2``: ``r2_label_f1``)."""
    from trl.trainer.utils import get_callable_name  # trl's own naming, so that the names are the same

    return {name: get_callable_name(fn) for name, (_, fn) in getattr(reward, "terms", {}).items()}


def tracked_metrics(row: Mapping, names: Mapping[str, str], samples: int) -> dict:
    """A step's ``row`` as A2C reports it to a tracker: :data:`AS_TRL` under trl's names, each reward
    term ``reward_<term>`` as ``rewards/<trl name>/mean`` (``names``: :func:`reward_names`), the share of
    completions cut at ``max_new_tokens`` as ``completions/clipped_ratio``, :data:`OWN` as they are, and
    ``samples_per_second`` (``samples`` completions a step)."""
    out = {trl: row[key] for key, trl in AS_TRL.items() if key in row}
    out.update({f"rewards/{trl}/mean": row[f"reward_{term}"] for term, trl in names.items() if f"reward_{term}" in row})
    if "finished" in row:
        out["completions/clipped_ratio"] = 1.0 - row["finished"]
    out.update({key: float(row[key]) for key in OWN if key in row})
    if row.get("seconds"):
        out["samples_per_second"] = samples / row["seconds"]
    return out


class A2CTrainer:
    """A2C on a peft-wrapped VLM (see the module docstring).

    - ``items``: the training clips, each a dict with ``frames`` (PIL images) and the reward's
      columns (``file_name`` for R1, ``actions``/``reasons`` for R2).
    - ``make_inputs(items) -> dict``: left-padded prompt tensors (e.g. ``drivekit.models.prompts.encode``).
    - ``decode(ids) -> str``: token ids to text, skipping special tokens.
    - ``reward``: a :class:`drivekit.rewards.weighted_reward.WeightedReward` (or any object with
      ``evaluate(completions, **batch) -> RewardResult``).
    - ``reference_adapter``: name of a frozen peft adapter holding the SFT policy for the KL term
      (None: the base model with adapters disabled).
    - ``settings``: the :class:`A2CSettings` (kept as ``trainer.settings``), checked here, before any step.
    - ``progress`` / ``report``: :meth:`train`'s defaults (a tqdm bar; where each step is reported).
    """

    def __init__(self, model: nn.Module, items: Sequence[Mapping], make_inputs: Callable[[Sequence[Mapping]], Mapping],
                 decode: Callable[[list[int]], str], reward, settings: A2CSettings | None = None, *,
                 eos_ids: Sequence[int], pad_id: int, value_head: ValueHead | None = None,
                 run_dir: str | Path | None = None, reference_adapter: str | None = None, progress: bool = True,
                 report: Report | None = None):
        self.settings = settings or A2CSettings()
        if not isinstance(self.settings, A2CSettings):
            raise TypeError(f"settings must be an A2CSettings, not {type(self.settings).__name__}")
        self.settings.check()  # a misconfigured run stops here, not after max_failures skipped steps
        # a Sequence (a list, or items streamed from disk) is indexed as it is; anything else is listed once
        self.items = items if isinstance(items, Sequence) else list(items)
        self.model, self.make_inputs, self.decode, self.reward = model, make_inputs, decode, reward
        self.eos_ids, self.pad_id = list(eos_ids), pad_id
        self.progress, self.report = progress, report
        self.device = model_device(model)
        with torch.random.fork_rng():  # a fresh head's first layer is random: seeded, so runs repeat
            torch.manual_seed(self.settings.seed)
            self.value_head = (value_head or ValueHead(hidden_size(model), self.settings.value_hidden)).to(self.device)
        self.run_dir, self.reference_adapter = Path(run_dir) if run_dir else None, reference_adapter
        zero_dropout(model)
        keep_4bit_trainable(model)
        self.policy_params = trainable_parameters(model)
        self.optimizer = torch.optim.AdamW([
            dict(params=self.policy_params, lr=self.settings.lr),
            dict(params=list(self.value_head.parameters()), lr=self.settings.value_lr),
        ], weight_decay=self.settings.weight_decay)
        self.step_count, self.failures, self.log = 0, 0, []
        # loss scaling where the model computes in fp16 (a T4): off, a pass-through, on a CPU, bf16 or float32
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16_compute(model))

    # -- one step ------------------------------------------------------------------------------
    def batch(self, step: int | None = None) -> list[Mapping]:
        """The items of step ``step``: ``batch_size / samples_per_clip`` clips, each repeated."""
        step = self.step_count if step is None else step
        repeat = max(1, self.settings.samples_per_clip)
        clips = max(1, self.settings.batch_size // repeat)
        return [self.items[i] for i in batch_indices(len(self.items), clips, step, self.settings.seed) for _ in range(repeat)]

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.settings.seed * 1_000_003 + step)

    def token_rewards(self, roll: Rollout, columns: Mapping) -> tuple[torch.Tensor, dict]:
        """Per-token rewards ``(B, T)`` (terminal or incremental) and the log of the final texts' rewards."""
        r, result = per_token_rewards(self.reward, roll.tokens, roll.mask, self.decode, columns, self.settings.reward_mode,
                                      self.settings.prefix_every)
        return torch.tensor(r, dtype=torch.float32, device=self.device), result.summary()

    def step(self) -> dict:
        """One A2C update on the next batch; never raises for a bad batch (see the module docstring)."""
        s, step = self.settings, self.step_count
        t0 = time.perf_counter()
        row: dict = {"step": step + 1, "lr": s.lr * (max(0.0, 1 - step / s.steps) if s.lr_schedule == "linear" else 1.0)}
        self.optimizer.param_groups[0]["lr"] = row["lr"]  # the LoRA lr: a function of the step, so a resumed run follows it
        try:
            items = self.batch(step)
            columns = reward_columns(items)
            inputs = self.make_inputs(items)
            self.model.eval()
            roll = rollout(self.model, self.value_head, inputs, max_new_tokens=s.max_new_tokens,
                           eos_ids=self.eos_ids, pad_id=self.pad_id, temperature=s.temperature, top_p=s.top_p,
                           top_k=s.top_k, generator=self.generator(step), with_grad=s.single_pass, step=step + 1)
            rewards, info = self.token_rewards(roll, columns)
            row.update(info)
            silent = torch.isnan(rewards).any(dim=1)  # the reward abstained (no signal): left out of every loss
            rewards = torch.nan_to_num(rewards, nan=0.0)
            mask = roll.mask.float() * (~silent).float()[:, None]
            warmup = step < s.critic_warmup  # the critic alone learns: no policy loss, body detached
            if s.single_pass:  # (critic_detach and critic_warmup need two passes: A2CSettings.check)
                logp, entropy, values, logp_full = roll.logprobs, roll.entropy, roll.values, roll.logprobs_full
            else:
                self.model.train()
                logp, entropy, values, logp_full = score_tokens(
                    self.model, self.value_head, roll.prompt, roll.tokens, roll.mask, s.temperature,
                    s.critic_detach or warmup, s.top_k, s.top_p)
            returns = discounted_returns(rewards, mask, s.discount)
            adv = advantages(returns, values, mask, s.normalize_advantages)
            policy_loss = -masked_mean(adv * logp, mask)
            value_loss = masked_mean((values - returns) ** 2, mask)
            entropy_mean = masked_mean(entropy, mask)
            loss = policy_loss + s.value_coef * value_loss - s.entropy_coef * entropy_mean
            kl = torch.zeros((), device=self.device)
            if warmup:
                loss = s.value_coef * value_loss
            elif s.kl_coef > 0:
                with torch.no_grad(), reference_policy(self.model, self.reference_adapter):
                    ref_logp = score_tokens(self.model, None, roll.prompt, roll.tokens, roll.mask, s.temperature).logp
                delta = ref_logp - logp_full  # both uncut: KL(π ‖ π_ref) is 0 at the start
                kl = masked_mean(delta.exp() - delta - 1, mask)
                loss = loss + s.kl_coef * kl
            row["logp_gap"] = masked_mean((logp.detach() - roll.logprobs).abs(), mask).item()  # 0 when on-policy
            row.update(policy_loss=policy_loss.item(), value_loss=value_loss.item(), entropy=entropy_mean.item(),
                       kl=kl.item(), loss=loss.item(), value=masked_mean(values.detach(), mask).item(),
                       ret=masked_mean(returns, mask).item(), length=float(roll.lengths.float().mean()),
                       finished=float(roll.finished.float().mean()), rollout_s=roll.seconds)
            if not math.isfinite(row["loss"]):
                raise NonFinite("A2C", step + 1, "loss", row["loss"])
            self.optimizer.zero_grad(set_to_none=True)
            # fp16 compute: the loss scaled up for the backward (gradients too small for fp16 survive), the
            # gradients scaled back before clipping; a disabled scaler (CPU, bf16, float32) changes nothing
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            # Clipped separately: a large critic gradient must not shrink the policy's step.
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy_params, s.max_grad_norm)
            value_grad_norm = torch.nn.utils.clip_grad_norm_(list(self.value_head.parameters()), s.max_grad_norm)
            overflow = not bool(torch.isfinite(grad_norm) and torch.isfinite(value_grad_norm))
            if overflow and not self.scaler.is_enabled():
                raise NonFinite("A2C", step + 1, "gradient norm", f"{grad_norm.item()} / {value_grad_norm.item()}")
            self.scaler.step(self.optimizer)  # a scaler skips the update on inf gradients (the scale was too high)
            self.scaler.update()  # ... and lowers the scale: such a step is skipped, not failed
            row.update(grad_norm=float(grad_norm), value_grad_norm=float(value_grad_norm), skipped=overflow,
                       error=f"fp16 gradient overflow: loss scale lowered to {self.scaler.get_scale():g}"
                       if overflow else "", warmup=warmup)
            self.failures = 0
        except Exception as err:  # a bad batch must not kill the loop
            self.optimizer.zero_grad(set_to_none=True)
            self.failures += 1
            row.update(skipped=True, error=f"{type(err).__name__}: {err}"[:500])
            row["traceback"] = traceback.format_exc()[-3000:]
            if self.failures >= s.max_failures:
                self._append(row)
                message = str(err) if isinstance(err, NonFinite) else f"A2C step {step + 1}: {row['error']}"
                raise RuntimeError(f"{message} ({self.failures} consecutive A2C steps failed)") from err
        finally:
            self.model.eval()
        row["seconds"] = time.perf_counter() - t0
        self._append(row)
        return row

    def _append(self, row: dict) -> None:
        self.step_count = row["step"]
        self.log.append(row)
        self._write_log([row], "w" if row["step"] == 1 else "a")  # a new run replaces an old log

    def _write_log(self, rows: Sequence[dict], mode: str) -> None:
        if self.run_dir:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / LOG_FILE, mode) as f:
                f.writelines(json.dumps({k: v for k, v in row.items() if k != "traceback"}) + "\n" for row in rows)

    # -- the loop --------------------------------------------------------------------------------
    def train(self, steps: int | None = None, progress: bool | None = None,
              callback: Callable[["A2CTrainer", dict], None] | None = None,
              report: Report | None = None) -> pd.DataFrame:
        """Run until ``steps`` (default ``settings.steps``) steps in total have been taken; returns the log.
        ``progress``: a tqdm bar (default: the trainer's ``progress``); ``report``: where each step's
        :func:`tracked_metrics` go (default: the trainer's, else ``$DRIVEKIT_REPORT_TO``, run ``A2C``)."""
        from tqdm.auto import tqdm

        total = self.settings.steps if steps is None else steps
        progress = self.progress if progress is None else progress
        report = report or self.report or Report()
        config = dict(asdict(self.settings), reward_weights=dict(getattr(self.reward, "weights", {})))
        tracker = Tracker(report, report.run_name("A2C"), config, resume=self.step_count > 0)
        names = reward_names(self.reward) if tracker.active else {}
        repeat = max(1, self.settings.samples_per_clip)
        samples = max(1, self.settings.batch_size // repeat) * repeat  # completions a step (see batch)
        bar = tqdm(total=total, initial=min(self.step_count, total), desc="A2C", disable=not progress,
                   mininterval=1.0)
        try:
            while self.step_count < total:
                row = self.step()
                tracker.log(tracked_metrics(row, names, samples), row["step"])
                bar.update()
                if row.get("skipped"):
                    bar.set_postfix(skipped=row["error"][:40], refresh=False)
                else:
                    bar.set_postfix(R=f"{row['reward']:.3f}", V=f"{row['value_loss']:.3f}", refresh=False)
                if callback:
                    callback(self, row)
                every = self.settings.checkpoint_every
                if self.run_dir and every and self.step_count % every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
            tracker.finish()
        if self.run_dir:
            self.save_checkpoint()
        return self.log_frame()

    def log_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.log).drop(columns="traceback", errors="ignore")

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
        """``checkpoint-<step>/``: the adapter and value head, then the trainer state (:data:`TRAINER_STATE`:
        step, optimizer, failures, settings, log; plain tensors, numbers, strings, lists and dicts, so
        that it loads with ``weights_only=True``), written atomically and last: the folder counts once
        that file is there (:func:`drivekit.algorithms.checkpoints.latest`)."""
        folder = checkpoints.folder(self.run_dir, self.step_count)
        self.save_policy(folder)
        checkpoints.write_state({"step": self.step_count, "optimizer": self.optimizer.state_dict(),
                                 "failures": self.failures, "settings": asdict(self.settings), "log": self.log,
                                 "scaler": self.scaler.state_dict()},
                                folder / TRAINER_STATE)
        checkpoints.prune(self.run_dir, self.settings.keep_checkpoints)
        return folder

    def latest_checkpoint(self) -> Path | None:
        return checkpoints.latest(self.run_dir, TRAINER_STATE)

    def load_checkpoint(self, folder: str | Path) -> None:
        """Adapter weights, value head, optimizer, step and log from ``folder``. Refused, with the file
        named, when its trainer state is unreadable (:class:`drivekit.core.files.Unfinished`) or was
        written with other settings than this trainer's (``ValueError``)."""
        folder = Path(folder)
        path = folder / TRAINER_STATE
        state = checkpoints.read_state(path, ("step", "optimizer", "failures", "settings", "log"))
        checkpoints.check_settings(path, state["settings"], asdict(self.settings))
        load_adapter_weights(self.model, folder)
        self.value_head.load_state_dict(ValueHead.load(folder, self.device).state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # fp16 loss scaling: its scale goes on from where it was
            self.scaler.load_state_dict(state["scaler"])
        self.step_count, self.failures, self.log = state["step"], state["failures"], list(state["log"])
        self._write_log(self.log, "w")  # the log file follows the checkpoint

    def resume(self) -> bool:
        """Continue from the latest checkpoint in ``run_dir``; False when there is none."""
        latest = self.latest_checkpoint()
        if latest is not None:
            self.load_checkpoint(latest)
        return latest is not None


# ---------------------------------------------------------------------------------------------
# 7. Answers of the policy, for evaluation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(model: nn.Module, items: Sequence[Mapping], make_inputs: Callable[[Sequence[Mapping]], Mapping],
             decode: Callable[[list[int]], str], *, eos_ids: Sequence[int], pad_id: int, max_new_tokens: int,
             batch_size: int = 32, temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
             progress: bool = False) -> list[str]:
    """Completions of ``items`` (greedy by default), ``batch_size`` clips per batched, KV-cached rollout."""
    from tqdm.auto import tqdm

    texts = []
    model.eval()
    for start in tqdm(range(0, len(items), batch_size), desc="generating", disable=not progress, mininterval=1.0):
        chunk = items[start:start + batch_size]
        roll = rollout(model, None, make_inputs(chunk), max_new_tokens=max_new_tokens, eos_ids=eos_ids, pad_id=pad_id,
                       temperature=temperature, top_p=top_p, generator=torch.Generator().manual_seed(seed + start))
        texts += completion_texts(roll.tokens, roll.mask, decode)
    return texts
