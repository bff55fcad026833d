"""Self-training: the baseline a label-free RL method has to beat.

With no label for the pool, the simplest thing to do is to believe the model: SFT's adapter answers
every pool clip greedily, each parsed answer becomes that clip's pseudo-label (an answer that names
no label is dropped), and SFT trains further on them (Scudder, 1965; "pseudo-labelling"). It reads
no pool label, like the label-free RL rewards, and it gets their budget: as many training examples
as the RL methods sample answers (``steps`` × answers per step), at SFT's settings, keeping the
checkpoint with the lowest loss on the labelled validation clips, as SFT does.

Label-free RL that does not beat this is not learning from its reward anything the model's own
greedy answers did not already say. :func:`train` has the experiment harness's interface
(``a2c_stage.train``, ``grpo_stage.train``: ``cfg``, ``items``, what stands for the reward (here the
labelled validation clips ``val``), ``settings``, then the ``budget`` and ``start``, ``out``,
``progress``, ``report``): items without labels in, :class:`runs.Trained` out.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from drivekit.models import prompts
from drivekit.stages import runs
from drivekit.core.config import Config
from drivekit.text.formats import parse_text
from drivekit.models.vlm import load_vlm, set_lora_dropout
from drivekit.algorithms.sft import SFTSettings, train as sft_train
from drivekit.core.tracking import Report


def pseudo_labels(model, processor, items: Sequence[Mapping], settings: SFTSettings,
                  progress: bool = False) -> list[dict]:
    """``items`` (``name``, ``images``; labels, if any, are not read) with the model's greedy answers as
    ``actions`` / ``reasons``; an answer naming no action and no reason drops its clip."""
    from tqdm.auto import tqdm

    out = []
    size = settings.eval_batch_size
    for start in tqdm(range(0, len(items), size), desc="pseudo-labels", disable=not progress):
        batch = items[start:start + size]
        texts = prompts.generate(model, processor, [item["images"] for item in batch],
                                 max_new_tokens=settings.max_new_tokens, instruction=settings.instruction)
        for item, text in zip(batch, texts):
            parsed = parse_text(text)
            if parsed.actions.any() or parsed.reasons.any():
                out.append(dict(name=item["name"], images=item["images"],
                                actions=torch.tensor(parsed.actions, dtype=torch.long),
                                reasons=torch.tensor(parsed.reasons, dtype=torch.long)))
    return out


def train(cfg: Config, items: Sequence[Mapping], val, settings: SFTSettings, budget: int,
          start: str | Path, out: str | Path, progress: bool = False, report: Report | None = None) -> runs.Trained:
    """SFT from the adapter ``start`` on its own greedy answers for ``items``, ``budget`` training examples
    (rounded up to whole optimiser steps; the last batch of an epoch may be short), validated on ``val`` (a dataset of labelled items); the trained adapter is
    ``<out>/best``. ``Trained.log`` is SFT's loss log plus the pseudo-labels' count in its attributes."""
    model, processor = load_vlm(cfg, adapter=Path(start), trainable=True,
                                gradient_checkpointing=settings.gradient_checkpointing, seed=settings.seed)
    set_lora_dropout(model, settings.lora.dropout)  # as SFT trains (sft_stage.run with a start adapter)
    t0 = time.perf_counter()
    labelled = pseudo_labels(model, processor, list(items), settings, progress)
    if not labelled:
        raise ValueError(f"self-training: the adapter {start} named no label for any of {len(items)} clips")
    steps = math.ceil(budget / (settings.batch_size * settings.grad_accum))  # optimiser steps
    epochs = steps / math.ceil(math.ceil(len(labelled) / settings.batch_size) / settings.grad_accum)
    settings = settings.replace(epochs=epochs, eval_every=max(1, min(settings.eval_every, steps)))
    log = sft_train(model, processor, labelled, val, settings, out, progress, report=report)
    log.attrs.update(pseudo_labelled=len(labelled), dropped=len(items) - len(labelled), epochs=epochs)
    return runs.Trained(model, processor, log, time.perf_counter() - t0, settings.batch_size)
