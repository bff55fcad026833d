"""The ``t4`` preset (``DRIVEKIT_PRESET=t4``): the paper profile sized for a 16 GB T4 on Colab."""
import json
from pathlib import Path

import pytest
import torch

from drivekit.algorithms import a2c, grpo, sft
from drivekit.core import config
from drivekit.stages import json_stage
from drivekit.models import vlm
from drivekit.rewards import weighted_reward
from drivekit.core.config import PRESETS, load, profile_defaults

SETTINGS = {"SFTSettings": sft.SFTSettings, "A2CSettings": a2c.A2CSettings, "GRPOSettings": grpo.GRPOSettings,
            "JsonSettings": json_stage.JsonSettings, "RewardSettings": weighted_reward.RewardSettings}
PAPER_SCALE = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "paper_scale.json"
T4_GIB = 15.0  # a 16 GB T4 as nvidia-smi shows it: 15,360 MiB
CUDA_CONTEXT_GIB = 0.5  # benchmarks/RESULTS.md, "The paper profile at its real size"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for var in ("DRIVEKIT_PROFILE", "DRIVEKIT_PRESET", *config.ENVIRONMENT.values()):
        monkeypatch.delenv(var, raising=False)


def test_t4_preset_chooses_the_small_model_and_5_tiles_a_frame():
    cfg = load("paper", preset="t4")
    assert (cfg.preset, cfg.vlm, cfg.image_edge) == ("t4", "HuggingFaceTB/SmolVLM-256M-Instruct", 1024)
    assert cfg.quantize_4bit and not cfg.synthetic
    assert load("paper").preset is None and load("paper").vlm == "HuggingFaceTB/SmolVLM-Instruct"


def test_preset_from_the_environment_and_the_environment_over_the_preset(monkeypatch):
    monkeypatch.setenv("DRIVEKIT_PROFILE", "paper")
    monkeypatch.setenv("DRIVEKIT_PRESET", "t4")
    assert load().preset == "t4" and load().image_edge == 1024
    monkeypatch.setenv("DRIVEKIT_IMAGE_EDGE", "512")
    monkeypatch.setenv("DRIVEKIT_VLM", "HuggingFaceTB/SmolVLM-500M-Instruct")
    assert (load().image_edge, load().vlm) == (512, "HuggingFaceTB/SmolVLM-500M-Instruct")
    assert load(image_edge=2048).image_edge == 2048  # arguments over everything
    monkeypatch.setenv("DRIVEKIT_PRESET", "")  # the setup cell's default: no preset
    assert load().preset is None


def test_a_preset_for_another_profile_or_an_unknown_one_is_a_named_error(monkeypatch):
    monkeypatch.setenv("DRIVEKIT_PRESET", "t4")
    with pytest.raises(ValueError, match=r"\$DRIVEKIT_PRESET='t4' is for the 'paper' profile, not 'tiny'.*DRIVEKIT_PROFILE=paper"):
        load()
    with pytest.raises(ValueError, match=r"preset='a100': unknown preset; choose one of \['t4'\]"):
        load("paper", preset="a100")


def test_preset_settings_sit_between_the_profile_defaults_and_the_callers_changes():
    t4, paper = load("paper", preset="t4"), load("paper")
    s, p = profile_defaults(sft.SFTSettings, t4), profile_defaults(sft.SFTSettings, paper)
    assert (s.epochs, s.batch_size, s.grad_accum, s.eval_every) == (6, 8, 2, 25)
    assert s.batch_size * s.grad_accum == p.batch_size * p.grad_accum == 16  # the paper's clips per optimiser step
    assert (s.lr, s.lora) == (p.lr, p.lora)  # what the preset does not name stays the paper's
    assert profile_defaults(sft.SFTSettings, t4, batch_size=2).batch_size == 2
    assert profile_defaults(a2c.A2CSettings, t4).steps == 200 != profile_defaults(a2c.A2CSettings, paper).steps
    assert profile_defaults(grpo.GRPOSettings, t4).steps == 200
    assert profile_defaults(weighted_reward.RewardSettings, t4) == profile_defaults(weighted_reward.RewardSettings, paper)
    # a stage that passes its own steps keeps them (JSON-RL's 32)
    assert profile_defaults(json_stage.JsonSettings, t4).a2c_settings(t4).steps == 32
    assert t4.replace(seed=3).preset == "t4"


def test_every_preset_names_real_settings_fields():
    for name, preset in PRESETS.items():
        assert preset["profile"] in config.PROFILES
        assert set(preset["config"]) <= set(config.ENVIRONMENT), name
        cfg = load(preset["profile"], preset=name)
        for cls_name, fields in preset["settings"].items():
            made = profile_defaults(SETTINGS[cls_name], cfg)  # an unknown field raises TypeError here
            assert {f: getattr(made, f) for f in fields} == fields


def test_t4_compute_dtype_is_what_drivekit_picks_on_a_t4(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # a T4
    assert vlm.compute_dtype("cuda") == getattr(torch, PRESETS["t4"]["compute_dtype"]) == torch.float16


def test_t4_batches_were_measured_and_fit_16_gb():
    """Each step at the preset's batch size has a measured row for SmolVLM-256M-Instruct (at 13 tiles a
    frame; the preset's 1024 px gives 5, less memory), and its reserved memory plus the CUDA context fits."""
    runs = json.loads(PAPER_SCALE.read_text())["runs"]
    rows = {(r["phase"], r["batch"]): r for rows in runs.values() for r in rows if r["model"] == "256m"}
    cfg = load("paper", preset="t4")
    grpo_settings = profile_defaults(grpo.GRPOSettings, cfg)
    batches = {"sft": profile_defaults(sft.SFTSettings, cfg).batch_size,
               "a2c": profile_defaults(a2c.A2CSettings, cfg).batch_size,
               "grpo": grpo_settings.clips_per_step * grpo_settings.num_generations,
               "predict": profile_defaults(sft.SFTSettings, cfg).eval_batch_size}
    for phase, batch in batches.items():
        row = rows[(phase, batch)]
        assert row["reserved_gb"] + CUDA_CONTEXT_GIB <= T4_GIB, (phase, batch, row["reserved_gb"])
