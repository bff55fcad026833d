"""R1 and the CLIP loader/trainer on a very small randomly initialised open_clip model (offline, fast)."""
import json
import math
import os
from pathlib import Path

import huggingface_hub
import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip import factory
from open_clip.transform import image_transform
from PIL import Image

from drivekit.models import clip, clip_eval, vlm
from drivekit.core import config
from drivekit.data.bddoia import BDDOIAFormatError, Sample, load_image
from drivekit.rewards.clip_reward import ClipReward, r1, video_embedding
from drivekit.text.formats import completion_text

ARCH = "drivekit-test-clip"
factory._MODEL_CONFIGS[ARCH] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
}
TEXTS = ["Action: Move forward; Reason: Road is clear", "Action: Stop/Slow down; Reason: Traffic light",
         "a car ahead", "Action: Turn left; Reason: On the left-turn lane"]


@pytest.fixture(scope="module")
def small_clip():
    return clip.new_clip(ARCH, seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three clips of 3 frames (clip0..2) and one single-image clip (single.jpg)."""
    root = tmp_path_factory.mktemp("clips")
    (root / "data").mkdir()
    rng = np.random.default_rng(0)
    for c in range(3):
        for f in range(3):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / f"clip{c}_f{f}.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "data" / "single.jpg")
    return root


@pytest.fixture
def reward(small_clip, root):
    return ClipReward(*small_clip, root)


NAMES = ["clip0.jpg", "clip1.jpg", "clip2.jpg", "single.jpg"]


def test_encode_text_without_padding_equals_open_clip(small_clip):
    model, _, tokenizer = small_clip
    tokens = tokenizer(["", "a car", "stop " * 200, *TEXTS])
    with torch.no_grad():
        assert torch.allclose(clip.encode_text(model, tokens, batch_size=3), model.encode_text(tokens), atol=1e-5)


def test_r1_on_tensors_is_a_cosine_in_range():
    frames, texts = torch.randn(5, 4, 8) * 100, torch.randn(5, 8)
    values = r1(frames, texts)
    assert values.shape == (5,) and values.abs().max() <= 1 + 1e-6
    same = torch.randn(3, 8)
    assert torch.allclose(r1(same[:, None].expand(3, 4, 8), same), torch.ones(3))  # identical frames: cosine 1
    matrix = r1(frames[:, None], texts[None])  # clips x texts by broadcasting
    assert matrix.shape == (5, 5) and torch.allclose(matrix.diagonal(), values)


def test_mean_pooling_equals_manual_computation(small_clip, root, reward):
    model, preprocess, tokenizer = small_clip
    frames = [root / "data" / f"clip1_f{f}.jpg" for f in range(3)]
    with torch.no_grad():
        images = model.encode_image(torch.stack([preprocess(load_image(p)) for p in frames]))
        text = model.encode_text(tokenizer([TEXTS[2]]))[0]
    manual = sum(e / e.norm() for e in images) / 3 @ (text / text.norm())
    assert reward([TEXTS[2]], file_name=["clip1.jpg"])[0] == pytest.approx(manual.item(), abs=1e-5)
    assert torch.allclose(video_embedding(images), reward.video_embeddings(["clip1.jpg"])[0], atol=1e-5)
    last_two = sum(e / e.norm() for e in images[1:]) / 2 @ (text / text.norm())  # n_frames keeps the last M
    assert reward.scores(["clip1.jpg"], [TEXTS[2]], n_frames=2)[0].item() == pytest.approx(last_two.item(), abs=1e-5)


def test_scores_are_in_range(reward):
    values = reward.matrix(NAMES, TEXTS)
    assert values.shape == (4, 4) and values.abs().max() <= 1 + 1e-6


def count_image_calls(model, monkeypatch) -> list:
    calls = []
    original = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda x, **kw: calls.append(len(x)) or original(x, **kw))
    return calls


def test_cache_hit_returns_identical_values(small_clip, root, tmp_path, monkeypatch):
    model = small_clip[0]
    calls = count_image_calls(model, monkeypatch)
    first = ClipReward(*small_clip, root, cache_dir=tmp_path)
    before = first(TEXTS[:3], file_name=NAMES[:3])
    assert sum(calls) == 9  # 3 clips x 3 frames, once
    assert first(TEXTS[:3], file_name=NAMES[:3]) == before  # memory hit
    again = ClipReward(*small_clip, root, cache_dir=tmp_path)
    assert again(TEXTS[:3], file_name=NAMES[:3]) == before  # disk hit
    assert sum(calls) == 9
    assert len(list((tmp_path / "clip_embeddings").glob("*/*.pt"))) == 3
    (again.cache_dir / "clip0.pt").write_bytes(b"not a torch file")  # a damaged entry is a miss
    after = ClipReward(*small_clip, root, cache_dir=tmp_path)(TEXTS[:3], file_name=NAMES[:3])
    assert after == pytest.approx(before, abs=1e-6)  # clip0 recomputed (alone: float rounding may differ)
    assert sum(calls) == 12 and not list(again.cache_dir.glob("*.tmp"))


def test_disk_cache_is_keyed_by_frames_and_model(small_clip, root, tmp_path, monkeypatch):
    ClipReward(*small_clip, root, cache_dir=tmp_path)(TEXTS[:1], file_name=NAMES[:1])
    frame = root / "data" / "clip0_f0.jpg"
    stat = frame.stat()
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed frame file
    calls = count_image_calls(small_clip[0], monkeypatch)
    ClipReward(*small_clip, root, cache_dir=tmp_path)(TEXTS[:1], file_name=NAMES[:1])
    assert sum(calls) == 3
    other = ClipReward(*clip.new_clip(ARCH, seed=1), root, cache_dir=tmp_path)
    assert other.cache_dir != ClipReward(*small_clip, root, cache_dir=tmp_path).cache_dir


def test_a_batch_equals_the_items_scored_singly(reward):
    names = NAMES + NAMES[:2]
    texts = TEXTS + TEXTS[:1] + ["a car ahead"]
    batch = reward(texts, file_name=names)
    single = [reward([t], file_name=[n])[0] for n, t in zip(names, texts)]
    assert batch == pytest.approx(single, abs=1e-5)
    assert isinstance(batch, list) and all(isinstance(v, float) for v in batch)


def test_empty_whitespace_long_and_garbage_texts_score(reward):
    long = "stop " * 500  # far beyond the 77-token context
    garbage = ["", "   \n\t ", long, None, 42, b"Action: Stop", [{"role": "assistant", "content": "Action: Stop"}],
               "<end_of_utterance>" * 300, "x" * 100_000]
    values = reward(garbage, file_name=["clip0.jpg"] * len(garbage))
    assert len(values) == len(garbage) and all(math.isfinite(v) and -1 <= v <= 1 for v in values)
    assert values[0] == values[1] == values[3] == values[4]  # all read as the empty text
    assert values[5] == values[6] == pytest.approx(reward(["Action: Stop"], file_name=["clip0.jpg"])[0], abs=1e-6)
    assert values[2] == pytest.approx(reward(["stop " * 75], file_name=["clip0.jpg"])[0], abs=1e-6)  # truncated
    assert reward([], file_name=[]) == []


def test_completion_text_never_raises():
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]) == "hi"
    assert completion_text(object()) == "" and completion_text({"content": None}) == ""


def test_reward_needs_the_clip_column(reward):
    with pytest.raises(ValueError, match="file_name"):
        reward(TEXTS[:1])
    with pytest.raises(ValueError, match="texts for"):
        reward(TEXTS[:2], file_name=NAMES[:1])
    assert reward(TEXTS[:1], name=NAMES[:1]) == reward(TEXTS[:1], file_name=NAMES[:1])
    assert reward.__name__ == "r1_clip"


def test_paper_loader_works_offline_from_a_local_checkpoint_file(small_clip, tmp_path):
    model = small_clip[0]
    path = tmp_path / "checkpoint.pt"
    torch.save(model.state_dict(), path)
    loaded, preprocess, tokenizer = clip.load_clip(path, arch=ARCH)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert not loaded.training and preprocess.transforms[0].size == (32, 32)  # squashed, not cropped
    assert tokenizer(["hello"]).shape == (1, 77)


def test_pretrained_tags_go_to_open_clip(monkeypatch, small_clip):
    seen = []

    def fake(arch, pretrained=None, **options):
        seen.append((arch, pretrained, options))
        return small_clip[0], None, small_clip[1]

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", "/nonexistent/hub-cache")  # nothing cached
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: True)  # no network asked: open_clip is faked
    clip.load_clip("ViT-B-32/openai", device="cpu")
    # OpenAI's weights were trained with QuickGELU, which open_clip's plain ViT-B-32 config lacks
    assert seen == [("ViT-B-32", "openai", dict(image_resize_mode="squash", force_quick_gelu=True))]
    assert clip.clip_source("ViT-B-32/openai").model_cfg["quick_gelu"] is True
    with pytest.raises(ValueError, match="not 'tiny'"):
        clip.load_clip("no-such-model")
    with pytest.raises(ValueError, match="neither a pretrained tag of ViT-B-32"):
        clip.load_clip("ViT-B-32/no-such-tag")
    with pytest.raises(ValueError, match="not an open_clip architecture"):
        clip.load_clip("No-Such-Arch/openai")


def test_a_random_init_baseline_reads_no_weights(monkeypatch, small_clip):
    """``load_weights=False`` of a pretrained tag downloads nothing and keeps the tag's preprocessing."""
    seen = []

    def fake(arch, pretrained=None, **options):
        seen.append((arch, pretrained, options))
        return small_clip[0], None, small_clip[1]

    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake)
    state = torch.random.get_rng_state()
    clip.load_clip("ViT-B-32/openai", load_weights=False, seed=3, device="cpu")
    assert torch.equal(state, torch.random.get_rng_state())  # the global random state is left alone
    (arch, pretrained, options), = seen
    assert arch == "ViT-B-32" and pretrained is None and options["load_weights"] is False
    assert options["image_mean"] == open_clip.get_pretrained_cfg("ViT-B-32", "openai")["mean"]


def test_a_bare_checkpoint_file_is_a_vit_b_32_unless_told(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"")  # resolving reads no weights
    assert clip.clip_source(path).model_cfg == open_clip.get_model_config("ViT-B-32")
    assert clip.clip_source(path, arch=ARCH).model_cfg == factory._MODEL_CONFIGS[ARCH]
    source = clip.clip_source(f"{ARCH}/{path}")  # "<arch>/<checkpoint file>": the architecture in the name
    assert (source.model_name, source.pretrained) == (ARCH, str(path))
    with pytest.raises(FileNotFoundError, match="open_clip_config.json is missing"):
        clip.clip_source(tmp_path)


def test_saved_folder_round_trip(small_clip, tmp_path):
    model = small_clip[0]
    folder = clip.save_clip(model, tmp_path / "m", factory._MODEL_CONFIGS[ARCH], info=dict(note="test"))
    loaded, _, _ = clip.load_clip(folder)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a.half().float(), b), k  # weights are stored as float16
    assert (folder / clip.BUILD_FILE).is_file()


def test_contrastive_loss_treats_shared_captions_as_positives():
    video = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    owner = torch.tensor([0, 0, 1])  # clips 0 and 1 share caption 0
    loss = clip.contrastive_loss(video, texts, owner, torch.tensor(100.0))
    # clip -> text is ~0; text -> clip of caption 0 is spread over its two equal clips: log 2 for
    # that text (the least possible), 0 for the other; averaged over texts, then over directions
    assert loss.item() == pytest.approx(math.log(2) / 4, abs=1e-3)


def test_contrastive_loss_leaves_out_pairs_and_skips_unowned_texts():
    torch.manual_seed(0)
    video, texts = F.normalize(torch.randn(3, 4), dim=-1), torch.randn(4, 4)
    owner, scale = torch.tensor([0, 1, 1]), torch.tensor(10.0)  # texts 2 and 3 are nobody's: negatives only
    allowed = torch.ones(3, 4, dtype=torch.bool)
    allowed[:, 3] = False  # text 3 left out for every clip
    moved = texts.clone()
    moved[3] = torch.randn(4)
    loss = clip.contrastive_loss(video, texts, owner, scale, allowed)
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(clip.contrastive_loss(video, moved, owner, scale, allowed).item())
    assert loss.item() == pytest.approx(clip.contrastive_loss(video, texts[:3], owner, scale).item())


def test_train_clip_is_deterministic(root):
    clips = [[root / "data" / f"clip{c}_f{f}.jpg" for f in range(3)] for c in range(3)]
    captions = [("a red scene", TEXTS[0]), ("a blue scene", TEXTS[1]), ("a red scene", TEXTS[0])]
    runs = []
    for _ in range(2):
        model, preprocess, tokenizer = clip.new_clip(ARCH, seed=0)
        losses = clip.train_clip(model, preprocess, tokenizer, clips, captions, candidates=TEXTS, epochs=3,
                                 batch_size=2, lr=1e-3, frames_per_step=2, seed=0, progress=False)
        runs.append((losses, model.state_dict()))
    assert len(runs[0][0]) == 6 and runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1].values(), runs[1][1].values()))
    assert not model.training


def test_pair_candidates_and_accuracies():
    everything, consistent = clip_eval.pair_candidates(), clip_eval.pair_candidates(consistent_only=True)
    assert len(everything) == 84 and len(consistent) == 21
    assert len({c.text for c in everything}) == 84
    assert everything[0].text == "Action: Move forward; Reason: Follow traffic"
    one_hot = lambda i, n: tuple(int(j == i) for j in range(n))
    samples = [Sample("a", "test", one_hot(0, 4), one_hot(1, 21)), Sample("b", "test", one_hot(1, 4), one_hot(3, 21))]
    truth = clip_eval.true_candidate(samples, everything)
    assert [everything[i].text for i in truth] == [
        "Action: Move forward; Reason: Road is clear", "Action: Stop/Slow down; Reason: Obstacle: car"]
    matrix = torch.zeros(2, 84)
    matrix[0, truth[0]] = 1  # right pair
    matrix[1, truth[0]] = 1  # wrong action and reason
    assert clip_eval.top1_accuracy(matrix, samples, everything) == dict(action=0.5, reason=0.5, pair=0.5)
    assert clip_eval.retrieval_accuracy(matrix, truth) == dict(clip_to_text=0.5, text_to_clip=0.5)


def test_build_clip_fine_tunes_a_saved_model(small_clip, root, tmp_path, monkeypatch):
    """The fine-tuning option (``build-clip --base ...``) end to end, on three clips, on whole frames."""
    from drivekit.core import config

    base = clip.save_clip(small_clip[0], tmp_path / "base", factory._MODEL_CONFIGS[ARCH])
    clips = [[root / "data" / f"clip{c}_f{f}.jpg" for f in range(3)] for c in range(3)]
    captions = [(TEXTS[0],), (TEXTS[1],), (TEXTS[0],)]
    monkeypatch.setattr(clip, "training_pairs", lambda cfg: (clips, captions))
    trained_with = []
    train = clip.train_clip
    monkeypatch.setattr(clip, "train_clip", lambda model, preprocess, *a, **k: trained_with.append(preprocess)
                        or train(model, preprocess, *a, **k))
    cfg = config.load("tiny", data_root=root, cache_dir=tmp_path / "cache")
    out = clip.build_clip(cfg, tmp_path / "tuned", base=str(base), progress=False, epochs=1, batch_size=2)
    info = json.loads((out / clip.BUILD_FILE).read_text())
    assert info["base"] == str(base) and info["lr"] == clip.ClipTrainSettings.VARIANTS["finetune"]["lr"] and info["clips"] == 3
    assert info["resize_mode"] == "squash"
    assert json.loads((out / clip.CONFIG_FILE).read_text())["model_cfg"] == factory._MODEL_CONFIGS[ARCH]
    assert sees_the_edges(trained_with[0], wide_frames(tmp_path))  # training sees what the reward sees
    tuned = clip.load_clip(out)[0]
    before = clip.load_clip(base)[0].state_dict().values()
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), before))


# ---------------------------------------------------------------------------------------------
# R1 sees the whole frame
# ---------------------------------------------------------------------------------------------
def wide_frames(folder: Path) -> dict[str, Path]:
    """1280x720 frames (BDD-OIA's size): blank, and with content only in the outer 100 px of one side."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    frames = {"blank": np.zeros((720, 1280, 3), np.uint8)}
    frames["left"], frames["right"] = frames["blank"].copy(), frames["blank"].copy()
    frames["left"][:, :100] = 255
    frames["right"][:, -100:] = 255
    for name, pixels in frames.items():
        Image.fromarray(pixels).save(folder / "data" / f"{name}.jpg")
    return {name: folder / "data" / f"{name}.jpg" for name in frames}


def sees_the_edges(preprocess, frames: dict[str, Path]) -> bool:
    """Whether both side strips change the image tensor (a centre crop leaves them out)."""
    blank = preprocess(load_image(frames["blank"]))
    return all(not torch.allclose(preprocess(load_image(frames[side])), blank, atol=1e-3) for side in ("left", "right"))


def test_the_reward_sees_the_edges_of_a_wide_frame(small_clip, tmp_path):
    folder = clip.save_clip(small_clip[0], tmp_path / "clip", factory._MODEL_CONFIGS[ARCH])
    frames = wide_frames(tmp_path)
    assert json.loads((folder / clip.CONFIG_FILE).read_text())["preprocess_cfg"]["resize_mode"] == "squash"
    saved = json.loads((folder / clip.CONFIG_FILE).read_text())
    saved["preprocess_cfg"]["resize_mode"] = "shortest"  # a folder saved with open_clip's centre crop
    (folder / clip.CONFIG_FILE).write_text(json.dumps(saved))
    cropped = ClipReward(*clip.load_clip(folder, resize_mode=None), tmp_path)
    whole = ClipReward(*clip.load_clip(folder), tmp_path)  # every source gets the whole frame
    assert not sees_the_edges(cropped.preprocess, frames)  # what the old preprocessing did: edges cut off
    assert sees_the_edges(whole.preprocess, frames) and sees_the_edges(clip.new_clip(ARCH)[1], frames)
    for reward, differs in ((whole, True), (cropped, False)):
        blank, left, right = reward.frame_embeddings(["blank.jpg", "left.jpg", "right.jpg"])
        assert (not torch.allclose(left, blank, atol=1e-4)) == differs
        assert (not torch.allclose(right, blank, atol=1e-4)) == differs


def test_disk_cache_is_keyed_by_the_preprocessing(small_clip, root, tmp_path):
    model, _, tokenizer = small_clip
    transforms = [image_transform(32, False, resize_mode=mode) for mode in ("squash", "longest", "shortest")]
    transforms.append(image_transform(32, False, resize_mode="longest", fill_color=255))  # another padding
    keys = {ClipReward(model, t, tokenizer, root, cache_dir=tmp_path).cache_dir for t in transforms}
    assert len(keys) == len(transforms)


# ---------------------------------------------------------------------------------------------
# The reward runs on the model's device
# ---------------------------------------------------------------------------------------------
def test_the_reward_runs_on_the_device_it_is_given(root, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert clip.default_device() == "cuda"  # the default, for load_clip and ClipReward alike
    model, preprocess, tokenizer = clip.new_clip(ARCH, seed=0)
    # "meta" holds no data: any copy of the embeddings back to the CPU would raise
    reward = ClipReward(model, preprocess, tokenizer, root, device="meta")
    assert reward.device.type == "meta" and all(p.device.type == "meta" for p in model.parameters())
    assert all(e.device.type == "meta" for e in reward.frame_embeddings(NAMES))
    assert reward.video_embeddings(NAMES).shape == (4, 16) and reward.video_embeddings(NAMES).device.type == "meta"
    loaded = clip.load_clip(clip.save_clip(clip.new_clip(ARCH)[0], root / "saved", factory._MODEL_CONFIGS[ARCH]),
                            device="meta")[0]
    assert all(p.device.type == "meta" for p in loaded.parameters())


def test_the_reward_on_the_cpu_keeps_its_tensors_there(small_clip, root, tmp_path):
    reward = ClipReward(*small_clip, root, cache_dir=tmp_path, device="cpu")
    assert reward.matrix(NAMES, TEXTS).device.type == "cpu" and reward.text_embeddings(TEXTS).device.type == "cpu"
    assert all(e.device.type == "cpu" for e in reward.frame_embeddings(NAMES))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_reward_on_cuda_matches_the_cpu(root, tmp_path):
    model, preprocess, tokenizer = clip.new_clip(ARCH, seed=0)
    on_cpu = ClipReward(model, preprocess, tokenizer, root, device="cpu").matrix(NAMES, TEXTS)
    gpu = ClipReward(model, preprocess, tokenizer, root, cache_dir=tmp_path)  # the default: CUDA
    matrix = gpu.matrix(NAMES, TEXTS)
    assert gpu.device.type == "cuda" and matrix.device.type == "cuda" and next(model.parameters()).is_cuda
    assert torch.allclose(matrix.cpu(), on_cpu, atol=1e-4)
    assert gpu(TEXTS, file_name=NAMES) == pytest.approx(on_cpu.diagonal().tolist(), abs=1e-4)
    again = ClipReward(model, preprocess, tokenizer, root, cache_dir=tmp_path, device="cpu")  # the disk cache
    assert torch.allclose(again.matrix(NAMES, TEXTS), on_cpu, atol=1e-4)
    assert clip_eval.retrieval_accuracy(matrix, np.arange(4)) == clip_eval.retrieval_accuracy(on_cpu, np.arange(4))


# ---------------------------------------------------------------------------------------------
# Notebook 03 with any CLIP source
# ---------------------------------------------------------------------------------------------
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_clip_reward.ipynb"


@pytest.mark.parametrize("kind", ["build-clip folder", "<arch>/<checkpoint>", "checkpoint file"])
def test_notebook_03_runs_with_a_local_clip(kind, small_clip, official_layout, tmp_path, monkeypatch):
    """The notebook's own code cells, in order, with the paper profile's CLIP set to a local source."""
    import matplotlib
    import matplotlib.pyplot as plt
    import nbformat

    matplotlib.use("Agg")
    model = small_clip[0]
    if kind == "build-clip folder":
        source = str(clip.save_clip(model, tmp_path / "clip", factory._MODEL_CONFIGS[ARCH]))
    else:
        torch.save(model.state_dict(), tmp_path / "clip.pt")
        source = f"{ARCH}/{tmp_path / 'clip.pt'}" if kind.startswith("<arch>") else str(tmp_path / "clip.pt")
        monkeypatch.setattr(clip, "CHECKPOINT_ARCH", ARCH)  # (a random ViT-B-32 takes a minute to build here)
    monkeypatch.setitem(config.PROFILES["paper"], "clip", source)
    for var, value in (("PROFILE", "paper"), ("DATA", official_layout), ("CACHE", tmp_path / "cache"),
                       ("RUNS", tmp_path / "runs")):
        monkeypatch.setenv(f"DRIVEKIT_{var}", str(value))
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    namespace = {}
    try:
        for i, code in enumerate(cells):
            exec(compile(code, f"{NOTEBOOK.name} code cell {i}", "exec"), namespace)
    finally:
        plt.close("all")
    reward, baseline, matrices = namespace["reward"], namespace["baseline"], namespace["matrices"]
    assert reward.preprocess.transforms[0].size == (32, 32)  # the whole frame, squashed
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}
    assert shapes(baseline.model) == shapes(reward.model)  # the chance baseline: same architecture, ...
    assert not torch.equal(baseline.model.visual.conv1.weight, reward.model.visual.conv1.weight)  # other weights
    stored = model.visual.conv1.weight.half().float() if kind == "build-clip folder" else model.visual.conv1.weight
    assert torch.equal(reward.model.visual.conv1.weight, stored)  # (a folder stores float16)
    assert all(m.shape == (len(namespace["names"]), 84) for m in matrices.values())


def test_a_decompression_bomb_frame_is_a_named_error(small_clip, tmp_path):
    """A frame whose header claims 60000x60000 pixels: the reward names the file (bddoia.load_image), no PIL error."""
    root = tmp_path / "bomb"
    (root / "data").mkdir(parents=True)
    path = root / "data" / "bomb.jpg"
    Image.new("RGB", (16, 8)).save(path, "JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    with pytest.raises(BDDOIAFormatError, match="too large to decode") as err:
        ClipReward(*small_clip, root)(TEXTS[:1], file_name=["bomb.jpg"])
    assert err.value.path == path


def fake_hub_cache(cache: Path, repo: str, filename: str) -> Path:
    """A Hugging Face cache holding ``repo``'s ``filename`` (the layout hf_hub_download writes)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    file = folder / "snapshots" / ("0" * 40) / filename
    file.parent.mkdir(parents=True)
    file.write_bytes(b"weights")
    return file


def test_a_pretrained_tag_offline_and_not_cached_fails_at_once(monkeypatch, tmp_path):
    import time

    def no_hub(*args, **kwargs):
        raise AssertionError("open_clip must not be asked: it would retry the hub for a minute")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", no_hub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: False)
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"'ViT-B-32/openai': its weights \(timm/vit_base_patch32_clip_224.openai\) "
                                         r"are not in the local cache, and the model hub is unreachable \(offline\?\): "
                                         r"set DRIVEKIT_CLIP to a checkpoint file"):
        clip.load_clip("ViT-B-32/openai", device="cpu")
    assert time.monotonic() - start < 5


def test_a_cached_pretrained_tag_loads_without_the_hub(monkeypatch, small_clip, tmp_path):
    seen = []

    def fake(arch, pretrained=None, **options):
        seen.append((arch, pretrained, options))
        return small_clip[0], None, small_clip[1]

    file = fake_hub_cache(tmp_path / "hub", "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(vlm, "hub_reachable", lambda timeout=None: pytest.fail("the cache is enough"))
    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake)
    clip.load_clip("ViT-B-32/openai", device="cpu")
    tag = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    (arch, pretrained, options), = seen
    assert (arch, pretrained) == ("ViT-B-32", str(file))
    assert options == dict(image_resize_mode="squash", force_quick_gelu=True, image_mean=tag["mean"],
                           image_std=tag["std"], image_interpolation=tag["interpolation"])
