import numpy as np
import torch

from drivekit import json_output, prompts, render, scene, zoo
from drivekit.constrained import JsonConstraint


def test_constrained_decoding_gives_only_valid_json():
    """Even an untrained model (random weights) produces parseable, schema-valid JSON under the constraint."""
    rng = np.random.default_rng(0)
    scenes = [scene.sample_scene(rng) for _ in range(20)]
    model, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in scenes]),
                                     zoo.TinySpec(text_layers=1, vision_layers=1))
    model.eval()
    clips = [render.render_clip(s, 2, (96, 96), seed=i) for i, s in enumerate(scenes[:4])]
    constraint = JsonConstraint(processor.tokenizer, model.config.text_config.vocab_size)
    torch.manual_seed(0)
    texts = prompts.generate(model, processor, clips, max_new_tokens=1200, do_sample=True,
                             **constraint.generate_kwargs())
    for text in texts:
        parsed = json_output.parse_json(text)
        assert parsed.ok, (parsed.problems, text[:200])
        assert json_output.structure_score(text).json == 1
