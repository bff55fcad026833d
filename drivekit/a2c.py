"""A2C actor–critic fine-tuning of the VLM (proposal §2.2, §2.4.1, §5.3; DESIGN 6), in one file.

**Actor** π_θ: the VLM; only its LoRA parameters train. **Critic** V_w: a small MLP
(:class:`ValueHead`) on the body's last hidden state h(s_t), the vector the LM head turns into
π(·|s_t); s_t = (frames, first t generated tokens). The head is saved beside the adapter.

One :meth:`A2CTrainer.step`:

1. **Rollout**: a batch of images-only prompts sampled with temperature / top-k / top-p, batched
   and KV-cached (:func:`drivekit.sampling.rollout`).
2. **Rewards** per token, ``terminal`` or ``incremental`` r_{k+1} = R(T_{k+1}) − R(T_k)
   (:mod:`drivekit.token_rewards`), R e.g. α·R1 + β·R2 (:class:`drivekit.action_reward.WeightedReward`).
3. **Returns** G_t = Σ_{k≥t} γ^{k−t} r_{k+1}; **advantages** A_t = G_t − V(s_t), V detached.
4. **Loss** = −mean A_t·log π(a_{t+1}|s_t) + c_v·mean (V(s_t) − G_t)² − c_e·mean H(π(·|s_t))
   [+ c_kl·mean KL(π ‖ π_ref)] over valid tokens. KL: k3 estimator exp(Δ) − Δ − 1,
   Δ = log π_ref − log π; π_ref is a frozen copy of the start adapter, or the base model with
   adapters disabled (Stage 1). LoRA and value-head gradients are clipped separately. The first
   ``critic_warmup`` steps train the value head alone: a fresh head says V ≈ 0, so every token of a
   well-scored sample would get A_t ≈ R > 0 and reinforce whatever was sampled (benchmarks/RESULTS.md).

``single_pass=False`` (default) samples without gradients, then one teacher-forced forward
(:func:`drivekit.sampling.score_tokens`) recomputes log π, H and V with gradients, exactly; ``True``
keeps the rollout's graph (no second forward, memory growing with tokens × layers). Log-probs are
those of the distribution sampling draws from: on-policy even with a top-k / top-p cut.

**Robustness**: a non-finite reward becomes 0 and is counted; a step that raises or gives a
non-finite loss is logged and skipped without touching the weights; ``max_failures`` consecutive
failures stop the run. **Checkpoints**: every ``checkpoint_every`` steps, ``<run_dir>/checkpoint-<step>/``
holds the adapter, value head and optimizer; :meth:`A2CTrainer.resume` continues from the latest
(batches and samples are seeded by step). Each step's row goes to ``trainer.log`` and ``log.jsonl``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import checkpoints
from .action_reward import reward_columns
from .config import check_lr_schedule
from .models import keep_4bit_trainable, load_adapter_weights, reference_policy, trainable_parameters, zero_dropout
from .sampling import Rollout, generate, hidden_size, model_device, rollout, score_tokens
from .token_rewards import token_rewards

VALUE_HEAD_WEIGHTS = "value_head.safetensors"
VALUE_HEAD_CONFIG = "value_head.json"
TRAINER_STATE = "trainer_state.pt"
LOG_FILE = "log.jsonl"


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
    lr_schedule: str = "constant"  # constant | linear: the LoRA lr falls linearly from lr to 0 at `steps`
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
        """CPU-sized defaults for the tiny model (a minute on 2 cores); why each differs: benchmarks/RESULTS.md
        (thresholded BLEU without KL drifts from SFT's format; whitening blows up the critic's small errors)."""
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
# The critic
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
        (folder / VALUE_HEAD_CONFIG).write_text(json.dumps({"hidden": self.hidden, "width": self.width}))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "ValueHead":
        folder = Path(folder)
        head = cls(**json.loads((folder / VALUE_HEAD_CONFIG).read_text()))
        head.load_state_dict(load_file(folder / VALUE_HEAD_WEIGHTS))
        return head.to(device)


# ---------------------------------------------------------------------------------------------
# Returns, advantages, batches
# ---------------------------------------------------------------------------------------------
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


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of step ``step``'s batch: consecutive slices of a seeded permutation per epoch."""
    return [int(np.random.default_rng([seed, j // n]).permutation(n)[j % n])
            for j in range(step * batch_size, (step + 1) * batch_size)]


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
        self.run_dir, self.reference_adapter = Path(run_dir) if run_dir else None, reference_adapter
        check_lr_schedule(self.cfg.lr_schedule)
        zero_dropout(model)
        keep_4bit_trainable(model)
        self.policy_params = trainable_parameters(model)
        self.optimizer = torch.optim.AdamW([
            dict(params=self.policy_params, lr=self.cfg.lr),
            dict(params=list(self.value_head.parameters()), lr=self.cfg.value_lr),
        ], weight_decay=self.cfg.weight_decay)
        self.step_count, self.failures, self.log = 0, 0, []

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
        r, result = token_rewards(self.reward, roll.tokens, roll.mask, self.decode, columns, self.cfg.reward_mode,
                                  self.cfg.prefix_every)
        return torch.tensor(r, dtype=torch.float32, device=self.device), result.summary()

    def step(self) -> dict:
        """One A2C update on the next batch; never raises for a bad batch (see the module docstring)."""
        cfg, step = self.cfg, self.step_count
        t0 = time.perf_counter()
        row: dict = {"step": step + 1, "lr": cfg.lr * (max(0.0, 1 - step / cfg.steps) if cfg.lr_schedule == "linear" else 1.0)}
        self.optimizer.param_groups[0]["lr"] = row["lr"]  # the LoRA lr: a function of the step, so a resumed run follows it
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
        self._write_log([row], "w" if row["step"] == 1 else "a")  # a new run replaces an old log

    def _write_log(self, rows: Sequence[dict], mode: str) -> None:
        if self.run_dir:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / LOG_FILE, mode) as f:
                f.writelines(json.dumps({k: v for k, v in row.items() if k != "traceback"}) + "\n" for row in rows)

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
        folder = checkpoints.folder(self.run_dir, self.step_count)
        self.save_policy(folder)
        torch.save({"step": self.step_count, "optimizer": self.optimizer.state_dict(), "failures": self.failures,
                    "config": asdict(self.cfg), "log": self.log}, folder / TRAINER_STATE)
        checkpoints.prune(self.run_dir, self.cfg.keep_checkpoints)
        return folder

    def latest_checkpoint(self) -> Path | None:
        return checkpoints.latest(self.run_dir, TRAINER_STATE)

    def load_checkpoint(self, folder: str | Path) -> None:
        """Adapter weights, value head, optimizer, step and log from ``folder``."""
        folder = Path(folder)
        load_adapter_weights(self.model, folder)
        self.value_head.load_state_dict(ValueHead.load(folder, self.device).state_dict())
        state = torch.load(folder / TRAINER_STATE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count, self.failures, self.log = state["step"], state["failures"], list(state["log"])
        self._write_log(self.log, "w")  # the log file follows the checkpoint

    def resume(self) -> bool:
        """Continue from the latest checkpoint in ``run_dir``; False when there is none."""
        latest = self.latest_checkpoint()
        if latest is not None:
            self.load_checkpoint(latest)
        return latest is not None

    def generate(self, items: Sequence[Mapping], batch_size: int = 32, temperature: float = 0.0,
                 max_new_tokens: int | None = None) -> list[str]:
        """Completions of ``items`` with the current policy (greedy by default), batched and KV-cached."""
        return generate(self.model, items, self.make_inputs, self.decode, eos_ids=self.eos_ids, pad_id=self.pad_id,
                        max_new_tokens=max_new_tokens or self.cfg.max_new_tokens, batch_size=batch_size,
                        temperature=temperature, top_p=self.cfg.top_p, seed=self.cfg.seed * 1_000_003 + 10**9)
