"""CLIP models for the R1 reward: one loader, the tiny driving-domain CLIP, contrastive training.

``load_clip(name_or_path)`` returns ``(model, preprocess, tokenizer)`` (eval mode) for

- ``"tiny"``: drivekit's driving-domain CLIP, open_clip architecture ``drivekit-tiny-clip``
  (registered with open_clip on import; ``TINY_CONFIG``). Read from ``data/zoo/tiny-clip/``
  (shipped with the repository) or ``<cache_dir>/tiny-clip/``, and built there when missing;
- ``"<arch>/<tag>"``: open_clip pretrained weights, e.g. ``"ViT-B-32/openai"``, the proposal's
  ``openai/clip-vit-base-patch32`` (downloaded once into open_clip's cache: needs the internet);
- ``"<arch>/<checkpoint file>"`` or a bare checkpoint file (a state_dict; a bare file's architecture
  is ``arch``, default ``ViT-B-32``), or a folder written by :func:`save_clip` (open_clip's
  ``local-dir`` layout: ``open_clip_config.json`` with the architecture, and
  ``open_clip_model.safetensors``), such as ``build-clip``'s output.

The architecture comes from the source (:func:`clip_source`), never from a guess at the name.
Every source's frames are preprocessed with open_clip's ``image_resize_mode`` ``RESIZE_MODE`` (the
whole frame), in the reward and in training alike; the model runs on CUDA when available.

``train_clip`` trains any of them contrastively on clips (lists of frame files) paired with
captions: R1 itself (mean of the frames' normalised embeddings · normalised text embedding) times
the learnt logit scale is the logit, and clips that share a caption are all positives for it.

Commands (``python -m drivekit build-clip`` is the same as ``python -m drivekit.models.clip``):

- ``build-clip`` trains the tiny CLIP from scratch on the synthetic clips, each paired with its
  scene description and its ``Action: ...; Reason: ...`` text (``formats.target_text``), all
  clips except the toy test split (held out for evaluation); writes ``data/zoo/tiny-clip/``.
- ``build-clip --profile paper --base ViT-B-32/openai --out runs/clip-bddoia`` fine-tunes the
  paper's CLIP the same way on BDD-OIA's label texts (real BDD-OIA has no scene descriptions), at
  a fine-tuning learning rate; then use it with ``load_clip("runs/clip-bddoia")``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import open_clip
import torch
import torch.nn.functional as F
from open_clip import factory
from open_clip.transformer import text_global_pool
from PIL import Image

from drivekit.data.bddoia import frame_paths, read_splits
from drivekit.models.clip_eval import pair_candidates
from drivekit.core.config import HOME, Config, load
from drivekit.core.settings import Settings
from drivekit.text.formats import target_text
from drivekit.data.toy_split import load_or_make_toy_split

TINY_ARCH = "drivekit-tiny-clip"
# A ViT on 96x96 frames (6x6 patches of 16 px) and a small text transformer with CLIP's BPE
# vocabulary and 77-token context, so open_clip's tokenizer serves it unchanged. The logit scale
# starts at 30 (CLIP: 1/0.07), sharper from the start for a short training.
TINY_CONFIG = {
    "embed_dim": 128,
    "init_logit_scale": math.log(30),
    "vision_cfg": {"image_size": 96, "patch_size": 16, "width": 96, "layers": 3, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3},
}
factory._MODEL_CONFIGS[TINY_ARCH] = deepcopy(TINY_CONFIG)  # open_clip's registry of architectures

ZOO_DIR = HOME / "data" / "zoo" / "tiny-clip"
CHECKPOINT_ARCH = "ViT-B-32"  # the architecture of a bare checkpoint file unless told otherwise
# open_clip's image_resize_mode for every CLIP source: "squash" resizes the whole frame to the square
# input. "shortest" (ViT-B-32's default: resize, centre-crop) keeps the middle 720x720 of 1280x720,
# losing the side lanes and cars; "longest" (resize, pad) spends 44 % of the input on padding.
RESIZE_MODE = "squash"
WEIGHTS_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"
BUILD_FILE = "build.json"


@dataclass(frozen=True)
class ClipTrainSettings(Settings):
    """Contrastive training of a CLIP (:func:`train_clip`'s options, plain data). The defaults are
    :func:`train_clip`'s; ``VARIANTS`` says what each way of training changes, in plain data:
    ``ClipTrainSettings.scratch()`` trains the tiny CLIP from a random init, ``.finetune()``
    pretrained weights at a fine-tuning learning rate, and ``.for_base(base)`` is the one for
    :func:`build_clip`'s ``base``. The tiny model's operations are too small for a second CPU thread
    to pay, and one thread keeps the build quick when other jobs share the cores (2 threads are
    many times slower on an oversubscribed CPU). No profile changes a default: the variant follows
    the base, not the profile."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: float = 0.1  # share of the steps the learning rate warms up over
    frames_per_step: int | None = None  # frames of each clip encoded per step (None: all)
    threads: int | None = None  # torch's CPU threads while training (None: as set)

    VARIANTS: ClassVar[dict[str, dict]] = {
        "scratch": dict(frames_per_step=2, threads=1),
        "finetune": dict(lr=1e-5),
    }

    @classmethod
    def scratch(cls, **changes) -> ClipTrainSettings:
        """Training the tiny architecture from a random init, with ``changes``."""
        return cls(**{**cls.VARIANTS["scratch"], **changes})

    @classmethod
    def finetune(cls, **changes) -> ClipTrainSettings:
        """Fine-tuning pretrained weights, with ``changes``."""
        return cls(**{**cls.VARIANTS["finetune"], **changes})

    @classmethod
    def for_base(cls, base: str | None, **changes) -> ClipTrainSettings:
        """:meth:`scratch` without a ``base`` to start from, else :meth:`finetune`."""
        return cls.scratch(**changes) if base is None else cls.finetune(**changes)


Tokenizer = Callable[[list[str]], torch.Tensor]


def tiny_clip_dir(cfg: Config | None = None) -> Path:
    """Where the tiny CLIP is read from: the shipped ``data/zoo/tiny-clip``, else the cache."""
    if (ZOO_DIR / CONFIG_FILE).is_file():
        return ZOO_DIR
    return (cfg or load()).cache_dir / "tiny-clip"


def default_device() -> str:
    """Where a CLIP runs unless told otherwise: ``cuda`` when available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _eval(model: torch.nn.Module, preprocess, tokenizer, device) -> tuple:
    return model.to(device or default_device()).eval(), preprocess, tokenizer


@contextmanager
def _quiet():
    """open_clip warns that no pretrained weights were loaded: intended for a random init."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def new_clip(arch: str = TINY_ARCH, seed: int = 0, device: str | torch.device = "cpu",
             resize_mode: str | None = RESIZE_MODE) -> tuple:
    """A randomly initialised open_clip model of architecture ``arch``, seeded."""
    torch.manual_seed(seed)
    with _quiet():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, image_resize_mode=resize_mode)
    return _eval(model, preprocess, open_clip.get_tokenizer(arch), device)


@dataclass(frozen=True)
class ClipSource:
    """What a :func:`load_clip` name stands for, in open_clip's terms.

    ``model_name`` is a registered architecture or ``local-dir:<folder>``; ``pretrained`` a
    pretrained tag or a checkpoint file of that architecture (None for a folder, which holds its
    weights); ``model_cfg`` the architecture itself (open_clip's model config).
    """

    model_name: str
    pretrained: str | None
    model_cfg: dict

    @property
    def tag(self) -> dict:
        """open_clip's settings of a pretrained tag (weights, preprocessing, QuickGELU); {} otherwise."""
        if self.pretrained is None or self.model_name.startswith("local-dir:"):
            return {}
        return open_clip.get_pretrained_cfg(self.model_name, self.pretrained)


def _architecture(arch: str, name) -> dict:
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ValueError(f"{name!r}: {arch!r} is not an open_clip architecture (open_clip.list_models())")
    return model_cfg


def clip_source(name_or_path: str | Path = "tiny", *, arch: str | None = None, cfg: Config | None = None,
                build: bool = True) -> ClipSource:
    """Resolve a :func:`load_clip` name (see the module docstring) to its architecture and weights.

    The architecture comes from the source itself: a folder's ``open_clip_config.json``, the
    ``<arch>`` of ``"<arch>/<tag or checkpoint file>"``; only a bare checkpoint file needs ``arch``
    (default ``CHECKPOINT_ARCH``, the paper's ``ViT-B-32``).
    """
    if str(name_or_path) == "tiny":
        folder = tiny_clip_dir(cfg)
        if not (folder / CONFIG_FILE).is_file():
            if not build:
                raise FileNotFoundError(f"no tiny CLIP at {folder}; build it with `python -m drivekit build-clip`")
            build_tiny_clip(cfg or load(), folder)
        name_or_path = folder
    path = Path(name_or_path)
    if path.is_dir():
        config = path / CONFIG_FILE
        if not config.is_file():
            raise FileNotFoundError(f"{config} is missing: {path} is not a CLIP folder written by save_clip "
                                    "(`python -m drivekit build-clip`)")
        model_cfg = json.loads(config.read_text()).get("model_cfg")
        if not isinstance(model_cfg, dict):
            raise ValueError(f"{config}: no 'model_cfg' object")
        return ClipSource(f"local-dir:{path}", None, model_cfg)
    if path.is_file():
        arch = arch or CHECKPOINT_ARCH
        return ClipSource(arch, str(path), _architecture(arch, name_or_path))
    model_arch, sep, weights = str(name_or_path).partition("/")
    if not sep or not weights:
        raise ValueError(f"{name_or_path!r} is not 'tiny', an existing file or folder, "
                         "or '<arch>/<pretrained tag or checkpoint file>'")
    model_cfg = _architecture(model_arch, name_or_path)
    source = ClipSource(model_arch, weights, model_cfg)
    if not source.tag and not Path(weights).is_file():
        raise ValueError(f"{name_or_path!r}: {weights!r} is neither a pretrained tag of {model_arch} "
                         f"({', '.join(open_clip.list_pretrained_tags_by_model(model_arch)) or 'none'}) nor a file")
    if source.tag.get("quick_gelu"):  # e.g. ViT-B-32/openai: OpenAI's weights were trained with QuickGELU
        model_cfg["quick_gelu"] = True
    return source


def load_clip(name_or_path: str | Path = "tiny", *, arch: str | None = None, cfg: Config | None = None,
              device: str | torch.device | None = None, build: bool = True, resize_mode: str | None = RESIZE_MODE,
              load_weights: bool = True, seed: int = 0) -> tuple:
    """``(model, preprocess, tokenizer)`` for ``"tiny"``, ``"<arch>/<tag>"``, a checkpoint file or a folder.

    Resolved by :func:`clip_source` (``arch``: the architecture of a bare checkpoint file; ``cfg``:
    the cache and data of the tiny CLIP, built when missing unless ``build`` is False). The model
    goes to ``device`` (default: :func:`default_device`). ``resize_mode`` is open_clip's
    ``image_resize_mode`` (default ``RESIZE_MODE``, the whole frame; None keeps the source's own).
    ``load_weights=False`` gives the same architecture and preprocessing at random init, seeded
    by ``seed`` (a chance baseline; it reads no weights and leaves the global random state alone).
    A pretrained tag's weights are read from the local Hugging Face cache when it holds them (no network),
    else downloaded by open_clip; when the hub cannot be reached either, a ``ValueError`` says so at once.
    """
    source = clip_source(name_or_path, arch=arch, cfg=cfg, build=build)
    tag = source.tag
    options = dict(image_resize_mode=resize_mode, force_quick_gelu=bool(source.model_cfg.get("quick_gelu")))
    hub = tag.get("hf_hub", "") if load_weights else ""
    cached = None
    if hub:  # open_clip would retry the hub for minutes offline: look in the cache first, then ask the hub
        from huggingface_hub import try_to_load_from_cache

        from drivekit.models.vlm import hub_reachable

        repo, _, filename = hub.rpartition("/")  # "org/model/file" or "org/model/" (open_clip's default names)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        cached = next((f for n in names if isinstance(f := try_to_load_from_cache(repo, n), str)), None)
        if cached is None and not hub_reachable():
            raise ValueError(f"{str(name_or_path)!r}: its weights ({repo}) are not in the local cache, and the model "
                             "hub is unreachable (offline?): set DRIVEKIT_CLIP to a checkpoint file or a folder "
                             "written by `python -m drivekit build-clip`")
    if cached:  # the cached file, with the tag's preprocessing (open_clip knows it only from the tag)
        model, _, preprocess = open_clip.create_model_and_transforms(
            source.model_name, pretrained=cached, image_mean=tag.get("mean"), image_std=tag.get("std"),
            image_interpolation=tag.get("interpolation"),
            **{**options, "image_resize_mode": resize_mode or tag.get("resize_mode")})
    elif load_weights:
        model, _, preprocess = open_clip.create_model_and_transforms(
            source.model_name, pretrained=source.pretrained, **options)
    else:  # a tag's preprocessing without its download
        with torch.random.fork_rng(devices=[]), _quiet():
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(
                source.model_name, load_weights=False, image_mean=tag.get("mean"), image_std=tag.get("std"),
                image_interpolation=tag.get("interpolation"), **options)
    return _eval(model, preprocess, open_clip.get_tokenizer(source.model_name), device)


def save_clip(model: torch.nn.Module, folder: str | Path, model_cfg: dict, info: dict | None = None) -> Path:
    """Write ``model`` as an open_clip ``local-dir`` folder (fp16 weights), loadable by :func:`load_clip`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(model_cfg=model_cfg, preprocess_cfg=open_clip.get_model_preprocess_cfg(model))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    weights = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(weights, folder / WEIGHTS_FILE)
    if info is not None:
        (folder / BUILD_FILE).write_text(json.dumps(info, indent=1))
    return folder


# ---------------------------------------------------------------------------------------------
# Contrastive training
# ---------------------------------------------------------------------------------------------
def load_frames(paths: Sequence[Path], preprocess) -> torch.Tensor:
    """The frames at ``paths`` preprocessed into one ``(M, 3, H, W)`` tensor."""
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(preprocess(image.convert("RGB")))
    return torch.stack(frames)


def _preload(clips: Sequence[Sequence[Path]], preprocess, progress: bool) -> list[torch.Tensor]:
    """Every clip's preprocessed frames, as float16 views into one buffer (no per-clip allocations)."""
    from tqdm.auto import tqdm

    counts = [len(paths) for paths in clips]
    buffer = torch.empty(sum(counts), *load_frames(clips[0][:1], preprocess).shape[1:], dtype=torch.float16)
    start = 0
    for paths in tqdm(clips, desc="frames", disable=not progress):
        buffer[start:start + len(paths)] = load_frames(paths, preprocess)
        start += len(paths)
    return list(buffer.split(counts))


def _pooled(model: torch.nn.Module, frames: list[torch.Tensor], device) -> torch.Tensor:
    """Per clip the mean of its frames' normalised image embeddings (R1's ``v``)."""
    embeddings = F.normalize(model.encode_image(torch.cat(frames).to(device, torch.float32)), dim=-1)
    return torch.stack([e.mean(0) for e in embeddings.split([len(f) for f in frames])])


def encode_text(model: torch.nn.Module, tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``model.encode_text(tokens)`` in batches of similar length, cut after each batch's longest text.

    In open_clip's CLIP text tower (causal attention, pooled at the end-of-text token) padding
    never reaches the pooled output, so dropping it changes nothing but the cost (about half for
    drivekit's texts). Other text towers get the padded tokens.
    """
    lengths = (tokens != 0).sum(1)  # open_clip pads with 0
    exact = (isinstance(model, open_clip.CLIP) and model.attn_mask is not None
             and model.text_pool_type in ("argmax", "first"))
    order = torch.argsort(lengths, stable=True)
    parts = []
    for batch in order.split(batch_size):
        n = int(lengths[batch].max()) if exact else tokens.shape[1]
        parts.append(_encode_trimmed(model, tokens[batch, :n]) if n < tokens.shape[1]
                     else model.encode_text(tokens[batch]))
    return torch.cat(parts)[torch.argsort(order)]


def _encode_trimmed(model: open_clip.CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """``CLIP.encode_text`` of tokens cut to ``n`` columns: the first ``n`` positions and mask rows."""
    n, dtype = tokens.shape[1], model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(dtype) + model.positional_embedding[:n].to(dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = text_global_pool(x, tokens, model.text_pool_type)
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def contrastive_loss(video: torch.Tensor, texts: torch.Tensor, owner: torch.Tensor, scale: torch.Tensor,
                     allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric CLIP loss with shared captions: ``texts`` are distinct, ``owner[i]`` is clip i's text.

    Clip -> text is a cross-entropy over the distinct texts; text -> clip spreads the target
    evenly over all clips that own the text (so a shared caption is never its own negative) and
    skips texts no clip owns. ``allowed`` (clips x texts, bool) leaves pairs out of both.
    """
    logits = scale * video @ F.normalize(texts, dim=-1).T  # (clips, texts)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    positives = F.one_hot(owner, len(texts)).T.float()  # (texts, clips)
    owned = positives.sum(1) > 0
    log_p = F.log_softmax(logits.T[owned], dim=1)
    text_to_clip = -(positives[owned] * log_p.masked_fill(positives[owned] == 0, 0)).sum(1) / positives[owned].sum(1)
    return (F.cross_entropy(logits, owner) + text_to_clip.mean()) / 2


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; no weight decay on gains, biases, embeddings and the logit scale."""
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and "embedding" not in name else rest).append(p)
    return torch.optim.AdamW([dict(params=decay, weight_decay=weight_decay), dict(params=rest, weight_decay=0.0)],
                             lr=lr, betas=(0.9, 0.98), eps=1e-6)


def train_clip(model: torch.nn.Module, preprocess, tokenizer: Tokenizer, clips: Sequence[Sequence[Path]],
               captions: Sequence[Sequence[str]], *, candidates: Sequence[str] = (), epochs: int = 3,
               batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.1, warmup: float = 0.1,
               frames_per_step: int | None = None, threads: int | None = None, seed: int = 0,
               progress: bool = True) -> list[float]:
    """Train ``model`` contrastively; returns the loss of every step. Deterministic per ``seed``.

    ``clips[i]`` are the frame files of clip i and ``captions[i]`` its texts, one per kind (for
    example a scene description and an action+reason text; every clip has the same kinds). Each
    kind adds a :func:`contrastive_loss` between the clips' R1 embeddings and the batch's distinct
    texts of that kind. ``candidates`` is a closed set of answers (e.g. all action+reason pair
    texts): a clip whose caption is one of them is contrasted with all of them as well (hard
    negatives), other clips only with the batch's captions.

    AdamW; the learning rate warms up linearly over ``warmup`` of the steps, then follows a cosine
    to zero. ``frames_per_step`` encodes only that many randomly chosen frames of each clip per
    step (cheaper; default: all). ``threads`` sets torch's CPU threads while training (restored
    after). All frames are preprocessed once and held in memory (float16).
    """
    kinds = {len(c) for c in captions}
    if len(clips) != len(captions) or len(kinds) != 1:
        raise ValueError("give one tuple of captions per clip, with the same number of captions each")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or previous_threads)
    try:
        return _train(model, preprocess, tokenizer, clips, captions, candidates, epochs, batch_size, lr,
                      weight_decay, warmup, frames_per_step, seed, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _caption_loss(model: torch.nn.Module, video: torch.Tensor, ids: torch.Tensor, tokens: torch.Tensor,
                  candidate_ids: torch.Tensor) -> torch.Tensor:
    """:func:`contrastive_loss` of a batch's clips with their captions ``ids`` (of one kind) and the candidates."""
    in_set = torch.isin(ids, candidate_ids)
    distinct = torch.unique(torch.cat([ids, candidate_ids]) if in_set.any() else ids)
    allowed = in_set[:, None] | torch.isin(distinct, ids)[None, :]  # candidates only for clips answering from them
    texts = encode_text(model, tokens[distinct].to(video.device))
    owner = torch.searchsorted(distinct, ids).to(video.device)
    return contrastive_loss(video, texts, owner, model.logit_scale.exp(), allowed.to(video.device))


def _warmup_cosine(optimizer: torch.optim.Optimizer, total: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, round(warmup * total))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warm if s < warm else
                                             0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))


def _train(model, preprocess, tokenizer, clips, captions, candidates, epochs, batch_size, lr, weight_decay, warmup,
           frames_per_step, seed, progress) -> list[float]:
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    frames = _preload(clips, preprocess, progress)
    vocabulary = {text: i for i, text in enumerate(sorted({*candidates, *(text for c in captions for text in c)}))}
    tokens = tokenizer(list(vocabulary))  # each distinct text tokenised once
    text_ids = torch.tensor([[vocabulary[text] for text in c] for c in captions])
    candidate_ids = torch.tensor(sorted(vocabulary[text] for text in candidates), dtype=torch.long)
    total = epochs * math.ceil(len(clips) / batch_size)
    optimizer = _optimizer(model, lr, weight_decay)
    schedule = _warmup_cosine(optimizer, total, warmup)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    with tqdm(total=total, desc="train CLIP", disable=not progress) as bar:
        for _ in range(epochs):
            for batch in torch.randperm(len(clips), generator=generator).split(batch_size):
                chosen = [frames[i][torch.randperm(len(frames[i]), generator=generator)[:frames_per_step]]
                          if frames_per_step else frames[i] for i in batch]
                video = _pooled(model, chosen, device)
                loss = sum(_caption_loss(model, video, text_ids[batch, k], tokens, candidate_ids)
                           for k in range(text_ids.shape[1])) / text_ids.shape[1]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
def training_pairs(cfg: Config) -> tuple[list[list[Path]], list[tuple[str, ...]]]:
    """Frames and captions of every clip of ``cfg.data_root`` except the toy test split.

    Captions: (scene description, action+reason text) on synthetic data, (action+reason text,)
    on real BDD-OIA.
    """
    root = Path(cfg.data_root)
    if cfg.synthetic:
        from drivekit.data.synthetic import ensure_dataset, read_scenes

        ensure_dataset(cfg)
        descriptions = {r["file_name"]: r["description"] for r in read_scenes(root)}
    samples = [s for labels in read_splits(root).values() for s in labels.samples]
    held_out = set(load_or_make_toy_split(cfg, samples).test)
    samples = sorted((s for s in samples if s.name not in held_out), key=lambda s: s.name)
    clips = [frame_paths(root, s.name) for s in samples]
    labels = [target_text(s.actions, s.reasons) for s in samples]
    if cfg.synthetic:
        return clips, [(descriptions[s.name], text) for s, text in zip(samples, labels)]
    return clips, [(text,) for text in labels]


def build_clip(cfg: Config, out: str | Path, base: str | None = None, progress: bool = True,
               resize_mode: str | None = RESIZE_MODE, settings: ClipTrainSettings | None = None,
               **changes) -> Path:
    """Train a CLIP on ``cfg``'s data (:func:`training_pairs`) and save it to ``out``.

    ``base`` None trains the tiny architecture from scratch (seed ``cfg.seed``); otherwise it is
    loaded with :func:`load_clip` (on :func:`default_device`) and fine-tuned, and saved with its
    own architecture. Frames are preprocessed with ``resize_mode`` (as the reward does, see
    ``RESIZE_MODE``). ``settings`` (default ``ClipTrainSettings.for_base(base)``) with ``changes``
    (fields of it) on top say how to train; ``build.json`` records them.
    """
    start = time.perf_counter()
    settings = (settings or ClipTrainSettings.for_base(base)).replace(**changes)
    if base is None:
        model, preprocess, tokenizer = new_clip(TINY_ARCH, seed=cfg.seed, resize_mode=resize_mode)
        model_cfg = deepcopy(TINY_CONFIG)
    else:
        model, preprocess, tokenizer = load_clip(base, cfg=cfg, resize_mode=resize_mode)
        model_cfg = clip_source(base, cfg=cfg).model_cfg
    clips, captions = training_pairs(cfg)
    pairs = [c.text for c in pair_candidates()]
    losses = train_clip(model, preprocess, tokenizer, clips, captions, candidates=pairs, seed=cfg.seed,
                        progress=progress, **asdict(settings))
    generator = Path(cfg.data_root) / "generator.json"  # the synthetic dataset's settings
    info = dict(base=base, profile=cfg.profile, clips=len(clips), resize_mode=resize_mode,
                dataset=json.loads(generator.read_text()) if generator.is_file() else str(cfg.data_root),
                caption_kinds=len(captions[0]), seed=cfg.seed, **asdict(settings), final_loss=losses[-1],
                seconds=round(time.perf_counter() - start, 1))
    return save_clip(model, out, model_cfg, info)


def build_tiny_clip(cfg: Config, out: str | Path | None = None, progress: bool = True) -> Path:
    """Build the tiny CLIP of ``cfg`` (default folder: ``<cache_dir>/tiny-clip``)."""
    return build_clip(cfg, out or cfg.cache_dir / "tiny-clip", progress=progress)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m drivekit build-clip", description=(
        "Train the tiny driving-domain CLIP from scratch (default), or fine-tune a pretrained CLIP "
        "(--base), on the profile's clips paired with their label texts (and scene descriptions)."))
    p.add_argument("--profile", help="tiny (default) or paper")
    p.add_argument("--base", help="a load_clip name to fine-tune, e.g. ViT-B-32/openai (default: tiny from scratch)")
    p.add_argument("--out", type=Path, help=f"output folder (default: {ZOO_DIR.relative_to(HOME)} in the tiny "
                   "profile, else <runs>/clip-scratch; with --base <runs>/clip-finetuned)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--resize-mode", default=RESIZE_MODE, choices=("squash", "longest", "shortest"),
                   help=f"open_clip's image_resize_mode for the frames (default {RESIZE_MODE}: the whole frame)")
    a = p.parse_args(argv)
    cfg = load(a.profile)
    if a.seed is not None:
        cfg = cfg.replace(seed=a.seed)
    changes = {k: v for k, v in dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr).items() if v is not None}
    out = a.out or (cfg.runs_dir / "clip-finetuned" if a.base else ZOO_DIR if cfg.synthetic else
                    cfg.runs_dir / "clip-scratch")
    start = time.perf_counter()
    folder = build_clip(cfg, out, a.base, resize_mode=a.resize_mode, **changes)
    size = (folder / WEIGHTS_FILE).stat().st_size / 2**20
    print(f"wrote {folder} ({size:.1f} MiB weights) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
