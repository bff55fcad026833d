"""GRPO (AlphaDrive's method) through trl's ``GRPOTrainer``, with drivekit's reward callables unchanged.

For each clip of a step the policy samples ``num_generations`` answers (a *group*); an answer's
advantage is its reward minus the group's mean reward (divided by the group's spread with
``scale_rewards="group"``), so no critic is needed: the group is the baseline. A clip whose
answers all score the same gives every one of them advantage 0 and teaches nothing; trl logs the
share of such groups as ``frac_reward_zero_std``. The loss is the clipped policy gradient on those
advantages plus ``kl_coef`` · KL to the reference policy (trl's ``beta``), which for a policy that
starts from a saved adapter is a frozen copy of that adapter (trl adds it as adapter ``"ref"``).

drivekit's own A2C (:mod:`drivekit.algorithms.a2c`) is the course's reference implementation; this module
only configures trl for the same model, prompts, rewards and sample budget:

- prompts are the images-only chat of :mod:`drivekit.models.prompts` (one user turn holding the frames),
  which trl renders with the processor's chat template exactly as ``prompts.encode`` does;
- the reward is the same :class:`drivekit.rewards.weighted_reward.WeightedReward` A2C trains on, handed
  to trl as its named callables ``f(completions, **columns) -> list[float]`` (``reward_funcs``)
  and their weights (``reward_weights``), each logged separately (``rewards/<name>/mean``); the dataset's
  ``file_name``, ``actions`` and ``reasons`` columns reach them as keyword arguments;
- settings trl would otherwise choose for us are explicit (:class:`GRPOSettings`): dropout off
  while sampling (else the KL is not 0 at step 1), the learning rate, the KL coefficient, the group size,
  the completion length, the loss type, the reward aggregation (one weighted sum, then the group's
  normalisation), no bf16 autocast (the 4-bit model computes in its own dtype), fp16 loss scaling only
  where the model computes in fp16 on a GPU (a T4), and gradient checkpointing as the model was loaded
  (:func:`config`). On a 4-bit model trl casts the LoRA weights to bf16; :func:`build_trainer` casts
  them back to the float32 that drivekit's SFT and A2C train in;
- sampling never emits the image token or any other special token but the end tokens
  (:func:`drivekit.models.vlm.unsampleable_token_ids`, as trl's ``suppress_tokens``), and an inf or NaN
  loss stops training with the step and the remedy named (:class:`StopOnNonFinite`);
- checkpoints every ``checkpoint_every`` steps under the output folder; :func:`train` resumes from the
  latest complete one (weights, optimiser, schedule, data order, random state: an interrupted run ends
  where the uninterrupted one would), refusing one written with other settings;
- a tracker only when ``$DRIVEKIT_REPORT_TO`` (or a :class:`drivekit.core.tracking.Report`) asks for one,
  through trl's ``report_to`` (transformers' trackio or TensorBoard callback, its metrics as
  ``train/<name>``), guarded so that a failing tracker never stops training.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback

from drivekit.algorithms import checkpoints
from drivekit.models import prompts
from drivekit.models.vlm import (NonFinite, banned_token_ids, fp16_compute, keep_4bit_trainable,
                                 unsampleable_token_ids)
from drivekit.core.config import check_lr_schedule
from drivekit.core.settings import Settings
from drivekit.core.tracking import Report, guard_callbacks, point_trackio
from drivekit.rewards.weighted_reward import WeightedReward


@dataclass(frozen=True)
class GRPOSettings(Settings):
    """A GRPO run (plain data). One optimiser step samples ``clips_per_step × num_generations``
    completions: 2 × 4 = 8, A2C's batch of 8. ``GRPOSettings.tiny()`` / ``.paper()`` give the profiles'
    defaults (``config.profile_defaults(GRPOSettings, cfg)``): the tiny profile's are the field defaults
    (A2C's tiny sample budget, 8 completions a step); the paper profile's (``PROFILES``) put SmolVLM with
    4-bit QLoRA on a GPU at A2C's paper budget, learning rate and KL (``A2CSettings``' paper profile): 4
    completions of at most 64 tokens a step, one clip's group."""

    steps: int = 60
    clips_per_step: int = 2
    num_generations: int = 4  # k: the group of answers sampled for each clip
    lr: float = 1e-4
    lr_schedule: str = "constant"  # constant | linear: trl's lr_scheduler_type, from lr to 0 at `steps`
    kl_coef: float = 0.1  # KL to the reference (the start adapter): trl's beta
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_completion_length: int = 32
    loss_type: str = "grpo"  # trl's default is "dapo"
    scale_rewards: str = "group"  # group | batch | none
    epsilon: float = 0.2  # PPO-style clip of the importance ratio
    max_grad_norm: float = 1.0
    checkpoint_every: int = 0  # trl's save_steps; 0: no checkpoints (a tiny run takes a minute); paper profile: 50
    keep_checkpoints: int = 2  # trl's save_total_limit
    seed: int = 0

    # Fields stored under an older name in earlier runs' summaries (read by the experiment's reuse check).
    RENAMED: ClassVar[dict[str, str]] = {"beta": "kl_coef"}
    PROFILES: ClassVar[dict] = {"paper": dict(steps=500, clips_per_step=1, num_generations=4, lr=1e-5, kl_coef=0.05,
                                              top_p=0.9, max_completion_length=64, checkpoint_every=50,
                                              keep_checkpoints=3)}


def dataset(items: Sequence[Mapping], instruction: str | None = None):
    """A ``datasets.Dataset`` of trl's conversational VLM rows for dataset items (``name``, ``images``,
    and ``actions``, ``reasons`` when they have labels): the images-only prompt, the frames (stored
    losslessly as PNG), and the columns the rewards read. Items without labels (label-free RL) give
    rows without them, so a reward that needs them fails at once instead of reading any."""
    from datasets import Dataset

    if isinstance(items, list):
        return Dataset.from_list(list(_rows(items, instruction)))
    # items streamed from disk (toy_split.StreamedItems, the paper profile): written to an Arrow file one
    # row at a time, which trl then reads memory-mapped, instead of every frame held in memory at once
    return Dataset.from_generator(_rows, gen_kwargs=dict(items=items, instruction=instruction))


def _rows(items: Sequence[Mapping], instruction: str | None):
    """trl's rows of :func:`dataset`, one item at a time."""
    for item in items:
        labels = {k: [int(v) for v in item[k]] for k in ("actions", "reasons") if k in item}
        yield dict(prompt=prompts.messages(len(item["images"]), instruction), images=list(item["images"]),
                   file_name=item["name"], **labels)


def config(settings: GRPOSettings, out: str | Path, device: torch.device | str = "cpu", report: Report | None = None,
           fp16: bool = False):
    """The ``trl.GRPOConfig`` of ``settings``. Gradient checkpointing is the model's own, as in SFT and A2C
    (``models.load_vlm(gradient_checkpointing=)``, on in the paper profile): trl turns it off while sampling
    and back on for the update. Checkpoints ``<out>/checkpoint-<step>`` every ``checkpoint_every`` steps
    (0: none), the newest ``keep_checkpoints`` kept (:func:`train` resumes from them). ``fp16`` (a
    model computing in float16 on a GPU, :func:`drivekit.models.vlm.fp16_compute`): trl's fp16 mixed precision,
    i.e. a loss scaler; never on a CPU. ``report`` (default: ``$DRIVEKIT_REPORT_TO``, run ``GRPO``) sets
    trl's ``report_to``, ``project`` and ``run_name``."""
    report = report or Report()
    if report.to == "trackio":
        point_trackio()  # before trl imports trackio, which reads its folder once
    from trl import GRPOConfig

    cpu = torch.device(device).type == "cpu"
    if fp16 and cpu:
        raise ValueError("fp16 loss scaling needs a GPU; on a CPU the model computes in float32")
    tracked = dict(report_to=report.to, project=report.project, run_name=report.run_name("GRPO")) if report.on else \
        dict(report_to="none")
    return GRPOConfig(
        output_dir=str(out), max_steps=settings.steps, learning_rate=settings.lr,
        lr_scheduler_type=check_lr_schedule(settings.lr_schedule),
        warmup_steps=0, weight_decay=0.0, max_grad_norm=settings.max_grad_norm,
        per_device_train_batch_size=settings.clips_per_step * settings.num_generations, gradient_accumulation_steps=1,
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k, beta=settings.kl_coef,
        epsilon=settings.epsilon, loss_type=settings.loss_type, scale_rewards=settings.scale_rewards,
        # drivekit's reward is one weighted sum, R = Σ w_i·R_i (WeightedReward, as A2C's), normalised within
        # the group afterwards: trl's "sum_then_normalize" (its default in 1.16), set so that a new default
        # (e.g. "normalize_then_sum", GDPO's per-reward normalisation) cannot change what GRPO optimises
        multi_objective_aggregation="sum_then_normalize",
        disable_dropout=True, bf16=False, fp16=bool(fp16), use_cpu=cpu, gradient_checkpointing=False,
        remove_unused_columns=False, logging_steps=1, seed=settings.seed,
        # an inf or NaN loss is logged as it is (transformers would log the mean of the previous ones instead),
        # so that StopOnNonFinite sees it
        logging_nan_inf_filter=False,
        save_strategy="steps" if settings.checkpoint_every else "no", save_steps=settings.checkpoint_every or 500,
        save_total_limit=max(1, settings.keep_checkpoints),
        data_seed=settings.seed, dataloader_num_workers=0, log_completions=False, **tracked,
    )


CHECKPOINT_STATE = "drivekit_grpo.pt"  # written last into each trl checkpoint: it is complete, and of which settings


class Checkpointed(TrainerCallback):
    """Writes :data:`CHECKPOINT_STATE` (the settings and step, atomically:
    :func:`drivekit.algorithms.checkpoints.write_state`) into each checkpoint trl has just saved; a folder
    without it (a run killed while saving) is not resumed from."""

    def __init__(self, settings: GRPOSettings):
        self.settings = settings

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            checkpoints.write_state(dict(settings=asdict(self.settings), step=state.global_step),
                                    folder / CHECKPOINT_STATE)


class StopOnNonFinite(TrainerCallback):
    """Stops training on an inf or NaN logged loss with :class:`drivekit.models.vlm.NonFinite` (the step and
    the remedy), before that step's checkpoint is saved (transformers logs, then saves)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFinite("GRPO", state.global_step, "loss", loss)


class ReplayedSampler(torch.utils.data.Sampler):
    """trl's ``RepeatSampler``, which draws each epoch's order from one generator seeded once, made resumable:
    ``set_epoch(e)`` (transformers calls it before each epoch) first draws the orders of the epochs before
    ``e`` it has not drawn, so a run resumed in epoch ``e`` samples the clips the uninterrupted run sampled
    (without it, a resumed run starts over at epoch 0's order). An uninterrupted run draws what trl draws."""

    def __init__(self, sampler):
        self.sampler, self.drawn = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        generator = getattr(self.sampler, "generator", None)
        while generator is not None and getattr(self.sampler, "shuffle", False) and self.drawn < epoch:
            torch.randperm(self.sampler.num_samples, generator=generator)  # what RepeatSampler.__iter__ draws
            self.drawn += 1

    def __iter__(self):
        self.drawn += 1
        yield from self.sampler

    def __len__(self) -> int:
        return len(self.sampler)


def release_checkpoints(folder: str | Path) -> None:
    """Make the checkpoints in ``folder`` (trl's output folder) no longer resumable: a fresh run there."""
    checkpoints.release(folder, CHECKPOINT_STATE, keep=0)


def resumable(folder: str | Path, settings: GRPOSettings) -> bool:
    """Whether ``folder`` (trl's output folder) holds a complete checkpoint of ``settings`` to resume from."""
    latest = checkpoints.latest(folder, CHECKPOINT_STATE)
    if latest is None:
        return False
    try:
        state = checkpoints.read_state(latest / CHECKPOINT_STATE, ("settings",))
    except Exception:
        return False
    return state["settings"] == asdict(settings)


def train(trainer, resume: bool = True):
    """``trainer.train()``, from the latest complete checkpoint of its output folder when ``resume`` (and
    there is one): weights, optimiser, schedule, step and random state, through trl's
    ``resume_from_checkpoint``. A checkpoint written with other settings is refused (``ValueError``), one
    whose state cannot be read too (:class:`drivekit.core.files.Unfinished`), each naming the file. Without
    ``resume`` an older run's checkpoints there are released (no longer resumable). Returns trl's result."""
    out = Path(trainer.args.output_dir)
    saver = next((c for c in trainer.callback_handler.callbacks if isinstance(c, Checkpointed)), None)
    if saver is None:
        raise TypeError("grpo.train needs a trainer made by drivekit.algorithms.grpo.build_trainer")
    latest = checkpoints.latest(out, CHECKPOINT_STATE) if resume else None
    if latest is None:
        if trainer.accelerator.is_main_process:
            release_checkpoints(out)
        return trainer.train()
    path = latest / CHECKPOINT_STATE
    state = checkpoints.read_state(path, ("settings", "step"))
    checkpoints.check_settings(path, state["settings"], asdict(saver.settings))
    return trainer.train(resume_from_checkpoint=str(latest))


def build_trainer(model, processor, items: Sequence[Mapping], reward: WeightedReward,
                  settings: GRPOSettings = GRPOSettings(), out: str | Path = "runs/grpo",
                  instruction: str | None = None, report: Report | None = None):
    """A ``trl.GRPOTrainer`` for a peft-wrapped VLM (e.g. ``models.load_vlm(cfg, adapter=<SFT best>,
    trainable=True)``) on ``items``; ``reward``'s terms become trl's ``reward_funcs`` and ``reward_weights``;
    ``report``: where trl reports (:func:`config`). Sampling never emits a special token but the end tokens
    (``generation_kwargs``' ``suppress_tokens``); an inf or NaN loss stops training (:class:`StopOnNonFinite`);
    each checkpoint records its settings (:class:`Checkpointed`). Run it with :func:`train` to resume."""
    report = report or Report()
    keep_4bit_trainable(model)  # a generate() before training may have repacked the 4-bit weights
    args = config(settings, out, next(model.parameters()).device, report, fp16=fp16_compute(model))
    from trl import GRPOTrainer

    funcs = [fn for _, fn in reward.terms.values()]
    args.reward_weights = [float(w) for w, _ in reward.terms.values()]
    # never sample the image token or any other special token but the end tokens (trl suppresses only the
    # image token, and only when nothing else is set): a completion holding one crashes the processor or the
    # model ("image features and image tokens do not match")
    args.generation_kwargs = dict(suppress_tokens=sorted(set(banned_token_ids(model))
                                                         | set(unsampleable_token_ids(processor, model))))
    start = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset(items, instruction),
                          processing_class=processor, callbacks=[Checkpointed(settings), StopOnNonFinite()])
    guard_callbacks(trainer, report, "GRPO")
    sampler = trainer._get_train_sampler
    trainer._get_train_sampler = lambda *args, **kwargs: ReplayedSampler(sampler(*args, **kwargs))
    # trl rounds the trained adapter to bf16 on a quantized model (after copying it to "ref"): put the
    # start adapter back in float32 in both, so the policy starts exactly at π_ref and the KL at 0.
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            source = start.get(name.replace(".ref.", ".default."))
            if source is not None:
                param.data = source.clone()
    return trainer


def log_frame(trainer) -> pd.DataFrame:
    """One row per optimiser step from trl's log: ``reward``, ``reward_std``, each reward's mean
    (``rewards/<name>/mean``), ``frac_reward_zero_std``, ``kl``, ``entropy``, completion lengths, ``loss``."""
    rows = [row for row in trainer.state.log_history if "loss" in row and "step" in row]
    return pd.DataFrame(rows)
