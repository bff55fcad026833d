"""The paper profile rehearsed at toy size: SmolVLM's image processing, 1280x720 frames,
the functions a user calls.

A small Idefics3 with SmolVLM-256M-Instruct's published processor (longest edge 2048, 512-px tiles,
image splitting: a 1280x720 frame is 13 tiles, 832 image tokens) is saved to a folder and chosen
through $DRIVEKIT_VLM; a random open_clip ViT-B-32, saved as a checkpoint file, through
$DRIVEKIT_CLIP; synthetic clips written at 1280x720, one frame each, in the official layout, through
$DRIVEKIT_DATA. Under DRIVEKIT_PROFILE=paper with the hub switched off, SFT, prediction, R1, A2C,
GRPO and constrained JSON run with the paper profile's settings; only what sets a run's length is
changed (epochs, steps, validation clips, completion length).
"""
import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from drivekit.algorithms import a2c, grpo, sft
from drivekit.stages import a2c_stage, json_stage, sft_stage
from drivekit.models import clip, vlm, prompts, smolvlm
from drivekit.core import config
from drivekit.evaluation import reports
from drivekit.data import synthetic, toy_split
from drivekit.rewards.action_reward import action_reward
from drivekit.rewards.clip_reward import ClipReward
from drivekit.core.config import profile_defaults
from drivekit.rewards.weighted_reward import RewardSettings, WeightedReward, make_reward

N_CLIPS = 30  # toy split: 3 train, 2 validation, 2 test clips
FRAME = (1280, 720)
# SmolVLM-256M's layout (SigLIP 512-px tiles of 16-px patches, pixel shuffle 4: 64 tokens a tile) at
# toy widths; bitsandbytes' CPU 4-bit kernels need linear input sizes that are multiples of 64.
TOY = dict(vision=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2),
           text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                     num_key_value_heads=1, vocab_size=None))


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The environment of a paper-profile user whose models and data are local files."""
    tmp = tmp_path_factory.mktemp("paper")
    root = synthetic.generate(tmp / "bdd-oia", n_clips=N_CLIPS, n_frames=1, size=FRAME, workers=1, progress=False)
    texts = [record["description"] for record in synthetic.read_scenes(root)]
    vlm = smolvlm.stand_in("256m", tmp / "smolvlm-256m-toy", texts, shrink=TOY)
    vit, _, _ = clip.new_clip("ViT-B-32")
    clip_file = tmp / "vit-b-32.pt"
    torch.save({k: v.half() for k, v in vit.state_dict().items()}, clip_file)
    offline = sys.modules[__import__("huggingface_hub").is_offline_mode.__module__]
    with pytest.MonkeyPatch.context() as env:
        env.setattr(offline, "HF_HUB_OFFLINE", True)  # any hub request raises at once
        env.setenv("HF_HUB_OFFLINE", "1")
        for var, value in dict(DRIVEKIT_PROFILE="paper", DRIVEKIT_VLM=vlm, DRIVEKIT_CLIP=clip_file, DRIVEKIT_DATA=root,
                               DRIVEKIT_CACHE=tmp / "cache", DRIVEKIT_RUNS=tmp / "runs").items():
            env.setenv(var, str(value))
        for var in ("DRIVEKIT_IMAGE_EDGE", "DRIVEKIT_IMAGE_SPLITTING"):
            env.delenv(var, raising=False)
        yield dict(cfg=config.load(), vlm=vlm, clip=clip_file)


@pytest.fixture(scope="module")
def r1(paper):
    """R1 with the profile's CLIP: the ViT-B-32 checkpoint file."""
    return ClipReward.from_config(paper["cfg"])


@pytest.fixture(scope="module")
def sft_run(paper):
    """Notebook 02's stage with the paper settings, one optimiser step long."""
    cfg = paper["cfg"]
    settings = profile_defaults(sft.SFTSettings, cfg, epochs=1, val_size=2, eval_every=1)
    return sft_stage.run(cfg, settings, progress=False)


def test_models_and_data_come_from_the_environment(paper):
    cfg = paper["cfg"]
    assert (cfg.profile, cfg.synthetic, cfg.quantize_4bit) == ("paper", False, True)
    assert cfg.vlm == str(paper["vlm"].resolve()) and cfg.clip == str(paper["clip"].resolve())
    data = toy_split.toy_data(cfg, 2)
    assert min(len(data.train), len(data.val), len(data.test)) >= 2
    assert data.test[0]["images"][0].size == FRAME and len(data.test[0]["images"]) == 1


def test_a_1280x720_frame_is_13_tiles_of_512_px_and_the_edge_is_a_setting(paper):
    frame = toy_split.toy_data(paper["cfg"], 2).test[0]["images"]
    for edge, tiles in ((None, 13), (1024, 5)):
        processor = AutoProcessor.from_pretrained(paper["cfg"].vlm, **vlm.processor_options(edge))
        inputs = prompts.encode(processor, [frame])
        assert tuple(inputs["pixel_values"].shape) == (1, tiles, 3, 512, 512)
        assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 64 * tiles  # 832 for the whole frame
    one = AutoProcessor.from_pretrained(paper["cfg"].vlm, **vlm.processor_options(image_splitting=False))
    assert prompts.encode(one, [frame])["pixel_values"].shape[1] == 1


def test_paper_sft_trains_the_text_decoder_only():
    """The paper profile's SFT puts LoRA on the text decoder only (``LoraSettings(vision=False)``: the
    vision tower is most of the cost) and checkpoints gradients."""
    settings = profile_defaults(sft.SFTSettings, config.load("paper"))
    assert settings.gradient_checkpointing and not settings.lora.vision


def test_sft_stage_trains_checkpoints_and_predicts_on_the_paper_path(paper, sft_run):
    summary = json.loads(sft_run.summary.read_text())
    assert summary["profile"] == "paper" and summary["vlm"] == paper["cfg"].vlm
    assert summary["settings"]["gradient_checkpointing"] and summary["settings"]["eval_batch_size"] == 8
    rows = reports.read_predictions(sft_run.predictions)
    assert len(rows) == summary["n_test"] == len(toy_split.toy_data(paper["cfg"], 2).test)
    assert all(isinstance(row["text"], str) for row in rows)
    saved = json.loads((sft_run.best / "adapter_config.json").read_text())["target_modules"]
    wanted = profile_defaults(sft.SFTSettings, paper["cfg"]).lora.target_modules()
    assert saved == wanted if isinstance(wanted, str) else set(saved) == set(wanted)


def test_a_continued_adapter_trains_with_the_settings_dropout(paper, sft_run, tmp_path, monkeypatch):
    """The JSON stage continues the plain adapter; its LoRA dropout comes from the settings."""
    cfg, seen = paper["cfg"], []
    train = sft_stage.train

    def spy(model, *args, **kwargs):
        seen.extend(type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_dropout"))
        return train(model, *args, **kwargs)

    monkeypatch.setattr(sft_stage, "train", spy)
    settings = profile_defaults(sft.SFTSettings, cfg, epochs=1, val_size=2, eval_every=1)
    sft_stage.run(cfg, replace(settings, lora=replace(settings.lora, dropout=0.0)), tmp_path / "json", progress=False,
                  start=sft_run.best)
    assert seen and set(seen) == {torch.nn.Identity}
    assert json.loads((sft_run.best / "adapter_config.json").read_text())["lora_dropout"] == settings.lora.dropout > 0


def test_r1_scores_answers_with_the_checkpoint_clip(paper, r1):
    cfg = paper["cfg"]
    names = [item["name"] for item in toy_split.dataset_items(toy_split.toy_data(cfg, 2).test)]
    scores = r1(["Action: Stop/Slow down; Reason: Traffic light is red", ""], file_name=names)
    assert len(scores) == 2 and all(np.isfinite(scores)) and all(-1 <= s <= 1 for s in scores)
    assert r1.frame_embeddings(names[:1])[0].shape == (1, 512)  # one frame, ViT-B-32's embedding width


def test_a2c_from_the_sft_adapter_takes_paper_steps(paper, r1, sft_run, tmp_path):
    cfg = paper["cfg"]
    data = toy_split.toy_data(cfg, 2)
    reward = make_reward(profile_defaults(RewardSettings, cfg), r1)
    assert reward.terms["r2"][1].__name__ == "r2_bleu"  # the proposal's R2 in the paper profile
    settings = profile_defaults(a2c.A2CSettings, cfg, steps=2, batch_size=1, max_new_tokens=8)
    assert settings == a2c.A2CSettings.paper(steps=2, batch_size=1, max_new_tokens=8)  # not the tiny defaults
    trainer = a2c_stage.build_trainer(cfg, toy_split.dataset_items(data.train), reward, settings, run_dir=tmp_path)
    base = trainer.model.get_base_model()
    assert base.is_gradient_checkpointing and trainer.eval_batch_size == 8
    vision_lora = any("lora_" in name for name, _ in base.model.vision_model.named_parameters())
    assert vision_lora == profile_defaults(sft.SFTSettings, cfg).lora.vision
    assert trainer.reference_adapter == a2c_stage.REFERENCE_ADAPTER
    log = trainer.train(progress=False)
    assert len(log) == 2 and not log["skipped"].any(), log.get("error")
    assert (log["length"] > 0).all() and np.isfinite(log["loss"]).all()
    rows = a2c_stage.predictions(trainer, [data.test[0]])
    assert len(rows) == 1 and isinstance(rows[0]["text"], str) and not trainer.model.training


def test_grpo_from_the_sft_adapter_takes_paper_steps(paper, r1, sft_run, tmp_path):
    cfg = paper["cfg"]
    settings = profile_defaults(grpo.GRPOSettings, cfg, steps=2, num_generations=2, max_completion_length=8)
    assert settings == grpo.GRPOSettings.paper(steps=2, num_generations=2, max_completion_length=8)
    assert (settings.clips_per_step, settings.lr, settings.kl_coef) == (1, 1e-5, 0.05)  # not the tiny defaults
    model, processor = vlm.load_vlm(cfg, adapter=sft_run.best, trainable=True,
                                       gradient_checkpointing=profile_defaults(sft.SFTSettings, cfg).gradient_checkpointing)
    items = toy_split.dataset_items(toy_split.toy_data(cfg, 2).train)
    reward = WeightedReward({"r1": (1.0, r1), "r2": (1.0, action_reward("label_f1"))})
    trainer = grpo.build_trainer(model, processor, items, reward, settings, tmp_path)
    base = trainer.model.get_base_model()
    assert not any("lora_" in name for name, _ in base.model.vision_model.named_parameters())
    trainer.train()
    assert base.is_gradient_checkpointing  # the model's own, back on after trl's sampling
    log = grpo.log_frame(trainer)
    assert log["step"].tolist() == [1, 2] and np.isfinite(log["loss"]).all()
    assert log["kl"].iloc[0] == 0.0 and (log["completions/mean_length"] > 0).all()
    assert log["rewards/r1_clip/mean"].notna().all() and log["rewards/r2_label_f1/mean"].notna().all()


def test_constrained_json_on_the_paper_path(paper, sft_run):
    cfg = paper["cfg"]
    model, processor = vlm.load_vlm(cfg, adapter=sft_run.best)
    settings = profile_defaults(sft.SFTSettings, cfg, target="json", max_new_tokens=1200)  # the longest strings fit
    clip = toy_split.toy_data(cfg, 2).test[0]
    rows = json_stage.constrained_predictions(model, processor, [clip], settings, progress=False)
    assert len(rows) == 1 and json.loads(rows[0]["text"]) is not None


# ---------------------------------------------------------------------------------------------
# The pieces: choosing models, memory settings, profile defaults
# ---------------------------------------------------------------------------------------------
def test_environment_and_command_line_choose_the_models(monkeypatch, tmp_path):
    for var in config.ENVIRONMENT.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("DRIVEKIT_PROFILE", raising=False)
    tiny = config.load()
    assert (tiny.vlm, tiny.clip, tiny.image_edge, tiny.image_splitting) == ("tiny", "tiny", None, None)
    assert config.load("paper").vlm == "HuggingFaceTB/SmolVLM-Instruct"
    (tmp_path / "model").mkdir()
    checkpoint = tmp_path / "clip.pt"
    checkpoint.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVEKIT_VLM", "model")  # relative: kept absolute, for notebooks that change folder
    monkeypatch.setenv("DRIVEKIT_CLIP", str(checkpoint))
    monkeypatch.setenv("DRIVEKIT_IMAGE_EDGE", "1024")
    monkeypatch.setenv("DRIVEKIT_IMAGE_SPLITTING", "off")
    cfg = config.load("paper")
    assert (cfg.vlm, cfg.clip, cfg.image_edge, cfg.image_splitting) == (
        str(tmp_path / "model"), str(checkpoint), 1024, False)
    monkeypatch.setenv("DRIVEKIT_VLM", "HuggingFaceTB/SmolVLM-256M-Instruct")  # a model id stays a name
    assert config.load("paper").vlm == "HuggingFaceTB/SmolVLM-256M-Instruct"
    for var, value in (("DRIVEKIT_VLM", "/no/such/model"), ("DRIVEKIT_IMAGE_EDGE", "big"),
                       ("DRIVEKIT_IMAGE_SPLITTING", "maybe")):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            with pytest.raises(ValueError, match=var):
                config.load("paper")
    parser = __import__("argparse").ArgumentParser()
    config.add_model_arguments(parser)
    args = parser.parse_args(["--vlm", "HuggingFaceTB/SmolVLM-500M-Instruct", "--image-splitting"])
    assert config.model_overrides(args) == dict(vlm="HuggingFaceTB/SmolVLM-500M-Instruct", image_splitting=True)
    cfg = config.load("paper", **config.model_overrides(args))  # the command line wins over the environment
    assert (cfg.vlm, cfg.clip, cfg.image_edge, cfg.image_splitting) == (
        "HuggingFaceTB/SmolVLM-500M-Instruct", str(checkpoint), 1024, True)


def test_a_model_file_stands_for_its_folder(paper, tmp_path):
    assert vlm.resolve(paper["vlm"] / "config.json") == str(paper["vlm"])
    assert vlm.resolve("HuggingFaceTB/SmolVLM-256M-Instruct") == "HuggingFaceTB/SmolVLM-256M-Instruct"
    with pytest.raises(ValueError, match="config.json"):
        vlm.resolve(tmp_path)


def test_compute_dtype_is_fp16_on_gpus_without_native_bf16(monkeypatch):
    assert vlm.compute_dtype("cpu") == torch.float32
    for capability, dtype in (((7, 5), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # as on a T4
        assert vlm.compute_dtype("cuda") == dtype
        assert vlm.quantization_config("cuda").bnb_4bit_compute_dtype == dtype


def test_text_only_lora_runs_the_vision_encoder_without_gradients(paper):
    frame = toy_split.toy_data(paper["cfg"], 2).train[0]
    for vision in (False, True):
        model, processor = vlm.load_vlm(paper["vlm"], quantize_4bit=True, lora=vlm.LoraSettings(r=4, vision=vision),
                                           gradient_checkpointing=True, device="cpu", image_splitting=False)
        encoder = model.get_base_model().model.vision_model
        assert any("lora_" in name for name, _ in encoder.named_parameters()) == vision
        assert any("lora_" in name for name, _ in model.get_base_model().model.text_model.named_parameters())
        seen = {}
        encoder.register_forward_hook(lambda module, args, out: seen.update(grad=out.last_hidden_state.requires_grad))
        model.train()
        model(**sft.Collator(processor)([frame])).loss.backward()
        assert seen["grad"] == vision and torch.is_grad_enabled()
        assert all(p.grad is not None for name, p in model.named_parameters() if p.requires_grad)


def test_rollouts_keep_the_kv_cache_under_gradient_checkpointing(paper):
    from drivekit.algorithms.a2c import rollout

    model, processor = vlm.load_vlm(paper["vlm"], quantize_4bit=True, lora=vlm.LoraSettings(r=4, vision=False),
                                       gradient_checkpointing=True, device="cpu", image_splitting=False)
    inputs = prompts.encode(processor, [toy_split.toy_data(paper["cfg"], 2).test[0]["images"]])
    assert inputs["pixel_values"].shape[1] == 1  # one tile: load_vlm passes the setting to the processor
    eos, pad = [prompts.end_of_utterance_id(processor)], processor.tokenizer.pad_token_id
    model.eval()
    reference = rollout(model, None, inputs, max_new_tokens=4, eos_ids=eos, pad_id=pad, temperature=0)
    model.train()  # as between two A2C updates: the rollout switches to eval mode and back
    again = rollout(model, None, inputs, max_new_tokens=4, eos_ids=eos, pad_id=pad, temperature=0)
    assert model.training and torch.equal(again.tokens, reference.tokens)
    torch.testing.assert_close(again.logprobs, reference.logprobs)


def test_a2c_and_prediction_defaults_follow_the_profile():
    tiny, paper_cfg = config.load("tiny"), config.load("paper")
    assert profile_defaults(a2c.A2CSettings, tiny) == a2c.A2CSettings.tiny()
    assert profile_defaults(a2c.A2CSettings, paper_cfg, steps=3) == a2c.A2CSettings.paper(steps=3)
    assert json_stage.JsonSettings().a2c_settings(paper_cfg).kl_coef == a2c.A2CSettings.paper().kl_coef
    assert profile_defaults(sft.SFTSettings, paper_cfg).eval_batch_size == 8
    for settings in (a2c.A2CSettings, grpo.GRPOSettings, sft.SFTSettings, RewardSettings, json_stage.JsonSettings):
        with pytest.raises(ValueError, match="no defaults for profile 'huge'"):
            profile_defaults(settings, tiny.replace(profile="huge"))


def test_json_stage_batches_follow_the_profile():
    """The tiny JSON stage samples 16 answers a step and predicts 128 clips a batch; the paper's keeps
    its profile's A2C batch (4) and prediction batch (8), sized for one GPU."""
    tiny, paper_cfg = config.load("tiny"), config.load("paper")
    small = profile_defaults(json_stage.JsonSettings, tiny)
    assert small.a2c_settings(tiny).batch_size == 16 and small.a2c_settings(tiny).steps == 16
    assert small.a2c_settings(tiny).critic_warmup == 4 and small.sft_settings(tiny).eval_batch_size == 128
    assert small.sft_settings(tiny).target == "json" and small.sft_settings(tiny).epochs == 48  # 12 at 1/8 = 48 at 1/32
    assert small.sft_settings(tiny).lora.dropout == 0
    assert small.sft_settings(tiny).lora.r == profile_defaults(sft.SFTSettings, tiny).lora.r
    big = profile_defaults(json_stage.JsonSettings, paper_cfg)
    assert big.a2c_settings(paper_cfg).batch_size == a2c.A2CSettings.paper().batch_size == 4
    assert big.sft_settings(paper_cfg).eval_batch_size == 8 and big.a2c_settings(paper_cfg).steps == 32
    assert big.sft_settings(paper_cfg).lora == profile_defaults(sft.SFTSettings, paper_cfg).lora
    assert profile_defaults(json_stage.JsonSettings, tiny, a2c_batch=8).a2c_settings(tiny).batch_size == 8
    with pytest.raises(ValueError, match="huge"):
        profile_defaults(json_stage.JsonSettings, tiny.replace(profile="huge"))


def test_stand_ins_have_the_published_sizes():
    tok = smolvlm.tokenizer()
    small = smolvlm.parameter_count(smolvlm.config("256m", tok))
    assert round(small["total"] / 1e6, 1) == 256.5  # vision 86 M, connector 7 M, text 135 M, LM head 28 M
    assert [round(small[k] / 1e6) for k in ("vision", "connector", "text", "lm_head")] == [86, 7, 135, 28]
    assert round(smolvlm.parameter_count(smolvlm.config("instruct", tok))["total"] / 1e9, 2) == 2.25
