"""Test material shared by the test modules that train a model: a micro Idefics3 spec, the one
builder that saves it (:func:`save_micro`), and dataset-like items of synthetic scenes (imported as
``micro``: pytest puts ``tests/`` on the path, and so does Python for a test module that torchrun or
``subprocess`` starts as a script; ``conftest.micro_vlm`` saves each variant once a session)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from drivekit.data import render, scene
from drivekit.models import zoo
from drivekit.models.vlm import LoraSettings, load_vlm

MICRO = zoo.TinySpec(vision_hidden=64, vision_layers=1, vision_heads=2, text_hidden=64, text_layers=1,
                     text_heads=2, text_kv_heads=1)
ADAPTER_SEED = 3  # load_vlm's seed for a saved adapter's LoRA weights


def scenes(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return [scene.sample_scene(rng) for _ in range(n)]


def items(n, n_frames=1, seed=0):
    """Dataset-like items: ``n_frames`` frames of synthetic scenes and one-hot labels."""
    out = []
    for i, s in enumerate(scenes(n, seed)):
        actions, reasons = scene.derive_labels(s)
        out.append(dict(name=f"clip{i}.jpg", images=render.render_clip(s, n_frames, (96, 96), seed=i),
                        actions=torch.tensor(actions), reasons=torch.tensor(reasons)))
    return out


class Saved(NamedTuple):
    """What :func:`save_micro` wrote: the model folder (model and processor), the adapter folder
    (None without one), and the model object that was saved."""

    model: Path
    adapter: Path | None
    original: torch.nn.Module


def save_micro(folder: str | Path, adapter: LoraSettings | None = None, lora_b_std: float | None = None) -> Saved:
    """Save a micro Idefics3 (``MICRO``; tokenizer trained on the descriptions of ``scenes()``, torch
    seed 0) and its processor with save_pretrained to ``folder/model``, as a downloaded model would
    be. With ``adapter``, also a LoRA adapter of those settings on its 4-bit form (seed
    ``ADAPTER_SEED``) to ``folder/adapter`` (the 'SFT best' RL starts from); ``lora_b_std`` draws
    its ``lora_B`` weights from N(0, std) so that the start is not the base model (a fresh
    adapter's are 0) and samples of one clip differ."""
    folder = Path(folder)
    model, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in scenes()]), MICRO)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    if adapter is None:
        if lora_b_std is not None:
            raise ValueError("lora_b_std needs an adapter")
        return Saved(folder / "model", None, model)
    peft_model, _ = load_vlm(folder / "model", quantize_4bit=True, lora=adapter, device="cpu", seed=ADAPTER_SEED)
    if lora_b_std is not None:
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=lora_b_std)
    peft_model.save_pretrained(folder / "adapter")
    return Saved(folder / "model", folder / "adapter", model)
