"""Test material shared by the test modules that train a model: a micro Idefics3 spec and
dataset-like items of synthetic scenes (imported as ``micro``: pytest puts ``tests/`` on the path,
and so does Python for a test module that torchrun starts as a script)."""
import numpy as np
import torch

from drivekit.data import render, scene
from drivekit.models import zoo

MICRO = zoo.TinySpec(vision_hidden=64, vision_layers=1, vision_heads=2, text_hidden=64, text_layers=1,
                     text_heads=2, text_kv_heads=1)


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
