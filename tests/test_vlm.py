"""Model loading, prompts, label masking, QLoRA wrapping, SFT artifacts, on a micro Idefics3 built here."""
import json
from functools import partial

import bitsandbytes as bnb
import numpy as np
import pytest
import torch
from transformers import Idefics3ForConditionalGeneration, Idefics3Processor

from drivekit.evaluation import reports
from drivekit.models import prompts, zoo
from drivekit.data import render, scene
from drivekit.algorithms import sft
from drivekit.text.formats import target_text
from drivekit.models.vlm import LORA_TARGETS, LoraSettings, load_vlm
from drivekit.core.taxonomy import N_ACTIONS, N_REASONS

from micro import MICRO, items, scenes as _scenes

_items = partial(items, n_frames=2)  # two frames a clip unless a test says otherwise

PREDICTION_KEYS = ["file_name", "text", "actions_pred", "reasons_pred", "actions_true", "reasons_true", "ok", "problems"]


def test_loader_reads_a_saved_idefics3_through_from_pretrained(saved):
    path, original = saved
    model, processor = load_vlm(path, device="cpu")
    assert isinstance(model, Idefics3ForConditionalGeneration) and isinstance(processor, Idefics3Processor)
    assert not model.training
    inputs = prompts.encode(processor, [item["images"] for item in _items(2)])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, original.eval()(**inputs).logits)
    assert model.generation_config.eos_token_id == prompts.end_of_utterance_id(processor)


def test_prompt_is_the_chat_template_with_images_only(saved):
    _, processor = load_vlm(saved[0], device="cpu")
    assert prompts.prompt(processor, 3) == "<|im_start|>User:<image><image><image><end_of_utterance>\nAssistant:"
    assert prompts.prompt(processor, 1, "Drive.") == "<|im_start|>User:<image>Drive.<end_of_utterance>\nAssistant:"


def test_collator_masks_padding_image_and_prompt_tokens(saved):
    _, processor = load_vlm(saved[0], device="cpu")
    tokenizer = processor.tokenizer
    items = _items(2, n_frames=1) + _items(1, n_frames=3, seed=1)  # prompts of different lengths
    batch = sft.Collator(processor)(items)
    for row, item in enumerate(items):
        prompt_ids = processor(text=prompts.prompt(processor, len(item["images"])), images=[item["images"]])["input_ids"][0]
        target = target_text(item["actions"].numpy(), item["reasons"].numpy())
        answer = tokenizer(f" {target}{prompts.END_OF_UTTERANCE}", add_special_tokens=False)["input_ids"]
        p, n = len(prompt_ids), len(prompt_ids) + len(answer)
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        assert ids[:p].tolist() == list(prompt_ids) and ids[p:n].tolist() == answer
        assert (labels[:p] == -100).all() and labels[p:n].tolist() == answer and (labels[n:] == -100).all()
        assert (ids[n:] == tokenizer.pad_token_id).all() and mask.tolist() == [1] * n + [0] * (len(ids) - n)
        assert answer[-1] == prompts.end_of_utterance_id(processor)
    assert not (batch["labels"] == processor.image_token_id).any()
    assert (batch["input_ids"] == processor.image_token_id).sum() == 5 * MICRO.image_seq_len
    assert batch["pixel_values"].shape[:2] == (3, 3)


def test_qlora_trains_only_lora_on_4bit_linears(saved):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), gradient_checkpointing=True,
                                device="cpu")
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    targeted = [m for n, m in model.named_modules() if n.split(".")[-1] in LORA_TARGETS]
    assert {"q_proj", "o_proj", "gate_proj", "down_proj"} <= {n.split(".")[-1] for n, _ in model.named_modules()}
    assert targeted and all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in targeted)
    assert all(m.base_layer.weight.quant_state.quant_type == "nf4" for m in targeted)
    batch = sft.Collator(processor)(_items(2))
    model(**batch).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)


def test_set_lora_dropout_changes_every_lora_layer(saved):
    from drivekit.models.vlm import set_lora_dropout

    model, processor = load_vlm(saved[0], lora=LoraSettings(r=4, dropout=0.5), device="cpu")
    model.train()
    batch = sft.Collator(processor)(_items(2))
    with torch.no_grad():
        for module in model.modules():  # LoRA B starts at zero: give the adapter an output to drop
            if hasattr(module, "lora_B"):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.1)
        dropped = [model(**batch).logits for _ in range(2)]
        assert not torch.allclose(*dropped)
        layers = [m for m in model.modules() if hasattr(m, "lora_dropout")]
        assert set_lora_dropout(model, 0.0) == len(layers) > 0
        assert all(isinstance(m.lora_dropout["default"], torch.nn.Identity) for m in layers)
        torch.testing.assert_close(model(**batch).logits, model(**batch).logits)
        set_lora_dropout(model, 0.2)
        assert all(m.lora_dropout["default"].p == 0.2 for m in layers)


def test_sft_writes_checkpoints_best_and_predictions(saved, tmp_path):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), device="cpu")
    settings = sft.SFTSettings(epochs=1, batch_size=2, grad_accum=2, lr=1e-3, lora=LoraSettings(r=4),
                               gradient_checkpointing=False, eval_every=1, eval_batch_size=2, max_new_tokens=4)
    log = sft.train(model, processor, _items(8), _items(2, seed=1), settings, tmp_path, progress=False)
    assert log["step"].tolist() == [1, 2] and log["val_loss"].notna().all()
    assert (tmp_path / "checkpoint-1").is_dir() and (tmp_path / "checkpoint-2").is_dir()
    assert (tmp_path / "best" / "adapter_model.safetensors").is_file()
    assert list(json.loads((tmp_path / "best" / "adapter_config.json").read_text())["target_modules"])
    rows = sft.predict(model, processor, _items(3, seed=2), settings, progress=False)
    path = reports.write_predictions(rows, tmp_path / "predictions.jsonl")
    read = reports.read_predictions(path)
    assert len(read) == 3 and all(list(row) == PREDICTION_KEYS for row in read)
    for row in read:
        assert isinstance(row["text"], str) and isinstance(row["ok"], bool) and isinstance(row["problems"], list)
        assert len(row["actions_pred"]) == len(row["actions_true"]) == N_ACTIONS
        assert len(row["reasons_pred"]) == len(row["reasons_true"]) == N_REASONS
        assert row["ok"] == (not row["problems"])
    assert reports.score(read)["n_samples"] == 3


def _short_sft(saved, out, seed):
    model, processor = load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), device="cpu", seed=seed)
    settings = sft.SFTSettings(epochs=2, batch_size=2, grad_accum=1, lr=1e-2, lora=LoraSettings(r=4), seed=seed,
                               gradient_checkpointing=False, eval_every=2, eval_batch_size=2, max_new_tokens=6)
    log = sft.train(model, processor, _items(6), _items(2, seed=1), settings, out, progress=False)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
    return log, weights, sft.predict(model, processor, _items(3, seed=2), settings, progress=False)


def test_same_seed_gives_the_same_sft_run(saved, tmp_path):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, again, other = (_short_sft(saved, tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert first[0].equals(again[0])  # every train and validation loss
    assert all(torch.equal(first[1][k], again[1][k]) for k in first[1])
    assert first[2] == again[2]
    assert not all(torch.equal(first[1][k], other[1][k]) for k in first[1])  # the seed is what decides
    torch.manual_seed(123)
    load_vlm(saved[0], quantize_4bit=True, lora=LoraSettings(r=4), device="cpu", seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the adapter's seed leaves the global random state alone


def test_prediction_row_parses_and_reports():
    good = reports.prediction_row("a.jpg", "Action: Stop/Slow down; Reason: Obstacle: car", [0, 1, 0, 0], np.eye(21)[3])
    assert good["ok"] and good["actions_pred"] == [0, 1, 0, 0] and good["reasons_pred"] == np.eye(21, dtype=int)[3].tolist()
    bad = reports.prediction_row("b.jpg", "::::", [0, 1, 0, 0], np.eye(21)[3])
    assert not bad["ok"] and bad["problems"] and sum(bad["actions_pred"]) == 0


def test_json_target_collates_and_parses_back(saved):
    """The Stage-3 switch: the collator's labels are the JSON object's tokens, which parse back to the labels."""
    from drivekit.text.json_output import parse_json

    _, processor = load_vlm(saved[0], device="cpu")
    items = _items(3)
    scenes = {items[0]["name"]: "A red light ahead."}
    batch = sft.Collator(processor, target="json", scenes=scenes)(items)
    for row, item in enumerate(items):
        answer = batch["labels"][row][batch["labels"][row] != -100].tolist()[:-1]  # without <end_of_utterance>
        text = processor.tokenizer.decode(answer).strip()
        assert text == sft.target_for(item, "json", scenes)
        parsed = parse_json(text)
        assert parsed.ok and parsed.actions.tolist() == item["actions"].tolist()
        assert parsed.reasons.tolist() == item["reasons"].tolist()
    assert json.loads(sft.target_for(items[0], "json", scenes))["scene"] == "A red light ahead."
    assert json.loads(sft.target_for(items[1], "json", scenes))["scene"]  # no description: written from labels
    with pytest.raises(ValueError, match="target"):
        sft.SFTSettings.tiny(target="yaml")


def test_json_prediction_rows_and_constrained_decoding(saved):
    from drivekit.stages import json_stage
    from drivekit.text.json_output import json_target

    truth = [0, 1, 0, 0], np.eye(21, dtype=int)[3]
    good = reports.prediction_row("a.jpg", json_target(*truth, "A car."), *truth, target="json")
    assert good["ok"] and good["actions_pred"] == truth[0] and good["reasons_pred"] == truth[1].tolist()
    for text in ("Action: Stop/Slow down; Reason: Obstacle: car", '{"scene": "x"', ""):
        bad = reports.prediction_row("b.jpg", text, *truth, target="json")
        assert not bad["ok"] and bad["problems"]
    model, processor = load_vlm(saved[0], device="cpu")  # untrained: free decoding writes no JSON
    settings = sft.SFTSettings(epochs=1, batch_size=2, grad_accum=1, lr=1e-3, lora=LoraSettings(r=4),
                               gradient_checkpointing=False, eval_every=1, eval_batch_size=2, max_new_tokens=1200,
                               target="json")  # room for the schema's longest strings
    rows = json_stage.constrained_predictions(model, processor, _items(3), settings, progress=False)
    assert len(rows) == 3 and all(json.loads(r["text"]) is not None for r in rows)
    assert reports.validity(rows) == np.mean([r["ok"] for r in rows])
    free = sft.predict(model, processor, _items(3), settings, progress=False)
    table = reports.compare({"free": free, "constrained": rows}, json_names=["free", "constrained"])
    assert table.loc["free", "json_valid"] == reports.validity(free) < 1


def test_tokenizer_has_idefics3_tokens_and_reads_every_label_phrase():
    _, processor = zoo.untrained(zoo.corpus([scene.describe(s) for s in _scenes()]), MICRO)
    tokenizer = processor.tokenizer
    for token in ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<row_6_col_6>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    for text in zoo.language_texts():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text and tokenizer.unk_token_id not in ids


def test_language_texts_are_answers_with_every_target_format():
    """Each line is an answer after "Assistant:" (so its first token is a prediction target in
    pretraining), and the JSON lines carry the given scene texts."""
    texts = zoo.language_texts(scenes=["A red light ahead."])
    answers = [t for t in texts if t.startswith("Assistant: ")]
    assert len(answers) == len(texts) - 2
    objects = [json.loads(t.removeprefix("Assistant: ")) for t in answers if t.startswith("Assistant: {")]
    assert objects and all(o["scene"] == "A red light ahead." for o in objects)
    assert any(t.startswith("Assistant: Action: ") for t in answers)


def test_untrained_model_is_deterministic():
    texts = zoo.corpus([scene.describe(s) for s in _scenes()])
    (a, pa), (b, pb) = zoo.untrained(texts, MICRO, seed=3), zoo.untrained(texts, MICRO, seed=3)
    assert pa.tokenizer.get_vocab() == pb.tokenizer.get_vocab()
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_shuffled_description_keeps_its_sentences():
    description = scene.describe(_scenes(1)[0])
    rng = np.random.default_rng(0)
    orders = {zoo.shuffled(description, rng) for _ in range(10)}
    assert len(orders) > 1
    for text in orders:
        assert len(text) == len(description) and zoo._sentences(text) == zoo._sentences(description)


@pytest.mark.skipif(not (zoo.tiny_dir() / "model.safetensors").is_file(), reason="tiny model not built")
def test_shipped_tiny_model_loads_and_describes():
    model, processor = load_vlm(zoo.tiny_dir(), device="cpu")
    vision = model.config.vision_config
    assert processor.image_seq_len == (vision.image_size // vision.patch_size) ** 2 // model.config.scale_factor**2
    assert processor.image_processor.do_image_splitting is False
    shown = _scenes(1)[0]
    text = prompts.generate(model, processor, [render.render_clip(shown, 4, (96, 96))], max_new_tokens=96)[0]
    assert len(zoo._sentences(text) & zoo._sentences(scene.describe(shown))) >= 2


# ---------------------------------------------------------------------------------------------
# A model id that is neither a folder nor reachable fails at once (no minutes of hub retries)
# ---------------------------------------------------------------------------------------------
def test_a_model_id_offline_and_not_cached_fails_at_once(monkeypatch, tmp_path):
    import time

    import huggingface_hub

    from drivekit.core import config
    from drivekit.models import vlm

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: False)  # never touch the network
    monkeypatch.setenv("DRIVEKIT_VLM", "bogus-model")
    cfg = config.load("tiny")
    assert cfg.vlm == "bogus-model"  # the configuration cannot know; loading says it at once
    start = time.monotonic()
    with pytest.raises(ValueError) as err:
        load_vlm(cfg, device="cpu")
    assert time.monotonic() - start < 5
    assert str(err.value) == ("'bogus-model': not a folder and not in the local cache, and the model hub "
                              "(huggingface.co) is unreachable (offline?): set DRIVEKIT_VLM to a saved model's folder")
    with pytest.raises(ValueError, match="not a model id of the hub"):
        load_vlm("not a/valid/model id", device="cpu")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="not in the local cache, and HF_HUB_OFFLINE=1 keeps the model hub out: set"):
        load_vlm(cfg, device="cpu")


def test_a_cached_model_id_loads_from_the_cache_without_the_hub(saved, monkeypatch, tmp_path):
    import shutil

    import huggingface_hub

    from drivekit.models import vlm

    repo = tmp_path / "hub" / "models--someone--micro-vlm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(saved[0], repo / "snapshots" / ("0" * 40))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: pytest.fail("the cache is enough"))
    assert vlm.hub_source("someone/micro-vlm") == str(repo / "snapshots" / ("0" * 40))
    model, _ = load_vlm("someone/micro-vlm", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved[1].state_dict().values()))
    (repo / "snapshots" / ("0" * 40) / "model.safetensors").unlink()  # a download cut short: only partly cached
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: False)
    with pytest.raises(ValueError, match="'someone/micro-vlm': not a folder and only partly in the local cache"):
        vlm.hub_source("someone/micro-vlm")


def test_hub_reachable_never_waits_past_its_timeout(monkeypatch):
    import socket

    import huggingface_hub

    from drivekit.models import vlm

    def refused(address, timeout=None):
        raise ConnectionRefusedError(address)

    monkeypatch.setattr(socket, "create_connection", refused)
    assert vlm.hub_reachable() is False
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: open(__file__))
    assert vlm.hub_reachable() is True
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert vlm.hub_reachable() is False  # HF_HUB_OFFLINE=1: not even a connection is tried


def test_lora_settings_follow_the_settings_pattern():
    import dataclasses

    from drivekit.core.settings import Settings

    assert issubclass(LoraSettings, Settings)
    assert LoraSettings.tiny() == LoraSettings(r=16, alpha=32, dropout=0.05)
    assert LoraSettings.paper() == LoraSettings(r=8, alpha=8, dropout=0.1, vision=False)
    assert LoraSettings.paper(r=4).replace(vision=True) == LoraSettings(r=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LoraSettings().r = 2
