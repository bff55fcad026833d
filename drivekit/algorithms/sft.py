"""Supervised fine-tuning with QLoRA (paper §5.2): frames in, ``Action: ...; Reason: ...`` out.

The model sees only the clip's frames (images-only prompts, :mod:`drivekit.models.prompts`) and learns the
Stage-2 target text with token-wise cross-entropy on the target tokens (``Collator`` masks padding,
image and prompt tokens to -100). Both profiles train a LoRA adapter on a 4-bit base (QLoRA). The loop uses
accelerate, so it runs unchanged on a CPU, one GPU or, under ``torchrun`` / ``accelerate
launch``, several processes (GPUs, or gloo on CPUs): each process trains on its share of every
epoch's batches, DDP averages the gradients, the validation loss is summed over the processes'
parts of the validation set, and the main process alone writes files.

It logs the training loss of every optimiser step and the validation loss every ``eval_every``
steps (to ``loss_log.csv`` and, with ``$DRIVEKIT_REPORT_TO`` on, to trackio or TensorBoard as
transformers' Trainer names them: ``train/loss``, ``train/learning_rate``, ``train/epoch``,
``eval/loss``; :mod:`drivekit.core.tracking`), saves an adapter checkpoint at each validation
(``checkpoint-<step>``, as the paper's checkpoint-120) and keeps the one with the lowest validation
loss as ``best``. The newest checkpoint also holds the trainer state (``trainer_state.pt``:
optimiser, schedule, step, data order, best so far, loss log; ``rng_state_<process>.pt``), so
``train(..., resume=True)`` continues an interrupted run exactly as it would have gone on. An inf or NaN
training loss stops the run (:class:`drivekit.models.vlm.NonFinite`, naming the step and the remedy); with
fp16 compute (a T4) accelerate scales the loss (``mixed_precision="fp16"``).
Evaluation generates greedily on the toy test split and parses each answer with ``formats.parse_text``.

The stage around this loop (toy split in, run directory out, command line) is
:mod:`drivekit.stages.sft_stage`.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from peft import get_peft_model_state_dict, load_peft_weights, set_peft_model_state_dict
from torch.utils.data import DataLoader, Subset
from transformers import get_scheduler

from drivekit.algorithms import checkpoints
from drivekit.core.settings import Settings
from drivekit.models import prompts
from drivekit.evaluation.reports import prediction_row
from drivekit.text.formats import target_text
from drivekit.text.json_output import json_target_for
from drivekit.models.vlm import LoraSettings, NonFinite, default_device, fp16_compute, keep_4bit_trainable
from drivekit.core.tracking import Report, Tracker


TARGETS = ("plain", "json")


@dataclass(frozen=True)
class SFTSettings(Settings):
    """Training and evaluation settings (plain data); ``SFTSettings.tiny()`` / ``.paper()`` give the
    profiles' defaults (``config.profile_defaults(SFTSettings, cfg)``), written in ``PROFILES``:

    - ``paper``: the paper's 6 epochs, batch 4, gradient accumulation 4, lr 1e-4 with a linear schedule,
      gradient checkpointing; LoRA as in the SmolVLM fine-tuning recipe, on the text decoder only
      (benchmarks/RESULTS.md, "The paper profile at its real size");
    - ``tiny``: CPU-sized, a couple of minutes on 2 cores.
    """

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

    PROFILES: ClassVar[dict] = {
        "paper": dict(epochs=6, batch_size=4, grad_accum=4, lr=1e-4,
                      lora=LoraSettings(r=8, alpha=8, dropout=0.1, vision=False), gradient_checkpointing=True,
                      eval_every=10, schedule="linear", eval_batch_size=8),
        "tiny": dict(epochs=12, batch_size=8, grad_accum=1, lr=2e-3, lora=LoraSettings(r=16, alpha=32, dropout=0.05),
                     gradient_checkpointing=False, eval_every=32),
    }

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {self.target!r}")


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
TRAINER_STATE = "trainer_state.pt"  # a checkpoint can be resumed once this file is written (the last one)
RNG_STATE = "rng_state_{}.pt"  # one per process: its torch (and CUDA) random state


@torch.no_grad()
def validation_loss(model, loader, accelerator: Accelerator) -> float:
    """Mean cross-entropy per target token over the validation set.

    ``loader`` holds this process's part of it; the token-weighted sums of all processes are added
    up once at the end (the parts may differ in length). The forward runs on the unwrapped model:
    a DistributedDataParallel forward would synchronise buffers, once per batch.
    """
    model = accelerator.unwrap_model(model)
    model.eval()
    totals = torch.zeros(2, device=accelerator.device)
    for batch in loader:
        batch = send_to_device(batch, accelerator.device)
        n_tokens = (batch["labels"][:, 1:] != prompts.IGNORE_INDEX).sum()
        loss = model(**batch).loss
        totals += torch.stack([loss * n_tokens, n_tokens.float()])
    totals = accelerator.reduce(totals, "sum")
    model.train()
    return (totals[0] / totals[1]).item()


@dataclass
class Position:
    """Where a run stands after an optimiser step: what a resumable checkpoint holds besides the weights,
    the optimiser and the schedule. ``order`` is the data-order generator's state when the current
    epoch's shuffle was drawn and ``batches`` the batches (per process) of that epoch already used."""

    order: torch.Tensor
    step: int = 0
    batches: int = 0
    rows: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: dict(loss=math.inf, step=0, state=None))


def save_checkpoint(out: Path, accelerator: Accelerator, model, optimizer, scheduler, settings: SFTSettings,
                    at: Position, n_batches: int) -> Path:
    """``checkpoint-<step>``: the adapter (peft ``save_pretrained``; the main process writes it), each
    process's random state, then the trainer state (optimiser, schedule, position, best so far,
    settings); older checkpoints keep their adapters but are no longer resumable."""
    folder = checkpoints.folder(out, at.step, width=1)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(folder)
    folder.mkdir(parents=True, exist_ok=True)
    device = accelerator.device
    rng = dict(torch=torch.get_rng_state(), cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    checkpoints.write_state(rng, folder / RNG_STATE.format(accelerator.process_index))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = dict(step=at.step, batches=at.batches, order=at.order, rows=at.rows, best=at.best,
                     optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), settings=asdict(settings),
                     n_batches=n_batches, processes=accelerator.num_processes)
        checkpoints.write_state(state, folder / TRAINER_STATE)
        checkpoints.release(out, TRAINER_STATE, [RNG_STATE.format("*")], keep=1)
    return folder


def load_checkpoint(folder: Path, accelerator: Accelerator, model, optimizer, scheduler, settings: SFTSettings,
                    n_batches: int) -> Position:
    """Restore what :func:`save_checkpoint` wrote; raises, naming the file, when the run differs in settings,
    data size or processes (``ValueError``) or a state cannot be read (:class:`drivekit.core.files.Unfinished`)."""
    path = folder / TRAINER_STATE
    state = checkpoints.read_state(path, ("step", "batches", "order", "rows", "best", "optimizer", "scheduler",
                                          "settings", "n_batches", "processes"))
    now = dict(asdict(settings), n_batches=n_batches, processes=accelerator.num_processes)
    then = dict(state["settings"], n_batches=state["n_batches"], processes=state["processes"])
    for key, value in now.items():
        if then.get(key) != value:
            raise ValueError(f"{path}: written with {key}={then.get(key)!r}, this run has {value!r}; resume with the "
                             f"same settings, data and number of processes, or train afresh (resume=False)")
    set_peft_model_state_dict(accelerator.unwrap_model(model), load_peft_weights(str(folder), device="cpu"))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = checkpoints.read_state(folder / RNG_STATE.format(accelerator.process_index), ("torch", "cuda"))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None:
        torch.cuda.set_rng_state(rng["cuda"], accelerator.device)
    return Position(order=state["order"], step=state["step"], batches=state["batches"], rows=list(state["rows"]),
                    best=state["best"])


def train(model, processor, train_set, val_set, settings: SFTSettings, out: str | Path,
          progress: bool = True, scenes: dict[str, str] | None = None, resume: bool = False,
          report: Report | None = None) -> pd.DataFrame:
    """Fine-tune the trainable (LoRA) parameters of ``model``; returns the loss log.

    Saves ``checkpoint-<step>`` at each validation and copies the lowest-validation-loss one to
    ``best``; ``model`` ends with the best weights loaded. ``scenes`` (file name -> description)
    fills the ``scene`` field of JSON targets. ``resume``: continue from the latest checkpoint of
    ``out`` (if any) exactly as the run would have gone on (weights, optimiser, schedule, data
    order, random state); a finished run just returns its log. Under ``torchrun`` or
    ``accelerate launch`` each process trains on its share of every epoch's batches. ``report``:
    where the main process reports each step (default: ``$DRIVEKIT_REPORT_TO``, run ``SFT``).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    keep_4bit_trainable(model)  # a generate() before training may have repacked the 4-bit weights
    # cpu=True on a machine without CUDA: accelerate then starts the gloo process group under torchrun.
    # fp16 compute (a T4): accelerate's fp16 mixed precision, i.e. autocast and a loss scaler (the LoRA weights
    # stay float32, models.vlm.trainable_in_float32); elsewhere none, as before
    accelerator = Accelerator(gradient_accumulation_steps=settings.grad_accum, cpu=default_device().type == "cpu",
                              mixed_precision="fp16" if fp16_compute(model) else "no")
    launched = int(os.environ.get("WORLD_SIZE", accelerator.num_processes))  # torchrun's count
    if accelerator.num_processes != launched:
        raise RuntimeError(f"launched as {launched} processes (WORLD_SIZE), but accelerate runs "
                           f"{accelerator.num_processes}: on a machine without CUDA, a PartialState made before "
                           "sft.train needs cpu=True")
    torch.manual_seed(settings.seed)
    collate = Collator(processor, settings.instruction, settings.target, scenes)
    order = torch.Generator().manual_seed(settings.seed)  # each epoch's shuffle comes from it
    train_loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, collate_fn=collate,
                              generator=order)
    with accelerator.split_between_processes(list(range(len(val_set)))) as part:
        val_loader = DataLoader(Subset(val_set, part), batch_size=settings.eval_batch_size, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    steps_per_epoch = math.ceil(len(train_loader) / settings.grad_accum)
    total = math.ceil(settings.epochs * steps_per_epoch)
    scheduler = get_scheduler(settings.schedule, optimizer, num_warmup_steps=round(settings.warmup_ratio * total),
                              num_training_steps=total)

    at = Position(order=order.get_state())
    latest = checkpoints.latest(out, TRAINER_STATE) if resume else None
    if latest is not None:
        at = load_checkpoint(latest, accelerator, model, optimizer, scheduler, settings, len(train_loader))
    elif accelerator.is_main_process:  # a fresh run: an older run's checkpoints here must not be resumed
        checkpoints.release(out, TRAINER_STATE, [RNG_STATE.format("*")], keep=0)
    micro_losses = []
    report = report or Report()
    tracker = Tracker(report if accelerator.is_main_process else Report(to="none"), report.run_name("SFT"),
                      asdict(settings), resume=latest is not None)
    # A refresh at most each second: a notebook kernel sends every refresh as a message, and a
    # flood of them can outrun the client (nbval then misses the end of the cell).
    bar = tqdm(total=total, initial=at.step, desc="SFT", disable=not (progress and accelerator.is_main_process),
               mininterval=1.0)
    model.train()
    while at.step < total:
        order.set_state(at.order)  # this epoch's shuffle, drawn again when resuming in its middle
        loader = accelerator.skip_first_batches(train_loader, at.batches) if at.batches else train_loader
        for batch in loader:
            at.batches += 1
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                summed = accelerator.reduce(loss.detach().clone(), "sum")  # inf or NaN on any process stops all
                if not bool(torch.isfinite(summed)):
                    raise NonFinite("SFT", at.step + 1, "loss", summed.item())
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
            at.step += 1
            row = dict(step=at.step, epoch=at.step / steps_per_epoch, lr=lr,
                       train_loss=accelerator.reduce(torch.stack(micro_losses).mean(), "mean").item(),
                       val_loss=math.nan)
            micro_losses = []
            validate = at.step % settings.eval_every == 0 or at.step == total
            if validate:
                row["val_loss"] = validation_loss(model, val_loader, accelerator)
                if row["val_loss"] < at.best["loss"]:
                    state = get_peft_model_state_dict(accelerator.unwrap_model(model))
                    at.best = dict(loss=row["val_loss"], step=at.step,
                                   state={k: v.detach().clone() for k, v in state.items()})
            at.rows.append(row)
            tracker.log(dict(loss=row["train_loss"], learning_rate=lr, epoch=row["epoch"],
                             **({"eval_loss": row["val_loss"]} if validate else {})), at.step)
            if validate:
                save_checkpoint(out, accelerator, model, optimizer, scheduler, settings, at, len(train_loader))
            bar.update()
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{at.best['loss']:.3f}", refresh=False)
            if at.step == total:
                break
        else:  # the epoch ended: the next one draws its shuffle from here
            at.order, at.batches = order.get_state(), 0
    bar.close()
    tracker.finish()

    unwrapped = accelerator.unwrap_model(model)
    set_peft_model_state_dict(unwrapped, at.best["state"])
    unwrapped.eval()
    log = pd.DataFrame(at.rows)
    if accelerator.is_main_process:
        shutil.rmtree(out / "best", ignore_errors=True)
        shutil.copytree(checkpoints.folder(out, at.best["step"], width=1), out / "best",
                        ignore=shutil.ignore_patterns(TRAINER_STATE, RNG_STATE.format("*")))
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

    ``constraint`` (a ``drivekit.models.constrained.JsonConstraint``) turns on grammar-constrained decoding.
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
