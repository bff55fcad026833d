"""Supervised fine-tuning with QLoRA (paper §5.2): frames in, ``Action: ...; Reason: ...`` out.

The model sees only the clip's frames (DESIGN 5) and learns the Stage-2 target text with
token-wise cross-entropy on the target tokens (``Collator`` masks padding, image and prompt
tokens to -100). Both profiles train a LoRA adapter on a 4-bit base (QLoRA). The loop uses
accelerate, so it runs unchanged on a CPU, one GPU or, under ``accelerate launch``, several.

It logs the training loss of every optimiser step and the validation loss every ``eval_every``
steps, saves an adapter checkpoint at each validation (``checkpoint-<step>``, as the paper's
checkpoint-120) and keeps the one with the lowest validation loss as ``best``. Evaluation
generates greedily on the toy test split and parses each answer with ``formats.parse_text``.

The stage around this loop (toy split in, run directory out, command line) is
:mod:`drivekit.sft_stage`.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from torch.utils.data import DataLoader
from transformers import get_scheduler

from . import prompts
from .config import Config
from .evaluation import prediction_row
from .formats import target_text
from .json_output import json_target_for
from .models import LoraSettings, keep_4bit_trainable


@dataclass(frozen=True)
class SFTSettings:
    """Training and evaluation settings (plain data); ``SETTINGS`` holds each profile's defaults."""

    epochs: float
    batch_size: int  # per device
    grad_accum: int
    lr: float
    lora: LoraSettings
    gradient_checkpointing: bool
    eval_every: int  # optimiser steps between validations (and checkpoints)
    schedule: str = "cosine"  # a transformers.get_scheduler name
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    val_size: int = 64  # validation clips, drawn from the toy train part the 1/8 subset left out
    eval_batch_size: int = 32
    max_new_tokens: int = 48
    instruction: str | None = None  # None: images-only prompts (the paper's setting)
    target: str = "plain"  # plain: "Action: ...; Reason: ..." (Stage 2) | json: the Stage-3 object
    seed: int = 0


SETTINGS: dict[str, SFTSettings] = {
    # The paper: 6 epochs, batch 4, gradient accumulation 4, lr 1e-4 with a schedule, gradient
    # checkpointing; LoRA as in the SmolVLM fine-tuning recipe.
    "paper": SFTSettings(epochs=6, batch_size=4, grad_accum=4, lr=1e-4, lora=LoraSettings(r=8, alpha=8, dropout=0.1),
                         gradient_checkpointing=True, eval_every=10, schedule="linear", eval_batch_size=8),
    # CPU-sized: a couple of minutes on 2 cores.
    "tiny": SFTSettings(epochs=12, batch_size=8, grad_accum=1, lr=2e-3, lora=LoraSettings(r=16, alpha=32, dropout=0.05),
                        gradient_checkpointing=False, eval_every=32),
}


TARGETS = ("plain", "json")


def settings_for(cfg: Config, **changes) -> SFTSettings:
    settings = replace(SETTINGS[cfg.profile], **changes)
    if settings.target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {settings.target!r}")
    return settings


# ---------------------------------------------------------------------------------------------
# Targets and batches
# ---------------------------------------------------------------------------------------------
def target_for(item: dict, target: str = "plain", scenes: dict[str, str] | None = None) -> str:
    """The training target of a dataset item: the plain Stage-2 text, or the Stage-3 JSON object
    (its ``scene`` from ``scenes``, the clips' descriptions; see ``json_output.json_target_for``)."""
    if target == "json":
        return json_target_for(item, scenes or {})
    return target_text(np.asarray(item["actions"]), np.asarray(item["reasons"]))


class Collator:
    """Dataset items -> model inputs whose ``labels`` are the target text's tokens, -100 elsewhere."""

    def __init__(self, processor, instruction: str | None = None, target: str = "plain",
                 scenes: dict[str, str] | None = None):
        self.processor, self.instruction, self.target, self.scenes = processor, instruction, target, scenes

    def __call__(self, items: list[dict]):
        targets = [target_for(item, self.target, self.scenes) for item in items]
        return prompts.encode(self.processor, [item["images"] for item in items], targets, self.instruction)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def validation_loss(model, loader, accelerator: Accelerator) -> float:
    """Mean cross-entropy per target token over ``loader``."""
    model.eval()
    totals = torch.zeros(2, device=accelerator.device)
    for batch in loader:
        n_tokens = (batch["labels"][:, 1:] != prompts.IGNORE_INDEX).sum()
        loss = model(**batch).loss
        totals += accelerator.reduce(torch.stack([loss * n_tokens, n_tokens.float()]), "sum")
    model.train()
    return (totals[0] / totals[1]).item()


def train(model, processor, train_set, val_set, settings: SFTSettings, out: str | Path,
          progress: bool = True, scenes: dict[str, str] | None = None) -> pd.DataFrame:
    """Fine-tune the trainable (LoRA) parameters of ``model``; returns the loss log.

    Saves ``checkpoint-<step>`` at each validation and copies the lowest-validation-loss one to
    ``best``; ``model`` ends with the best weights loaded. ``scenes`` (file name -> description)
    fills the ``scene`` field of JSON targets.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    keep_4bit_trainable(model)  # a generate() before training may have repacked the 4-bit weights
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum)
    torch.manual_seed(settings.seed)
    collate = Collator(processor, settings.instruction, settings.target, scenes)
    train_loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, collate_fn=collate,
                              generator=torch.Generator().manual_seed(settings.seed))
    val_loader = DataLoader(val_set, batch_size=settings.eval_batch_size, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / settings.grad_accum)
    total = math.ceil(settings.epochs * steps_per_epoch)
    scheduler = get_scheduler(settings.schedule, optimizer, num_warmup_steps=round(settings.warmup_ratio * total),
                              num_training_steps=total)

    rows, micro_losses = [], []
    best = dict(loss=math.inf, step=0, state=None)
    step = 0
    # A refresh at most each second: a notebook kernel sends every refresh as a message, and a
    # flood of them can outrun the client (nbval then misses the end of the cell).
    bar = tqdm(total=total, desc="SFT", disable=not (progress and accelerator.is_main_process), mininterval=1.0)
    model.train()
    while step < total:
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad()
            micro_losses.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            row = dict(step=step, epoch=step / steps_per_epoch, lr=lr,
                       train_loss=accelerator.reduce(torch.stack(micro_losses).mean(), "mean").item(),
                       val_loss=math.nan)
            micro_losses = []
            if step % settings.eval_every == 0 or step == total:
                row["val_loss"] = validation_loss(model, val_loader, accelerator)
                accelerator.wait_for_everyone()
                unwrapped = accelerator.unwrap_model(model)
                if accelerator.is_main_process:
                    unwrapped.save_pretrained(out / f"checkpoint-{step}")
                if row["val_loss"] < best["loss"]:
                    state = get_peft_model_state_dict(unwrapped)
                    best = dict(loss=row["val_loss"], step=step, state={k: v.detach().clone() for k, v in state.items()})
            rows.append(row)
            bar.update()
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{best['loss']:.3f}", refresh=False)
            if step == total:
                break
    bar.close()

    unwrapped = accelerator.unwrap_model(model)
    set_peft_model_state_dict(unwrapped, best["state"])
    unwrapped.eval()
    log = pd.DataFrame(rows)
    if accelerator.is_main_process:
        shutil.rmtree(out / "best", ignore_errors=True)
        shutil.copytree(out / f"checkpoint-{best['step']}", out / "best")
        log.to_csv(out / "loss_log.csv", index=False)
    accelerator.wait_for_everyone()
    return log


def best_step(log: pd.DataFrame) -> int:
    """The step whose checkpoint has the lowest validation loss (the ``best`` adapter)."""
    return int(log.loc[log["val_loss"].idxmin(), "step"])


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def predict(model, processor, dataset, settings: SFTSettings, progress: bool = True,
            constraint=None) -> list[dict]:
    """Batched greedy generation on ``dataset``, parsed back to labels (never raises on garbage).

    ``constraint`` (a ``drivekit.constrained.JsonConstraint``) turns on grammar-constrained decoding.
    """
    from tqdm.auto import tqdm

    rows = []
    size = settings.eval_batch_size
    for start in tqdm(range(0, len(dataset), size), desc="generating", disable=not progress):
        items = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
        extra = constraint.generate_kwargs() if constraint is not None else {}
        texts = prompts.generate(model, processor, [item["images"] for item in items],
                                 max_new_tokens=settings.max_new_tokens, instruction=settings.instruction, **extra)
        rows += [prediction_row(item["name"], text, item["actions"], item["reasons"], settings.target)
                 for item, text in zip(items, texts)]
    return rows
