"""Self-training (label-free RL's baseline): pseudo-labels from the model's own greedy answers, then
SFT on them from the start adapter, on a micro Idefics3."""
import json

import pytest
import torch

from drivekit.core import config
from drivekit.models import prompts
from drivekit.stages import self_training
from drivekit.algorithms import sft
from drivekit.text.formats import target_text
from drivekit.models.vlm import LoraSettings, load_vlm

from micro import items as _items


SETTINGS = sft.SFTSettings(epochs=2, batch_size=2, grad_accum=1, lr=1e-2, lora=LoraSettings(r=4),
                           gradient_checkpointing=False, eval_every=2, eval_batch_size=2, max_new_tokens=8)
STOP = target_text([0, 1, 0, 0], [0, 0, 1] + [0] * 18)


def _unlabelled(n, seed=0):
    return [{k: v for k, v in item.items() if k not in ("actions", "reasons")} for item in _items(n, seed=seed)]


def test_pseudo_labels_are_the_parsed_answers_and_drop_what_names_no_label(monkeypatch):
    answers = iter([[STOP, "no idea"], [STOP]])
    monkeypatch.setattr(prompts, "generate", lambda model, processor, clips, **kw: next(answers))
    labelled = self_training.pseudo_labels(None, None, _unlabelled(3), SETTINGS)
    assert [item["name"] for item in labelled] == ["clip0.jpg", "clip2.jpg"]  # clip1's answer named nothing
    assert labelled[0]["actions"].tolist() == [0, 1, 0, 0] and labelled[0]["reasons"].tolist()[2] == 1
    assert isinstance(labelled[0]["actions"], torch.Tensor) and labelled[0]["images"]


def test_self_training_continues_the_start_adapter_for_the_budget(saved, tmp_path, monkeypatch):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), device="cpu")
    sft.train(model, processor, _items(6), _items(2, seed=1), SETTINGS, tmp_path / "sft", progress=False)
    # The micro model's greedy answers name no label yet: say what they say, so that SFT has pseudo-labels.
    monkeypatch.setattr(prompts, "generate", lambda model, processor, clips, **kw: [STOP, "?"] * (len(clips) // 2)
                        + [STOP] * (len(clips) % 2))
    cfg = config.load("tiny", vlm=str(saved[0]), quantize_4bit=True)
    trained = self_training.train(cfg, _unlabelled(5, seed=3), _items(2, seed=1), SETTINGS, budget=6,
                                  start=tmp_path / "sft" / "best", out=tmp_path / "st")
    assert trained.log.attrs["pseudo_labelled"] == 3 and trained.log.attrs["dropped"] == 2
    assert trained.log["step"].max() == 3  # 6 examples in batches of 2, whatever the clips' count
    assert trained.log.attrs["epochs"] == 1.5 and trained.log["val_loss"].notna().any()
    assert (tmp_path / "st" / "best" / "adapter_config.json").is_file()
    start = json.loads((tmp_path / "sft" / "best" / "adapter_config.json").read_text())
    assert json.loads((tmp_path / "st" / "best" / "adapter_config.json").read_text())["r"] == start["r"]
    assert trained.samples_per_step == 2 and trained.seconds > 0


def test_an_adapter_that_names_nothing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(self_training, "load_vlm", lambda *a, **k: (None, None))
    monkeypatch.setattr(self_training, "set_lora_dropout", lambda model, p: 0)
    monkeypatch.setattr(prompts, "generate", lambda model, processor, clips, **kw: ["…"] * len(clips))
    with pytest.raises(ValueError, match="named no label for any of 2 clips"):
        self_training.train(config.load("tiny"), _unlabelled(2), [], SETTINGS, budget=4, start=tmp_path / "adapter",
                            out=tmp_path / "st")
